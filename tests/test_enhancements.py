"""Blocking enhancements: each allows or denies with a reason, and each self_check passes on good input."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from helpers import make_settings

from tbot_bot.domain.clock import ReplayClock
from tbot_bot.enhancements import adx_filter, bollinger_confluence, build_check, vix_gatekeeper
from tbot_bot.enhancements.base import FilterDecision
from tbot_bot.enhancements.ticker_blocklist import TickerBlocklist
from tbot_bot.support.path_resolver import BotHome

SETTINGS = make_settings()


def test_filter_decision_is_frozen() -> None:
    d = FilterDecision.deny("x", "because", ticker="AAA")
    assert (d.allowed, d.filter, d.reason, d.context) == (False, "x", "because", {"ticker": "AAA"})
    with pytest.raises(AttributeError):
        d.allowed = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("adx", "allowed"), [(24.99, True), (25.0, False), (40.0, False), (None, False), (math.nan, False)]
)
def test_adx_threshold(adx: float | None, allowed: bool) -> None:
    d = adx_filter.check_adx(adx, 25)
    assert d.allowed is allowed and d.filter == "adx_filter" and d.reason


def test_adx_on_bars_trend_blocks_chop_allows() -> None:
    n = 60
    trend = np.linspace(100.0, 160.0, n)
    assert not adx_filter.evaluate(SETTINGS, trend + 0.5, trend - 0.5, trend).allowed
    chop = 100.0 + np.where(np.arange(n) % 2 == 0, 0.5, -0.5)
    d = adx_filter.evaluate(SETTINGS, chop + 0.6, chop - 0.6, chop)
    assert d.allowed, d.reason
    short = adx_filter.evaluate(SETTINGS, trend[:5] + 0.5, trend[:5] - 0.5, trend[:5])
    assert not short.allowed and "not available" in short.reason
    assert adx_filter.self_check(SETTINGS).ok


@pytest.mark.parametrize(
    ("close", "direction", "allowed"),
    [
        (94.9, 1, True),
        (95.0, 1, False),
        (105.1, -1, True),
        (105.0, -1, False),
        (94.0, -1, False),
        (106.0, 1, False),
    ],
)
def test_bollinger_side(close: float, direction: int, allowed: bool) -> None:
    assert bollinger_confluence.check_bollinger(close, 105.0, 95.0, direction).allowed is allowed


def test_bollinger_on_closes() -> None:
    base = 100.0 + np.where(np.arange(30) % 2 == 0, 0.2, -0.2)
    dip = np.append(base, 97.0)
    assert bollinger_confluence.evaluate(SETTINGS, dip, +1).allowed
    assert not bollinger_confluence.evaluate(SETTINGS, dip, -1).allowed
    assert not bollinger_confluence.evaluate(SETTINGS, np.append(base, 100.1), +1).allowed
    assert not bollinger_confluence.evaluate(SETTINGS, dip[:5], +1).allowed  # too few bars
    assert bollinger_confluence.self_check(SETTINGS).ok


@pytest.mark.parametrize(
    ("vix", "allowed"), [(None, False), (math.nan, False), (15.0, False), (14.0, False), (15.01, True)]
)
def test_vix_gate(vix: float | None, allowed: bool) -> None:
    d = vix_gatekeeper.evaluate(SETTINGS, vix)
    assert d.allowed is allowed and d.reason


def test_vix_known_at_window_start_is_previous_close() -> None:
    closes = {date(2011, 1, 3): 17.6, date(2011, 1, 4): 17.4, date(2011, 1, 5): 16.9}
    assert vix_gatekeeper.previous_close_vix(closes, date(2011, 1, 5)) == 17.4
    assert vix_gatekeeper.previous_close_vix(closes, date(2011, 1, 3)) is None
    assert vix_gatekeeper.self_check(SETTINGS).ok


def test_blocklist_one_trade_per_ticker_per_day_survives_restart(tmp_path: Path) -> None:
    clock = ReplayClock(datetime(2011, 1, 4, 14, 50, tzinfo=UTC))
    home = BotHome(tmp_path)
    bl = TickerBlocklist.for_home(home, clock)
    assert bl.check("aaa").allowed
    assert bl.record("AAA", "open", "cid-1")
    assert not bl.record("AAA", "mid", "cid-2")  # the first record is kept
    d = bl.check("AAA")
    assert not d.allowed and d.context["strategy"] == "open" and "already traded" in d.reason
    assert bl.self_check().ok
    bl.close()
    again = TickerBlocklist.for_home(home, clock)
    assert not again.check("AAA").allowed  # the record survives a reopen (a restart)
    assert again.check("BBB").allowed
    clock.advance_to(clock.now() + timedelta(days=1))
    assert again.check("AAA").allowed  # a new day: yesterday's trades block nothing


def _home(tmp_path: Path) -> BotHome:
    home = BotHome(tmp_path)
    home.dotenv.write_text("ENVIRONMENT=development\n")
    home.env_bot_enc.write_bytes(b"x")
    home.keys_dir.mkdir(parents=True)
    home.key_file("env").write_bytes(b"k")
    return home


def test_build_check_passes_on_a_complete_home(tmp_path: Path) -> None:
    home = _home(tmp_path)
    results = build_check.run_build_check(home, scope="RGL_USA_SIM_TB01", production=True)
    assert all(d.allowed for d in results), [d.reason for d in results if not d.allowed]
    assert home.logs_dir("RGL_USA_SIM_TB01").is_dir()
    assert build_check.self_check(home).ok


def test_build_check_denies_missing_files(tmp_path: Path) -> None:
    home = _home(tmp_path)
    home.env_bot_enc.unlink()
    home.dotenv.unlink()
    result = build_check.self_check(home, production=True)
    assert not result.ok and ".env missing" in result.reason and ".env_bot.enc missing" in result.reason


def test_build_check_plaintext_only_in_development(tmp_path: Path) -> None:
    home = _home(tmp_path)
    home.env_bot_enc.unlink()
    home.env_bot_plain.write_text("X=1\n")
    assert build_check.self_check(home, production=False).ok
    assert not build_check.self_check(home, production=True).ok


def test_build_check_denies_unwritable_dir(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (tmp_path / "storage" / "state").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "storage" / "state").write_text("a file where a directory should be")
    result = build_check.self_check(home)
    assert not result.ok and "state directory not writable" in result.reason
