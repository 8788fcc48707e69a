"""Replays and backtests say what happened (issue 10 item 5): holiday/weekend replays refused naming the day,
--speed validated, the demo's result table after a replay, one-day backtest = live replay of that day,
no VIX = recorded `no_vix` skips in the printed summary, --data-source and --float defaults."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_settings
from integration_test_runner import provision_demo_home
from strategy_bars import comparable, replay_live

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest.backtest_engine import backtest_float, run_backtest
from tbot_bot.backtest.load_historical_data import load_bars, load_vix
from tbot_bot.config.settings_bot import load_settings, update_env_values
from tbot_bot.data.sample import sample_days
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix
from tbot_bot.runtime.main import Supervisor
from tbot_bot.strategy.strategy_router import strategy_module
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
    update_env_values(home, {"STRATEGY_OVERRIDE": "open"}, actor="test")
    assert tbot(["start", "--home", str(home.root), "--replay", "2011-03-15", "--speed", "max"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(render_demo_table(home, date(2011, 3, 15), home_label="bot home"))
    assert "Replayed 2011-03-15" in out and "realised PnL" in out
    assert "window open   09:30 America/New_York = 13:30 UTC  done" in out


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
    assert result.metrics.total_pnl == pytest.approx(float(net), abs=1e-6)


def test_every_sample_day_live_evaluation_equals_simulate() -> None:
    """Parity on every day of the bundled sample (43 sessions, both sides of the DST change), all strategies:
    the bar-by-bar evaluator and the vectorised simulate() give the same trades."""
    from tbot_bot.data.sample import sample_days

    symbols = ["SPY"] + [f"SYN{i}" for i in range(1, 9)]
    bars = load_bars(SAMPLE, symbols=symbols)
    vix_closes = load_vix(SAMPLE / "vix.csv")
    days = sample_days()
    assert len(days) == 43
    by_day = {d: g.reset_index(drop=True) for d, g in bars.groupby(bars["timestamp"].dt.date)}
    settings = make_settings()
    traded = 0
    for name in ("open", "mid", "close"):
        strategy = strategy_module(name)
        vix = {d: v for d in days if (v := previous_close_vix(vix_closes, d)) is not None}
        simulated = strategy.simulate(bars, strategy.params_from_settings(settings), vix=vix)
        for d in days:
            live = replay_live(strategy, settings, by_day[d], d, vix_at_start=vix.get(d))
            expected = simulated[simulated["session"] == d]
            assert comparable(live) == comparable(expected), (name, d)
            traded += len(live)
    assert traded > 200


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
    import json

    daily = json.loads((out / "daily_summary_backtest.json").read_text())
    assert [d["skipped"] for d in daily] == [{"no_vix": 1}] * 10


def test_backtest_defaults_to_the_sample_and_the_homes_float(
    home: BotHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["backtest", "--strategy", "open", "--start", "2011-01-10", "--end", "2011-01-10", "--quiet"]
    assert tbot([*argv, "--out", str(out), "--home", str(home.root)]) == 0
    printed = capsys.readouterr().out
    assert "float:   25,000.00" in printed and "open: 1 trades" in printed
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


# ---------------------------------------------------------------- backtest = replay over a span (issue 21)

SAMPLE_DAYS = tuple(sample_days())
JANUARY = tuple(d for d in SAMPLE_DAYS if d.month == 1)
Trade = tuple[str, str, Decimal, Decimal, Decimal, str, str, Decimal, Decimal]


def _replayed_by_day(home: BotHome) -> dict[date, list[Trade]]:
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


def _backtested_by_day(trades: pd.DataFrame) -> dict[date, list[Trade]]:
    out: dict[date, list[Trade]] = {}
    for t in trades.to_dict("records"):
        trade = (
            str(t["strategy_name"]), str(t["ticker"]), Decimal(str(t["size"])), Decimal(str(t["entry_price"])),
            Decimal(str(t["exit_price"])), pd.Timestamp(t["entry_time"]).strftime("%Y-%m-%dT%H:%M"),
            pd.Timestamp(t["exit_time"]).strftime("%Y-%m-%dT%H:%M"), Decimal(str(t["PnL"])), Decimal(str(t["fees"])),
        )  # fmt: skip
        out.setdefault(date.fromisoformat(str(t["session"])), []).append(trade)
    return {d: sorted(ts) for d, ts in out.items()}


def _net(trades: list[Trade]) -> Decimal:
    return sum((t[7] - t[8] for t in trades), Decimal(0))


Replayed = tuple[BotHome, dict[date, list[Trade]]]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Replayed]:
    """A month's sample sessions replayed in order on one demo home, every window (STRATEGY_SEQUENCE); each
    month is replayed once per module, when a test first asks for it."""
    done: dict[int, Replayed] = {}

    def month(m: int) -> Replayed:
        if m not in done:
            home = provision_demo_home(tmp_path_factory.mktemp(f"month{m}") / "home")
            for day in (d for d in SAMPLE_DAYS if d.month == m):
                assert Supervisor(home, replay_day=day).run() == 0, day
            done[m] = (home, _replayed_by_day(home))
        return done[m]

    return month


@pytest.fixture(scope="module")
def january(replayed: Callable[[int], Replayed]) -> Replayed:
    return replayed(1)


def test_a_january_backtest_of_all_windows_equals_the_january_replays(
    january: tuple[BotHome, dict[date, list[Trade]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
    backtest = _backtested_by_day(trades)
    assert sum(len(ts) for ts in live.values()) >= 20 and len(live) >= 10
    assert {s for ts in live.values() for s, *_ in ts} == {"open", "mid", "close"}
    for day in JANUARY:
        assert backtest.get(day, []) == live.get(day, []), day
        for strategy in ("open", "mid", "close"):
            mine = [t for t in backtest.get(day, []) if t[0] == strategy]
            theirs = [t for t in live.get(day, []) if t[0] == strategy]
            assert _net(mine) == _net(theirs), (day, strategy)
    daily = {
        d["date"]: Decimal(d["net_PnL"])
        for d in json.loads((out / "daily_summary_backtest.json").read_text())
    }
    assert daily == {d.isoformat(): _net(live.get(d, [])) for d in JANUARY}
    total = sum(map(_net, live.values()), Decimal(0))
    assert f"all: {len(trades)} trades" in capsys.readouterr().out
    assert float(json.loads((out / "metrics.json").read_text())["total_pnl"]) == pytest.approx(
        float(total), abs=1e-6
    )


@pytest.mark.parametrize("day", SAMPLE_DAYS, ids=str)
def test_each_sample_day_backtested_alone_equals_its_replay(
    replayed: Callable[[int], Replayed], tmp_path: Path, day: date
) -> None:
    """One day at a time (D..D, every window), all 43 sample sessions: the same trades as that day's replay in
    its month's home."""
    home, live = replayed(day.month)
    result = run_backtest(
        load_settings(home),
        "all",
        SAMPLE,
        day,
        day,
        tmp_path / "bt",
        broker_current_float=backtest_float(None, home),
    )
    assert _backtested_by_day(result.trades).get(day, []) == live.get(day, [])


def test_a_march_backtest_of_all_windows_equals_the_march_replays(
    replayed: Callable[[int], Replayed], tmp_path: Path
) -> None:
    home, live = replayed(3)
    days = [d for d in SAMPLE_DAYS if d.month == 3]
    result = run_backtest(
        load_settings(home), "all", SAMPLE, days[0], days[-1], tmp_path / "bt",
        broker_current_float=backtest_float(None, home),
    )  # fmt: skip
    backtest = _backtested_by_day(result.trades)
    assert sum(len(ts) for ts in live.values()) >= 20
    assert all(backtest.get(d, []) == live.get(d, []) for d in days)


# the day's safety rules all at work on a short span: the fundamentals guard rejects SYN3/SYN6/SYN8 (P/E above
# 25), the sim's spread (a half-spread of 0.02% rounded to 1/10,000) rejects the cheapest symbols, a 50 cent
# net loss trips the kill switch, a losing first trade turns defense mode on (and into the next session)
RULES = {
    "ENABLE_FUNNHUB_FUNDAMENTALS_FILTER": "true",
    "MAX_PE_RATIO": "25",
    "MAX_SPREAD_PCT": "0.000405",
    "DAILY_LOSS_LIMIT": "0.00002",
    "DEFENSE_MODE_TRIGGER_WIN_RATE": "0.5",
    "MAX_OPEN_POSITIONS": "2",
}
RULE_DAYS = JANUARY[:8]


@pytest.fixture(scope="module", params=["all", "open", "mid", "close"])
def ruled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, BotHome, dict[date, list[Trade]]]:
    strategy = str(request.param)
    home = provision_demo_home(tmp_path_factory.mktemp(f"rules_{strategy}") / "home")
    update_env_values(
        home, {**RULES, "STRATEGY_OVERRIDE": "" if strategy == "all" else strategy}, actor="test"
    )
    for day in RULE_DAYS:
        assert Supervisor(home, replay_day=day).run() == 0, day
    return strategy, home, _replayed_by_day(home)


def test_the_days_rules_book_the_same_in_a_backtest_as_in_the_replays(
    ruled: tuple[str, BotHome, dict[date, list[Trade]]], tmp_path: Path
) -> None:
    strategy, home, live = ruled
    result = run_backtest(
        load_settings(home), strategy, SAMPLE, RULE_DAYS[0], RULE_DAYS[-1], tmp_path / "bt",
        broker_current_float=backtest_float(None, home),
    )  # fmt: skip
    backtest = _backtested_by_day(result.trades)
    assert live and all(backtest.get(d, []) == live.get(d, []) for d in RULE_DAYS), strategy
    codes = {s.code for s in result.skips}
    assert "screen:ENABLE_FUNNHUB_FUNDAMENTALS_FILTER" in codes and "screen:MAX_SPREAD_PCT" in codes
    if strategy == "all":
        assert "halted" in codes  # the kill switch stopped a later window's entries
        switches = list(home.root.glob("output/*/logs/disaster_mode.log"))[0].read_text().splitlines()
        assert len(switches) >= 2  # the replays switched defense mode on: the backtest sized by it too
