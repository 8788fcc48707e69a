"""The backtest end to end on the bundled sample data (CLI, outputs, slippage comparison, SHORT_TYPE_X)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_settings, template_text, with_values

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest.backtest_engine import main as engine_main
from tbot_bot.backtest.backtest_engine import run_backtest
from tbot_bot.support.path_resolver import package_file

SAMPLE = package_file("data", "sample")
OUTPUTS = [
    "trade_history_backtest.csv",
    "trade_history_backtest.json",
    "daily_summary_backtest.json",
    "metrics.json",
    "equity_drawdown.png",
    "daily_pnl.png",
    "report.html",
    "report.md",
]


@pytest.mark.parametrize("strategy", ["open", "mid", "close"])
def test_tbot_backtest_january_writes_every_output(strategy: str, tmp_path: Path) -> None:
    env = tmp_path / "env_bot"
    # SLIPPAGE_SIMULATION_TYPE=rule_based with ENABLE_SLIPPAGE_MODEL=true: the comparison file is written
    env.write_text(with_values(template_text(), SLIPPAGE_SIMULATION_TYPE="rule_based"), encoding="utf-8")
    out = tmp_path / "out"
    argv = ["backtest", "--strategy", strategy, "--start", "2011-01-03", "--end", "2011-01-31"]
    argv += ["--data-source", str(SAMPLE), "--out", str(out), "--env-file", str(env), "--home", str(tmp_path)]
    assert tbot(argv) == 0
    for name in OUTPUTS + ["backtest_slippage_comparison.json"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # strict JSON (NaN is refused, as JavaScript's JSON.parse refuses it): a field a trade lacks is null
    history = json.loads(
        (out / "trade_history_backtest.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"{c} in JSON"),
    )
    assert history and all(r["mode"] == "backtest" and r["strategy_name"] == strategy for r in history)
    assert any(r["leverage_multiplier"] is None for r in history)
    for key in ("timestamp", "ticker", "side", "size", "entry_price", "exit_price", "PnL"):
        assert key in history[0]
    daily = json.loads((out / "daily_summary_backtest.json").read_text())
    assert [d["date"] for d in daily][:2] == ["2011-01-03", "2011-01-04"] and len(daily) == 20
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trades"] == len(history)
    comparison = json.loads((out / "backtest_slippage_comparison.json").read_text())
    assert comparison["with_slippage"]["total_pnl"] < comparison["without_slippage"]["total_pnl"]
    csv = pd.read_csv(out / "trade_history_backtest.csv")
    assert len(csv) == len(history)
    assert not (tmp_path / "entities").exists()  # no ledger writes


def test_module_cli_with_spec_flags_and_no_slippage_file(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "--strategy=open",
        "--start=2011-01-03",
        "--end=2011-01-07",
        f"--data_source={SAMPLE}",
        f"--out={out}",
    ]
    assert engine_main([*argv, f"--home={tmp_path}"]) == 0
    assert (out / "metrics.json").is_file()
    assert not (out / "backtest_slippage_comparison.json").exists()  # SLIPPAGE_SIMULATION_TYPE=none


def _run(tmp_path: Path, **overrides: object):  # noqa: ANN202
    settings = make_settings(**overrides)
    return run_backtest(settings, "open", SAMPLE, date(2011, 1, 3), date(2011, 1, 31), tmp_path / "o")


def test_inverse_etf_bearish_trades_buy_the_mapped_etf(tmp_path: Path) -> None:
    result = _run(tmp_path)
    bearish = result.trades[result.trades["direction"] == "bearish"]
    assert len(bearish)
    assert set(bearish["ticker"]) <= {"SH", "SDS", "SPXU"} and set(bearish["tag"]) == {"InverseETF"}
    # position semantics: the inverse ETF is held long; the signal's view is bearish
    assert (bearish["side"] == "long").all() and (bearish["ticker"] != bearish["signal_ticker"]).all()


def test_short_type_disabled_logs_and_skips_bearish_signals(tmp_path: Path) -> None:
    result = _run(tmp_path, SHORT_TYPE_OPEN="disabled")
    assert (result.trades["direction"] == "bullish").all()
    skipped = [s for s in result.skips if s.code == "short_type_disabled"]
    assert skipped and "SHORT_TYPE_OPEN=disabled" in skipped[0].reason


def test_short_sell_trades_the_signal_ticker_short(tmp_path: Path) -> None:
    # SIM_FEE_PROFILE=custom: the template's IBKR-style SIM_* keys (1.00 minimum per order)
    result = _run(tmp_path, SHORT_TYPE_OPEN="ShortSell", SIM_FEE_PROFILE="custom")
    bearish = result.trades[result.trades["direction"] == "bearish"]
    assert len(bearish) and (bearish["ticker"] == bearish["signal_ticker"]).all()
    assert (bearish["side"] == "short").all()
    # whole shares: the sim (like Alpaca) does not allow fractional short sales
    assert all(Decimal(q) == Decimal(q).to_integral_value() for q in bearish["size"])
    raw = bearish.iloc[0]
    # the ledger's rounding: each leg to 1/10,000, then short = entry proceeds - cost to cover
    legs = [
        (Decimal(raw[k]) * Decimal(raw["size"])).quantize(Decimal("0.0001"))
        for k in ("entry_price", "exit_price")
    ]
    assert Decimal(raw["PnL"]) == legs[0] - legs[1]
    # a short sale pays the regulatory fees on its entry sale: more than two 1.00 minimum commissions
    assert Decimal(raw["fees"]) > Decimal("2.00")
    assert Decimal(raw["net_PnL"]) == Decimal(raw["PnL"]) - Decimal(raw["fees"])


def test_long_put_is_skipped_without_option_data(tmp_path: Path) -> None:
    result = _run(tmp_path, SHORT_TYPE_OPEN="LongPut")
    assert (result.trades["direction"] == "bullish").all()
    assert any(s.code == "no_option_data" for s in result.skips)


def test_first_session_has_no_previous_volume_and_is_denied(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert not (result.trades["session"] == "2011-01-03").any()
    # as the live window's opening screen: the data's first session has nothing before it (no closed bar at
    # 09:30 to quote, no previous-session volume), so no symbol is evaluated that day
    first = [s for s in result.skips if s.session == date(2011, 1, 3) and s.signal_ticker]
    assert first and {s.code for s in first} <= {"screen:snapshot", "screen:MIN_VOLUME_THRESHOLD"}


def test_sizing_follows_the_session_cap(tmp_path: Path) -> None:
    result = _run(tmp_path)
    cap = Decimal("100000") * Decimal("0.02")
    by_day = result.trades.groupby("session")["notional"].apply(lambda s: sum(Decimal(x) for x in s))
    assert all(total <= cap for total in by_day)


def test_a_backtest_says_what_it_cannot_carry_into_its_first_day(tmp_path: Path) -> None:
    """With the defense triggers on, a switch made the session before the first day carries into it live; the
    backtest says it starts with defense mode off (a replay on a home that traded that session may differ)."""
    import json

    day = date(2011, 1, 11)
    plain = run_backtest(make_settings(), "open", SAMPLE, day, day, tmp_path / "plain", plots=False)
    assert not any("defense mode starts off" in w for w in plain.report.warnings)
    on = make_settings(DEFENSE_MODE_TRIGGER_WIN_RATE="0.5")
    result = run_backtest(on, "open", SAMPLE, day, day, tmp_path / "on", plots=False)
    (note,) = [w for w in result.report.warnings if "defense mode starts off" in w]
    assert "2011-01-11" in note
    assert note in (tmp_path / "on" / "report.md").read_text()
    notes = json.loads((tmp_path / "on" / "metrics.json").read_text())["notes"]
    assert [n for n in notes if "defense" in n] == [note]


def test_a_backtest_of_few_sessions_or_without_spread_says_what_its_figures_are_worth(tmp_path: Path) -> None:
    """A research review: two sessions reported a Sharpe of 8.3 and a Calmar of 174 without a word, and fills at the
    bar's open paid no spread, as a live market order does, unsaid."""
    import json

    short = run_backtest(
        make_settings(), "all", SAMPLE, date(2011, 1, 4), date(2011, 1, 5), tmp_path / "s", plots=False
    )
    (few,) = [w for w in short.report.warnings if "annualised figures" in w]
    assert few.startswith("2 session(s):") and "20 sessions" in few
    (spread,) = [w for w in short.report.warnings if "bid-ask spread" in w]
    assert "ENABLE_SLIPPAGE_MODEL=true" in spread
    assert {few, spread} <= set(json.loads((tmp_path / "s" / "metrics.json").read_text())["notes"])
    assert few in (tmp_path / "s" / "report.md").read_text()
    slipped = make_settings(ENABLE_SLIPPAGE_MODEL="true", SLIPPAGE_SIMULATION_TYPE="rule_based")
    month = run_backtest(
        slipped, "all", SAMPLE, date(2011, 1, 3), date(2011, 2, 4), tmp_path / "m", plots=False
    )
    assert not [w for w in month.report.warnings if "annualised figures" in w or "bid-ask spread" in w]


def test_trading_days_keep_the_backtest_and_the_optimizer_off_the_other_weekdays(tmp_path: Path) -> None:
    """TRADING_DAYS: the supervisor runs no window on another weekday, so neither does a backtest nor an optimizer
    trial (they computed every session's windows without it: `TRADING_DAYS=mon` backtested the whole week)."""
    from tbot_bot.optimizer.prepared import PreparedData

    start, end = date(2011, 1, 24), date(2011, 1, 28)  # Monday to Friday
    every = run_backtest(make_settings(), "all", SAMPLE, start, end, tmp_path / "every", plots=False)
    some = run_backtest(
        make_settings(TRADING_DAYS="mon,wed"), "all", SAMPLE, start, end, tmp_path / "some", plots=False
    )
    on = {date(2011, 1, 24), date(2011, 1, 26)}
    sessions = {date.fromisoformat(str(d)) for d in every.trades["session"]}
    assert sessions - on, "the sample trades on other weekdays too: the test would prove nothing"
    kept = every.trades[[date.fromisoformat(str(d)) in on for d in every.trades["session"]]]
    assert list(some.trades["net_PnL"]) == list(kept["net_PnL"]) and len(kept)
    # an optimizer trial over the same days counts the same trades
    prep = PreparedData(make_settings(TRADING_DAYS="mon,wed"), "open", SAMPLE, start, end)
    opens = some.trades[some.trades["strategy_name"] == "open"]
    assert prep.evaluate({}).trades == len(opens)


def test_a_long_put_configuration_is_said_to_cover_the_bullish_trades_only(tmp_path: Path) -> None:
    """SHORT_TYPE_X=LongPut: recorded bars hold no option prices, so a backtest skips the bearish signals a replay
    buys puts on; it said so only as a skip count. The report says it in words."""
    day = date(2011, 1, 26)
    puts = run_backtest(
        make_settings(SHORT_TYPE_OPEN="LongPut"), "all", SAMPLE, day, day, tmp_path / "p", plots=False
    )
    [note] = [w for w in puts.report.warnings if "LongPut" in w]
    assert (
        note.startswith("SHORT_TYPE_OPEN=LongPut: the bars hold no option prices")
        and "bullish trades only" in note
        and "a put bought there takes a MAX_TRADES slot"
        in note  # the bullish trades are not the replays' either
    )
    assert "LongPut" in (tmp_path / "p" / "report.md").read_text(encoding="utf-8")
    plain = run_backtest(make_settings(), "all", SAMPLE, day, day, tmp_path / "e", plots=False)
    assert not any("LongPut" in w for w in plain.report.warnings)


def test_runs_of_one_second_get_folders_of_their_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two backtests started in the same second named one results folder: the later wrote over the earlier while
    both printed its path. A refused run leaves no empty folder behind."""
    from datetime import UTC, datetime

    from tbot_bot.backtest import backtest_engine

    monkeypatch.setattr(backtest_engine, "utc_now", lambda: datetime(2026, 12, 7, 9, 45, 57, tzinfo=UTC))
    argv = ["--strategy=open", "--start=2011-01-03", "--end=2011-01-04", f"--data_source={SAMPLE}", "--no-plots",
            f"--home={tmp_path}"]  # fmt: skip
    for float_ in ("10000", "90000"):
        assert engine_main([*argv, f"--float={float_}"]) == 0
    runs = sorted(p.name for p in (tmp_path / "backtest_results").iterdir())
    assert runs == ["open_20110103_20110104_20261207T094557Z", "open_20110103_20110104_20261207T094557Z-1"]
    floats = [
        json.loads((tmp_path / "backtest_results" / r / "metrics.json").read_text())["initial_equity"]
        for r in runs
    ]
    assert floats == ["10000", "90000"]
    assert engine_main([*argv[:-2], "--data_source=/nonexistent", f"--home={tmp_path}"]) != 0
    assert len(list((tmp_path / "backtest_results").iterdir())) == 2


def test_a_days_skipped_windows_are_counted_as_windows_on_days() -> None:
    """`--strategy all` with TRADING_DAYS=mon,wed,fri skips three windows on each Tuesday and Thursday: the summary
    said "window_not_fit 54 days" of 18 days."""
    from tbot_bot.backtest.day_skips import skip_summary
    from tbot_bot.backtest.execution import Skip

    tuesdays = [date(2011, 1, d) for d in (4, 11)]
    skips = [
        Skip(d, w, "", None, "window_not_fit", "Tue is not in TRADING_DAYS")
        for d in tuesdays
        for w in ("open", "mid", "close")
    ]
    skips += [
        Skip(tuesdays[0], "close", "", None, "no_vix", "no VIX"),
        Skip(tuesdays[0], "open", "SYN1", None, "gap_too_large", "gap"),
    ]
    assert skip_summary(skips) == "window_not_fit 6 windows on 2 days, gap_too_large 1 signal, no_vix 1 day"


def test_sessions_without_bars_are_said_in_a_backtest_and_a_replay(tmp_path: Path) -> None:
    """The sample has no February: a backtest across it reported "4 sessions" and annualised figures without a
    word, and a replay of 2011-03-01 refused every symbol ("no snapshot") silently (a calendar review)."""
    from integration_test_runner import provision_demo_home

    from tbot_bot.runtime.main import Supervisor

    result = run_backtest(make_settings(), "open", SAMPLE, date(2011, 1, 28), date(2011, 3, 2), tmp_path / "o", plots=False)  # fmt: skip
    [gap] = [n for n in result.report.warnings if "have no bars" in n]
    assert gap.startswith(
        "19 of the 23 XNYS sessions from 2011-01-28 to 2011-03-02 have no bars (2011-02-01..2011-02-28)"
    )
    whole = run_backtest(make_settings(), "open", SAMPLE, date(2011, 1, 4), date(2011, 1, 31), tmp_path / "j", plots=False)  # fmt: skip
    assert not [n for n in whole.report.warnings if "no bars" in n]
    # one day after the gap: its warm-up session is the one missing
    after = run_backtest(make_settings(), "open", SAMPLE, date(2011, 3, 1), date(2011, 3, 1), tmp_path / "m", plots=False)  # fmt: skip
    assert "the data has no bars for 2011-02-28, the session before 2011-03-01" in " ".join(
        after.report.warnings
    )
    home = provision_demo_home(tmp_path / "home")
    assert Supervisor(home, replay_day=date(2011, 3, 1)).run() == 0
    logged = "".join(p.read_text() for p in home.root.glob("output/*/logs/supervisor.log"))
    assert '"event": "previous_session_missing"' in logged and "no bars for 2011-02-28" in logged
