"""Regular-session bars as the 2-D arrays `signals.py` works on: one row per (session, symbol), bars in time
order from the session open, padded at the end. Built once per data set and reused by every trial."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from tbot_bot.market_time import session_bounds
from tbot_bot.strategy.signals import TIME_PAD

_NS_PER_MIN = 60_000_000_000


@dataclass(frozen=True, slots=True)
class SessionGrid:
    t: np.ndarray  # int64 minutes since epoch (bar start), TIME_PAD in padding
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    nbars: np.ndarray  # real bars per row
    symbol: np.ndarray  # object array of str, per row
    day: np.ndarray  # index into `days`, per row
    days: tuple[date, ...]
    session_open: np.ndarray  # per day, minutes
    session_close: np.ndarray  # per day, minutes

    @property
    def rows(self) -> int:
        return int(self.t.shape[0])

    @property
    def bars(self) -> int:
        return int(self.nbars.sum())

    def row_day(self) -> list[date]:
        return [self.days[i] for i in self.day]

    def select(self, mask: np.ndarray) -> SessionGrid:
        """Rows where mask is True (columns kept)."""
        return SessionGrid(
            self.t[mask], self.open[mask], self.high[mask], self.low[mask], self.close[mask],
            self.volume[mask], self.nbars[mask], self.symbol[mask], self.day[mask], self.days,
            self.session_open, self.session_close,
        )  # fmt: skip


_NS_PER_DAY = 86_400_000_000_000


def _held(codes: np.ndarray, size: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For small non-negative codes: which of 0..max (or size - 1) occur, and each one's rank among those that
    do (what np.unique's values and inverse give, counted instead of sorted)."""
    held = np.bincount(codes, minlength=size) > 0
    return held, np.cumsum(held) - 1


def _session_mask(ts_ns: np.ndarray, calendar_name: str) -> tuple[np.ndarray, np.ndarray, list[date]]:
    """Which bars start inside their UTC date's regular session; the day index of each; the days."""
    if not len(ts_ns):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64), []
    # day numbers span a few thousand at most: counting them finds the days and indexes each bar's without
    # sorting the bars (np.unique plus searchsorted did, a third of a large grid's build)
    number = ts_ns // _NS_PER_DAY
    first = int(number.min())
    held, rank = _held(number - first)
    uniq = np.flatnonzero(held) + first
    idx = rank[number - first]
    days = [date(1970, 1, 1) + timedelta(days=int(d)) for d in uniq]
    opens = np.full(len(uniq), np.iinfo(np.int64).max, dtype=np.int64)
    closes = np.full(len(uniq), np.iinfo(np.int64).min, dtype=np.int64)
    for i, d in enumerate(days):
        bounds = session_bounds(d, calendar_name)
        if bounds is not None:
            opens[i] = pd.Timestamp(bounds[0]).value
            closes[i] = pd.Timestamp(bounds[1]).value
    return (ts_ns >= opens[idx]) & (ts_ns < closes[idx]), idx, days


def in_regular_session(ts_ns: np.ndarray, calendar_name: str, *, unknown: bool = False) -> np.ndarray:
    """Per bar (UTC ns stamps): whether it starts inside its UTC date's regular session. A day the calendar does
    not know (before its first session, after its last, NaT) cannot be told: its bars get `unknown` (False: in no
    session), and this never fails on them (the bar checks name a bad stamp; a long history reaches past the
    calendar)."""
    from tbot_bot.market_time import calendar_range

    first, last = calendar_range(calendar_name)
    known = (ts_ns >= pd.Timestamp(first).value) & (ts_ns < pd.Timestamp(last).value + _NS_PER_DAY)
    if known.all():
        return _session_mask(ts_ns, calendar_name)[0]
    out = np.full(len(ts_ns), unknown, dtype=bool)
    out[known] = _session_mask(ts_ns[known], calendar_name)[0]
    return out


def regular_session(frame: pd.DataFrame, calendar_name: str = "XNYS") -> pd.DataFrame:
    """Keep bars starting in [session open, session close) of their UTC date's session."""
    ts_ns = frame["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return frame.loc[in_regular_session(ts_ns, calendar_name)]


@dataclass(frozen=True, slots=True)
class BarColumns:
    """The loader's frame as plain arrays, converted once and shared by the signal grid and the execution's
    MarketView (both used to convert the timestamps and the symbol strings, the costly part, on their own)."""

    ts_ns: np.ndarray  # int64 UTC nanoseconds, bar start
    code: np.ndarray  # index into `names`, per bar
    names: np.ndarray  # object array of the symbols, sorted
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> BarColumns:
        code, names = pd.factorize(frame["symbol"].to_numpy(dtype=object), sort=True)
        return cls(
            frame["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64), code.astype(np.int64),
            np.asarray(names, dtype=object), *(frame[c].to_numpy(dtype=float) for c in _PRICES),
        )  # fmt: skip

    @classmethod
    def of_runs(cls, names: list[str], sizes: list[int], columns: dict[str, np.ndarray]) -> BarColumns:
        """Columns joined from runs of one symbol's bars (the bar store's partitions: `sizes[i]` rows of
        `names[i]`, in order): no frame and no string per bar. Not in time order; the grid and the MarketView
        sort for themselves (by stamp and symbol, so their result does not depend on the order given)."""
        uniques = sorted(set(names))
        rank = {n: i for i, n in enumerate(uniques)}
        code = np.repeat(np.array([rank[n] for n in names], dtype=np.int64), sizes)
        return cls(
            columns["timestamp"], code, np.asarray(uniques, dtype=object), *(columns[c] for c in _PRICES)
        )

    def __len__(self) -> int:
        return len(self.ts_ns)

    def where(self, mask: np.ndarray) -> BarColumns:
        return BarColumns(
            self.ts_ns[mask], self.code[mask], self.names, self.open[mask], self.high[mask], self.low[mask],
            self.close[mask], self.volume[mask],
        )  # fmt: skip

    def symbols(self) -> list[str]:
        """The symbols that have bars, sorted."""
        return [str(s) for s in self.names[_held(self.code, len(self.names))[0]]]


_PRICES = ("open", "high", "low", "close", "volume")


def _runs_in_place(
    key: np.ndarray, ts: np.ndarray, *, rows_at_most: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """When the bars come as runs of one key each, in time order, no key in two runs (the bar store's partitions
    give a symbol's days so; sorted bars are so): each run's first bar, the runs in key order (the rows), and each
    run's length. None otherwise (the bars are then sorted). More runs than `rows_at_most` (the keys there can
    be: bars by time have a run per bar) is None at once."""
    if not len(key):
        return None
    run_start = np.r_[0, np.flatnonzero(key[1:] != key[:-1]) + 1]
    if len(run_start) > rows_at_most:
        return None
    run_key = key[run_start]
    order = np.argsort(run_key, kind="stable")
    if (run_key[order][1:] == run_key[order][:-1]).any():
        return None  # a key in two runs: its bars are not together
    same = key[1:] == key[:-1]
    if (ts[1:][same] < ts[:-1][same]).any():
        return None  # out of time order within a run
    return run_start, order, np.diff(np.r_[run_start, len(key)])


def by_key_then_time(key: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The permutation that orders bars by `key`, and by `ts` among equal keys (ties kept in the order given):
    np.lexsort((ts, key)). The loaders and the bar store give each symbol's bars in time order, so a stable
    sort by the key alone is that order, at a quarter of the lexsort's cost; bars out of time order within a
    key (checked on the result) get the lexsort."""
    order = np.argsort(key, kind="stable")
    k, t = key[order], ts[order]
    if np.any((k[1:] == k[:-1]) & (t[1:] < t[:-1])):
        return np.lexsort((ts, key))
    return order


def build_grid(
    frame: pd.DataFrame | BarColumns, calendar_name: str = "XNYS", symbols: Sequence[str] | None = None
) -> SessionGrid:
    """From the loader's frame (timestamp UTC bar start, symbol, open, high, low, close, volume), or the same
    as BarColumns when the caller converted it once for other uses too."""
    cols = frame if isinstance(frame, BarColumns) else BarColumns.of(frame)
    keep, day_idx, all_days = _session_mask(cols.ts_ns, calendar_name)
    if symbols is not None:
        keep &= np.isin(cols.names, list(symbols))[cols.code]
    # every column is gathered once, at the end, through `src` (the kept bars); None: every bar is kept, in order
    src = None if keep.all() else np.flatnonzero(keep)

    def kept(values: np.ndarray) -> np.ndarray:
        return values if src is None else values[src]

    # the kept symbols ranked in name order (what factorizing their strings with sort=True gives)
    codes = kept(cols.code)
    held, rank = _held(codes, len(cols.names))
    sym_names = cols.names[held]
    sym_codes = rank[codes]
    del codes
    day_idx = kept(day_idx)
    # a row per (day, symbol): rows in that order, bars by time within a row
    key = day_idx.astype(np.int64) * (len(sym_names) + 1) + sym_codes
    ts_ns = kept(cols.ts_ns)
    n = len(ts_ns)
    # the bar store's order (a symbol's months in time order) has each row as one run of bars already: only the
    # runs are sorted, and each column goes straight to its cells (no sorted copy of any column); another order
    # (a file's, by time) is sorted by row first, which makes it so
    runs = _runs_in_place(key, ts_ns, rows_at_most=(int(day_idx.max()) + 1) * len(sym_names) if n else 0)
    if runs is None and n:
        order = by_key_then_time(key, ts_ns)
        ts_ns = ts_ns[order]
        src = order if src is None else src[order]
        day_idx, sym_codes, key = day_idx[order], sym_codes[order], key[order]
        runs = _runs_in_place(key, ts_ns, rows_at_most=n)
    del key
    empty = np.zeros(0, dtype=np.int64)
    run_start, by_row, lengths = runs if runs is not None else (empty, empty, empty)
    row_of_run = np.empty(len(by_row), dtype=np.int64)
    row_of_run[by_row] = np.arange(len(by_row))
    row = np.repeat(row_of_run, lengths)
    col = np.arange(n) - np.repeat(run_start, lengths)
    first_bar, nbars = run_start[by_row], lengths[by_row]  # each row's first bar and its bars, rows in order
    rows = len(first_bar)
    width = int(col.max()) + 1 if n else 1
    # one flat index for the six assignments (a 2-D fancy assignment recomputes it each time)
    flat = row * width + col
    del row, col
    t = np.full((rows, width), TIME_PAD, dtype=np.int64)
    t.reshape(-1)[flat] = ts_ns // _NS_PER_MIN
    arrays = []
    for name in _PRICES:
        a = np.full((rows, width), np.nan)
        a.reshape(-1)[flat] = kept(getattr(cols, name))
        arrays.append(a)
    used = np.unique(day_idx[first_bar]) if n else np.zeros(0, dtype=np.int64)
    days = tuple(all_days[i] for i in used)
    remap = {int(d): i for i, d in enumerate(used)}
    day = np.array([remap[int(d)] for d in day_idx[first_bar]], dtype=np.int64)
    sym = np.asarray(sym_names, dtype=object)[sym_codes[first_bar]] if n else np.zeros(0, dtype=object)
    bounds = [session_bounds(d, calendar_name) for d in days]
    s_open = np.array([int(b[0].timestamp()) // 60 for b in bounds if b], dtype=np.int64)
    s_close = np.array([int(b[1].timestamp()) // 60 for b in bounds if b], dtype=np.int64)
    o, h, lo, c, v = arrays
    return SessionGrid(t, o, h, lo, c, v, nbars, sym, day, days, s_open, s_close)
