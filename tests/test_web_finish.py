"""Dashboard finish (issue 22 point 8): the Logs page dates every line in exchange time and UTC; Settings shows
each key's meaning (the template's comment) and what the validation allows (read from the same declaration that
validates it); numbers are rounded for people on the pages that show raw values from the bot's files."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from fixtures_web import (
    BACKTEST_RUN,
    SCOPE,
    FakeSettingsApi,
    build_home,
    login,
    settings_text,
    status_payload,
    write_status,
)

from tbot_bot.config.env_bot import KEYS, BotSettings, settings_from_text
from tbot_bot.config.key_help import allowed_values, key_help
from tbot_bot.config.template import template_lines
from tbot_bot.core import users as users_mod
from tbot_bot.errors import ConfigError
from tbot_web.py.portal_web import create_app

NEW_YORK = {"bot_id": "TB01", "exchange_tz": "America/New_York"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    return build_home(tmp_path / "home")


def client_for(home, role):
    client = create_app(home.root, testing=True, settings_api=FakeSettingsApi(settings_text())).test_client()
    assert login(client, role).status_code == 302
    return client


def test_log_lines_carry_their_date_in_exchange_time_and_utc(home):
    write_status(home, status_payload("closed", bot=NEW_YORK))
    lines = [
        {"timestamp": "2011-01-19T15:30:05Z", "event": "midday", "level": "info"},
        # 19:30 in New York is already the next day in UTC: each side shows its own date
        {"timestamp": "2011-01-20T00:30:00Z", "event": "evening", "level": "info"},
    ]
    (home.logs_dir(SCOPE) / "open.log").write_text("".join(json.dumps(x) + "\n" for x in lines))
    html = client_for(home, "viewer").get("/logs?strategy=open").get_data(as_text=True)
    assert "Date and time (exchange / UTC)" in html
    cells = re.findall(r'<td class="when">([^<]*)</td>', html)
    assert cells[:2] == [
        "2011-01-19 19:30:00 EST / 2011-01-20 00:30:00Z",
        "2011-01-19 10:30:05 EST / 15:30:05Z",
    ]
    # without a known exchange zone: the UTC date and time
    home.status_json.unlink()
    html = client_for(home, "viewer").get("/logs?strategy=open").get_data(as_text=True)
    assert "2011-01-19 15:30:05Z" in html and "Date and time (UTC)" in html


def test_settings_show_each_keys_meaning_and_allowed_values(home):
    html = client_for(home, "admin").get("/settings").get_data(as_text=True)
    help_of = dict(re.findall(r'<p class="help muted" id="h-(\w+)">(.*?)</p>', html, re.S))
    assert set(help_of) >= {"MAX_TRADES", "LOG_FORMAT", "DEFENSE_MODE_TRIGGER_DRAWDOWN", "SLEEP_TIME"}
    assert "entries per strategy window" in help_of["MAX_TRADES"]
    assert "Allowed: whole number 1..20" in help_of["MAX_TRADES"]
    assert "range 1..20" not in help_of["MAX_TRADES"]  # the template's copy of the range is not repeated
    assert "Allowed: one of: json, csv" in help_of["LOG_FORMAT"]
    assert "Allowed: disabled, or 0.0001..1" in help_of["DEFENSE_MODE_TRIGGER_DRAWDOWN"]
    assert "0.01..60 seconds" in help_of["SLEEP_TIME"]
    assert 'aria-describedby="h-MAX_TRADES"' in html


def stated_range(comment: str) -> tuple[str, str] | None:
    """The "range a..b" a template comment states, if any."""
    m = re.search(r"range\s+(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)", comment)
    return (m.group(1), m.group(2)) if m else None


def test_allowed_ranges_are_the_validations_own():
    # the range shown is read from the declaration that validates: a value just outside it is refused, one at
    # its edge accepted
    low, high = allowed_values("MAX_TRADES").removeprefix("whole number ").split("..")
    base = settings_text()
    for value, ok in ((high, True), (str(int(high) + 1), False), (low, True), (str(int(low) - 1), False)):
        weights = ",".join(["1"] + ["0"] * (int(value) - 1)) if int(value) > 0 else "1"
        text = base.replace("MAX_TRADES=4", f"MAX_TRADES={value}").replace(
            "WEIGHTS=0.4,0.2,0.2,0.2", f"WEIGHTS={weights}"
        )
        problems: list[str] = []
        try:
            settings_from_text(text)
        except ConfigError as exc:
            problems = [p for p in exc.problems if p.startswith("MAX_TRADES")]
        assert (not problems) is ok, (value, problems)
    # every range the template's comments state agrees with the rule (the comments are help, not a second source)
    comments = {key: line.comment for key, line in template_lines().items()}
    assert set(comments) == set(KEYS)  # every key has its help in the template
    stated = {k: stated_range(c) for k, c in comments.items() if k in BotSettings.model_fields}
    checked = 0
    for key, pair in stated.items():
        if pair is None or key == "RISK_FREE_RATE_TABLE":  # the table's per-rate bound lives in its parser
            continue
        shown = re.search(r"(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)", allowed_values(key))
        assert shown is not None, (key, allowed_values(key))
        assert [Decimal(x) for x in shown.groups()] == [Decimal(x) for x in pair], (
            key,
            pair,
            allowed_values(key),
        )
        checked += 1
    assert checked > 50
    assert key_help("NO_SUCH_KEY").allowed == ""


def test_numbers_are_rounded_for_people(home):
    position = {"symbol": "SPY", "strategy": "open", "side": "long", "qty": "12.115300001",
                "entry_price": 45.678912, "last_price": "0.123456", "unrealized_pnl": 3.14159}  # fmt: skip
    write_status(home, status_payload("trading", positions=[position], bot=NEW_YORK))
    client = client_for(home, "auditor")
    html = client.get("/status").get_data(as_text=True)
    row = re.search(r'<tbody id="positions-body">\s*<tr>(.*?)</tr>', html, re.S)
    assert row is not None
    assert re.findall(r"<td>([^<]*)</td>", row.group(1))[3:] == ["12.1153", "45.68", "0.1235", "3.14"]
    api = client.get("/api/status").get_json()
    shown = api["positions"][0]
    assert (shown["qty"], shown["entry_price"], shown["last_price"], shown["unrealized_pnl"]) == (
        "12.1153", "45.68", "0.1235", "3.14",
    )  # fmt: skip
    trades = home.trades_dir(SCOPE) / f"{SCOPE}_BOT_trade_history.json"
    trades.write_text(json.dumps([{"timestamp": "2011-01-18T14:40:00+00:00", "strategy_name": "open",
                                   "ticker": "SPY", "side": "long", "size": "3.50000000",
                                   "entry_price": "127.104999", "exit_price": 128.0, "PnL": "3.148712"}]))  # fmt: skip
    html = client.get("/trades").get_data(as_text=True)
    assert re.search(
        r'<td class="num">3\.5</td><td class="num">127\.10</td><td class="num">128\.00</td><td class="num">3\.15</td>',
        html,
    )
    run = client.get(f"/research/backtest/{BACKTEST_RUN}").get_data(as_text=True)
    metric = dict(re.findall(r"<th>([^<]+)</th><td class=\"num\">([^<]*)</td>", run))
    assert (
        metric["win rate"] == "47.00%"
        and metric["net PnL (after fees)"] == "-12.50"
        and metric["trades"] == "17"
    )
    assert metric["sharpe"] == "-0.40" and metric["max drawdown"] == "30.10"
