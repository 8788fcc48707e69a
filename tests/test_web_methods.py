"""Issue 26, dashboard: a HEAD request (with a form body or not) never runs a POST branch, never gets a session
cookie; the sign-in rate limit counts every method; a session nobody uses ends after WEB_IDLE_TIMEOUT_MINUTES."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

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

from tbot_bot.core import users as users_mod
from tbot_bot.core.audit import recent_user_activity
from tbot_bot.core.reset_tokens import issue_reset_token
from tbot_bot.optimizer.proposals import load_proposal
from tbot_bot.runtime.control import pause_file, request_pause
from tbot_bot.support.path_resolver import BotHome
from tbot_web.py.portal_web import create_app


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    monkeypatch.setattr(users_mod, "_dummy_hash", None)


@pytest.fixture
def home(tmp_path: Path) -> BotHome:
    return build_home(tmp_path / "home")


def make_app(home: BotHome, api: FakeSettingsApi, clock: Clock | None = None, **config: str):  # noqa: ANN201
    overrides = {"LOGIN_RATE_LIMIT": "1000 per minute", **config}
    return create_app(
        home.root, testing=True, settings_api=api, clock=clock or Clock(), config_overrides=overrides
    )


def _users_snapshot(home: BotHome) -> list[tuple[str, str, bool, str | None]]:
    return [(u.username, str(u.role), u.is_active, u.password_changed_at) for u in users_mod.list_users(home)]


def test_head_with_a_form_body_changes_nothing_on_any_route(home: BotHome) -> None:
    api = FakeSettingsApi(settings_text())
    app = make_app(home, api)
    admin = app.test_client()
    assert login(admin, "admin").status_code == 302
    token = fresh_token(admin)
    users_before = _users_snapshot(home)
    request_pause(home, "test")  # a HEAD on resume must not lift it
    forms = {
        "/settings": {"value__MAX_TRADES": "3", "value__WEIGHTS": "0.4,0.3,0.3", "csrf_token": token},
        "/control/start": {"csrf_token": token},
        "/control/stop": {"csrf_token": token},
        "/positions/flatten": {"confirm": "yes", "csrf_token": token},
        "/control/pause": {"csrf_token": token},
        "/control/resume": {"csrf_token": token},
        "/control/defense-clear": {"csrf_token": token},
        "/control/confirm/TB01-20110118-open-SPY-1": {"csrf_token": token},
        "/users/add": {"username": "mallory", "password": "p" * 12, "password_confirm": "p" * 12,
                       "role": "admin", "csrf_token": token},
        "/users/viewer/role": {"role": "admin", "csrf_token": token},
        "/users/viewer/active": {"active": "0", "csrf_token": token},
        "/users/viewer/reset-token": {"csrf_token": token},
        f"/proposals/{PROPOSAL_RUN}/approve": {"force": "1", "csrf_token": token},
        f"/proposals/{PROPOSAL_RUN}/reject": {"reason": "head", "csrf_token": token},
        "/ledger/correct": {"fitid": "FLOAT-INIT", "kind": "reverse", "reason": "head", "confirm": "1",
                            "csrf_token": token},
        "/logout": {"csrf_token": token},
    }  # fmt: skip
    state_changing = {r.rule for r in app.url_map.iter_rules() if "POST" in (r.methods or ())}
    assert state_changing - {"/login", "/reset"} <= {
        r.replace("TB01-20110118-open-SPY-1", "<segment:client_order_id>")
        .replace("/viewer/", "/<segment:username>/")
        .replace(PROPOSAL_RUN, "<segment:run_id>")
        for r in forms
    }, "a new state-changing route must be added to this walk"
    for path, form in forms.items():
        resp = admin.open(path, method="HEAD", data=form)
        assert resp.status_code in (200, 405), path
        assert "Set-Cookie" not in resp.headers, path
    assert api.saved == []
    assert not home.control_start.exists() and not home.control_stop.exists()
    assert not (home.control_dir / "control_defense_clear.txt").exists()
    assert pause_file(home).read_text().endswith("test\n")
    assert not home.path("control", "confirm", "TB01-20110118-open-SPY-1").exists()
    assert _users_snapshot(home) == users_before
    assert load_proposal(home, PROPOSAL_RUN)["status"] == "pending"
    assert not any(r["event"] == "ledger_correction" for r in recent_user_activity(home))
    assert admin.get("/settings").status_code == 200  # still signed in: HEAD /logout did nothing either


def test_head_sign_in_without_csrf_gets_no_session(home: BotHome) -> None:
    client = make_app(home, FakeSettingsApi(settings_text())).test_client()
    resp = client.open("/login", method="HEAD", data={"username": "admin", "password": PASSWORDS["admin"]})
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert client.get("/settings").status_code == 302  # not signed in
    assert not any(r["event"] == "login" for r in recent_user_activity(home))


def test_head_reset_with_a_token_sets_no_password(home: BotHome) -> None:
    clock = Clock()
    client = make_app(home, FakeSettingsApi(settings_text()), clock).test_client()
    token = issue_reset_token(home, "viewer", issued_by="admin", now=clock.now)
    new = "a-brand-new-password"
    resp = client.open(
        "/reset", method="HEAD", data={"token": token, "password": new, "password_confirm": new}
    )
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert login(client, "viewer", new).status_code == 401
    assert login(client, "viewer").status_code == 302  # the old password still works, the token is unspent


@pytest.mark.parametrize("path", ["/login", "/reset"])
@pytest.mark.parametrize("method", ["HEAD", "POST"])
def test_sign_in_rate_limit_counts_every_method(home: BotHome, path: str, method: str) -> None:
    client = make_app(home, FakeSettingsApi(settings_text()), LOGIN_RATE_LIMIT="20 per minute").test_client()
    form = {"username": "nobody", "password": "wrong-password-x", "token": "t" * 20, "csrf_token": ""}
    codes = []
    for _ in range(25):
        form["csrf_token"] = fresh_token(client)  # a GET of the form, counted apart (LOGIN_PAGE_RATE_LIMIT)
        codes.append(client.open(path, method=method, data=form).status_code)
    assert 429 not in codes[:20] and codes[20:] == [429] * 5, codes
    # one counter for every method of a route: after 20 HEADs a POST is refused too, and the other way round
    other = "POST" if method == "HEAD" else "HEAD"
    assert (
        client.open(path, method=other, data={**form, "csrf_token": fresh_token(client)}).status_code == 429
    )


def test_showing_the_sign_in_form_is_limited_too(home: BotHome) -> None:
    client = make_app(
        home, FakeSettingsApi(settings_text()), LOGIN_PAGE_RATE_LIMIT="5 per minute"
    ).test_client()
    codes = [client.get("/login").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


def test_idle_session_ends_after_web_idle_timeout(home: BotHome) -> None:
    clock = Clock()
    client = make_app(
        home, FakeSettingsApi(settings_text(WEB_IDLE_TIMEOUT_MINUTES="30")), clock
    ).test_client()
    login(client, "viewer")
    for _ in range(3):  # used every 29 minutes: 87 minutes without idling out
        clock.now += timedelta(minutes=29)
        assert client.get("/status").status_code == 200
    clock.now += timedelta(minutes=20)
    assert client.get("/api/status").status_code == 200  # the page's own polling is not use
    clock.now += timedelta(minutes=11)
    resp = client.get("/status")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    assert client.get("/api/status").status_code == 401
    assert any(r["event"] == "session_idle_expired" for r in recent_user_activity(home))


def test_idle_timeout_follows_the_configured_minutes(home: BotHome) -> None:
    clock = Clock()
    client = make_app(home, FakeSettingsApi(settings_text(WEB_IDLE_TIMEOUT_MINUTES="5")), clock).test_client()
    login(client, "viewer")
    clock.now += timedelta(minutes=4)
    assert client.get("/status").status_code == 200
    clock.now += timedelta(minutes=5, seconds=1)
    assert client.get("/status").status_code == 302
