"""Sign-in, sign-out and one-time password reset. Every method here is rate-limited (Flask-Limiter) and every
failure is written to logs/web/auth_failures.log; LOGIN_ATTEMPT_LIMIT failures lock an account."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.core.reset_tokens import redeem_reset_token
from tbot_bot.core.users import Role, authenticate
from tbot_bot.errors import ConfigError

from .auth_web import (
    activity,
    auth_failure,
    client_ip,
    current_user,
    end_session,
    public,
    start_session,
    state,
)

bp = Blueprint("login", __name__)

GENERIC_FAILURE = "Sign-in failed: wrong username or password, or the account is locked for a while."


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the home page."""
    # no control characters (a CR/LF would break the Location header) and no backslash (browsers read /\\x as //x)
    if target and len(target) <= 2000 and target.isprintable() and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("main.index")


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    # only a POST signs in; GET and HEAD (Flask adds HEAD to GET routes, with a body or not) show the form
    if request.method != "POST":
        if current_user() is not None:
            return redirect(url_for("main.index"))
        return render_template("index.html", next=request.args.get("next", ""))
    st = state()
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    try:
        policy = st.settings.rbac()
    except ConfigError as exc:
        auth_failure("login_refused_config_unreadable", username, str(exc)[:200])
        flash("Sign-in is closed: the bot configuration cannot be read.", "error")
        return render_template("index.html", next=""), 503
    result = authenticate(
        st.home,
        username,
        password,
        now=st.clock(),
        attempt_limit=st.limits.login_attempt_limit,
        lockout_minutes=st.limits.login_lockout_minutes,
        client=client_ip(),
    )
    if result.reason != "ok" or result.user is None:
        auth_failure(f"login_failed_{result.reason}", username)
        if result.locked_now:
            # LOGIN_ATTEMPT_LIMIT reached: this name is locked for this client (LOGIN_LOCKOUT_MINUTES, growing)
            auth_failure("lockout", username, f"client {client_ip()}")
        flash(GENERIC_FAILURE, "error")
        return render_template("index.html", next=request.form.get("next", "")), 401
    if not policy.enabled and result.user.role is not Role.ADMIN:
        # RBAC_ENABLED=false: only admin accounts may sign in
        auth_failure("rbac_disabled_refused", username)
        flash("Multi-user access is disabled (RBAC_ENABLED=false); only admin accounts may sign in.", "error")
        return render_template("index.html", next=""), 403
    start_session(result.user)
    activity("login", result.user.username, f"role={result.user.role}")
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Any:
    user = current_user()
    if user is not None:
        activity("logout", user.username)
    end_session(everywhere=True)
    flash("Signed out.", "info")
    return redirect(url_for("login.login"))


@bp.route("/reset", methods=["GET", "POST"])
@public
def reset() -> Any:
    if request.method != "POST":
        return render_template("reset.html")
    token = request.form.get("token", "")
    password = request.form.get("password", "")
    if password != request.form.get("password_confirm", ""):
        flash("The two passwords differ.", "error")
        return render_template("reset.html"), 400
    try:
        username = redeem_reset_token(state().home, token, password, now=state().clock())
    except ConfigError as exc:
        auth_failure("reset_refused", None, exc.problems[0][:120])
        for problem in exc.problems:
            flash(problem, "error")
        return render_template("reset.html"), 400
    activity("password_reset", username)
    flash("Password changed. Sign in with the new password.", "info")
    return redirect(url_for("login.login"))
