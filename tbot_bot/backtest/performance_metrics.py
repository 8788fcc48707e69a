"""Backtest statistics (spec "Performance Metrics"): win rate, max drawdown, average trade duration, average
PnL per trade and Sharpe ratio, plus the equity and drawdown curves the plots draw.

Sharpe: daily returns r_d = session PnL / equity at the session's start, over EVERY session of the backtest
range present in the data (a session without trades contributes 0), risk-free rate 0; Sharpe =
mean(r) / std(r, ddof=1) * sqrt(252). None with fewer than two sessions or zero variance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True, slots=True)
class Metrics:
    trades: int
    wins: int
    losses: int
    win_rate: float | None  # wins / trades; a zero-PnL trade is not a win
    total_pnl: float
    avg_pnl_per_trade: float | None
    avg_trade_duration_minutes: float | None
    max_drawdown: float  # largest peak-to-trough fall of equity, in currency
    max_drawdown_pct: float  # the same as a fraction of the peak
    sharpe: float | None
    sharpe_annualisation: str
    initial_equity: float
    final_equity: float
    sessions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def equity_curve(trades: pd.DataFrame, initial_equity: float) -> pd.DataFrame:
    """Equity after each exit (time-ordered), starting with the initial equity; columns time, equity, drawdown."""
    if trades.empty:
        return pd.DataFrame(
            {"time": pd.Series([], dtype="datetime64[ns, UTC]"), "equity": [], "drawdown": []}
        )
    t = trades.sort_values("exit_time")
    equity = initial_equity + t["pnl"].astype(float).cumsum().to_numpy()
    eq = np.r_[initial_equity, equity]
    peak = np.maximum.accumulate(eq)
    times = pd.concat([pd.Series([t["entry_time"].min()]), t["exit_time"]], ignore_index=True)
    return pd.DataFrame({"time": times, "equity": eq, "drawdown": eq - peak})


def compute(trades: pd.DataFrame, initial_equity: float, sessions: Sequence[date]) -> Metrics:
    """`trades` needs columns entry_time, exit_time, pnl (float), session (date)."""
    n = len(trades)
    pnl = trades["pnl"].astype(float).to_numpy() if n else np.zeros(0)
    wins = int((pnl > 0).sum())
    curve = equity_curve(trades, initial_equity)
    eq = curve["equity"].to_numpy() if n else np.array([initial_equity])
    peak = np.maximum.accumulate(eq)
    dd = peak - eq
    dd_pct = np.where(peak > 0, dd / peak, 0.0)
    durations = (
        (trades["exit_time"] - trades["entry_time"]).dt.total_seconds().to_numpy() / 60 if n else np.zeros(0)
    )
    daily = trades.groupby("session")["pnl"].sum().astype(float) if n else pd.Series(dtype=float)
    day_pnl = np.array([float(daily.get(d, 0.0)) for d in sorted(sessions)])
    start_equity = initial_equity + np.r_[0.0, np.cumsum(day_pnl)[:-1]] if len(day_pnl) else np.zeros(0)
    sharpe: float | None = None
    if len(day_pnl) >= 2:
        r = day_pnl / start_equity
        sd = float(np.std(r, ddof=1))
        if sd > 0 and math.isfinite(sd):
            sharpe = float(np.mean(r) / sd * math.sqrt(TRADING_DAYS_PER_YEAR))
    return Metrics(
        trades=n,
        wins=wins,
        losses=int((pnl < 0).sum()),
        win_rate=wins / n if n else None,
        total_pnl=float(pnl.sum()),
        avg_pnl_per_trade=float(pnl.mean()) if n else None,
        avg_trade_duration_minutes=float(durations.mean()) if n else None,
        max_drawdown=float(dd.max()) if len(dd) else 0.0,
        max_drawdown_pct=float(dd_pct.max()) if len(dd_pct) else 0.0,
        sharpe=sharpe,
        sharpe_annualisation="daily returns on start-of-session equity, all sessions, rf=0, x sqrt(252)",
        initial_equity=float(initial_equity),
        final_equity=float(eq[-1]),
        sessions=len(day_pnl),
    )
