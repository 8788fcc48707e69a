"""performance_metrics against hand-computed numbers."""

from __future__ import annotations

import json
import math
import statistics
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from tbot_bot.backtest import performance_metrics as pm
from tbot_bot.backtest.report import build_report

D1, D2, D3, D4 = date(2011, 1, 3), date(2011, 1, 4), date(2011, 1, 5), date(2011, 1, 6)


def trades() -> pd.DataFrame:
    entry = pd.to_datetime(
        ["2011-01-03 14:50", "2011-01-03 15:00", "2011-01-04 14:50", "2011-01-05 14:50"], utc=True
    )
    minutes = [5, 10, 20, 40]
    return pd.DataFrame(
        {
            "entry_time": entry,
            "exit_time": entry + pd.to_timedelta(minutes, unit="min"),
            "pnl": [10.0, -5.0, 20.0, 0.0],
            "session": [D1, D1, D2, D3],
        }
    )


def test_metrics_hand_computed() -> None:
    m = pm.compute(trades(), 1000.0, [D1, D2, D3, D4])
    assert (m.trades, m.wins, m.losses) == (4, 2, 1)
    assert m.win_rate == 0.5  # the zero-PnL trade is not a win
    assert m.total_pnl == 25.0 and m.avg_pnl_per_trade == 6.25
    assert m.avg_trade_duration_minutes == 18.75
    # equity 1000 -> 1010 -> 1005 -> 1025 -> 1025: worst fall 1010 -> 1005
    assert m.max_drawdown == 5.0 and m.max_drawdown_pct == pytest.approx(5 / 1010)
    assert m.final_equity == 1025.0 and m.sessions == 4
    daily = [5 / 1000, 20 / 1005, 0.0, 0.0]  # session PnL / equity at the session's start; D4 had no trades
    expected = statistics.mean(daily) / statistics.stdev(daily) * math.sqrt(252)
    assert m.sharpe == pytest.approx(expected)


def test_metrics_with_no_trades() -> None:
    empty = trades().iloc[0:0]
    m = pm.compute(empty, 1000.0, [D1, D2])
    assert m.trades == 0 and m.win_rate is None and m.sharpe is None and m.max_drawdown == 0.0
    assert m.final_equity == 1000.0


def test_equity_curve_starts_at_the_initial_equity() -> None:
    curve = pm.equity_curve(trades(), 1000.0)
    assert curve["equity"].tolist() == [1000.0, 1010.0, 1005.0, 1025.0, 1025.0]
    assert curve["drawdown"].tolist() == [0.0, 0.0, -5.0, 0.0, 0.0]


def test_money_is_the_exact_sum_of_the_trades_and_shows_as_the_tables_do() -> None:
    """Three losses of a replayed day (2011-03-08): -10.6050 exactly. A float sum prints -10.61, the trade
    history's Decimal totals -10.60 (half-to-even): the headline must say what the tables say."""
    frame = trades().iloc[:3].assign(pnl=[Decimal("-3.0003"), Decimal("-6.8149"), Decimal("-0.7898")])
    m = pm.compute(frame, Decimal("25000"), [D1, D2])
    assert m.total_pnl == Decimal("-10.6050") and m.final_equity == Decimal("24989.3950")
    assert m.max_drawdown == Decimal("10.6050")  # every trade lost: the fall is the loss
    assert m.avg_loss == Decimal("-3.5350") and m.avg_win is None and m.gross_loss == Decimal("10.6050")
    report = build_report(
        pd.DataFrame({**{c: frame[c] for c in ("entry_time", "exit_time", "session")}, "ticker": "SPY",
                      "exit_reason": "stop", "direction": "bullish", "PnL": frame["pnl"].astype(str),
                      "fees": "0", "net_PnL": frame["pnl"].astype(str)}),
        m, strategy="open", start="2011-01-03", end="2011-01-04", sessions=2,
    )  # fmt: skip
    lines = dict(report.metrics)
    assert lines["net PnL (after fees)"] == "-10.60" == next(iter(report.tables.values()))[-1].cells()[7]
    assert (
        lines["max drawdown"].startswith("10.60 ")
        and lines["starting / final equity"] == "25,000.00 / 24,989.40"
    )
    # metrics.json holds money as exact decimal strings, never a binary float's digits
    assert json.loads(json.dumps(m.to_dict(), default=str))["total_pnl"] == "-10.6050"


def test_pnl_as_the_trade_history_writes_it_numeric_strings() -> None:
    frame = trades().assign(pnl=["10.0", "-5.0", "20.0", "0.0"])
    as_text, as_float = (
        pm.compute(frame, 1000.0, [D1, D2, D3, D4]),
        pm.compute(trades(), 1000.0, [D1, D2, D3, D4]),
    )
    assert as_text == as_float and as_text.total_pnl == Decimal("25.0")
