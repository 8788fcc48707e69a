"""Authentication and role checks for every route, sessions with expiry, and the web audit trail.

Every view is tagged `@public` or `@requires(Role.X)`; one before-request hook enforces the tag, so a view
without a tag is refused to everyone (fail closed). Passwords are checked against the bcrypt hashes in
SYSTEM_USERS.db (tbot_bot.core.users); the role is re-read from the database on every request.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from flask import abort, current_app, flash, g, jsonify, redirect, request, session, url_for

from tbot_bot.core.audit import record_user_activity
from tbot_bot.core.users import Role, User, get_user, role_at_least
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

from .web_config import SettingsAccess, WebLimits

ACCESS_ATTR = "tbot_access"
PUBLIC = "public"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class WebState:
    """Per-app state kept in app.extensions["tbot"]."""

    home: BotHome
    limits: WebLimits
    settings: SettingsAccess
    clock: Callable[[], datetime]
    log_lock: threading.Lock = field(default_factory=threading.Lock)


def state() -> WebState:
    return current_app.extensions["tbot"]  # type: ignore[no-any-return]


def now() -> datetime:
    return state().clock()


def public(view: F) -> F:
    setattr(view, ACCESS_ATTR, PUBLIC)
    return view


def requires(role: Role) -> Callable[[F], F]:
    def tag(view: F) -> F:
        setattr(view, ACCESS_ATTR, role)
        return view

    return tag


def endpoint_access(endpoint: str) -> str | Role | None:
    view = current_app.view_functions.get(endpoint)
    return getattr(view, ACCESS_ATTR, None)


def current_user() -> User | None:
    return g.get("user")


def can(role: Role | str) -> bool:
    user = current_user()
    return user is not None and role_at_least(user.role, Role(role))


# ---------------------------------------------------------------- audit trail


def client_ip() -> str:
    return request.remote_addr or "-"


def _append(filename: str, line: str) -> None:
    st = state()
    directory = st.home.web_logs_dir
    with st.log_lock:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / filename).open("a", encoding="utf-8") as fh:
            fh.write(line.replace("\n", " ") + "\n")


def access_log(status: int) -> None:
    user = current_user()
    who = user.username if user else session.get("uid", "-")
    _append("access.log", f"{now().isoformat()} {client_ip()} {who} {request.method} {request.path} {status}")


def auth_failure(event: str, username: str | None, detail: str = "") -> None:
    _append(
        "auth_failures.log",
        f"{now().isoformat()} {client_ip()} {event} user={username or '-'} {detail}".rstrip(),
    )
    activity(event, username, detail)


def activity(event: str, username: str | None, detail: str = "") -> None:
    try:
        record_user_activity(
            state().home,
            event=event,
            username=username,
            ip=client_ip(),
            user_agent=request.headers.get("User-Agent"),
            session_id=session.get("sid"),
            detail=detail or None,
            now=now(),
        )
    except ConfigError:
        # the activity DB is missing: the file logs still record the event
        current_app.logger.warning("USER_ACTIVITY_MONITORING.db unavailable; event %s not stored", event)


# ---------------------------------------------------------------- sessions


def start_session(user: User) -> None:
    session.clear()
    session["uid"] = user.username
    session["pwc"] = user.password_changed_at
    session["login_at"] = now().timestamp()
    session["sid"] = secrets.token_hex(8)
    session.permanent = True


def end_session() -> None:
    session.clear()


def _session_user() -> User | None:
    username = session.get("uid")
    if not username:
        return None
    timeout = state().limits.session_timeout_minutes * 60
    # SESSION_TIMEOUT_MINUTES (.env): a session ends this long after sign-in, however active it is
    if now().timestamp() - float(session.get("login_at", 0)) > timeout:
        activity("session_expired", username)
        end_session()
        flash("Your session expired; please sign in again.", "info")
        return None
    user = get_user(state().home, username)
    if user is None or not user.is_active or user.password_changed_at != session.get("pwc"):
        end_session()
        return None
    return user


def _refuse_anonymous() -> Any:
    if request.path.startswith("/api/"):
        return jsonify(error="sign in required"), 401
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("login.login", next=target))


def enforce_access() -> Any:
    """before_request: authenticate, expire, and authorise every request against its view's tag."""
    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None
    access = endpoint_access(endpoint)
    if access is None:
        abort(403)
    try:
        g.user = _session_user()
    except ConfigError:
        abort(503)
    if access == PUBLIC:
        return None
    user = current_user()
    if user is None:
        return _refuse_anonymous()
    try:
        policy = state().settings.rbac()
    except ConfigError as exc:
        current_app.logger.error("dashboard closed: %s", exc)
        abort(503)
    if not policy.enabled and user.role is not Role.ADMIN:
        # RBAC_ENABLED=false: single-operator mode, only admin accounts may use the dashboard
        auth_failure("rbac_disabled_refused", user.username)
        end_session()
        g.user = None
        flash("Multi-user access is disabled (RBAC_ENABLED=false); only admin accounts may sign in.", "error")
        return _refuse_anonymous()
    if not role_at_least(user.role, Role(access)):
        auth_failure("forbidden", user.username, f"{request.method} {request.path} needs {access}")
        abort(403)
    return None
