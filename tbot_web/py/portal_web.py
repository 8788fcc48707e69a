"""Flask app factory: templates, local static assets, security settings and every blueprint of the dashboard."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    has_request_context,
    jsonify,
    make_response,
    render_template,
    request,
    session,
)
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

from . import (
    auth_web,
    corrections_web,
    history_web,
    login_web,
    logs_web,
    main_web,
    positions_web,
    proposals_web,
    research_web,
    sessions_web,
    settings_web,
    start_stop_web,
    status_web,
    users_web,
)
from .numbers_web import FILTERS
from .portal_paths import WEB_ROOT
from .web_config import SettingsAccess, load_web_limits, session_secret

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# (endpoint, label, minimum role) for the navigation bar; the server checks access again on every request
NAV = (
    ("main.index", "Home", Role.VIEWER),
    ("status.page", "Status", Role.VIEWER),
    ("positions.page", "Positions", Role.VIEWER),
    ("logs.page", "Logs", Role.VIEWER),
    ("sessions.page", "History", Role.VIEWER),
    ("research.page", "Research", Role.VIEWER),
    ("proposals.page", "Proposals", Role.VIEWER),
    ("history.trades", "Trades", Role.AUDITOR),
    ("history.ledger", "Ledger", Role.AUDITOR),
    ("settings.page", "Settings", Role.ADMIN),
    ("users.page", "Users", Role.ADMIN),
)


def create_app(
    home: Path | BotHome,
    *,
    testing: bool = False,
    config_overrides: dict[str, Any] | None = None,
    settings_api: Any | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Flask:
    """Build the dashboard for one bot home. `settings_api` and `clock` are seams for tests."""
    bot_home = home if isinstance(home, BotHome) else BotHome.resolve(home)
    limits = load_web_limits(bot_home)
    if not bot_home.core_db("SYSTEM_USERS").is_file():
        raise ConfigError(
            f"{bot_home.core_db('SYSTEM_USERS')} does not exist; run `tbot db init --home {bot_home.root}` "
            "and add a user with `tbot users add`"
        )
    app = Flask(
        __name__,
        template_folder=str(WEB_ROOT / "templates"),
        static_folder=str(WEB_ROOT / "assets"),
        static_url_path="/assets",
    )
    app.config.update(
        SECRET_KEY=session_secret(bot_home),
        TESTING=testing,
        SESSION_COOKIE_NAME="tbot_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=limits.cookie_secure,
        # the session ends SESSION_TIMEOUT_MINUTES after sign-in (checked on the server) and the idle mark is
        # renewed at most once a minute (auth_web), so re-signing the cookie on every poll buys nothing
        SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=limits.session_timeout_minutes),
        # the session's own expiry bounds the token; a time limit would break long-open forms on a phone
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=256 * 1024,
        LOGIN_RATE_LIMIT="20 per minute;200 per hour",
        LOGIN_PAGE_RATE_LIMIT="120 per minute;1000 per hour",
        RATELIMIT_HEADERS_ENABLED=False,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.config.update(config_overrides or {})
    app.extensions["tbot_login_key"] = _login_key_mark(bot_home)
    app.extensions["tbot"] = auth_web.WebState(
        home=bot_home,
        limits=limits,
        settings=SettingsAccess(bot_home, settings_api),
        clock=clock or utc_now,
    )

    app.url_map.converters["segment"] = SegmentConverter
    app.session_interface = TRANSPORT_AWARE_SESSIONS
    if limits.trust_proxy:
        # WEB_TRUST_PROXY=N: believe N proxies' X-Forwarded-For/-Proto (client address, https) and nothing more
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=limits.trust_proxy, x_proto=limits.trust_proxy, x_host=0, x_port=0, x_prefix=0
        )
    CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", default_limits=[])
    app.extensions["tbot_limiter"] = limiter

    @limiter.request_filter
    def _only_sign_in_is_limited() -> bool:
        # the login blueprint is the only limited one; skipping the check elsewhere keeps polling cheap
        return request.blueprint != "login"

    # every method of /login, /logout and /reset counts: POST, HEAD and the rest share LOGIN_RATE_LIMIT (one
    # counter, so alternating methods buys nothing); showing the form (GET) has its own, looser limit
    limiter.limit(lambda: str(app.config["LOGIN_RATE_LIMIT"]), exempt_when=_is_get)(login_web.bp)
    limiter.limit(lambda: str(app.config["LOGIN_PAGE_RATE_LIMIT"]), methods=["GET"])(login_web.bp)

    for bp in (
        login_web.bp,
        main_web.bp,
        status_web.bp,
        logs_web.bp,
        history_web.bp,
        sessions_web.bp,
        research_web.bp,
        proposals_web.bp,
        corrections_web.bp,
        start_stop_web.bp,
        positions_web.bp,
        settings_web.bp,
        users_web.bp,
    ):
        app.register_blueprint(bp)

    app.before_request(auth_web.enforce_access)
    app.before_request(refuse_changes_during_restore)
    app.after_request(_finish_response)
    _register_error_pages(app)

    app.add_template_filter(age_text, "age")
    app.add_template_filter(_when, "when")
    for name, rounding in FILTERS.items():  # numbers for people on every page (numbers_web.py)
        app.add_template_filter(rounding, name)

    @app.context_processor
    def _template_helpers() -> dict[str, Any]:
        user = auth_web.current_user()
        nav = [(ep, label) for ep, label, role in NAV if user is not None and auth_web.can(role)]
        return {"current_user": user, "can": auth_web.can, "nav": nav, "trading_mode": _trading_mode()}

    return app


def _trading_mode() -> str:
    """Every page's header badge: paper, live or replay ("unknown" while the config cannot be read)."""
    from tbot_web.py.readers_web import badge_mode

    state = current_app.extensions["tbot"]
    try:
        broker = state.settings.settings().BROKER_NAME
    except ConfigError:
        broker = None
    return badge_mode(state.home, broker)


def age_text(seconds: float | None) -> str:
    """Seconds since the daemon's last status write, for people: '42 s', '5 min', '3 h', '12 days'."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{round(seconds)} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    if seconds < 172800:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def _finish_response(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if secure_transport():
        # WEB_COOKIE_SECURE=true, or https seen through a trusted proxy: browsers must stay on https
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.endpoint != "static" and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    # polling and assets would drown the access log; sign-ins, pages and every change are kept
    if request.endpoint not in ("static", "status.api", "status.chart"):
        auth_web.access_log(response.status_code)
    return response


def _register_error_pages(app: Flask) -> None:
    messages = {
        400: "The request was not valid.",
        403: "Your role does not allow this page or action.",
        404: "There is no such page.",
        405: "That method is not allowed here.",
        413: "The request is too large.",
        429: "Too many attempts. Wait a minute and try again.",
        500: "Something went wrong on the server; the error was logged. Nothing was changed by this request.",
        409: "A restore of this home did not finish: nothing can be changed here until it is run again "
        "(`tbot check` names the command). Pages can still be read.",
        503: "The dashboard is closed: the bot configuration cannot be read. Check it with `tbot check`.",
    }

    def render(code: int, message: str) -> tuple[str | Response, int]:
        if request.path.startswith("/api/"):
            return jsonify(error=message), code
        return render_template("error.html", code=code, message=message), code

    for code, message in messages.items():
        if code not in (429, 500):
            app.register_error_handler(code, lambda exc, code=code, message=message: render(code, message))

    @app.errorhandler(429)
    def _too_many(exc: Exception) -> Response:
        response = make_response(render(429, messages[429]))
        response.headers["Retry-After"] = str(retry_after_seconds(app))
        return response

    @app.errorhandler(500)
    def _server_error(exc: Exception) -> tuple[str | Response, int]:
        try:
            return render(500, messages[500])
        except (
            Exception
        ):  # the error page itself failed (a template fed bad data): plain text, still no trace
            return Response(messages[500], mimetype="text/plain"), 500

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> tuple[str | Response, int]:
        auth_web.auth_failure(
            "csrf_refused", session_user(), f"{request.method} {request.path}: {exc.description}"
        )
        return render(
            400,
            "The form had expired or was not sent by this dashboard (CSRF check failed). Reload and retry.",
        )


class SegmentConverter(BaseConverter):
    """A single path segment built from data (order ids, user names, file names): '/' is encoded too, so a value
    like '../../control/stop' can never turn a form into a POST to another route."""

    def to_url(self, value: Any) -> str:
        return quote(str(value), safe="")


def secure_transport() -> bool:
    """True when the browser talks https to us: WEB_COOKIE_SECURE=true, or a trusted proxy said so. The session
    cookie's own rule, asked of it: the Secure flag and Strict-Transport-Security never disagree."""
    return TRANSPORT_AWARE_SESSIONS.get_cookie_secure(current_app)


def _is_get() -> bool:
    return request.method == "GET"


class TransportAwareSessionInterface(SecureCookieSessionInterface):
    """The session cookie is `Secure` whenever the request came over https (directly or via a trusted proxy).
    A HEAD request never sets, refreshes or clears the cookie: HEAD answers as GET without side effects."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or (has_request_context() and request.is_secure)

    def open_session(self, app: Flask, request: Any) -> Any:
        follow_login_key(app)
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if request.method == "HEAD":
            return
        super().save_session(app, session, response)


TRANSPORT_AWARE_SESSIONS = TransportAwareSessionInterface()


def refuse_changes_during_restore() -> None:
    """A home whose restore was cut off is a mix of the archive and what it replaced: a change made there (a user,
    the config, an approval) would be lost or kept by chance when the restore runs again; as `tbot` refuses
    (cli.refuse_during_restore), the dashboard changes nothing until then. Signing in and out still work."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in ("login.login", "login.logout"):
        return
    if auth_web.state().home.restore_marker.exists():
        abort(409)


def _login_key_mark(home: BotHome) -> tuple[int, int, int] | None:
    try:
        st = home.key_file("login").stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def follow_login_key(app: Flask) -> None:
    """`tbot rotate-key login` ends every session: a running dashboard takes the new key at its next request (one
    stat per request), so a cookie signed with the old key is refused then, not only after a restart."""
    home = app.extensions["tbot"].home
    mark = _login_key_mark(home)
    if mark is not None and mark != app.extensions.get("tbot_login_key"):
        app.config["SECRET_KEY"] = session_secret(home)
        app.extensions["tbot_login_key"] = mark


def retry_after_seconds(app: Flask) -> int:
    """Seconds until the login rate limit that refused this request resets (at least 1)."""
    limiter = app.extensions.get("tbot_limiter")
    try:
        limit = limiter.current_limit if limiter is not None else None
        if limit is not None:
            return max(1, math.ceil(limit.reset_at - time.time()))
    except Exception:  # noqa: BLE001 - the header is advice; never fail the 429 over it
        pass
    return 60


def session_user() -> str | None:
    uid = session.get("uid")
    return str(uid) if uid else None


def _when(value: Any) -> str:
    """A stored UTC time for people: exchange time and UTC with the date (`2011-01-18 09:30:00 EST / 14:30:00Z`);
    the exchange zone read once per request from status.json."""
    from flask import g

    from .readers_web import read_status
    from .time_web import both, exchange_zone

    if "exchange_zone" not in g:
        g.exchange_zone = exchange_zone(read_status(auth_web.state().home))
    return both(value, g.exchange_zone, with_date=True, seconds=True) if value else "–"
