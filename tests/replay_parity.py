"""Shared by the span parity tests (backtest = replay, issue 21): the sample's sessions, each home's replayed
round trips per day and a backtest's, in one comparable shape."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from integration_test_runner import provision_demo_home

from tbot_bot.data.sample import sample_days
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome, package_file

SAMPLE = package_file("data", "sample")
SAMPLE_DAYS = tuple(sample_days())
JANUARY = tuple(d for d in SAMPLE_DAYS if d.month == 1)
Trade = tuple[str, str, Decimal, Decimal, Decimal, str, str, Decimal, Decimal]


def replayed_by_day(home: BotHome) -> dict[date, list[Trade]]:
    """Every round trip the home's replays booked, per session: strategy, instrument, size, prices, times,
    the ledger's PnL before fees and the fees (Dr 5010)."""
    files = list(home.root.glob("output/*/trades/*_trade_history.csv"))
    out: dict[date, list[Trade]] = {}
    for r in csv.DictReader(files[0].read_text().splitlines()) if files else []:
        trade = (
            r["strategy_name"], r["ticker"], Decimal(r["size"]), Decimal(r["entry_price"]), Decimal(r["exit_price"]),
            r["entry_time"][:16], r["exit_time"][:16], Decimal(r["PnL"]), Decimal(r["fees"]),
        )  # fmt: skip
        out.setdefault(date.fromisoformat(r["entry_time"][:10]), []).append(trade)
    return {d: sorted(ts) for d, ts in out.items()}


def backtested_by_day(trades: pd.DataFrame) -> dict[date, list[Trade]]:
    out: dict[date, list[Trade]] = {}
    for t in trades.to_dict("records"):
        trade = (
            str(t["strategy_name"]), str(t["ticker"]), Decimal(str(t["size"])), Decimal(str(t["entry_price"])),
            Decimal(str(t["exit_price"])), pd.Timestamp(t["entry_time"]).strftime("%Y-%m-%dT%H:%M"),
            pd.Timestamp(t["exit_time"]).strftime("%Y-%m-%dT%H:%M"), Decimal(str(t["PnL"])), Decimal(str(t["fees"])),
        )  # fmt: skip
        out.setdefault(date.fromisoformat(str(t["session"])), []).append(trade)
    return {d: sorted(ts) for d, ts in out.items()}


def net(trades: list[Trade]) -> Decimal:
    return sum((t[7] - t[8] for t in trades), Decimal(0))


Replayed = tuple[BotHome, dict[date, list[Trade]]]


def replay_month(tmp_path_factory: pytest.TempPathFactory, month: int) -> Replayed:
    """The month's sample sessions replayed in order on one demo home, every window (STRATEGY_SEQUENCE)."""
    home = provision_demo_home(tmp_path_factory.mktemp(f"month{month}") / "home")
    for day in (d for d in SAMPLE_DAYS if d.month == month):
        assert Supervisor(home, replay_day=day).run() == 0, day
    return home, replayed_by_day(home)


def backtested_alone(home: BotHome, day: date, out: Path) -> list[Trade]:
    """One day backtested on its own (D..D, every window) with the home's settings and float."""
    from tbot_bot.backtest.backtest_engine import backtest_float, run_backtest
    from tbot_bot.config.settings_bot import load_settings

    result = run_backtest(
        load_settings(home), "all", SAMPLE, day, day, out, broker_current_float=backtest_float(None, home)
    )
    return backtested_by_day(result.trades).get(day, [])


Months = Callable[[int], Replayed]
