"""Admin-only user administration: list, add, change role, enable/disable, issue a one-time reset token,
and the recent activity trail."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.core import login_guard, users
from tbot_bot.core.audit import recent_user_activity
from tbot_bot.core.reset_tokens import issue_reset_token
from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError

from .auth_web import activity, current_user, now, requires, state, system_event

bp = Blueprint("users", __name__)


def _actor() -> str:
    user = current_user()
    return user.username if user else "unknown"


def _audit(event: str, detail: str) -> None:
    activity(event, _actor(), detail)
    system_event(event, _actor(), detail)


def _render(
    status: int = 200, *, errors: list[str] | None = None, issued: tuple[str, str] | None = None
) -> Any:
    home = state().home
    listed = users.list_users(home)
    try:
        default_role = state().settings.rbac().default_role.value
    except ConfigError:
        default_role = Role.VIEWER.value
    return (
        render_template(
            "users.html",
            users=listed,
            # who is locked out, from where and until when (the lockout is per name and client)
            locks={u.username: login_guard.locked_clients(home, u.username, now()) for u in listed},
            roles=[r.value for r in Role],
            default_role=default_role,
            activity_rows=recent_user_activity(home, 30),
            errors=errors or [],
            issued=issued,
        ),
        status,
    )


@bp.route("/users")
@requires(Role.ADMIN)
def page() -> Any:
    return _render()


@bp.route("/users/add", methods=["POST"])
@requires(Role.ADMIN)
def add() -> Any:
    form = request.form
    if form.get("password", "") != form.get("password_confirm", ""):
        return _render(400, errors=["the two passwords differ"])
    try:
        # DEFAULT_USER_ROLE: the form preselects it; the admin may choose another role
        user = users.add_user(
            state().home,
            form.get("username", ""),
            form.get("password", ""),
            form.get("role", ""),
            created_by=f"web:{_actor()}",
            now=now(),
        )
    except ConfigError as exc:
        return _render(400, errors=exc.problems)
    _audit("user_added", f"{user.username} ({user.role})")
    flash(f"User {user.username} created as {user.role}.", "info")
    return redirect(url_for("users.page"))


@bp.route("/users/<segment:username>/role", methods=["POST"])
@requires(Role.ADMIN)
def role(username: str) -> Any:
    try:
        user = users.set_role(state().home, username, request.form.get("role", ""))
    except ConfigError as exc:
        return _render(400, errors=exc.problems)
    _audit("user_role_changed", f"{user.username} -> {user.role}")
    flash(f"{user.username} is now {user.role}.", "info")
    return redirect(url_for("users.page"))


@bp.route("/users/<segment:username>/active", methods=["POST"])
@requires(Role.ADMIN)
def active(username: str) -> Any:
    value = request.form.get("active")
    if value not in ("0", "1"):  # never a disable by a missing or mistyped field
        return _render(400, errors=[f"active must be 1 (enable) or 0 (disable), not {value!r}"])
    enable = value == "1"
    try:
        user = users.set_active(state().home, username, enable)
    except ConfigError as exc:
        return _render(400, errors=exc.problems)
    _audit("user_enabled" if enable else "user_disabled", user.username)
    flash(f"{user.username} {'enabled' if enable else 'disabled'}.", "info")
    return redirect(url_for("users.page"))


@bp.route("/users/<segment:username>/reset-token", methods=["POST"])
@requires(Role.ADMIN)
def reset_token(username: str) -> Any:
    try:
        token = issue_reset_token(state().home, username, issued_by=_actor(), now=now())
    except ConfigError as exc:
        return _render(400, errors=exc.problems)
    _audit("reset_token_issued", username)
    # rendered directly (not flashed): the token must not sit in a cookie
    return _render(issued=(username, token))
