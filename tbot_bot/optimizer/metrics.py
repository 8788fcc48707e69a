"""Per-trial statistics on numpy arrays, with the definitions of `backtest/performance_metrics.py` (Sharpe
on daily returns over every session of the span, drawdown on the equity after each exit), plus the
optimizer's objectives and the walk-forward statistics: efficiency, parameter stability and the deflated
Sharpe ratio (Bailey and López de Prado, 2014)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from tbot_bot.backtest.fast_execution import TradeArrays

TRADING_DAYS_PER_YEAR = 252
OBJECTIVES = ("sharpe", "pnl", "calmar")
# the calmar objective's drawdown floor, for a span without any drawdown (whose Calmar ratio is n/a, as the
# backtest reports it): ranked as if it had fallen 0.0001% of its equity. Small against any real drawdown: the
# template's orders (2% of the float a session) draw down a few hundredths of a percent, and a 0.1% floor made
# every such trial's "Calmar" its return, ranking as the pnl objective does
CALMAR_MIN_DRAWDOWN_PCT = 1e-6


def calmar_objective(annual_return: float | None, max_drawdown_pct: float) -> float:
    """The calmar objective: annual return over max drawdown (the Calmar ratio wherever it is defined); a span
    that lost its whole equity (no annual return) counts as -100%."""
    annual = annual_return if annual_return is not None else -1.0
    return annual / max(max_drawdown_pct, CALMAR_MIN_DRAWDOWN_PCT)


@dataclass(frozen=True, slots=True)
class TrialMetrics:
    trades: int
    wins: int
    win_rate: float | None
    total_pnl: float
    max_drawdown: float
    max_drawdown_pct: float
    sharpe: float | None  # annualised; None with < 2 sessions or no variance
    # the backtest's definitions (performance_metrics): compounded annual return of the span, over its max drawdown
    annual_return: float | None  # None when the span ends with no equity
    calmar: float | None  # None without a drawdown (or an annual return)
    avg_duration_minutes: float | None
    sessions: int
    daily_returns: np.ndarray  # one per session of the span (0 without trades)

    def objective(self, name: str) -> float:
        """The value a study maximises: no trades or no variance counts as no edge (0)."""
        if name == "sharpe":
            return float(self.sharpe) if self.sharpe is not None else 0.0
        if name == "pnl":
            return float(self.total_pnl)
        if name == "calmar":
            return calmar_objective(self.annual_return, self.max_drawdown_pct)
        raise ValueError(f"unknown objective {name!r}; allowed: {', '.join(OBJECTIVES)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "trades": self.trades, "wins": self.wins, "win_rate": self.win_rate,
            "total_pnl": round(self.total_pnl, 4), "max_drawdown": round(self.max_drawdown, 4),
            "max_drawdown_pct": self.max_drawdown_pct, "sharpe": self.sharpe, "annual_return": self.annual_return,
            "calmar": self.calmar,
            "avg_duration_minutes": self.avg_duration_minutes, "sessions": self.sessions,
        }  # fmt: skip


def trial_metrics(tr: TradeArrays, initial_equity: float, day_indices: Sequence[int]) -> TrialMetrics:
    """Metrics of the trades over the sessions `day_indices` (grid day indices, any order)."""
    days = np.asarray(sorted(day_indices), dtype=np.int64)
    n = len(tr.pnl)
    order = np.argsort(tr.exit_t, kind="stable")
    eq = np.r_[initial_equity, initial_equity + np.cumsum(tr.pnl[order])]
    peak = np.maximum.accumulate(eq)
    dd = peak - eq
    dd_pct = np.where(peak > 0, dd / peak, 0.0)
    pos = np.searchsorted(days, tr.day)
    day_pnl = np.zeros(len(days))
    np.add.at(day_pnl, pos, tr.pnl)
    start_equity = initial_equity + np.r_[0.0, np.cumsum(day_pnl)[:-1]]
    returns = day_pnl / start_equity if len(days) else np.zeros(0)
    sharpe = None
    if len(days) >= 2:
        sd = float(np.std(returns, ddof=1))
        if sd > 0 and math.isfinite(sd):
            sharpe = float(np.mean(returns) / sd * math.sqrt(TRADING_DAYS_PER_YEAR))
    total = float(tr.pnl.sum())
    max_dd_pct = float(dd_pct.max())
    final = initial_equity + total
    annual = (
        (final / initial_equity) ** (TRADING_DAYS_PER_YEAR / len(days)) - 1
        if len(days) and initial_equity > 0 and final > 0
        else None
    )
    wins = int((tr.pnl > 0).sum())
    return TrialMetrics(
        trades=n,
        wins=wins,
        win_rate=wins / n if n else None,
        total_pnl=total,
        max_drawdown=float(dd.max()),
        max_drawdown_pct=max_dd_pct,
        sharpe=sharpe,
        annual_return=annual,
        calmar=annual / max_dd_pct if annual is not None and max_dd_pct > 0 else None,
        avg_duration_minutes=float((tr.exit_t - tr.entry_t).mean()) if n else None,
        sessions=len(days),
        daily_returns=returns,
    )


def walk_forward_efficiency(is_values: Sequence[float], oos_values: Sequence[float]) -> float | None:
    """Mean out-of-sample over mean in-sample PnL per session; None when in-sample made no money (a ratio
    to a loss says nothing)."""
    mi, mo = float(np.mean(is_values)), float(np.mean(oos_values))
    return mo / mi if mi > 0 else None


def parameter_stability(chosen: Sequence[dict[str, Any]], grid: dict[str, list[Any]]) -> dict[str, Any]:
    """Per key: the value each fold chose, how often the most common one was chosen, and the spread of the
    choices in steps of the key's value list (0 = every fold chose the same value)."""
    out: dict[str, Any] = {}
    for key, values in grid.items():
        picks = [c[key] for c in chosen if key in c]
        if not picks:
            continue
        ranks = [values.index(p) if p in values else 0 for p in picks]
        common = max(set(picks), key=picks.count)
        out[key] = {
            "per_fold": picks,
            "mode": common,
            "mode_share": picks.count(common) / len(picks),
            "rank_range": max(ranks) - min(ranks),
            "stable": max(ranks) - min(ranks) <= 1,
        }
    return out


def deflated_sharpe(returns: np.ndarray, trial_sharpes: Sequence[float]) -> dict[str, float | int | None]:
    """Probability that the true (per-period) Sharpe of `returns` exceeds the best Sharpe expected from
    `len(trial_sharpes)` unskilled trials (the Sharpes of every trial tried, per period)."""
    r = np.asarray(returns, dtype=float)
    t = len(r)
    n = len(trial_sharpes)
    if t < 3 or n < 1 or float(np.std(r, ddof=1)) == 0:
        return {"dsr": None, "sharpe_per_period": None, "expected_max_sharpe": None, "trials": n}
    sr = float(np.mean(r) / np.std(r, ddof=1))
    var_sr = float(np.var(trial_sharpes, ddof=1)) if n > 1 else 0.0
    gamma = 0.5772156649015329
    if n > 1:
        sr0 = math.sqrt(var_sr) * (
            (1 - gamma) * stats.norm.ppf(1 - 1 / n) + gamma * stats.norm.ppf(1 - 1 / (n * math.e))
        )
    else:
        sr0 = 0.0
    skew = float(stats.skew(r))
    kurt = float(stats.kurtosis(r, fisher=False))
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:
        return {"dsr": None, "sharpe_per_period": sr, "expected_max_sharpe": sr0, "trials": n}
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)
    return {"dsr": float(stats.norm.cdf(z)), "sharpe_per_period": sr, "expected_max_sharpe": sr0, "trials": n}
