"""OPEN (opening-range breakout) on hand-built bars: entries, exits, fill timing, window bounds; each case is
checked through simulate() and through the bar-by-bar LiveEvaluator."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from helpers import make_settings
from strategy_bars import at, bars, comparable, replay_live, session_path

from tbot_bot.strategy import strategy_open

DAY = "2011-01-04"  # winter: session 14:30-21:00 UTC; OPEN analysis 14:30-14:50, breakout 14:50-15:00


def run_both(frame: pd.DataFrame, **overrides: object) -> pd.DataFrame:
    settings = make_settings(**overrides)
    sim = strategy_open.simulate(frame, strategy_open.STRATEGY.params_from_settings(settings))
    live = replay_live(strategy_open.STRATEGY, settings, frame, date.fromisoformat(DAY))
    assert comparable(sim) == comparable(live)
    return sim


def test_bullish_breakout_enters_next_open_and_times_out() -> None:
    path = session_path(DAY, [("14:30", 100.0), ("14:52", 100.5)])
    trades = run_both(bars(at(DAY, "14:30"), path))
    assert len(trades) == 1
    t = trades.iloc[0]
    assert t.direction == "bullish" and t.kind == "breakout"
    assert t.signal_time == pd.Timestamp(at(DAY, "14:52"))
    assert t.entry_time == pd.Timestamp(at(DAY, "14:53")) and t.entry_price == pytest.approx(100.5)
    # timeout: the first bar starting at or after entry + 30 minutes
    assert t.exit_time == pd.Timestamp(at(DAY, "15:23")) and t.exit_reason == "timeout"
    # strength = distance beyond the trigger high*(1+buffer), high = 100.01
    assert t.strength == pytest.approx(100.5 / (100.01 * 1.002) - 1)


def test_bearish_breakout() -> None:
    path = session_path(DAY, [("14:30", 100.0), ("14:55", 99.5)])
    trades = run_both(bars(at(DAY, "14:30"), path))
    assert trades.iloc[0].direction == "bearish"
    assert trades.iloc[0].entry_time == pd.Timestamp(at(DAY, "14:56"))


def test_no_signal_inside_the_buffer() -> None:
    path = session_path(DAY, [("14:30", 100.0), ("14:52", 100.15)])  # 100.15 < 100.01 * 1.002
    assert run_both(bars(at(DAY, "14:30"), path)).empty


def test_breakout_after_the_breakout_window_is_ignored() -> None:
    path = session_path(DAY, [("14:30", 100.0), ("15:00", 101.0)])  # breakout window ends 15:00 (exclusive)
    assert run_both(bars(at(DAY, "14:30"), path)).empty


def test_move_during_the_analysis_window_only_widens_the_range() -> None:
    path = session_path(DAY, [("14:30", 100.0), ("14:40", 100.4), ("14:45", 100.0), ("14:52", 100.5)])
    assert run_both(bars(at(DAY, "14:30"), path)).empty  # high 100.41 -> trigger 100.61


def test_trailing_stop_from_the_best_close_fills_at_the_next_open() -> None:
    path = session_path(DAY, [("14:30", 100.0), ("14:52", 100.5), ("14:58", 103.0), ("15:05", 100.9)])
    trades = run_both(bars(at(DAY, "14:30"), path))
    t = trades.iloc[0]
    # best close 103.0; 100.9 <= 103 * 0.98 = 100.94 on the 15:05 close -> exit at the 15:06 open
    assert t.exit_reason == "trailing_stop"
    assert t.trigger_time == pd.Timestamp(at(DAY, "15:05"))
    assert t.exit_time == pd.Timestamp(at(DAY, "15:06")) and t.exit_price == pytest.approx(100.9)


def test_trailing_stop_counts_the_entry_bars_own_close() -> None:
    # signal 14:52; the entry bar (14:53) closes at 103, the next close 100.9 -> stop from 103
    path = session_path(DAY, [("14:30", 100.0), ("14:52", 100.5), ("14:53", 103.0), ("14:54", 100.9)])
    t = run_both(bars(at(DAY, "14:30"), path)).iloc[0]
    assert t.exit_reason == "trailing_stop" and t.exit_time == pd.Timestamp(at(DAY, "14:55"))


def test_no_entry_when_the_window_does_not_fit() -> None:
    # START_TIME_OPEN=09:00 New York starts before the 09:30 bell: the window is skipped
    path = session_path(DAY, [("14:30", 100.0), ("14:52", 100.5)])
    settings = make_settings(START_TIME_OPEN="09:00")
    frame = bars(at(DAY, "14:30"), path)
    assert strategy_open.simulate(frame, strategy_open.STRATEGY.params_from_settings(settings)).empty
    ev = strategy_open.live_for(date.fromisoformat(DAY), settings)
    assert ev.blocked_reason and "before the session opens" in ev.blocked_reason
