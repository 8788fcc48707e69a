"""CLOSE (momentum / fade) on hand-built bars: VIX gate, continuation, fade, stop, exchange-close cut-off."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from helpers import make_settings
from strategy_bars import at, bars, comparable, replay_live, session_path

from tbot_bot.enhancements import vix_gatekeeper
from tbot_bot.strategy import strategy_close

WINTER = "2011-01-04"  # CLOSE: analysis 19:30-19:35, breakout 19:35-19:40, 25 minutes, close 21:00
SUMMER = "2011-03-14"  # after the DST change the session closes 20:00 UTC (16:00 New York)


def run_both(frame: pd.DataFrame, day: str, vix: float | None = 20.0, **overrides: object) -> pd.DataFrame:
    settings = make_settings(**overrides)
    d = date.fromisoformat(day)
    params = strategy_close.STRATEGY.params_from_settings(settings)
    sim = strategy_close.simulate(frame, params, vix={d: vix} if vix is not None else None)
    live = replay_live(strategy_close.STRATEGY, settings, frame, d, vix_at_start=vix)
    assert comparable(sim) == comparable(live)
    return sim


def continuation(day: str, open_at: str = "14:30", close_at: str = "21:00") -> pd.DataFrame:
    path = session_path(day, [(open_at, 100.0), ("16:00", 101.0), ("19:36", 101.5)], open_at, close_at)
    return bars(at(day, open_at), path)


def test_bullish_continuation_in_the_direction_of_the_day() -> None:
    t = run_both(continuation(WINTER), WINTER).iloc[0]
    assert t.direction == "bullish" and t.kind == "continuation"
    assert t.signal_time == pd.Timestamp(at(WINTER, "19:36")) and t.entry_time == pd.Timestamp(
        at(WINTER, "19:37")
    )
    assert t.exit_reason == "timeout" and t.exit_time == pd.Timestamp(at(WINTER, "20:02"))


def test_fade_against_an_analysis_window_spike() -> None:
    path = session_path(WINTER, [("14:30", 100.0), ("19:31", 100.5), ("19:37", 100.2)])
    t = run_both(bars(at(WINTER, "14:30"), path), WINTER).iloc[0]
    # spike +0.5% inside the analysis window; 100.2 is back below the midpoint (100.51 + 99.99) / 2
    assert t.direction == "bearish" and t.kind == "fade"
    assert t.strength == pytest.approx(1 - 100.2 / ((100.51 + 99.99) / 2))


def test_no_continuation_when_the_day_is_flat() -> None:
    path = session_path(WINTER, [("14:30", 100.0), ("19:36", 100.5)])  # day return 0 at 19:35
    assert run_both(bars(at(WINTER, "14:30"), path), WINTER).empty


def test_vix_at_or_below_the_threshold_blocks() -> None:
    assert run_both(continuation(WINTER), WINTER, vix=14.0).empty
    assert run_both(continuation(WINTER), WINTER, vix=15.0).empty  # must be strictly above


def test_missing_vix_blocks_and_says_why() -> None:
    assert run_both(continuation(WINTER), WINTER, vix=None).empty
    ev = strategy_close.live_for(date.fromisoformat(WINTER), make_settings(), vix_at_start=None)
    assert ev.blocked_reason == "no VIX value at the window start: CLOSE blocked"


def test_the_vix_gatekeeper_is_what_blocks_close(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(run_both(continuation(WINTER), WINTER, vix=40.0)) == 1
    monkeypatch.setattr(vix_gatekeeper, "gate", lambda vix, threshold: (False, "gatekeeper says no"))
    assert run_both(continuation(WINTER), WINTER, vix=40.0).empty
    ev = strategy_close.live_for(date.fromisoformat(WINTER), make_settings(), vix_at_start=40.0)
    assert ev.blocked_reason == "gatekeeper says no"


def test_stop_loss() -> None:
    path = session_path(WINTER, [("14:30", 100.0), ("16:00", 101.0), ("19:36", 101.5), ("19:45", 99.4)])
    t = run_both(bars(at(WINTER, "14:30"), path), WINTER).iloc[0]
    assert t.exit_reason == "stop_loss" and t.exit_time == pd.Timestamp(at(WINTER, "19:46"))


def test_exchange_close_cuts_the_monitoring_time() -> None:
    frame = continuation(SUMMER, "13:30", "20:00")
    # START_TIME_CLOSE=15:30 New York = 19:30Z in summer; entry 19:37 + 25 = 20:02 is past the 20:00 close:
    # exit at the open of the session's last bar
    t = run_both(frame, SUMMER, START_TIME_CLOSE="15:30").iloc[0]
    assert t.entry_time == pd.Timestamp(at(SUMMER, "19:37"))
    assert t.exit_reason == "session_close" and t.exit_time == pd.Timestamp(at(SUMMER, "19:59"))
