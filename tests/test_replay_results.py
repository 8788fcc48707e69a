"""Replays and backtests say what happened (issue 10 item 5): holiday/weekend replays refused naming the day,
--speed validated, the demo's result table after a replay, one-day backtest = live replay of that day,
no VIX = recorded `no_vix` skips in the printed summary, --data-source and --float defaults."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers import has_exponent_notation
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest.backtest_engine import backtest_float, run_backtest
from tbot_bot.config.settings_bot import load_settings, update_env_values
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome, package_file

SAMPLE = package_file("data", "sample")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> BotHome:
    return provision_demo_home(tmp_path_factory.mktemp("replay") / "home")


@pytest.mark.parametrize(
    ("day", "named"),
    [("2011-01-17", "a holiday: Dr. Martin Luther King Jr. Day"), ("2011-01-15", "a Saturday")],
)
def test_replay_of_a_closed_day_exits_2_naming_it(
    home: BotHome, day: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tbot(["start", "--home", str(home.root), "--replay", day]) == 2
    err = capsys.readouterr().err
    assert f"{day} is not a XNYS trading session ({named})" in err and "next session is 2011-01-18" in err


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "0", "1e-300", "-2", "fast"])
def test_replay_speed_must_be_positive_and_finite(
    home: BotHome, speed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        tbot(["start", "--home", str(home.root), "--replay", "2011-03-15", f"--speed={speed}"])
    assert exc.value.code == 2
    assert f"--speed {speed!r}: use max or a number from 0.01" in capsys.readouterr().err


def test_successful_replay_prints_the_demo_table_with_both_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rigd_tbot.commands.demo import render_demo_table

    home = provision_demo_home(tmp_path / "home")
    # LEDGER_EXPORT_MODE=off: the table named a statement the run never wrote (a config review)
    update_env_values(home, {"STRATEGY_OVERRIDE": "open", "LEDGER_EXPORT_MODE": "off"}, actor="test")
    assert tbot(["start", "--home", str(home.root), "--replay", "2011-03-15", "--speed", "max"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(render_demo_table(home, date(2011, 3, 15), home_label="bot home"))
    assert "Replayed 2011-03-15" in out and "net PnL" in out
    assert "window open   09:30 America/New_York = 13:30 UTC  done" in out
    assert not list(home.root.glob("output/*/exports/*.ofx"))
    assert "OFX           none written (LEDGER_EXPORT_MODE=off): tbot ofx export --home" in out
    assert list(home.root.glob("output/*/trades/*_trade_history.csv"))  # history is kept whatever the mode


def _history(home: BotHome) -> list[tuple[str, ...]]:
    """The replay's trades with the ledger's PnL (before fees) and fees (Dr 5010) per round trip."""
    files = list(home.root.glob("output/*/trades/*_trade_history.csv"))
    rows = list(csv.DictReader(files[0].read_text().splitlines())) if files else []
    return sorted(
        (r["ticker"], Decimal(r["size"]), Decimal(r["entry_price"]), Decimal(r["exit_price"]),
         r["entry_time"][:16], r["exit_time"][:16], Decimal(r["PnL"]), Decimal(r["fees"]))
        for r in rows
    )  # fmt: skip


@pytest.mark.parametrize("strategy", ["open", "mid", "close"])
@pytest.mark.parametrize("day", [date(2011, 1, 10), date(2011, 3, 15)])
def test_one_day_backtest_equals_the_live_replay(tmp_path: Path, strategy: str, day: date) -> None:
    """The backtest loads the session before --start (screener volume), so D..D books what the supervisor
    books replaying D (today's bug: every signal skipped as missing_market_data), and it charges the fees the
    sim charged the replay (the home's SIM_* keys): same PnL before fees, same fees, so the same net."""
    home = provision_demo_home(tmp_path / "home")
    update_env_values(home, {"STRATEGY_OVERRIDE": strategy}, actor="test")
    assert Supervisor(home, replay_day=day).run() == 0
    live = _history(home)
    result = run_backtest(
        load_settings(home),
        strategy,
        SAMPLE,
        day,
        day,
        tmp_path / "bt",
        broker_current_float=backtest_float(None, home),
    )
    assert not [s for s in result.skips if s.code == "missing_market_data"]
    backtest = sorted(
        (str(t["ticker"]), Decimal(str(t["size"])), Decimal(str(t["entry_price"])), Decimal(str(t["exit_price"])),
         pd.Timestamp(t["entry_time"]).strftime("%Y-%m-%dT%H:%M"), pd.Timestamp(t["exit_time"]).strftime("%Y-%m-%dT%H:%M"),
         Decimal(str(t["PnL"])), Decimal(str(t["fees"])))
        for t in result.trades.to_dict("records")
    )  # fmt: skip
    assert live and backtest == live
    assert all(fees > 0 for *_, fees in live)  # the demo home's schedule charges every order
    net = sum((Decimal(str(t["net_PnL"])) for t in result.trades.to_dict("records")), Decimal(0))
    assert net == sum((pnl - fees for *_, pnl, fees in live), Decimal(0))
    assert result.metrics.total_pnl == net  # exact: the metrics sum the trades' Decimal amounts
    # the trades CSV a person opens: positional notation only (MID's VWAP strengths are ~1e-5)
    exported = pd.read_csv(result.files["trades_csv"], dtype=str).fillna("")
    assert not has_exponent_notation(exported)


def test_backtest_without_vix_records_a_no_vix_skip_per_close_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("spy_1min.csv.gz", "derived_1min.csv.gz", "fundamentals.json"):
        shutil.copy(SAMPLE / name, data / name)  # everything but vix.csv
    out = tmp_path / "out"
    argv = ["backtest", "--strategy", "close", "--start", "2011-01-03", "--end", "2011-01-14", "--quiet"]
    assert tbot([*argv, "--data-source", str(data), "--out", str(out), "--home", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "close: 0 trades" in printed and "skipped: no_vix 10 days" in printed

    daily = json.loads((out / "daily_summary_backtest.json").read_text())
    assert [d["skipped"] for d in daily] == [{"no_vix": 1}] * 10


def test_backtest_defaults_to_the_sample_and_the_homes_float(
    home: BotHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["backtest", "--strategy", "open", "--start", "2011-01-10", "--end", "2011-01-10", "--quiet"]
    assert tbot([*argv, "--out", str(out), "--home", str(home.root)]) == 0
    printed = capsys.readouterr().out
    assert "float:   25,000.00" in printed and "open: 1 trade, win rate" in printed
    assert backtest_float(None, BotHome(tmp_path / "nowhere")) == Decimal(100000)
    assert backtest_float("5000", home) == Decimal(5000)
    with pytest.raises(Exception, match="--float 'nan'"):
        backtest_float("nan", home)


def test_check_shows_each_window_in_exchange_time_and_utc(
    home: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.runtime.preflight import preflight

    assert tbot(["check", "--home", str(home.root), "--replay", "2011-03-15"]) == 0
    out = capsys.readouterr().out
    assert "windows    replay day 2011-03-15 (START_TIME_* read in WINDOW_TIMEZONE=exchange)" in out
    assert "open  on  09:30 America/New_York = 13:30 UTC" in out
    assert "close on  14:30 America/New_York = 18:30 UTC" in out
    # the early close: CLOSE would be skipped that day, and check says so with both times
    text = preflight(home).render(replay_day=date(2011, 11, 25))
    close_line = next(line for line in text.splitlines() if line.startswith("  close"))
    assert "14:30 America/New_York = 19:30 UTC" in close_line
    assert "after the session closes 13:00 America/New_York = 18:00 UTC (early close)" in close_line
    # after a session's close the next session is the one planned (17:00 EST showed the day's passed windows)
    evening = preflight(home).render(now=datetime(2026, 11, 30, 22, 0, tzinfo=UTC))
    assert "windows    next session 2026-12-01 " in evening
    morning = preflight(home).render(now=datetime(2026, 11, 30, 13, 0, tzinfo=UTC))
    assert "windows    next session 2026-11-30 " in morning
