"""Authentication and role checks for every route, sessions with expiry, and the web audit trail.

Every view is tagged `@public` or `@requires(Role.X)`; one before-request hook enforces the tag, so a view
without a tag is refused to everyone (fail closed). Passwords are checked against the bcrypt hashes in
SYSTEM_USERS.db (tbot_bot.core.users); the role is re-read from the database on every request.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from flask import abort, current_app, flash, g, jsonify, redirect, request, session, url_for

from tbot_bot.core.audit import log_done_event, record_user_activity
from tbot_bot.core.login_guard import end_all_sessions, name_key, session_generation
from tbot_bot.core.users import Role, User, get_user, get_user_for_session, role_at_least
from tbot_bot.errors import ConfigError
from tbot_bot.reporting.log_rotation import rotate_logs
from tbot_bot.support.path_resolver import BotHome

from .web_config import SettingsAccess, WebLimits

ACCESS_ATTR = "tbot_access"
DEFAULT_IDLE_TIMEOUT_MINUTES = 30
# requests a page sends by itself every few seconds: they do not count as use for the idle timeout
BACKGROUND_ENDPOINTS = frozenset({"status.api", "status.chart"})
DEFAULT_LOG_RETENTION_DAYS = 30
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
    rotated_on: date | None = None


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
    """Append one line to a web log: created 0600, rotated daily with LOG_RETENTION_DAYS like the bot's."""
    st = state()
    directory = st.home.web_logs_dir
    with st.log_lock:
        directory.mkdir(parents=True, exist_ok=True)
        rotate_web_logs(st)
        path = directory / filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)  # a log created by an older version was 0644
            fh.write(_printable(line) + "\n")


def _printable(line: str) -> str:
    """One line, control characters shown as escapes, so a name cannot forge log lines."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in line)


def rotate_web_logs(st: WebState) -> None:
    """Once per UTC day: yesterday's access/auth logs become dated files; old ones are deleted."""
    today = st.clock().date()
    if st.rotated_on == today:
        return
    retention = DEFAULT_LOG_RETENTION_DAYS
    try:
        # LOG_RETENTION_DAYS (.env_bot): days of web logs kept, as for the bot's logs
        retention = int(st.settings.settings().LOG_RETENTION_DAYS)
    except (ConfigError, AttributeError, TypeError, ValueError):
        pass  # the config cannot be read: keep the default rather than stop logging
    rotate_logs(st.home.web_logs_dir, retention, now=st.clock())
    st.rotated_on = today


def log_name(username: str | None) -> str | None:
    """The name to log: a known username as is; anything else (typos, a password typed into the name box)
    only as a short hash, so it never lands in a log or on the users page."""
    if not username:
        return None
    name = username.strip()
    try:
        user = get_user(state().home, name)
    except ConfigError:
        user = None
    return user.username if user is not None else f"unknown#{name_key(name)[:8]}"


def access_log(status: int) -> None:
    user = current_user()
    who = user.username if user else "-"
    _append("access.log", f"{now().isoformat()} {client_ip()} {who} {request.method} {request.path} {status}")


def auth_failure(event: str, username: str | None, detail: str = "") -> None:
    who = log_name(username)
    _append(
        "auth_failures.log", f"{now().isoformat()} {client_ip()} {event} user={who or '-'} {detail}".rstrip()
    )
    activity(event, who, detail, known=True)


def system_event(event: str, actor: str | None, detail: str | None) -> None:
    """The SYSTEM_LOGS.db row of a change the dashboard made: one the log cannot take (missing, locked, damaged) is a
    warning on the page, never a failed request (the change stands; the activity log and access.log hold it)."""
    unrecorded = log_done_event(
        state().home, source="web", event=event, actor=actor, detail=detail, now=now()
    )
    if unrecorded:
        flash(f"Warning: {unrecorded}", "error")


def activity(event: str, username: str | None, detail: str = "", *, known: bool = False) -> None:
    """Record an event in USER_ACTIVITY_MONITORING.db; `known` says the name was already passed log_name."""
    try:
        record_user_activity(
            state().home,
            event=event,
            username=username if known else log_name(username),
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
    session["gen"] = session_generation(state().home, user.username)
    session["login_at"] = now().timestamp()
    session["seen"] = now().timestamp()
    session["sid"] = secrets.token_hex(8)
    session.permanent = True


def end_session(*, everywhere: bool = False) -> None:
    """Clear this cookie; `everywhere` (logout) also ends every other session of the user on the server."""
    username = session.get("uid")
    session.clear()
    if everywhere and username:
        end_all_sessions(state().home, str(username))


def idle_timeout_minutes() -> int:
    """WEB_IDLE_TIMEOUT_MINUTES from the bot config; the default when the config cannot be read (the pages
    that need it are closed then anyway, and the default is the stricter choice)."""
    try:
        return int(state().settings.settings().WEB_IDLE_TIMEOUT_MINUTES)
    except ConfigError:
        return DEFAULT_IDLE_TIMEOUT_MINUTES


def _session_user() -> User | None:
    username = session.get("uid")
    if not username:
        return None
    at = now().timestamp()
    timeout = state().limits.session_timeout_minutes * 60
    # SESSION_TIMEOUT_MINUTES (.env): a session ends this long after sign-in, however active it is
    if at - float(session.get("login_at", 0)) > timeout:
        return _expire(username, "session_expired", "Your session expired; please sign in again.")
    # WEB_IDLE_TIMEOUT_MINUTES (.env_bot): a session nobody used for this long ends too
    if at - float(session.get("seen", 0)) > idle_timeout_minutes() * 60:
        return _expire(
            username, "session_idle_expired", "Your session ended after a period without use; sign in again."
        )
    user, generation = get_user_for_session(state().home, username)
    # checked on every request: logout, a password or role change and disabling bump the generation
    if (
        user is None
        or not user.is_active
        or user.password_changed_at != session.get("pwc")
        or generation != session.get("gen")
    ):
        end_session()
        return None
    # the status page's own polling is not use; re-signing the cookie at most once a minute is enough
    if request.endpoint not in BACKGROUND_ENDPOINTS and at - float(session.get("seen", 0)) >= 60:
        session["seen"] = at
    return user


def _expire(username: str, event: str, message: str) -> None:
    activity(event, username)
    end_session()
    flash(message, "info")
    return None


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
