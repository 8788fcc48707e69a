"""MID (VWAP reversion) on hand-built bars through simulate() and the bar-by-bar LiveEvaluator."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from helpers import make_settings
from strategy_bars import at, bars, comparable, minutes_between, replay_live

from tbot_bot.enhancements import adx_filter, bollinger_confluence
from tbot_bot.strategy import strategy_mid

DAY = "2011-01-04"  # MID: analysis 15:30-15:45, breakout 15:45-15:55, 30 minutes monitoring


def choppy_then(events: dict[str, float], tail: float | None = None) -> list[float]:
    """Closes zig-zagging 100.00/100.04/100.08/100.04 from the 14:30 open (no trend: low ADX); `events` set a
    close from a UTC time on (held until the next event)."""
    n = minutes_between(at(DAY, "14:30"), at(DAY, "21:00"))
    path = np.array([100.0, 100.04, 100.08, 100.04])[np.arange(n) % 4]
    marks = sorted((minutes_between(at(DAY, "14:30"), at(DAY, t)), v) for t, v in events.items())
    for i, (m, v) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n
        path[m:end] = v
    return path.tolist()


def run_both(frame: pd.DataFrame, **overrides: object) -> pd.DataFrame:
    settings = make_settings(**overrides)
    sim = strategy_mid.simulate(frame, strategy_mid.STRATEGY.params_from_settings(settings))
    live = replay_live(strategy_mid.STRATEGY, settings, frame, date.fromisoformat(DAY))
    assert comparable(sim) == comparable(live)
    return sim


def test_bullish_below_vwap_and_band_with_low_adx_then_times_out() -> None:
    frame = bars(at(DAY, "14:30"), choppy_then({"15:46": 99.6}))
    t = run_both(frame).iloc[0]
    assert t.direction == "bullish" and t.kind == "vwap_reversion"
    assert t.signal_time == pd.Timestamp(at(DAY, "15:46"))
    assert t.entry_time == pd.Timestamp(at(DAY, "15:47")) and t.entry_price == pytest.approx(99.6)
    assert t.exit_reason == "timeout" and t.exit_time == pd.Timestamp(at(DAY, "16:17"))


def test_bearish_above_vwap() -> None:
    t = run_both(bars(at(DAY, "14:30"), choppy_then({"15:46": 100.45}))).iloc[0]
    assert t.direction == "bearish"


def test_vwap_touch_exit() -> None:
    t = run_both(bars(at(DAY, "14:30"), choppy_then({"15:46": 99.6, "15:50": 100.1}))).iloc[0]
    assert t.exit_reason == "vwap_touch"
    assert t.trigger_time == pd.Timestamp(at(DAY, "15:50")) and t.exit_time == pd.Timestamp(at(DAY, "15:51"))
    assert t.exit_price == pytest.approx(100.1)


def test_stop_loss_exit() -> None:
    # entry 99.6: stop at 99.6 * (1 - 0.015) = 98.106
    t = run_both(bars(at(DAY, "14:30"), choppy_then({"15:46": 99.6, "15:52": 98.0}))).iloc[0]
    assert t.exit_reason == "stop_loss" and t.exit_time == pd.Timestamp(at(DAY, "15:53"))


def test_trend_blocks_entry_through_adx() -> None:
    n = minutes_between(at(DAY, "14:30"), at(DAY, "21:00"))
    ramp = np.linspace(100, 103, n)
    ramp[76:] = 101.0  # 15:46 drop below VWAP; a strong prior trend keeps ADX high
    frame = bars(at(DAY, "14:30"), ramp.tolist())
    f = frame.iloc[:77]
    adx = adx_filter.wilder_adx(f["high"].to_numpy(), f["low"].to_numpy(), f["close"].to_numpy(), 14)
    assert adx[-1] >= 25
    assert run_both(frame).empty


def test_mid_entries_are_decided_by_the_adx_and_bollinger_enhancements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The filters MID runs (simulate and the live evaluator alike) are the enhancement modules' rules."""
    frame = bars(at(DAY, "14:30"), choppy_then({"15:46": 99.6}))
    assert len(run_both(frame)) == 1
    with monkeypatch.context() as m:
        m.setattr(adx_filter, "calm", lambda adx, threshold: np.zeros(np.shape(adx), dtype=bool))
        assert run_both(frame).empty
    with monkeypatch.context() as m:
        m.setattr(
            bollinger_confluence,
            "beyond_bands",
            lambda close, upper, lower: (np.zeros(np.shape(close), bool), np.zeros(np.shape(close), bool)),
        )
        assert run_both(frame).empty


def test_adx_threshold_key_changes_the_outcome() -> None:
    frame = bars(at(DAY, "14:30"), choppy_then({"15:46": 99.6}))
    assert run_both(frame, ADX_THRESHOLD=1).empty  # ADX_THRESHOLD=1: everything counts as trending


def test_no_entry_without_the_bollinger_breach() -> None:
    # wide BOLLINGER_STD: the same dip is inside the band
    assert run_both(bars(at(DAY, "14:30"), choppy_then({"15:46": 99.6})), BOLLINGER_STD=9).empty
