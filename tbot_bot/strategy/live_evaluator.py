"""The bar-by-bar path: `LiveEvaluator` evaluates one strategy window on the bars closed so far, once per
minute boundary, with the same kernels as `simulate()` (see support/architecture.md (Strategy interface))."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbot_bot.domain.vocab import Direction, ExitReason
from tbot_bot.market_time import Window, to_minutes, window_for
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.decisions import (
    EXIT_NAMES,
    KIND_NAMES,
    Decisions,
    EntryDecision,
    ExitDecision,
    OpenPosition,
    WindowArrays,
)
from tbot_bot.strategy.grid import SessionGrid
from tbot_bot.strategy.running_indicators import RunningIndicators

if TYPE_CHECKING:
    from tbot_bot.broker.broker_api import Bar
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.strategy.strategy_base import Strategy


def _window_arrays_live(window: Window, rows: int) -> WindowArrays:
    def full(x: datetime) -> np.ndarray:
        return np.full(rows, to_minutes(x), dtype=np.int64)

    return WindowArrays(
        full(window.start), full(window.breakout_start), full(window.breakout_end), full(window.last_bar_start),
        np.full(rows, window.fits, dtype=bool),
    )  # fmt: skip


SymbolBars = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]  # t(min), o, h, l, c, v


def bars_from_frame(frame: pd.DataFrame) -> dict[str, SymbolBars]:
    out: dict[str, SymbolBars] = {}
    for symbol, g in frame.sort_values("timestamp").groupby("symbol", sort=True):
        t = g["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) // 60_000_000_000
        out[str(symbol)] = (
            t,
            *(g[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")),
        )  # type: ignore[assignment]
    return out


def bars_from_list(bars: Sequence[Bar]) -> SymbolBars:
    t = np.array([to_minutes(b.timestamp) for b in bars], dtype=np.int64)
    cols = [
        np.array([getattr(b, f) for b in bars], dtype=float)
        for f in ("open", "high", "low", "close", "volume")
    ]
    return (t, cols[0], cols[1], cols[2], cols[3], cols[4])


class LiveEvaluator:
    """Bar-by-bar evaluation of one strategy window. Call `evaluate(now, bars, positions)` once per minute
    boundary with, per signal ticker, the session's bars (from the session open); only bars that have
    CLOSED by `now` are used, so passing a whole day's frame cannot leak the future."""

    def __init__(
        self, strategy: Strategy, window: Window, params: Any, *, vix_at_start: float | None = None
    ) -> None:
        self.strategy = strategy
        self.window = window
        self.params = params
        self.vix_at_start = vix_at_start
        vix = {window.session_date: vix_at_start} if vix_at_start is not None else None
        allowed, why = strategy.gate([window.session_date], params, vix)
        self.blocked_reason: str | None = None if allowed[0] else why[0]
        if not window.fits:
            self.blocked_reason = f"window does not fit: {window.reason}"
        self._cache: tuple[tuple[datetime, int], SessionGrid | None] | None = None
        # MID on the feed's stacked bars: indicators extended a column a minute (strategy_mid.running_indicators)
        make = getattr(strategy, "running_indicators", None)
        self._running: RunningIndicators | None = make(params) if callable(make) else None
        if self._running is not None and window.session_open is not None:
            # room for every column from the session open to the window's last minute, reserved once
            self._running.columns = (
                int((window.monitoring_end - window.session_open).total_seconds() // 60) + 2
            )
        self._fired = np.zeros(0, dtype=bool)  # rows whose first entry column is already behind us
        self._stacked_key: tuple[datetime, int] | None = None
        self._stacked_symbols: tuple[str, ...] = ()
        self._first_open: np.ndarray | None = None  # per row, when the stacked grid starts at the window
        self._index_rows: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self._last_entries: tuple[int, list[EntryDecision]] = (-1, [])

    def _grid(
        self, now: datetime, bars: pd.DataFrame | Mapping[str, SymbolBars | Sequence[Bar]]
    ) -> SessionGrid | None:
        key = (now, id(bars))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]  # entries() and exits() of one evaluate() share the grid
        grid = self._build_grid(now, bars)
        if grid is not None and not self.strategy.live_needs_session_history:
            grid = self._trim(grid)
        self._cache = (key, grid)
        return grid

    def _trim(self, grid: SessionGrid) -> SessionGrid:
        """Keep each row's first (session-open) bar and the bars from the window start on: all OPEN and CLOSE look
        at (day open, analysis range, breakout, closes since entry); MID needs the whole session (VWAP, ADX)."""
        start = to_minutes(self.window.start)
        width = grid.t.shape[1]
        cols = np.arange(width)
        valid = cols[None, :] < grid.nbars[:, None]
        keep = valid & ((cols[None, :] == 0) | (grid.t >= start))
        if keep.all():
            return grid
        counts = keep.sum(axis=1)
        if (keep == keep[0]).all():  # aligned rows: one column selection for all
            idx = np.flatnonzero(keep[0])
            pick = lambda a: np.ascontiguousarray(a[:, idx])  # noqa: E731
        else:
            new_w = int(counts.max())
            order = np.argsort(~keep, axis=1, kind="stable")[:, :new_w]  # kept columns first, in time order
            filled = np.arange(new_w)[None, :] < counts[:, None]

            def pick(a: np.ndarray) -> np.ndarray:
                out = np.take_along_axis(a, order, axis=1)
                pad = sig.TIME_PAD if a.dtype.kind in "iu" else np.nan
                return np.where(filled, out, pad).astype(a.dtype)

        return SessionGrid(
            pick(grid.t), pick(grid.open), pick(grid.high), pick(grid.low), pick(grid.close), pick(grid.volume),
            counts.astype(grid.nbars.dtype), grid.symbol, grid.day, grid.days, grid.session_open, grid.session_close,
        )  # fmt: skip

    def _build_grid(
        self, now: datetime, bars: pd.DataFrame | Mapping[str, SymbolBars | Sequence[Bar]]
    ) -> SessionGrid | None:
        stacked = getattr(bars, "stacked", None)
        if stacked is not None:
            from_stack = self._stacked_grid(stacked, to_minutes(now) - 1)
            if from_stack is not None:
                self._stacked_key = (now, id(bars))
                self._stacked_symbols = tuple(stacked.symbols)
                return from_stack
        per_symbol = bars_from_frame(bars) if isinstance(bars, pd.DataFrame) else {
            s: (b if isinstance(b, tuple) else bars_from_list(b)) for s, b in bars.items()
        }  # fmt: skip
        closed_by = to_minutes(now) - 1  # a bar starting at m has closed once now >= m + 1 minute
        lo = to_minutes(self.window.session_open) if self.window.session_open else -(2**62)
        hi = to_minutes(self.window.session_close) if self.window.session_close else 2**62
        aligned = self._aligned_grid(per_symbol, closed_by, lo, hi)
        if aligned is not None:
            return aligned
        rows = []
        for s in sorted(per_symbol):
            t, o, h, low, c, v = per_symbol[s]
            m = (t <= closed_by) & (t >= lo) & (t < hi)
            if m.any():
                rows.append((s, t[m], o[m], h[m], low[m], c[m], v[m]))
        if not rows:
            return None
        width = max(len(r[1]) for r in rows)
        n = len(rows)
        t_arr = np.full((n, width), sig.TIME_PAD, dtype=np.int64)
        arrs = [np.full((n, width), np.nan) for _ in range(5)]
        for i, r in enumerate(rows):
            k = len(r[1])
            t_arr[i, :k] = r[1]
            for a, src in zip(arrs, r[2:], strict=True):
                a[i, :k] = src
        s_open = to_minutes(self.window.session_open) if self.window.session_open else 0
        s_close = to_minutes(self.window.session_close) if self.window.session_close else 0
        o, h, low, c, v = arrs
        return SessionGrid(
            t_arr, o, h, low, c, v, np.array([len(r[1]) for r in rows]), np.array([r[0] for r in rows], dtype=object),
            np.zeros(n, dtype=np.int64), (self.window.session_date,), np.array([s_open]), np.array([s_close]),
        )  # fmt: skip

    def _stacked_grid(self, st: Any, closed_by: int) -> SessionGrid | None:
        """The supervisor's feed already holds the bars as 2-D arrays (rows = symbols, same minutes)."""
        lo = to_minutes(self.window.session_open) if self.window.session_open else -(2**62)
        hi = to_minutes(self.window.session_close) if self.window.session_close else 2**62
        m = (st.t <= closed_by) & (st.t >= lo) & (st.t < hi)
        k = int(m.sum())
        if k == 0 or not m[:k].all():
            return None
        n = len(st.symbols)
        s_open = to_minutes(self.window.session_open) if self.window.session_open else 0
        s_close = to_minutes(self.window.session_close) if self.window.session_close else 0
        cols = slice(0, k)
        self._first_open = None
        if not self.strategy.live_needs_session_history:
            # views of the bars from the window start (no copy of thousands of rows each minute); the session's
            # first open, the one thing OPEN/CLOSE read from before the window, travels beside them
            from_start = np.flatnonzero(st.t[:k] >= to_minutes(self.window.start))
            if len(from_start) and from_start[0] > 1:
                cols = slice(int(from_start[0]), k)
                self._first_open = st.open[:, 0]
        t = st.t[cols]
        return SessionGrid(
            np.broadcast_to(t, (n, len(t))), st.open[:, cols], st.high[:, cols],
            st.low[:, cols], st.close[:, cols], st.volume[:, cols], np.full(n, len(t)),
            np.array(st.symbols, dtype=object), np.zeros(n, dtype=np.int64), (self.window.session_date,),
            np.array([s_open]), np.array([s_close]),
        )  # fmt: skip

    def _aligned_grid(
        self, per_symbol: Mapping[str, SymbolBars], closed_by: int, lo: int, hi: int
    ) -> SessionGrid | None:
        """Fast path when every symbol has bars at the same minutes (the live feed's usual case): stack, no loop."""
        syms = sorted(per_symbol)
        if not syms or len({len(per_symbol[s][0]) for s in syms}) != 1:
            return None
        t_all = np.stack([per_symbol[s][0] for s in syms])
        if not (t_all == t_all[0]).all():
            return None
        m = (t_all[0] <= closed_by) & (t_all[0] >= lo) & (t_all[0] < hi)
        k = int(m.sum())
        if k == 0 or not m[:k].all():
            return None  # nothing closed yet, or a gap pattern the general path handles
        cols = [np.stack([per_symbol[s][j][:k] for s in syms]).astype(float) for j in range(1, 6)]
        n = len(syms)
        s_open = to_minutes(self.window.session_open) if self.window.session_open else 0
        s_close = to_minutes(self.window.session_close) if self.window.session_close else 0
        o, h, low, c, v = cols
        return SessionGrid(
            np.ascontiguousarray(t_all[:, :k]), o, h, low, c, v, np.full(n, k), np.array(syms, dtype=object),
            np.zeros(n, dtype=np.int64), (self.window.session_date,), np.array([s_open]), np.array([s_close]),
        )  # fmt: skip

    def entries(self, now: datetime, bars: pd.DataFrame | Mapping[str, Any]) -> list[EntryDecision]:
        """Signals on the newest closed bar, strongest first (ties by symbol)."""
        if self.blocked_reason is not None:
            return []
        grid = self._grid(now, bars)
        if grid is None:
            return []
        if self._running is not None and self._stacked_key == (now, id(bars)):
            return self._running_entries(grid)
        source = (
            _FirstOpen(self._first_open)
            if self._first_open is not None and self._stacked_key == (now, id(bars))
            else None
        )
        ent = self.strategy.entries(grid, _window_arrays_live(self.window, grid.rows), self.params, source)
        return self._decisions(grid, np.flatnonzero((ent.index >= 0) & (ent.index == grid.nbars - 1)), ent)

    def _running_entries(self, grid: SessionGrid) -> list[EntryDecision]:
        """Entries from the columns not seen yet only: a row reports when its first entry column is the newest
        one (as the whole-grid path decides), with the indicators extended rather than recomputed."""
        assert self._running is not None
        k = grid.t.shape[1]
        j0 = self._running.update(
            self._stacked_symbols, grid.t[0], grid.high, grid.low, grid.close, grid.volume
        )
        if j0 == 0:
            self._fired = np.zeros(grid.rows, dtype=bool)
        if j0 == k:  # no new bar since the last call: the same decisions
            return self._last_entries[1] if self._last_entries[0] == k else []
        cols = slice(j0, k)
        part = SessionGrid(
            grid.t[:, cols], grid.open[:, cols], grid.high[:, cols], grid.low[:, cols], grid.close[:, cols],
            grid.volume[:, cols], np.full(grid.rows, k - j0), grid.symbol, grid.day, grid.days, grid.session_open,
            grid.session_close,
        )  # fmt: skip
        ent = self.strategy.entries(
            part, _window_arrays_live(self.window, grid.rows), self.params, self._running.source(j0, k)
        )
        newest = (ent.index == k - 1 - j0) & ~self._fired
        self._fired |= ent.index >= 0
        out = self._decisions(part, np.flatnonzero(newest), ent)
        self._last_entries = (k, out)
        return out

    def _decisions(self, grid: SessionGrid, rows: np.ndarray, ent: Any) -> list[EntryDecision]:
        out = []
        for i in rows:
            k = int(ent.index[i])
            out.append(
                EntryDecision(
                    self.strategy.name,
                    str(grid.symbol[i]),
                    Direction.BULLISH if ent.direction[i] > 0 else Direction.BEARISH,
                    float(ent.strength[i]),
                    minutes_to_datetime(int(grid.t[i, k])),
                    float(grid.close[i, k]),
                    KIND_NAMES[int(ent.kind[i])],
                )  # fmt: skip
            )
        return sorted(out, key=lambda d: (-d.strength, d.symbol))

    def _row_index(self, grid: SessionGrid, stacked: bool) -> dict[str, int]:
        """symbol -> grid row, rebuilt only when the rows change (thousands of symbols, a few positions)."""
        rows = self._stacked_symbols if stacked else tuple(str(s) for s in grid.symbol)
        if rows != self._index_rows:
            self._index_rows, self._index = rows, {s: i for i, s in enumerate(rows)}
        return self._index

    def exits(
        self, now: datetime, bars: pd.DataFrame | Mapping[str, Any], positions: Sequence[OpenPosition]
    ) -> list[ExitDecision]:
        """For each open position: a stop/VWAP trigger on any close since entry, else the deadline."""
        if not positions:
            return []
        grid = self._grid(now, bars)
        out: list[ExitDecision] = []
        index = self._row_index(grid, self._stacked_key == (now, id(bars))) if grid is not None else {}
        for p in positions:
            deadline = self.window.position_deadline(p.entry_time)
            timeout_at = p.entry_time + self.window.monitoring
            i = index.get(p.symbol)
            if grid is not None and i is not None:
                one = grid.select(np.arange(grid.rows) == i)
                em = to_minutes(p.entry_time)
                valid = np.arange(one.t.shape[1]) < one.nbars[0]
                after = np.flatnonzero(valid & (one.t[0] >= em))
                if len(after):
                    col = np.array([after[0]])
                    price = np.array([p.entry_price if p.entry_price is not None else one.open[0, after[0]]])
                    trig_col, trig_reason = self.strategy.triggers(
                        one, col, price, np.array([p.direction.sign]), self.params
                    )
                    if trig_col[0] >= 0 and minutes_to_datetime(int(one.t[0, trig_col[0]]) + 1) <= deadline:
                        k = int(trig_col[0])
                        out.append(
                            ExitDecision(
                                self.strategy.name,
                                p.symbol,
                                EXIT_NAMES[int(trig_reason[0])],
                                now,
                                minutes_to_datetime(int(one.t[0, k])),
                                float(one.close[0, k]),
                            )  # fmt: skip
                        )
                        continue
            if now >= deadline:
                why = (
                    ExitReason.TIMEOUT
                    if timeout_at <= self.window.last_bar_start
                    else ExitReason.SESSION_CLOSE
                )
                out.append(ExitDecision(self.strategy.name, p.symbol, why, now))
        return out

    def prime(self, now: datetime, bars: pd.DataFrame | Mapping[str, Any]) -> None:
        """Window setup: bring the running indicators (MID) up to the bars closed by `now`, so the first decision
        minute extends them by one column instead of catching up the whole session. Decides nothing."""
        if self._running is not None:
            self.entries(now, bars)

    def evaluate(
        self, now: datetime, bars: pd.DataFrame | Mapping[str, Any], positions: Sequence[OpenPosition] = ()
    ) -> Decisions:
        return Decisions(self.entries(now, bars), self.exits(now, bars, positions), self.blocked_reason)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _FirstOpen:
    """The IndicatorSource part OPEN/CLOSE read when their grid starts at the window: the session's first open."""

    def __init__(self, first_open: np.ndarray) -> None:
        self._first_open = first_open

    def first_open(self) -> np.ndarray:
        return self._first_open

    def vwap(self) -> np.ndarray:
        raise NotImplementedError("OPEN/CLOSE read no VWAP")

    def adx(self, period: int) -> np.ndarray:
        raise NotImplementedError("OPEN/CLOSE read no ADX")

    def bollinger(self, period: int, num_std: float) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("OPEN/CLOSE read no Bollinger bands")


def minutes_to_datetime(m: int) -> datetime:
    """A bar time (minutes since the epoch) as an aware UTC datetime, without pandas (one per decision)."""
    return _EPOCH + timedelta(minutes=int(m))


def evaluator_for(
    strategy: Strategy, day: date, settings: BotSettings, *, vix_at_start: float | None = None
) -> LiveEvaluator:
    """The evaluator for today's window from .env_bot (the supervisor's entry point)."""
    return LiveEvaluator(
        strategy,
        window_for(strategy.name, day, settings),
        strategy.params_from_settings(settings),
        vix_at_start=vix_at_start,
    )
