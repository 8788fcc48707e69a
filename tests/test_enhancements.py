"""Blocking enhancements: each allows or denies with a reason, and each self_check passes on good input."""

from __future__ import annotations

import ast
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
    ("adx", "calm"), [(24.99, True), (0.0, True), (25.0, False), (40.0, False), (math.nan, False)]
)
def test_adx_calm_only_strictly_below_the_threshold(adx: float, calm: bool) -> None:
    assert adx_filter.calm(np.array([adx]), 25.0).tolist() == [calm]


def test_adx_on_bars_trend_blocks_chop_allows() -> None:
    n, period, threshold = 60, SETTINGS.ADX_PERIOD, SETTINGS.ADX_THRESHOLD
    trend = np.linspace(100.0, 160.0, n)
    chop = 100.0 + np.where(np.arange(n) % 2 == 0, 0.5, -0.5)
    # one row per symbol, as MID's kernel passes them: the trend is not calm, the chop is
    adx = adx_filter.wilder_adx(
        np.stack([trend + 0.5, chop + 0.6]),
        np.stack([trend - 0.5, chop - 0.6]),
        np.stack([trend, chop]),
        period,
    )
    assert adx_filter.calm(adx, threshold)[:, -1].tolist() == [False, True]
    # too few bars: ADX undefined (NaN) on every bar, so never calm
    short = adx_filter.wilder_adx(trend[:5] + 0.5, trend[:5] - 0.5, trend[:5], period)
    assert np.isnan(short).all() and not adx_filter.calm(short, threshold).any()
    assert adx_filter.self_check(SETTINGS).ok


def test_adx_self_check_catches_a_rule_that_lets_the_threshold_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adx_filter, "calm", lambda adx, threshold: np.asarray(adx) <= threshold)
    result = adx_filter.self_check(SETTINGS)
    assert not result.ok and "threshold" in result.reason


@pytest.mark.parametrize(
    ("close", "bullish", "bearish"),
    [
        (94.9, True, False),
        (95.0, False, False),  # on the lower band: not beyond it
        (100.0, False, False),
        (105.0, False, False),  # on the upper band
        (105.1, False, True),
        (math.nan, False, False),
    ],
)
def test_bollinger_confluence_needs_a_close_strictly_beyond_the_band(
    close: float, bullish: bool, bearish: bool
) -> None:
    bull, bear = bollinger_confluence.beyond_bands(np.array([close]), np.array([105.0]), np.array([95.0]))
    assert (bull.tolist(), bear.tolist()) == ([bullish], [bearish])


def test_bollinger_on_closes() -> None:
    period, k = SETTINGS.BOLLINGER_PERIOD, SETTINGS.BOLLINGER_STD
    base = 100.0 + np.where(np.arange(30) % 2 == 0, 0.2, -0.2)
    rows = np.stack([np.append(base, 97.0), np.append(base, 100.1), np.append(base, 103.0)])
    _, upper, lower = bollinger_confluence.bollinger_bands(rows, period, k)
    bull, bear = bollinger_confluence.beyond_bands(rows, upper, lower)
    # a dip below the lower band confirms a bullish entry, a jump above the upper one a bearish entry
    assert bull[:, -1].tolist() == [True, False, False]
    assert bear[:, -1].tolist() == [False, False, True]
    # before `period` bars the bands are NaN and nothing is confirmed
    assert np.isnan(upper[:, : period - 1]).all() and not (bull | bear)[:, : period - 1].any()
    assert bollinger_confluence.self_check(SETTINGS).ok


def test_bollinger_bands_from_sums_is_the_textbook_population_band() -> None:
    closes = np.array([1.0, 2.0, 3.0, 4.0])
    x = closes - 1.0
    mid, upper, lower = bollinger_confluence.bands_from_sums(
        np.array([x.sum()]), np.array([(x * x).sum()]), np.array([1.0]), 4, 2.0
    )
    std = float(np.std(closes))  # population std
    assert mid[0] == pytest.approx(2.5)
    assert (upper[0], lower[0]) == (pytest.approx(2.5 + 2 * std), pytest.approx(2.5 - 2 * std))


@pytest.mark.parametrize(
    ("vix", "allowed", "reason"),
    [
        (None, False, "no VIX value at the window start: CLOSE blocked"),
        (math.nan, False, "no VIX value at the window start: CLOSE blocked"),
        (math.inf, False, "no VIX value at the window start: CLOSE blocked"),
        (14.0, False, "VIX 14.00 <= STRAT_CLOSE_VIX_THRESHOLD 15: CLOSE blocked"),
        (15.0, False, "VIX 15.00 <= STRAT_CLOSE_VIX_THRESHOLD 15: CLOSE blocked"),  # must be strictly above
        (15.01, True, ""),
    ],
)
def test_vix_gate(vix: float | None, allowed: bool, reason: str) -> None:
    assert SETTINGS.STRAT_CLOSE_VIX_THRESHOLD == 15
    assert vix_gatekeeper.gate(vix, SETTINGS.STRAT_CLOSE_VIX_THRESHOLD) == (allowed, reason)


def test_vix_gate_reason_shows_two_decimals_and_the_threshold_without_a_zero_fraction() -> None:
    assert vix_gatekeeper.gate(12.3412, 20.0) == (
        False,
        "VIX 12.34 <= STRAT_CLOSE_VIX_THRESHOLD 20: CLOSE blocked",
    )
    assert (
        vix_gatekeeper.gate(12.3412, 20.5)[1] == "VIX 12.34 <= STRAT_CLOSE_VIX_THRESHOLD 20.5: CLOSE blocked"
    )


def test_vix_known_at_window_start_is_previous_close() -> None:
    closes = {date(2011, 1, 3): 17.6, date(2011, 1, 4): 17.4, date(2011, 1, 6): 16.9}
    assert vix_gatekeeper.previous_close_vix(closes, date(2011, 1, 5)) == 17.4
    assert vix_gatekeeper.previous_close_vix(closes, date(2011, 1, 6)) == 17.4  # not the session's own close
    assert vix_gatekeeper.previous_close_vix(closes, date(2011, 1, 7)) == 16.9  # the last one before, any gap
    assert vix_gatekeeper.previous_close_vix(closes, date(2011, 1, 3)) is None
    assert vix_gatekeeper.previous_close_vix({}, date(2011, 1, 3)) is None
    assert vix_gatekeeper.self_check(SETTINGS).ok


def test_vix_self_check_catches_a_gate_that_lets_the_threshold_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        vix_gatekeeper, "gate", lambda vix, threshold: (vix is not None and vix >= threshold, "")
    )
    assert not vix_gatekeeper.self_check(SETTINGS).ok


@pytest.mark.parametrize("module", [adx_filter, bollinger_confluence, vix_gatekeeper])
def test_the_gate_owners_import_nothing_above_them(module: object) -> None:
    """strategy/ calls these modules; importing strategy (or anything that uses it) back would be a cycle."""
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text(encoding="utf-8"))
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    above = tuple(
        f"tbot_bot.{p}" for p in ("strategy", "runtime", "backtest", "optimizer", "trading", "broker")
    )
    assert "tbot_bot.checks" in imported
    assert {n for n in imported if n == "tbot_bot" or n.startswith(above)} == set()


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
