"""The dashboard under damaged files and odd requests (a sweep found each of these as an HTTP 500): every page
still renders, with what it could read; a request it cannot serve is refused, never half-done."""

from __future__ import annotations

import json

import pytest
from fixtures_web import (
    BACKTEST_RUN,
    PROPOSAL_RUN,
    SCOPE,
    Clock,
    FakeSettingsApi,
    build_home,
    fresh_token,
    login,
    settings_text,
    status_payload,
    write_status,
)

from tbot_bot.core import users as users_mod
from tbot_web.py.portal_web import create_app


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def home(tmp_path):
    return build_home(tmp_path / "home")


def admin(home):
    app = create_app(home.root, testing=True, settings_api=FakeSettingsApi(settings_text()), clock=Clock())
    client = app.test_client()
    login(client, "admin")
    return client


def post(client, path, **data):
    return client.post(path, data={"csrf_token": fresh_token(client), **data})


PAGES = ("/", "/status", "/api/status", "/charts/pnl.svg", "/users", "/settings", "/trades", "/history",
         "/history/equity.svg", "/history/daily.svg", "/research", "/ledger", "/positions")  # fmt: skip


@pytest.mark.parametrize(
    "damage",
    [
        {"bot": [1]},  # every page's header read status.json's bot as a dict
        {"bot": "x", "money": {"equity": "1e30", "cash": 1e308}},
        {"realized_pnl": "1e26", "realized_pnl_by_strategy": {"open": "1e30", "mid": "NaN"}},
        {"realized_pnl": "1e1000000", "money": {"equity": "-1e1000000"}},  # abs() of these overflows Decimal
    ],
)
def test_a_damaged_status_file_leaves_every_page_up(home, damage) -> None:
    write_status(home, {**status_payload("trading"), **damage})
    client = admin(home)
    for page in PAGES:
        assert client.get(page).status_code == 200, page


def test_a_status_file_that_is_not_text_and_damaged_research_files_leave_the_pages_up(home) -> None:
    home.status_json.write_bytes(b"\xff\xfe")
    client = admin(home)
    assert "not UTF-8 text" in client.get("/api/status").get_json()["error"]
    for junk in (
        '{"bot": ' + "9" * 5000 + "}",
        "[" * 100_000 + "]" * 100_000,
    ):  # a number, a nesting Python refuses
        home.status_json.write_text(junk)
        assert "not valid JSON" in client.get("/api/status").get_json()["error"]
        assert client.get("/users").status_code == 200
    summary = home.summaries_dir(SCOPE) / "daily_summary_2011-01-21.json"
    summary.write_text(
        json.dumps({"session_date": "2011-01-21", "totals": {"total_pnl": "NaN", "net_pnl": "1e1000000"}})
    )
    history = home.trades_dir(SCOPE) / f"{SCOPE}_BOT_trade_history.json"
    history.write_text(
        json.dumps([{"timestamp": "2011-01-18T14:40:00+00:00", "strategy_name": "open", "PnL": "1e30"}])
    )
    for page in ("/users", "/history", "/history/equity.svg", "/history/daily.svg", "/trades"):
        assert client.get(page).status_code == 200, page
    metrics = home.backtest_results_dir / BACKTEST_RUN / "metrics.json"
    metrics.write_text(json.dumps({"sharpe": 1e30, "win_rate": 1e30, "total_pnl": "1e40"}))
    assert client.get("/research").status_code == 200
    assert client.get(f"/research/backtest/{BACKTEST_RUN}").status_code == 200
    metrics.write_text("[1, 2]")  # no run to show
    assert client.get(f"/research/backtest/{BACKTEST_RUN}").status_code == 404


def test_requests_it_cannot_serve_are_refused_and_change_nothing(home) -> None:
    client = admin(home)
    for long_id in (
        "a" * 300,
        "€" * 100,
    ):  # names the file system refuses (by bytes): no proposal, no OSError
        assert client.get(f"/proposals/{long_id}").status_code in (302, 404)
        assert post(client, f"/proposals/{long_id}/approve").status_code in (302, 404)
    # "²" is a digit to str.isdigit, not a trial number
    for trial in ("²", "9" * 5000):  # int() refuses both
        assert post(client, f"/proposals/{PROPOSAL_RUN}/approve", trial=trial).status_code in (302, 400)
    # a missing or mistyped switch never disables a user
    for value in (None, "abc"):
        data = {} if value is None else {"active": value}
        assert post(client, "/users/viewer/active", **data).status_code == 400
    viewer = users_mod.get_user(home, "viewer")
    assert viewer is not None and viewer.is_active
