"""Backtest = replay over January's sample sessions (issue 21): the span backtest of every window books the
replays' trades day by day, and so does each day backtested on its own."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from replay_parity import JANUARY, Replayed, backtested_alone, backtested_by_day, net, replay_month

from rigd_tbot.cli import main as tbot


@pytest.fixture(scope="module")
def january(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    return replay_month(tmp_path_factory, 1)


def test_a_january_backtest_of_all_windows_equals_the_january_replays(
    january: Replayed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbot backtest --strategy all` over the span books, day by day, the replays' trades (strategy,
    instrument, size, prices, times, PnL, fees), so each day's and each strategy's net PnL is the same: the
    cross-window rules (one trade per ticker per session, MAX_OPEN_POSITIONS, kill switch, defense mode) and
    the screener's fundamentals and spread are the live day's."""
    home, live = january
    out = tmp_path / "bt"
    argv = [
        "backtest",
        "--strategy",
        "all",
        "--start",
        JANUARY[0].isoformat(),
        "--end",
        JANUARY[-1].isoformat(),
    ]
    assert tbot([*argv, "--quiet", "--out", str(out), "--home", str(home.root)]) == 0
    trades = pd.DataFrame(json.loads((out / "trade_history_backtest.json").read_text()))
    backtest = backtested_by_day(trades)
    assert sum(len(ts) for ts in live.values()) >= 20 and len(live) >= 10
    assert {s for ts in live.values() for s, *_ in ts} == {"open", "mid", "close"}
    for day in JANUARY:
        assert backtest.get(day, []) == live.get(day, []), day
        for strategy in ("open", "mid", "close"):
            mine = [t for t in backtest.get(day, []) if t[0] == strategy]
            theirs = [t for t in live.get(day, []) if t[0] == strategy]
            assert net(mine) == net(theirs), (day, strategy)
    daily = {
        d["date"]: Decimal(d["net_PnL"])
        for d in json.loads((out / "daily_summary_backtest.json").read_text())
    }
    assert daily == {d.isoformat(): net(live.get(d, [])) for d in JANUARY}
    total = sum(map(net, live.values()), Decimal(0))
    assert f"all: {len(trades)} trades" in capsys.readouterr().out
    assert float(json.loads((out / "metrics.json").read_text())["total_pnl"]) == pytest.approx(
        float(total), abs=1e-6
    )


@pytest.mark.parametrize("day", JANUARY, ids=str)
def test_each_january_day_backtested_alone_equals_its_replay(
    january: Replayed, tmp_path: Path, day: date
) -> None:
    """One day at a time (D..D, every window): the same trades as that day's replay in the month's home."""
    home, live = january
    assert backtested_alone(home, day, tmp_path / "bt") == live.get(day, [])
