"""Backtest statistics (spec "Performance Metrics"): win rate, max drawdown, average trade duration, average
PnL per trade and Sharpe ratio, plus what a freqtrade user reads first: profit factor, expectancy, longest
losing streak, exposure time, Sortino and Calmar; and the equity and drawdown curves the plots draw.

Every figure uses the trades' `pnl` column, which the backtest fills with PnL NET of fees; an optional `fees`
column is summed into `total_fees` (so total_pnl + total_fees is the PnL before fees). Amounts of money (PnL,
fees, equity, drawdown, averages) are Decimal, summed from each trade's exact amount (a float sum of -10.605 can
print as -10.61 where the trade history's totals say -10.60); the averages are kept to the ledger's 1/10,000.
Fractions and ratios (win rate, drawdown %, Sharpe, ...) are floats.

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

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252
AVERAGE_QUANTUM = Decimal("0.0001")  # the ledger's precision (utils_bot.MINOR_UNITS_PER_UNIT)


@dataclass(frozen=True, slots=True)
class Metrics:
    trades: int
    wins: int
    losses: int
    win_rate: float | None  # wins / trades; a zero-PnL trade is not a win
    total_pnl: Decimal
    avg_pnl_per_trade: Decimal | None
    avg_trade_duration_minutes: float | None
    max_drawdown: Decimal  # largest peak-to-trough fall of equity, in currency
    max_drawdown_pct: float  # the same as a fraction of the peak
    sharpe: float | None
    sharpe_annualisation: str
    initial_equity: Decimal
    final_equity: Decimal
    sessions: int
    gross_profit: Decimal = Decimal(0)
    gross_loss: Decimal = Decimal(0)  # sum of losing trades' PnL, as a positive number
    profit_factor: float | None = None
    expectancy: Decimal | None = None  # mean PnL per trade, currency
    avg_win: Decimal | None = None
    avg_loss: Decimal | None = None  # negative
    max_consecutive_wins: int = 0
    max_consecutive_losses: int = 0
    exposure_pct: float = 0.0  # fraction of market time with a position open
    sortino: float | None = None
    annual_return: float | None = None
    calmar: float | None = None
    total_fees: Decimal = Decimal(0)  # fees of every trade (already deducted from pnl)

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


def _amounts(column: pd.Series) -> list[Decimal]:
    """A column of money (Decimal, numeric strings or finite floats) as exact Decimals; a float is taken as it
    prints."""
    return [x if isinstance(x, Decimal) else Decimal(str(x)) for x in column]


def _mean(amounts: list[Decimal]) -> Decimal | None:
    if not amounts:
        return None
    return (sum(amounts, Decimal(0)) / len(amounts)).quantize(AVERAGE_QUANTUM, rounding=ROUND_HALF_EVEN)


def compute(
    trades: pd.DataFrame,
    initial_equity: Decimal | float,
    sessions: Sequence[date],
    market_minutes: float | None = None,
) -> Metrics:
    """`trades` needs columns entry_time, exit_time, pnl (Decimal, a numeric string, or a finite number taken as it
    prints), session (date); `market_minutes` is the regular-session time of `sessions` (default 390 each)."""
    n = len(trades)
    start = initial_equity if isinstance(initial_equity, Decimal) else Decimal(str(initial_equity))
    ordered = trades.sort_values("exit_time", kind="stable") if n else trades
    exact = _amounts(ordered["pnl"]) if n else []  # time order: the equity path
    pnl = np.array([float(p) for p in exact])
    wins = int((pnl > 0).sum())
    equity = list(itertools.accumulate(exact, initial=start))
    peaks = list(itertools.accumulate(equity, max))
    falls = [p - e for p, e in zip(peaks, equity, strict=True)]
    dd_pct = [float(f / p) if p > 0 else 0.0 for f, p in zip(falls, peaks, strict=True)]
    durations = (
        (trades["exit_time"] - trades["entry_time"]).dt.total_seconds().to_numpy() / 60 if n else np.zeros(0)
    )
    daily: dict[date, Decimal] = {}
    for session, amount in zip(ordered["session"], exact, strict=True) if n else ():
        daily[session] = daily.get(session, Decimal(0)) + amount
    day_pnl = np.array([float(daily.get(d, 0)) for d in sorted(sessions)])
    start_equity = float(start) + np.r_[0.0, np.cumsum(day_pnl)[:-1]] if len(day_pnl) else np.zeros(0)
    sharpe: float | None = None
    r = day_pnl / start_equity if len(day_pnl) else np.zeros(0)
    if len(day_pnl) >= 2:
        sd = float(np.std(r, ddof=1))
        if sd > 0 and math.isfinite(sd):
            sharpe = float(np.mean(r) / sd * math.sqrt(TRADING_DAYS_PER_YEAR))
    won = [p for p in exact if p > 0]
    lost = [p for p in exact if p < 0]
    gross_profit = sum(won, Decimal(0))
    gross_loss = -sum(lost, Decimal(0))
    max_dd_pct = max(dd_pct)
    final = equity[-1]
    annual: float | None = None
    if len(day_pnl) and start > 0 and final > 0:
        annual = float(final / start) ** (TRADING_DAYS_PER_YEAR / len(day_pnl)) - 1
    minutes = market_minutes if market_minutes is not None else 390.0 * len(day_pnl)
    return Metrics(
        trades=n,
        wins=wins,
        losses=len(lost),
        win_rate=wins / n if n else None,
        total_pnl=sum(exact, Decimal(0)),
        avg_pnl_per_trade=_mean(exact),
        avg_trade_duration_minutes=float(durations.mean()) if n else None,
        max_drawdown=max(falls),
        max_drawdown_pct=max_dd_pct,
        sharpe=sharpe,
        sharpe_annualisation="daily returns on start-of-session equity, all sessions, rf=0, x sqrt(252)",
        initial_equity=start,
        final_equity=final,
        sessions=len(day_pnl),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=float(gross_profit / gross_loss) if gross_loss > 0 else None,
        expectancy=_mean(exact),
        avg_win=_mean(won),
        avg_loss=_mean(lost),
        max_consecutive_wins=max_streak(pnl, 1),
        max_consecutive_losses=max_streak(pnl, -1),
        exposure_pct=min(1.0, exposure_minutes(trades) / minutes) if minutes > 0 and n else 0.0,
        sortino=_sortino(r),
        annual_return=annual,
        calmar=annual / max_dd_pct if annual is not None and max_dd_pct > 0 else None,
        total_fees=sum(_amounts(trades["fees"]), Decimal(0)) if "fees" in trades.columns else Decimal(0),
    )
