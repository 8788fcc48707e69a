"""Windows follow the market across the March 2011 DST change and the 2011-11-25 early close (issue 10 item 1):
replays through the real supervisor, a backtest across the boundary, and a synthetic early-close session."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_settings
from integration_test_runner import provision_demo_home
from strategy_bars import at, bars, replay_live, session_path

from tbot_bot.runtime.main import Supervisor
from tbot_bot.strategy import strategy_close, strategy_mid, strategy_open
from tbot_bot.support.path_resolver import BotHome, package_file

NY = "America/New_York"


def _home(tmp_path: Path, **config: str) -> BotHome:
    home = provision_demo_home(tmp_path / "home")
    from tbot_bot.config.settings_bot import update_env_values

    update_env_values(home, config, actor="test")
    return home


@pytest.mark.parametrize(
    ("day", "utc_start"),
    [(date(2011, 3, 11), "14:30"), (date(2011, 3, 14), "13:30"), (date(2011, 3, 15), "13:30")],
)
def test_replay_runs_open_at_the_bell_on_both_sides_of_dst(tmp_path: Path, day: date, utc_start: str) -> None:
    home = _home(tmp_path, STRATEGY_OVERRIDE="open")
    assert Supervisor(home, replay_day=day).run() == 0
    row = json.loads(home.status_json.read_text())["windows"][0]
    expected = at(day.isoformat(), utc_start)
    assert row["strategy"] == "open" and row["status"] == "done"
    assert datetime.fromisoformat(row["scheduled_start"]) == expected
    assert datetime.fromisoformat(row["actual_start"]) == expected
    assert row["scheduled_start_exchange"].startswith(f"{day.isoformat()}T09:30:00")
    assert row["exchange_timezone"] == NY
    # the strategy's own log shows its signals inside the 09:50-10:00 New York breakout window
    events = [
        json.loads(line)
        for log in home.root.glob("output/*/logs/open.log")
        for line in log.read_text().splitlines()
    ]
    signal_times = [pd.Timestamp(e["signal_time"]) for e in events if e["event"] == "signal"]
    assert signal_times, "the sample day has OPEN signals"
    assert all("09:50" <= t.tz_convert(NY).strftime("%H:%M") < "10:00" for t in signal_times)


def test_backtest_across_dst_finds_open_signals_at_the_same_new_york_time(tmp_path: Path) -> None:
    from tbot_bot.backtest.backtest_engine import run_backtest

    result = run_backtest(
        make_settings(),
        "open",
        package_file("data", "sample"),
        date(2011, 3, 10),
        date(2011, 3, 15),
        tmp_path / "bt",
    )
    trades = result.trades
    entries = pd.to_datetime(trades["entry_time"], utc=True)
    sessions = pd.to_datetime(trades["session"]).dt.date
    before, after = entries[sessions < date(2011, 3, 13)], entries[sessions > date(2011, 3, 13)]
    assert len(before) and len(after)
    for side in (before, after):
        assert all("09:50" < t.tz_convert(NY).strftime("%H:%M") <= "10:00" for t in side)
    assert {t.hour for t in before} == {14} and {t.hour for t in after} == {13}  # UTC hours differ by one


EARLY = "2011-11-25"  # XNYS closes 13:00 New York = 18:00Z


def _early_session(events: list[tuple[str, float]]) -> pd.DataFrame:
    return bars(at(EARLY, "14:30"), session_path(EARLY, events, "14:30", "18:00"))


def test_early_close_skips_close_and_trims_a_late_window() -> None:
    """DESIGN §8 (skip) with §7's 'never past the close' (trim): CLOSE's 14:30 window lies after the 13:00
    close, so it is skipped with its reason; a MID window whose monitoring alone passes the close runs, and
    its position leaves at the open of the session's last bar (17:59Z)."""
    day = date.fromisoformat(EARLY)
    settings = make_settings()
    frame = _early_session([("14:30", 100.0), ("16:00", 101.0)])
    close_params = strategy_close.STRATEGY.params_from_settings(settings)
    assert strategy_close.simulate(frame, close_params, vix={day: 30.0}).empty
    ev = strategy_close.STRATEGY.live_for(day, settings, vix_at_start=30.0)
    assert ev.blocked_reason and "early close" in ev.blocked_reason
    # its status row never ends before it starts (the clipped end was the 13:00 close, before 14:30)
    from tbot_bot.runtime.schedule import window_times

    row = window_times(settings, "close", day)
    assert row["scheduled_end"] >= row["scheduled_start"]

    # OPEN at 09:30 New York (14:30Z) still runs on the short day
    opening = _early_session([("14:30", 100.0), ("14:52", 100.5)])
    trades = strategy_open.simulate(opening, strategy_open.STRATEGY.params_from_settings(settings))
    assert len(trades) == 1 and trades.iloc[0].entry_time == pd.Timestamp(at(EARLY, "14:53"))

    # MID at 12:30 New York: breakout ends 12:55 (17:55Z), 30 minutes of monitoring would pass 13:00
    late = make_settings(START_TIME_MID="12:30")
    mid_params = strategy_mid.STRATEGY.params_from_settings(late)
    n = 210  # 14:30..18:00Z
    zigzag = [100.0 + 0.04 * ((i % 4) if i % 4 < 3 else 1) for i in range(n)]
    drop = (17 * 60 + 46) - (14 * 60 + 30)
    zigzag[drop:] = [99.6] * (n - drop)  # from 17:46Z: below VWAP beyond the band, and it stays there
    frame = bars(at(EARLY, "14:30"), zigzag)
    sim = strategy_mid.simulate(frame, mid_params)
    live = replay_live(strategy_mid.STRATEGY, late, frame, day)
    assert len(sim) == 1 and len(live) == 1
    t = sim.iloc[0]
    assert t.entry_time == pd.Timestamp(at(EARLY, "17:47"))
    assert t.exit_reason == "session_close" and t.exit_time == pd.Timestamp(at(EARLY, "17:59"))
    assert (live.iloc[0].exit_reason, live.iloc[0].exit_time) == (t.exit_reason, t.exit_time)
