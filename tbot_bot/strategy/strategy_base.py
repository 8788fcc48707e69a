"""What OPEN, MID and CLOSE share: decision records, the vectorised `simulate()`, the bar-by-bar
`LiveEvaluator` and `self_check()`. Both paths call the same kernels in `signals.py` (DESIGN §7)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from tbot_bot.checks import REFUSED
from tbot_bot.domain.vocab import Direction
from tbot_bot.market_time import (
    Window,
    WindowSpec,
    compute_window,
    session_date_at,
    to_minutes,
)
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.decisions import (
    EXIT_NAMES,
    KIND_NAMES,
    WindowArrays,
)
from tbot_bot.strategy.grid import SessionGrid, build_grid
from tbot_bot.strategy.live_evaluator import LiveEvaluator, evaluator_for

if TYPE_CHECKING:
    from tbot_bot.broker.broker_api import Broker
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.domain.clock import Clock

log = logging.getLogger("tbot.strategy")


@dataclass(frozen=True, slots=True)
class StrategyCheck:
    """Result of self_check(); on failure it carries strategy, reason, context and the UTC time."""

    ok: bool
    strategy: str
    reason: str
    checked_at: datetime
    context: dict[str, Any] = field(default_factory=dict)
    cause: str = REFUSED  # of a failure (checks.py): the settings, the float or the broker's answer


TRADE_COLUMNS = [
    "strategy", "symbol", "session", "direction", "kind", "strength", "signal_time", "signal_close",
    "entry_time", "entry_price", "exit_time", "exit_price", "exit_reason", "trigger_time",
]  # fmt: skip


class IndicatorSource(Protocol):
    """Session indicators computed from the session open for the rows (and columns) of the grid at hand."""

    def vwap(self) -> np.ndarray: ...
    def adx(self, period: int) -> np.ndarray: ...
    def bollinger(self, period: int, num_std: float) -> tuple[np.ndarray, np.ndarray]: ...
    def first_open(self) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SignalArrays:
    """One element per (session, symbol) row that trades, in grid row order; times in epoch minutes."""

    row: np.ndarray  # grid row
    direction: np.ndarray  # +1 bullish, -1 bearish
    kind: np.ndarray  # signals.Kind
    strength: np.ndarray
    signal_t: np.ndarray
    signal_close: np.ndarray
    entry_t: np.ndarray
    entry_price: np.ndarray
    exit_t: np.ndarray
    exit_price: np.ndarray
    exit_reason: np.ndarray  # signals.Exit
    trigger_t: np.ndarray  # -1 for deadline exits


def _ts(minutes: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(minutes, dtype=np.int64) * 60, unit="s", utc=True)


class Strategy:
    """Base of the three strategies. Subclasses give `name`, `params_from_settings`, `entries`, `triggers`."""

    name: ClassVar[str] = ""
    # False: the live evaluator may drop the bars between the session's first bar and the window start
    live_needs_session_history: ClassVar[bool] = True

    # ---- per-strategy hooks
    def params_from_settings(self, settings: BotSettings) -> Any:
        raise NotImplementedError

    def entries(
        self, grid: SessionGrid, win: WindowArrays, params: Any, source: IndicatorSource | None = None
    ) -> sig.Entries:
        raise NotImplementedError

    def triggers(
        self,
        grid: SessionGrid,
        entry_col: np.ndarray,
        entry_price: np.ndarray,
        direction: np.ndarray,
        params: Any,
        source: IndicatorSource | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def gate(
        self, days: Sequence[date], params: Any, vix: Mapping[date, float] | None
    ) -> tuple[np.ndarray, list[str]]:
        """Per-day permission to enter and the reason when not (CLOSE overrides with the VIX gate)."""
        return np.ones(len(days), dtype=bool), ["" for _ in days]

    # ---- backtest path
    def signal_arrays(
        self,
        grid: SessionGrid,
        params: Any,
        *,
        vix: Mapping[date, float] | None = None,
        win: WindowArrays | None = None,
        source: IndicatorSource | None = None,
    ) -> SignalArrays:
        """Every row's trade as arrays (the optimizer's per-trial path; `simulate` frames the same arrays).
        `win` and `source` let the optimizer pass windows and session indicators it computed once for a grid
        whose columns are a slice of each session."""
        win = win if win is not None else window_arrays(grid, params.spec, params.calendar)
        allowed_day, _ = self.gate(grid.days, params, vix)
        ent = self.entries(grid, win, params, source)
        rows = np.arange(grid.rows)
        fill = np.where(ent.index >= 0, ent.index + 1, sig.NO_BAR)
        ok = (ent.index >= 0) & win.fits & allowed_day[grid.day] & (fill < grid.nbars)
        fill = np.where(ok, fill, sig.NO_BAR)
        safe_fill = np.maximum(fill, 0)
        entry_t = grid.t[rows, safe_fill]
        entry_px = grid.open[rows, safe_fill]
        trig_col, trig_reason = self.triggers(grid, fill, entry_px, ent.direction, params, source)
        deadline, dl_reason = sig.deadline_minute(entry_t, params.spec.monitoring, win.last_bar)
        exit_col, reason = sig.resolve_exits(
            grid.t, grid.nbars, fill, trig_col, trig_reason, deadline, dl_reason
        )
        sel = np.flatnonzero(ok)
        ex = exit_col[sel]
        ex_t = grid.t[sel, ex]
        is_deadline = np.isin(reason[sel], [int(sig.Exit.TIMEOUT), int(sig.Exit.SESSION_CLOSE)])
        # no bar at or after the deadline in the data: leave at the last bar's close
        late = is_deadline & (ex_t < deadline[sel])
        sig_col = ent.index[sel]
        return SignalArrays(
            row=sel,
            direction=ent.direction[sel],
            kind=ent.kind[sel],
            strength=ent.strength[sel],
            signal_t=grid.t[sel, sig_col],
            signal_close=grid.close[sel, sig_col],
            entry_t=entry_t[sel],
            entry_price=entry_px[sel],
            exit_t=np.where(late, ex_t + 1, ex_t),
            exit_price=np.where(late, grid.close[sel, ex], grid.open[sel, ex]),
            exit_reason=reason[sel],
            trigger_t=np.where(is_deadline, -1, grid.t[sel, np.maximum(trig_col[sel], 0)]),
        )

    def simulate(
        self, bars: pd.DataFrame | SessionGrid, params: Any, *, vix: Mapping[date, float] | None = None
    ) -> pd.DataFrame:
        """Every symbol's trade per session (signal-ticker prices, no sizing), vectorised over all rows."""
        grid = bars if isinstance(bars, SessionGrid) else build_grid(bars, params.calendar)
        if grid.rows == 0:
            return pd.DataFrame(columns=TRADE_COLUMNS)
        a = self.signal_arrays(grid, params, vix=vix)
        out = pd.DataFrame(
            {
                "strategy": self.name,
                "symbol": grid.symbol[a.row].astype(str),
                "session": [grid.days[d] for d in grid.day[a.row]],
                "direction": np.where(a.direction > 0, Direction.BULLISH.value, Direction.BEARISH.value),
                "kind": [KIND_NAMES[int(k)] for k in a.kind],
                "strength": a.strength,
                "signal_time": _ts(a.signal_t),
                "signal_close": a.signal_close,
                "entry_time": _ts(a.entry_t),
                "entry_price": a.entry_price,
                "exit_time": _ts(a.exit_t),
                "exit_price": a.exit_price,
                "exit_reason": [EXIT_NAMES[int(r)].value for r in a.exit_reason],
                "trigger_time": pd.Series(_ts(np.maximum(a.trigger_t, 0))).where(a.trigger_t >= 0, pd.NaT),
            }
        )
        return out.sort_values(
            ["signal_time", "strength", "symbol"], ascending=[True, False, True]
        ).reset_index(drop=True)

    # ---- live path
    def live(self, window: Window, params: Any, *, vix_at_start: float | None = None) -> LiveEvaluator:
        return LiveEvaluator(self, window, params, vix_at_start=vix_at_start)

    def live_for(
        self, day: date, settings: BotSettings, *, vix_at_start: float | None = None
    ) -> LiveEvaluator:
        """The evaluator for today's window from .env_bot (the supervisor's entry point)."""
        return evaluator_for(self, day, settings, vix_at_start=vix_at_start)

    # ---- readiness
    def self_check(
        self,
        settings: BotSettings | None,
        broker: Broker | None,
        broker_current_float: Decimal | None,
        clock: Clock,
    ) -> StrategyCheck:
        """Config present, today's window fits the exchange session, broker reachable, float present."""
        now = clock.now().astimezone(UTC)

        def fail(reason: str, cause: str = REFUSED, **context: Any) -> StrategyCheck:
            result = StrategyCheck(False, self.name, reason, now, context, cause)
            # the caller decides what a failure means (a window that does not fit today is only skipped)
            log.info(
                "self_check failed: strategy=%s reason=%s context=%s at=%s",
                self.name,
                reason,
                context,
                now.isoformat(),
            )
            return result

        if settings is None:
            return fail("no .env_bot settings loaded")
        try:
            params = self.params_from_settings(settings)
        except (AttributeError, KeyError) as exc:
            return fail(f"strategy settings missing: {exc}")
        day = session_date_at(now, params.calendar)
        window = compute_window(params.spec, day, params.calendar, settings.TRADING_DAYS)
        if not window.fits:
            return fail(
                f"window does not fit today's session: {window.reason}",
                window_start=window.start.isoformat(),
                session_date=day.isoformat(),
            )
        if broker is None:
            return fail("no broker")
        check = broker.self_check()
        if not check.ok:
            return fail(f"broker not reachable: {check.reason}", check.cause, **check.context)
        if broker_current_float is None or broker_current_float <= 0:
            return fail("broker_current_float missing or not positive", float=str(broker_current_float))
        return StrategyCheck(True, self.name, "ok", now, {"window": window.reason})


def window_arrays(grid: SessionGrid, spec: WindowSpec, calendar: str) -> WindowArrays:
    wins = [compute_window(spec, d, calendar) for d in grid.days]
    per_day = np.array(
        [
            [
                to_minutes(w.start),
                to_minutes(w.breakout_start),
                to_minutes(w.breakout_end),
                to_minutes(w.last_bar_start),
            ]
            for w in wins
        ],
        dtype=np.int64,
    ).reshape(-1, 4)
    fits = np.array([w.fits for w in wins], dtype=bool)
    r = per_day[grid.day]
    return WindowArrays(r[:, 0], r[:, 1], r[:, 2], r[:, 3], fits[grid.day])
