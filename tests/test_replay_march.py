"""Backtest = replay over March's sample sessions (issue 21), across the daylight-saving change of 2011-03-13:
the span backtest of every window and each day backtested on its own book the replays' trades."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from replay_parity import SAMPLE, SAMPLE_DAYS, Replayed, backtested_alone, backtested_by_day, replay_month

from tbot_bot.backtest.backtest_engine import backtest_float, run_backtest
from tbot_bot.config.settings_bot import load_settings

MARCH = tuple(d for d in SAMPLE_DAYS if d.month == 3)


@pytest.fixture(scope="module")
def march(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    return replay_month(tmp_path_factory, 3)


def test_a_march_backtest_of_all_windows_equals_the_march_replays(march: Replayed, tmp_path: Path) -> None:
    home, live = march
    result = run_backtest(
        load_settings(home), "all", SAMPLE, MARCH[0], MARCH[-1], tmp_path / "bt",
        broker_current_float=backtest_float(None, home),
    )  # fmt: skip
    backtest = backtested_by_day(result.trades)
    assert sum(len(ts) for ts in live.values()) >= 20
    assert all(backtest.get(d, []) == live.get(d, []) for d in MARCH)


@pytest.mark.parametrize("day", MARCH, ids=str)
def test_each_march_day_backtested_alone_equals_its_replay(
    march: Replayed, tmp_path: Path, day: date
) -> None:
    home, live = march
    assert backtested_alone(home, day, tmp_path / "bt") == live.get(day, [])
