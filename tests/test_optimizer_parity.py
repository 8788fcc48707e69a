"""Parity: the optimizer's per-trial path (trimmed window columns, cached session indicators, the fast fill
and sizing path, numpy metrics) books exactly what simulate() + execution.execute_day book, fees included (the
SIM_FEE_PROFILE schedule, one formula in trading/fees.py), and measures what performance_metrics measures on NET PnL."""

from __future__ import annotations

import functools
import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_settings

from tbot_bot.backtest import performance_metrics
from tbot_bot.backtest.execution import execute_day
from tbot_bot.backtest.slippage import SlippageModel
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.support.path_resolver import package_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_backtest import synthetic  # noqa: E402

SAMPLE = package_file("data", "sample")


def reference(prep: PreparedData, params: dict[str, object]) -> list[dict[str, object]]:
    """What `tbot backtest` books: simulate() over the whole grid, then execute_day session by session."""
    settings = prep.settings_for(params)
    p = prep.module.params_from_settings(settings)
    signals = prep.module.simulate(prep.grid, p, vix=prep.vix)
    slippage = SlippageModel.from_settings(settings, seed=prep.seed)
    by_day = dict(tuple(signals.groupby("session"))) if len(signals) else {}
    fills: list[dict[str, object]] = []
    for day in prep.days:
        if day in by_day:
            f, _ = execute_day(
                by_day[day], prep.strategy, settings, prep.capabilities, prep.market,
                prep.fundamentals, prep.float_, slippage.for_session(day, prep.strategy),
            )  # fmt: skip
            fills += f
    return fills


def test_randomized_slippage_gives_a_session_the_same_fills_in_any_span() -> None:
    """A fold's out-of-sample block inside a trial (in-sample and out-of-sample in one pass) equals the block
    run alone, as `tbot backtest` of the block runs it: the draws are per session, never carried across."""
    prep = prepared("close", 2)  # randomized slippage, seed 7
    assert prep.settings.SLIPPAGE_SIMULATION_TYPE == "randomized"
    first, second = prep.days[:15], prep.days[15:]
    _, together = prep.evaluate_spans({}, first, second)
    alone = prep.evaluate({}, second)
    assert together.trades > 0 and together.to_dict() == alone.to_dict()
    fills = [r for r in prep.trades({}).records if date.fromisoformat(str(r["session"])) in second]
    assert fills == prep.trades({}, second).records


CASES = [
    ("open", {}),
    ("open", {"STRAT_OPEN_BUFFER": 0.0005, "OPEN_TRAILING_STOP_PCT": 0.003, "OPEN_MONITORING_TIME": 90}),
    ("mid", {}),
    ("mid", {"STRAT_MID_VWAP_THRESHOLD": 0.0005, "MID_STOP_LOSS_PCT": 0.002, "ADX_THRESHOLD": 40.0}),
    ("close", {}),
    ("close", {"STRAT_CLOSE_SPIKE_PCT": 0.001, "CLOSE_STOP_LOSS_PCT": 0.003, "CLOSE_MONITORING_TIME": 10}),
]
VARIANTS = [
    {},
    # one slot, whole shares, ShortSell, rule-based slippage: the early stop and the other sizing branches;
    # a percent-of-notional and per-order commission (the fee formula's other terms)
    {"MAX_TRADES": 1, "WEIGHTS": "1", "FRACTIONAL": "false", "SHORT_TYPE_OPEN": "ShortSell",
     "SHORT_TYPE_MID": "ShortSell", "SHORT_TYPE_CLOSE": "ShortSell", "SLIPPAGE_SIMULATION_TYPE": "rule_based",
     "SIM_COMMISSION_PCT": "0.0005", "SIM_COMMISSION_PER_ORDER": "0.35"},
    # randomized slippage (seeded) draws per fill in booking order; one open position at a time
    {"SLIPPAGE_SIMULATION_TYPE": "randomized", "MAX_OPEN_POSITIONS": 1, "SHORT_TYPE_OPEN": "disabled"},
    # a published broker schedule with every equity term: minimum, 1% cap, clearing, pass-through
    {"SIM_FEE_PROFILE": "ibkr_tiered", "FRACTIONAL": "false"},
]  # fmt: skip
# least fees of a round trip: the custom (IBKR-style) schedule's 1.00 minimum per order, tiered's 0.35
LEAST_ROUND_TRIP = {"custom": Decimal("2.00"), "ibkr_tiered": Decimal("0.70")}


@functools.cache
def prepared(strategy: str, variant: int) -> PreparedData:
    # SIM_FEE_PROFILE=custom unless the variant names a profile: the template's SIM_* keys, an IBKR-style schedule
    settings = make_settings(**{"SIM_FEE_PROFILE": "custom", **VARIANTS[variant]})
    return PreparedData(settings, strategy, SAMPLE, date(2011, 1, 3), date(2011, 2, 15), seed=7)


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
@pytest.mark.parametrize(("strategy", "params"), CASES)
def test_fast_path_books_what_execute_day_books(strategy: str, params: dict, variant: int) -> None:
    prep = prepared(strategy, variant)
    expected = reference(prep, params)
    got = prep.trades(params)
    assert got.records == expected
    assert len(expected) > 0
    # every trade pays the schedule's fees (at least its minimum per order, twice), deducted from its PnL
    least = LEAST_ROUND_TRIP[prep.settings.SIM_FEE_PROFILE]
    for r in expected:
        fees = Decimal(str(r["fees"]))
        assert fees >= least and Decimal(str(r["net_PnL"])) == Decimal(str(r["PnL"])) - fees
    # the metrics of the booked trades equal performance_metrics on the same trades' NET PnL
    assert list(got.pnl) == [float(r["net_PnL"]) for r in expected]
    frame = pd.DataFrame(
        {
            "entry_time": pd.to_datetime([r["entry_time"] for r in expected], utc=True),
            "exit_time": pd.to_datetime([r["exit_time"] for r in expected], utc=True),
            "pnl": [float(r["net_PnL"]) for r in expected],
            "session": [date.fromisoformat(str(r["session"])) for r in expected],
        }
    )
    ref = performance_metrics.compute(frame, float(prep.float_), prep.days)
    m = prep.evaluate(params)
    assert (m.trades, m.wins) == (ref.trades, ref.wins)
    # the optimizer's float sums against the backtest's exact (Decimal) ones
    assert m.total_pnl == pytest.approx(float(ref.total_pnl), abs=1e-9)
    assert m.max_drawdown == pytest.approx(float(ref.max_drawdown), abs=1e-9)
    assert m.sharpe == pytest.approx(ref.sharpe, rel=1e-12)
    assert m.avg_duration_minutes == pytest.approx(ref.avg_trade_duration_minutes)
    # the calmar the optimizer reports and ranks by is the backtest's Calmar ratio (compounded annual return
    # over max drawdown), not a floored variant that ranked like PnL
    assert ref.calmar is not None and m.calmar == pytest.approx(ref.calmar, rel=1e-9)
    assert m.objective("calmar") == pytest.approx(ref.calmar, rel=1e-9)


@pytest.mark.parametrize("strategy", ["open", "mid", "close"])
def test_fast_path_on_a_crowded_synthetic_universe(strategy: str, tmp_path: Path) -> None:
    """40 symbols: many signals on the same bar, MAX_TRADES and the session cap used up early."""
    synthetic(40, 6, seed=3).to_csv(tmp_path / "bars.csv", index=False)
    # the live screener (and so the backtest) rejects an equity without fundamentals: give each a passing set
    metrics = {
        "marketCapitalization": 2600.0,
        "peNormalizedAnnual": 14.2,
        "totalDebt/totalEquityAnnual": 0.45,
    }
    (tmp_path / "fundamentals.json").write_text(json.dumps({f"S{i:03d}": metrics for i in range(40)}))
    (tmp_path / "vix.csv").write_text(
        "date,close\n" + "".join(f"2011-01-{d:02d},25\n" for d in range(1, 15)), encoding="utf-8"
    )
    settings = make_settings(TOTAL_ALLOCATION="0.01", MAX_RISK_PER_TRADE="0.004", MIN_VOLUME_THRESHOLD=1000)
    params = {"STRAT_OPEN_BUFFER": 0.0005, "STRAT_MID_VWAP_THRESHOLD": 0.0005, "STRAT_CLOSE_SPIKE_PCT": 0.001}
    prep = PreparedData(settings, strategy, tmp_path, date(2011, 1, 4), date(2011, 1, 11), seed=1)
    expected = reference(prep, params)
    assert prep.trades(params).records == expected
    assert len(expected) >= 5
    assert len({r["session"] for r in expected}) >= 4
    assert np.isfinite([float(r["PnL"]) for r in expected]).all()
    assert Decimal(str(expected[0]["PnL"])) == Decimal(str(expected[0]["PnL"])).quantize(Decimal("0.0001"))


def test_one_pass_over_two_spans_equals_two_passes() -> None:
    prep = prepared("open", 0)
    first, second = prep.days[:10], prep.days[10:]
    params = {"STRAT_OPEN_BUFFER": 0.001}
    both = prep.evaluate_spans(params, first, second)
    for span, m in zip((first, second), both, strict=True):
        alone = prep.evaluate(params, span)
        assert (m.trades, m.total_pnl, m.sharpe, m.max_drawdown) == (
            alone.trades, alone.total_pnl, alone.sharpe, alone.max_drawdown,
        )  # fmt: skip
    assert both[0].trades > 0 and both[1].trades > 0
