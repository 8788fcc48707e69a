"""Dashboard access control: every route x every role, CSRF, rate limit, lockout, session expiry, RBAC
settings, security headers and the web audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fixtures_web import (
    PASSWORDS,
    PROPOSAL_RUN,
    Clock,
    FakeSettingsApi,
    build_home,
    fresh_token,
    login,
    settings_text,
)
from helpers import with_values

from tbot_bot.config.settings_bot import config_version
from tbot_bot.core import users as users_mod
from tbot_bot.core.audit import recent_user_activity
from tbot_bot.runtime.control import SupervisorLock, clear_trading_stopped, mark_trading_stopped, pause_file
from tbot_web.py.portal_web import create_app

PENDING_ID = "TB01-20110118-open-SPY-1"
ROLE_ORDER = ("viewer", "auditor", "operator", "admin")

# (method, path, minimum role; None = public)
ROUTES = [
    ("GET", "/", "viewer"),
    ("GET", "/status", "viewer"),
    ("GET", "/api/status", "viewer"),
    ("GET", "/charts/pnl.svg", "viewer"),
    ("GET", "/charts/trades.svg", "viewer"),
    ("GET", "/logs", "viewer"),
    ("GET", "/api/logs", "viewer"),
    ("GET", "/history", "viewer"),
    ("GET", "/history/equity.svg", "viewer"),
    ("GET", "/history/chart/2011-01-18_SPY.png", "viewer"),
    ("GET", "/research", "viewer"),
    ("GET", "/research/backtest/mid_20110103_20110131_20261125T100000Z", "viewer"),
    ("GET", "/research/backtest/mid_20110103_20110131_20261125T100000Z/report.html", "viewer"),
    ("GET", "/proposals", "viewer"),
    ("GET", f"/proposals/{PROPOSAL_RUN}", "viewer"),
    ("GET", f"/proposals/{PROPOSAL_RUN}/files/report.html", "viewer"),
    ("POST", f"/proposals/{PROPOSAL_RUN}/approve", "admin"),
    ("POST", f"/proposals/{PROPOSAL_RUN}/reject", "admin"),
    ("GET", "/trades", "auditor"),
    ("GET", "/ledger", "auditor"),
    ("GET", "/ledger/ofx/RGL_2011-01-18.ofx", "auditor"),
    ("POST", "/ledger/correct", "admin"),
    ("POST", "/control/start", "operator"),
    ("POST", "/control/stop", "operator"),
    ("GET", "/positions", "viewer"),
    ("GET", "/positions/flatten", "operator"),
    ("POST", "/positions/flatten", "operator"),
    ("POST", "/control/resume", "operator"),  # before pause: nothing to resume yet (a message, no change)
    (
        "POST",
        f"/control/confirm/{PENDING_ID}",
        "operator",
    ),  # before pause: a paused bot's confirmation is refused
    ("POST", "/control/pause", "operator"),
    ("POST", "/control/defense-clear", "operator"),
    ("GET", "/settings", "admin"),
    ("POST", "/settings", "admin"),
    ("GET", "/users", "admin"),
    ("POST", "/users/add", "admin"),
    ("POST", "/users/viewer/role", "admin"),
    ("POST", "/users/viewer/active", "admin"),
    ("POST", "/users/viewer/reset-token", "admin"),
    ("GET", "/login", None),
    ("GET", "/reset", None),
    ("GET", "/robots.txt", None),
    ("GET", "/favicon.ico", None),
]
FORM_DATA = {
    "/users/add": {
        "username": "newbie",
        "role": "viewer",
        "password": "new-user-pass",
        "password_confirm": "new-user-pass",
    },
    "/users/viewer/role": {"role": "viewer"},
    "/users/viewer/active": {"active": "1"},
    "/settings": {"config_version": config_version(settings_text())},  # the version the form was read from
}


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def home(tmp_path):
    return build_home(tmp_path / "home")


def make_app(home, *, clock=None, api=None, **overrides):
    return create_app(
        home.root,
        testing=True,
        settings_api=api or FakeSettingsApi(settings_text()),
        clock=clock or Clock(),
        config_overrides=overrides or None,
    )


def allowed(role: str | None, minimum: str | None) -> bool:
    if minimum is None:
        return True
    return role is not None and ROLE_ORDER.index(role) >= ROLE_ORDER.index(minimum)


def test_route_table_covers_every_url_rule(home):
    app = make_app(home)
    rules = {(m, r.rule) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    rules.discard(("GET", "/assets/<path:filename>"))
    covered = {("POST", "/login"), ("POST", "/logout"), ("POST", "/reset")}
    templates = {
        "/charts/pnl.svg": "/charts/<kind>.svg",
        "/charts/trades.svg": "/charts/<kind>.svg",
        "/ledger/ofx/RGL_2011-01-18.ofx": "/ledger/ofx/<segment:name>",
        f"/control/confirm/{PENDING_ID}": "/control/confirm/<segment:client_order_id>",
        "/users/viewer/role": "/users/<segment:username>/role",
        "/users/viewer/active": "/users/<segment:username>/active",
        "/users/viewer/reset-token": "/users/<segment:username>/reset-token",
        "/history/equity.svg": "/history/<kind>.svg",
        f"/proposals/{PROPOSAL_RUN}": "/proposals/<segment:run_id>",
        f"/proposals/{PROPOSAL_RUN}/files/report.html": "/proposals/<segment:run_id>/files/<segment:name>",
        f"/proposals/{PROPOSAL_RUN}/approve": "/proposals/<segment:run_id>/approve",
        f"/proposals/{PROPOSAL_RUN}/reject": "/proposals/<segment:run_id>/reject",
        "/history/chart/2011-01-18_SPY.png": "/history/chart/<segment:name>",
        "/research/backtest/mid_20110103_20110131_20261125T100000Z": "/research/backtest/<segment:run>",
        "/research/backtest/mid_20110103_20110131_20261125T100000Z/report.html": "/research/backtest/<segment:run>/<segment:name>",
    }
    covered |= {(m, templates.get(p, p)) for m, p, _ in ROUTES}
    assert rules == covered


@pytest.mark.parametrize("role", [None, *ROLE_ORDER])
def test_every_route_for_every_role(home, role):
    app = make_app(home)
    client = app.test_client()
    if role:
        assert login(client, role).status_code == 302
    outcomes = {}
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-18")  # a supervisor runs: Stop has a target
    mark_trading_stopped(home, "test")  # and it is stopped: Start has something to do
    try:
        for method, path, _minimum in ROUTES:
            confirming = path.startswith("/control/confirm/")
            if confirming:
                clear_trading_stopped(home)  # a stopped bot's confirmation is refused: it would not be sent
            if method == "GET":
                resp = client.get(path)
            else:
                resp = client.post(path, data={"csrf_token": fresh_token(client), **FORM_DATA.get(path, {})})
            if confirming:
                mark_trading_stopped(home, "test")
            location = resp.headers.get("Location", "")
            if resp.status_code == 403:
                outcomes[(method, path)] = "forbidden"
            elif resp.status_code == 401 or (resp.status_code == 302 and "/login" in location):
                outcomes[(method, path)] = "login"
            else:
                assert resp.status_code in (200, 302), (method, path, resp.status_code)
                outcomes[(method, path)] = "allowed"
    finally:
        lock.release()
    expected = {
        (m, p): "allowed" if allowed(role, minimum) else ("login" if role is None else "forbidden")
        for m, p, minimum in ROUTES
    }
    assert outcomes == expected
    # control files are written only for operator and admin
    can_control = role in ("operator", "admin")
    assert home.control_stop.exists() is can_control
    assert home.control_start.exists() is can_control
    assert pause_file(home).exists() is can_control
    assert home.path("control", "confirm", PENDING_ID).exists() is can_control


def test_api_without_session_is_401_json(home):
    resp = make_app(home).test_client().get("/api/status")
    assert resp.status_code == 401 and resp.get_json() == {"error": "sign in required"}


def test_csrf_missing_or_invalid_is_400_and_nothing_written(home):
    client = make_app(home).test_client()
    login(client, "operator")
    assert client.post("/control/stop").status_code == 400
    assert client.post("/control/stop", data={"csrf_token": "forged"}).status_code == 400
    other = make_app(home).test_client()
    stolen = fresh_token(other)  # a token from another session
    assert client.post("/control/stop", data={"csrf_token": stolen}).status_code == 400
    assert not home.control_stop.exists()
    assert "csrf_refused" in (home.web_logs_dir / "auth_failures.log").read_text()


def test_login_form_needs_csrf_too(home):
    client = make_app(home).test_client()
    resp = client.post("/login", data={"username": "admin", "password": PASSWORDS["admin"]})
    assert resp.status_code == 400


def test_login_rate_limit_answers_429(home):
    client = make_app(home, LOGIN_RATE_LIMIT="3 per minute").test_client()
    codes = [login(client, "nobody", "wrong-password-x").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]


def test_lockout_after_limit_then_expiry(home):
    clock = Clock()
    client = make_app(home, clock=clock).test_client()
    for _ in range(3):  # LOGIN_ATTEMPT_LIMIT=3 in the fixture .env
        assert login(client, "viewer", "wrong-password-x").status_code == 401
    assert login(client, "viewer").status_code == 401  # right password, but locked
    failures = (home.web_logs_dir / "auth_failures.log").read_text()
    assert "lockout" in failures and "login_failed_locked" in failures
    clock.now += timedelta(minutes=14)
    assert login(client, "viewer").status_code == 401
    clock.now += timedelta(minutes=2)  # LOGIN_LOCKOUT_MINUTES=15 have passed
    assert login(client, "viewer").status_code == 302


def test_session_expires_after_timeout(home):
    clock = Clock()
    client = make_app(home, clock=clock).test_client()
    login(client, "viewer")
    assert client.get("/status").status_code == 200
    for _ in range(7):  # in use every 17 minutes (within WEB_IDLE_TIMEOUT_MINUTES=30): 119 minutes in all
        clock.now += timedelta(minutes=17)
        assert client.get("/status").status_code == 200
    clock.now += timedelta(minutes=2)  # SESSION_TIMEOUT_MINUTES=120 since sign-in
    resp = client.get("/status")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert client.get("/api/status").status_code == 401
    assert any(r["event"] == "session_expired" for r in recent_user_activity(home))


def test_password_change_ends_existing_sessions(home):
    client = make_app(home).test_client()
    login(client, "viewer")
    users_mod.set_password(home, "viewer", "another-password")
    assert client.get("/status").status_code == 302


def test_role_is_read_from_the_database_each_request(home):
    client = make_app(home).test_client()
    login(client, "operator")
    assert client.get("/status").status_code == 200
    token = fresh_token(client)
    users_mod.set_role(home, "operator", "viewer")
    # a role change ends the user's sessions at once (issue 11): the request is refused, nothing is written
    assert client.post("/control/stop", data={"csrf_token": token}).status_code == 302
    assert not home.control_stop.exists()


def test_rbac_disabled_admits_only_admins(home):
    api = FakeSettingsApi(settings_text(RBAC_ENABLED="false"))
    client = make_app(home, api=api).test_client()
    assert login(client, "operator").status_code == 403
    assert login(client, "admin").status_code == 302
    assert client.get("/settings").status_code == 200


def test_rbac_switched_off_mid_session_ends_non_admin_sessions(home):
    api = FakeSettingsApi(settings_text())
    app = create_app(home.root, testing=True, settings_api=api, clock=Clock())
    client = app.test_client()
    login(client, "viewer")
    api.text = with_values(api.text, RBAC_ENABLED="false")
    app.extensions["tbot"].settings.invalidate()
    assert client.get("/status").status_code == 302


def test_unreadable_config_fails_closed(home):
    api = FakeSettingsApi(settings_text())
    app = create_app(home.root, testing=True, settings_api=api, clock=Clock())
    client = app.test_client()
    login(client, "admin")
    api.fail_load = True
    app.extensions["tbot"].settings.invalidate()
    assert client.get("/status").status_code == 503
    assert client.get("/api/status").status_code == 503
    other = app.test_client()
    assert login(other, "admin").status_code == 503


def test_missing_config_api_fails_closed(home):
    app = create_app(home.root, testing=True, clock=Clock())
    app.extensions["tbot"].settings._api = None
    import sys

    saved = sys.modules.get("tbot_bot.config.settings_bot")
    sys.modules["tbot_bot.config.settings_bot"] = None  # type: ignore[assignment]  # import now fails
    try:
        assert login(app.test_client(), "admin").status_code == 503
    finally:
        if saved is None:
            del sys.modules["tbot_bot.config.settings_bot"]
        else:
            sys.modules["tbot_bot.config.settings_bot"] = saved


def test_security_headers_and_cookie_flags(home):
    client = make_app(home).test_client()
    resp = login(client, "viewer")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/status")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "onclick" not in html and "style=" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN, all assets local


def test_robots_disallows_everything(home):
    resp = make_app(home).test_client().get("/robots.txt")
    assert resp.get_data(as_text=True) == "User-agent: *\nDisallow: /\n"


def test_login_next_only_follows_local_paths(home):
    client = make_app(home).test_client()
    token = fresh_token(client)
    resp = client.post(
        "/login",
        data={
            "username": "viewer",
            "password": PASSWORDS["viewer"],
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert resp.headers["Location"] == "/"
    client2 = make_app(home).test_client()
    assert client2.get("/logs?level=error").headers["Location"] == "/login?next=/logs?level%3Derror"


def test_access_log_and_activity_rows(home):
    client = make_app(home).test_client()
    login(client, "viewer", "wrong-password-x")
    login(client, "viewer")
    client.get("/status")
    access = (home.web_logs_dir / "access.log").read_text()
    assert "POST /login 401" in access and "viewer GET /status 200" in access
    assert "login_failed_bad_password user=viewer" in (home.web_logs_dir / "auth_failures.log").read_text()
    events = [(r["event"], r["username"]) for r in recent_user_activity(home)]
    assert ("login", "viewer") in events and ("login_failed_bad_password", "viewer") in events


def test_logout_ends_the_session(home):
    client = make_app(home).test_client()
    login(client, "viewer")
    assert client.post("/logout", data={"csrf_token": fresh_token(client)}).status_code == 302
    assert client.get("/status").status_code == 302
