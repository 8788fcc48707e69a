"""Issue 11, dashboard: revocable sessions, lockout per (user, client) with equal timing, only known names in
logs (0600, rotated), encoded URLs, malformed status.json never a 500, HSTS/Secure cookies, Retry-After,
`tbot web` refuses a non-home, the web unit hardened like the bot's."""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures_web import (
    PASSWORDS,
    Clock,
    FakeSettingsApi,
    build_home,
    csrf_from,
    login,
    settings_text,
    status_payload,
    write_status,
)
from flask import url_for

from rigd_tbot.cli import main
from tbot_bot.core import users as users_mod
from tbot_web.py.portal_web import create_app

A = {"REMOTE_ADDR": "10.0.0.1"}
B = {"REMOTE_ADDR": "10.0.0.2"}


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    monkeypatch.setattr(users_mod, "_dummy_hash", None)


@pytest.fixture
def home(tmp_path: Path):
    return build_home(tmp_path / "home")


def make_app(home, *, clock=None, env_overrides=None, **config):
    return create_app(
        home.root,
        testing=True,
        settings_api=FakeSettingsApi(settings_text()),
        clock=clock or Clock(),
        config_overrides={"LOGIN_RATE_LIMIT": "1000 per minute", **config},
    )


def _client(app, environ):
    client = app.test_client()
    client.environ_base.update(environ)
    return client


def _login(client, username, password=None):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password or PASSWORDS.get(username, "x" * 12),
            "csrf_token": token,
        },
    )


# ---------------------------------------------------------------- sessions


def test_cookie_replayed_after_logout_is_refused(home) -> None:
    client = make_app(home).test_client()
    assert login(client, "viewer").status_code == 302
    cookie = client.get_cookie("tbot_session").value
    assert client.get("/api/status").status_code == 200
    token = csrf_from(client.get("/status").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": token})
    replay = make_app(home).test_client()
    replay.set_cookie("tbot_session", cookie)
    assert replay.get("/api/status").status_code == 401
    assert replay.get("/status").status_code == 302


@pytest.mark.parametrize(
    "change",
    [
        lambda h: users_mod.set_password(h, "operator", "a-brand-new-password"),
        lambda h: users_mod.set_role(h, "operator", "viewer"),
        lambda h: users_mod.set_active(h, "operator", False),
    ],
    ids=["password", "role", "disable"],
)
def test_password_role_or_disable_end_every_session_at_once(home, change) -> None:
    app = make_app(home)
    phone, laptop = app.test_client(), app.test_client()
    for c in (phone, laptop):
        assert login(c, "operator").status_code == 302
        assert c.get("/api/status").status_code == 200
    change(home)
    assert phone.get("/api/status").status_code == 401
    assert laptop.get("/api/status").status_code == 401


def test_a_login_key_rotation_ends_the_sessions_of_a_running_dashboard(home) -> None:
    """`tbot rotate-key login` says every dashboard session has ended: the running dashboard takes the new key at
    its next request (it read the key once at start, so old cookies stayed good until a restart)."""
    from rigd_tbot.cli import main as tbot

    app = make_app(home)
    client = app.test_client()
    assert login(client, "operator").status_code == 302
    assert client.get("/api/status").status_code == 200
    assert tbot(["rotate-key", "login", "--home", str(home.root)]) == 0
    assert client.get("/api/status").status_code == 401
    # a new sign-in works with the new key
    assert login(client, "operator").status_code == 302
    assert client.get("/api/status").status_code == 200


def test_nothing_changes_from_the_dashboard_while_a_restore_is_unfinished(home) -> None:
    """`tbot` refuses what writes while a restore is cut off (cli.refuse_during_restore); the dashboard saved the
    config, managed users and approved proposals meanwhile, which the restore run again then lost."""
    client = make_app(home).test_client()
    assert login(client, "admin").status_code == 302
    home.restore_marker.parent.mkdir(parents=True, exist_ok=True)
    home.restore_marker.write_text('{"archive": "tbot_backup_x.tar.gz.enc"}', encoding="utf-8")
    token = csrf_from(client.get("/status").get_data(as_text=True))
    refused = client.post("/control/pause", data={"csrf_token": token})
    assert refused.status_code == 409 and "A restore of this home did not finish" in refused.get_data(
        as_text=True
    )
    from tbot_bot.runtime.control import pause_file

    assert not pause_file(home).exists()
    assert client.get("/status").status_code == 200  # pages still read
    home.restore_marker.unlink()
    assert client.post("/control/pause", data={"csrf_token": token}, follow_redirects=True).status_code == 200
    assert pause_file(home).exists()


# ---------------------------------------------------------------- lockout


def test_lockout_is_per_client_and_grows(home) -> None:
    clock = Clock()
    app = make_app(home, clock=clock)
    attacker, admin = _client(app, A), _client(app, B)
    for _ in range(3):  # LOGIN_ATTEMPT_LIMIT=3
        assert _login(attacker, "admin", "wrong-password-1").status_code == 401
    assert _login(attacker, "admin").status_code == 401  # locked for this client, right password or not
    assert _login(admin, "admin").status_code == 302  # the real admin elsewhere is unaffected
    clock.now += timedelta(minutes=16)
    assert _login(attacker, "admin", "wrong-password-2").status_code == 401
    for _ in range(2):
        _login(attacker, "admin", "wrong-password-3")
    clock.now += timedelta(minutes=16)  # the second lockout lasts 30 minutes, not 15
    assert _login(attacker, "admin").status_code == 401
    clock.now += timedelta(minutes=15)
    assert _login(attacker, "admin").status_code == 302


def test_lockout_timing_is_the_same_whatever_the_cause(home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 9)  # bcrypt dominates, as in production
    users_mod.set_password(home, "operator", "timing-password-1")
    users_mod.set_password(home, "viewer", PASSWORDS["viewer"])  # every stored hash at the same cost
    app = make_app(home)
    client = _client(app, A)
    for _ in range(3):
        _login(client, "viewer", "wrong-password-0")  # viewer is now locked for client A

    def timed(username: str, password: str, addr: str) -> float:
        client.environ_base["REMOTE_ADDR"] = addr
        token = csrf_from(client.get("/login").get_data(as_text=True))
        start = time.perf_counter()
        resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
        elapsed = time.perf_counter() - start
        assert resp.status_code == 401
        return elapsed

    # equal work first (deterministic): every case runs exactly one bcrypt check against a hash of the same cost
    checks: list[bytes] = []
    real_checkpw = users_mod.bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed[:7])  # "$2b$09$": algorithm and cost
        return real_checkpw(password, hashed)

    monkeypatch.setattr(users_mod.bcrypt, "checkpw", counting_checkpw)
    samples: dict[str, list[float]] = {"locked": [], "bad_password": [], "unknown_user": []}
    for i in range(9):
        # fresh clients and names keep the wrong-password and unknown-name cases from locking themselves
        for case, args in (
            ("locked", ("viewer", PASSWORDS["viewer"], A["REMOTE_ADDR"])),
            ("bad_password", ("operator", "wrong-password-x", f"10.9.0.{i}")),
            ("unknown_user", (f"nobody-{i}", "wrong-password-y", A["REMOTE_ADDR"])),
        ):
            before = len(checks)
            samples[case].append(timed(*args))
            assert len(checks) == before + 1, case
    assert set(checks) == {b"$2b$09$"}
    # then the clock: the fastest of nine is what the work costs (load only ever adds time), so a skipped
    # bcrypt check would make one case several times faster while noise from other processes cannot
    fastest_of = {k: min(v) for k, v in samples.items()}
    assert min(fastest_of.values()) > 0.5 * max(fastest_of.values()), fastest_of


# ---------------------------------------------------------------- logs


def test_only_known_names_are_logged_and_logs_are_private(home) -> None:
    client = make_app(home).test_client()
    _login(client, "correct-horse-admin-typed-as-name", "whatever-password")
    _login(client, "viewer", "wrong-password-z")
    failures = (home.web_logs_dir / "auth_failures.log").read_text()
    assert "correct-horse-admin-typed-as-name" not in failures
    assert re.search(r"user=unknown#[0-9a-f]{8}", failures) and "user=viewer" in failures
    for log in home.web_logs_dir.glob("*.log"):
        assert oct(log.stat().st_mode & 0o777) == "0o600", log
    admin = make_app(home).test_client()
    login(admin, "admin")
    assert "correct-horse-admin-typed-as-name" not in admin.get("/users").get_data(as_text=True)


def test_web_logs_rotate_daily(home) -> None:
    clock = Clock()
    client = make_app(home, clock=clock).test_client()
    login(client, "viewer")
    access = home.web_logs_dir / "access.log"
    day_before = (clock.now - timedelta(days=1)).timestamp()
    os.utime(access, (day_before, day_before))
    client = make_app(home, clock=clock).test_client()
    client.get("/login")
    dated = (clock.now - timedelta(days=1)).date().isoformat()
    assert (home.web_logs_dir / f"access.{dated}.log").exists()


# ---------------------------------------------------------------- URLs and status values


def test_order_id_with_dot_segments_never_becomes_a_control_url(home) -> None:
    payload = status_payload()
    payload["pending_confirmations"] = [
        {
            "client_order_id": "x/../../control/stop",
            "symbol": "SPY",
            "strategy": "open",
            "expires_at": "soon",
        },
        {"client_order_id": "..", "symbol": "SPY", "strategy": "open", "expires_at": "soon"},
    ]
    write_status(home, payload)
    client = make_app(home).test_client()
    login(client, "operator")
    html = client.get("/status").get_data(as_text=True)
    actions = re.findall(r'action="([^"]+)"', html)
    assert "/control/stop" in actions  # the real Stop button only
    assert actions.count("/control/stop") == 1 and not any("confirm" in a for a in actions)
    assert "not a valid order id" in html
    app = make_app(home)
    with app.test_request_context():
        assert url_for("control.confirm", client_order_id="a/../b") == "/control/confirm/a%2F..%2Fb"
        assert url_for("users.role", username="x/../y") == "/users/x%2F..%2Fy/role"


@pytest.mark.parametrize(
    "damage",
    [
        {"trades_by_strategy": {"open": "three", "mid": 1.5, "close": None}},
        {"trades_by_strategy": ["open"]},
        {"realized_pnl_by_strategy": {"open": "NaN", "mid": "Infinity", "close": {"x": 1}}},
        {"realized_pnl": float("nan")},
        {"counts": {"open": "many"}, "windows": ["not-a-dict", {"strategy": {"deep": 1}}]},
        {"broker": "down", "api": [1], "kill_switch": "yes", "positions": {"SPY": 1}, "state": {"x": 1}},
        {
            "pending_confirmations": [{"client_order_id": 5, "symbol": {"x": 1}}, "junk"],
            "updated_at": {"x": 1},
        },
    ],
)
def test_malformed_status_values_render_unavailable_never_500(home, damage) -> None:
    payload = {**status_payload(), **damage}
    write_status(home, payload)
    client = make_app(home).test_client()
    login(client, "operator")
    for url in ("/", "/status", "/api/status", "/charts/pnl.svg", "/charts/trades.svg"):
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
    body = client.get("/status").get_data(as_text=True) + client.get("/charts/trades.svg").get_data(
        as_text=True
    )
    body += client.get("/charts/pnl.svg").get_data(as_text=True)
    assert "unavailable" in body


@pytest.mark.parametrize(
    "target", ["/status\r\nSet-Cookie: x=1", "/\\evil.example", "//evil.example", "https://evil.example/"]
)
def test_login_next_is_never_a_500_or_an_open_redirect(home, target) -> None:
    client = make_app(home).test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    resp = client.post(
        "/login",
        data={"username": "viewer", "password": PASSWORDS["viewer"], "csrf_token": token, "next": target},
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


# ---------------------------------------------------------------- transport, rate limit, CLI, unit


def test_hsts_and_secure_cookie_with_web_cookie_secure(home) -> None:
    client = make_app(home, SESSION_COOKIE_SECURE=True).test_client()
    resp = login(client, "viewer")
    assert "Secure" in resp.headers["Set-Cookie"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


def test_trusted_proxy_https_gives_hsts_and_secure_cookie(tmp_path: Path) -> None:
    proxied = build_home(tmp_path / "proxied", env="LOGIN_ATTEMPT_LIMIT=3\nWEB_TRUST_PROXY=1\n")
    client = make_app(proxied).test_client()
    client.environ_base.update({"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_FOR": "203.0.113.9"})
    resp = client.get("/login")  # renders a CSRF token, so the session cookie is set
    assert "Secure" in resp.headers["Set-Cookie"] and "Strict-Transport-Security" in resp.headers
    assert "203.0.113.9" in (proxied.web_logs_dir / "access.log").read_text()
    plain = build_home(tmp_path / "plain")
    untrusted = make_app(plain).test_client()
    untrusted.environ_base.update({"HTTP_X_FORWARDED_PROTO": "https"})
    resp = untrusted.get("/login")
    assert "Secure" not in resp.headers["Set-Cookie"] and "Strict-Transport-Security" not in resp.headers


def test_rate_limited_login_says_when_to_retry(home) -> None:
    client = make_app(home, LOGIN_RATE_LIMIT="2 per minute").test_client()
    codes = [_login(client, "viewer", "wrong-password-r").status_code for _ in range(3)]
    assert codes[-1] == 429
    token = csrf_from(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"username": "viewer", "password": "x", "csrf_token": token})
    assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 61


def test_tbot_web_refuses_a_directory_that_is_not_a_bot_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["web", "--home", str(tmp_path), "--port", "1"]) == 2
    assert "is not a bot home" in capsys.readouterr().err


def _directives(unit: str) -> dict[str, str]:
    text = (Path(__file__).resolve().parents[1] / "deploy" / "systemd" / unit).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_web_unit_is_hardened_at_least_like_the_bot_unit() -> None:
    bot, web = _directives("tbot.service"), _directives("tbot-web.service")
    hardening = [
        k
        for k in bot
        if k.startswith(
            ("Protect", "Private", "Restrict", "NoNew", "Lock", "SystemCall", "UMask", "ReadWrite")
        )
    ]
    assert len(hardening) >= 10
    assert {k: web.get(k) for k in hardening} == {k: bot[k] for k in hardening}


@pytest.mark.parametrize("value", ["9" * 300, "0", "4.0", "٣"])
def test_login_limits_in_dotenv_are_bounded(tmp_path: Path, value: str) -> None:
    from tbot_bot.errors import ConfigError

    home = build_home(tmp_path / "home", env=f"LOGIN_LOCKOUT_MINUTES={value}\n")
    with pytest.raises(ConfigError, match=r"LOGIN_LOCKOUT_MINUTES=.* 1\.\.1440"):
        make_app(home)


def test_tbot_users_unlock_lifts_a_lockout(
    home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(home)
    client = _client(app, A)
    for _ in range(3):
        _login(client, "operator", "wrong-password-u")
    assert _login(client, "operator").status_code == 401
    # who is locked out, from where: `users list` and the admin's Users page say it (they said "active")
    capsys.readouterr()
    from fixtures_web import T0

    monkeypatch.setattr("rigd_tbot.commands.users.utc_now", lambda: T0)  # the app's clock
    assert main(["users", "list", "--home", str(home.root)]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("operator"))
    assert "LOCKED OUT from 10.0.0.1 until" in listed and "`tbot users unlock operator`" in listed
    admin = _client(app, {"REMOTE_ADDR": "10.9.9.9"})
    assert _login(admin, "admin").status_code == 302
    assert "locked out from 10.0.0.1 until" in admin.get("/users").get_data(as_text=True)
    assert main(["users", "unlock", "--home", str(home.root), "--username", "operator"]) == 0
    assert "lockouts lifted (1 client(s))" in capsys.readouterr().out
    assert _login(client, "operator").status_code == 302
