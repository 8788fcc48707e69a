"""Backtest statistics (spec "Performance Metrics"): win rate, max drawdown, average trade duration, average
PnL per trade and Sharpe ratio, plus what a freqtrade user reads first: profit factor, expectancy, longest
losing streak, exposure time, Sortino and Calmar; and the equity and drawdown curves the plots draw.

Every figure uses the trades' `pnl` column, which the backtest fills with PnL NET of fees; an optional `fees`
column is summed into `total_fees` (so total_pnl + total_fees is the PnL before fees).

Daily returns r_d = session PnL / equity at the session's start, over EVERY session of the backtest range
present in the data (a session without trades contributes 0), risk-free rate 0.
- Sharpe = mean(r) / std(r, ddof=1) * sqrt(252); None with fewer than two sessions or zero variance.
- Sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(252); None with fewer than two sessions or no losing day.
- Calmar = annualised return / max drawdown (fraction of the peak), annualised return =
  (final / initial equity) ^ (252 / sessions) - 1; None without a drawdown.
- Profit factor = gross profit / gross loss (None without a losing trade); expectancy = mean PnL per trade
  = win rate x average win + loss rate x average loss.
- Exposure = minutes with at least one position open (overlapping trades counted once) / market minutes of
  the sessions (390 per session unless the caller passes the calendar's figure).
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
    gross_profit: float = 0.0
    gross_loss: float = 0.0  # sum of losing trades' PnL, as a positive number
    profit_factor: float | None = None
    expectancy: float | None = None  # mean PnL per trade, currency
    avg_win: float | None = None
    avg_loss: float | None = None  # negative
    max_consecutive_wins: int = 0
    max_consecutive_losses: int = 0
    exposure_pct: float = 0.0  # fraction of market time with a position open
    sortino: float | None = None
    annual_return: float | None = None
    calmar: float | None = None
    total_fees: float = 0.0  # fees of every trade (already deducted from pnl)

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


def max_streak(pnl: np.ndarray, sign: int) -> int:
    """Longest run of consecutive trades (time order) whose PnL has this sign; a zero-PnL trade breaks it."""
    best = run = 0
    for p in pnl:
        run = run + 1 if p * sign > 0 else 0
        best = max(best, run)
    return best


def exposure_minutes(trades: pd.DataFrame) -> float:
    """Minutes with at least one trade open: the union of [entry, exit) intervals."""
    if trades.empty:
        return 0.0
    spans = sorted(zip(trades["entry_time"], trades["exit_time"], strict=True))
    total = 0.0
    cur_start, cur_end = spans[0]
    for start, end in spans[1:]:
        if start > cur_end:
            total += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    total += (cur_end - cur_start).total_seconds()
    return total / 60


def _sortino(r: np.ndarray) -> float | None:
    if len(r) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside <= 0 or not math.isfinite(downside):
        return None
    return float(np.mean(r) / downside * math.sqrt(TRADING_DAYS_PER_YEAR))


def compute(
    trades: pd.DataFrame,
    initial_equity: float,
    sessions: Sequence[date],
    market_minutes: float | None = None,
) -> Metrics:
    """`trades` needs columns entry_time, exit_time, pnl (float), session (date); `market_minutes` is the
    regular-session time of `sessions` (default 390 per session)."""
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
    r = day_pnl / start_equity if len(day_pnl) else np.zeros(0)
    if len(day_pnl) >= 2:
        sd = float(np.std(r, ddof=1))
        if sd > 0 and math.isfinite(sd):
            sharpe = float(np.mean(r) / sd * math.sqrt(TRADING_DAYS_PER_YEAR))
    ordered = trades.sort_values("exit_time")["pnl"].astype(float).to_numpy() if n else np.zeros(0)
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    max_dd_pct = float(dd_pct.max()) if len(dd_pct) else 0.0
    final = float(eq[-1])
    annual: float | None = None
    if len(day_pnl) and initial_equity > 0 and final > 0:
        annual = float((final / initial_equity) ** (TRADING_DAYS_PER_YEAR / len(day_pnl)) - 1)
    minutes = market_minutes if market_minutes is not None else 390.0 * len(day_pnl)
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
        final_equity=final,
        sessions=len(day_pnl),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        expectancy=float(pnl.mean()) if n else None,
        avg_win=float(pnl[pnl > 0].mean()) if (pnl > 0).any() else None,
        avg_loss=float(pnl[pnl < 0].mean()) if (pnl < 0).any() else None,
        max_consecutive_wins=max_streak(ordered, 1),
        max_consecutive_losses=max_streak(ordered, -1),
        exposure_pct=min(1.0, exposure_minutes(trades) / minutes) if minutes > 0 and n else 0.0,
        sortino=_sortino(r),
        annual_return=annual,
        calmar=annual / max_dd_pct if annual is not None and max_dd_pct > 0 else None,
        total_fees=float(trades["fees"].astype(float).sum()) if n and "fees" in trades.columns else 0.0,
    )
