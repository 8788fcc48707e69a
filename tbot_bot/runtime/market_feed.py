"""Incremental minute-bar cache for the supervisor: fetch only bars not seen yet, keep them in 2-D numpy buffers.

The evaluator receives `(t_minutes, open, high, low, close, volume)` per symbol. When every symbol has bars at the
same minutes (the usual case) the mapping also carries `.stacked`, ready-made 2-D arrays, so evaluating 200 symbols
each minute copies nothing per symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from tbot_bot.broker.broker_api import Bar, Broker
from tbot_bot.market_time import to_minutes

SymbolBars = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTES = 390  # columns held per symbol: a regular session (a feed told the session's length holds that)
_GROW = 60  # columns added if bars ever run past them (a late bar after an early close, a longer session)
_CHUNK = timedelta(minutes=60)  # longest stretch of the session asked for in one call
_BARS_PER_CALL = 25_000  # a window's first fetch asks for at most about this many bars (Bar objects) at once


@dataclass(frozen=True, slots=True)
class StackedBars:
    """Rows in `symbols` order; columns are the same minutes for every row."""

    symbols: tuple[str, ...]
    t: np.ndarray  # (n,) int64 minutes
    open: np.ndarray  # (rows, n)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class FeedBars(dict[str, SymbolBars]):
    """A symbol -> bars mapping that may also carry a StackedBars view. With the stacked view present the
    per-symbol entries are built only if someone reads them (thousands of symbols cost milliseconds a minute)."""

    stacked: StackedBars | None = None
    _fill: Callable[[], dict[str, SymbolBars]] | None = None

    def _materialize(self) -> None:
        if self._fill is not None:
            fill, self._fill = self._fill, None
            dict.update(self, fill())

    def __getitem__(self, key: str) -> SymbolBars:
        self._materialize()
        return dict.__getitem__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._materialize()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._materialize()
        return dict.__len__(self)

    def __contains__(self, key: object) -> bool:
        self._materialize()
        return dict.__contains__(self, key)

    def keys(self) -> Any:
        self._materialize()
        return dict.keys(self)

    def values(self) -> Any:
        self._materialize()
        return dict.values(self)

    def items(self) -> Any:
        self._materialize()
        return dict.items(self)

    def get(self, key: str, default: Any = None) -> Any:
        self._materialize()
        return dict.get(self, key, default)


class MarketFeed:
    def __init__(
        self,
        broker: Broker,
        session_open: datetime,
        call: Callable[..., Any] | None = None,
        *,
        until: datetime | None = None,
    ) -> None:
        self.broker = broker
        self.session_open = session_open
        self._call = call or (lambda fn, *a, **k: fn(*a, **k))
        self._row: dict[str, int] = {}
        self._len: list[int] = []
        # one column per minute the window will read (to `until`, the end of its monitoring): 5,000 symbols x
        # 390 minutes x 6 values is 94 MB, so a morning window does not reserve the whole session
        minutes = _MINUTES
        if until is not None and until > session_open:
            minutes = int((until - session_open).total_seconds() // 60) + 2
        self._t = np.zeros((0, minutes), dtype=np.int64)
        self._v = np.zeros((5, 0, minutes))  # open, high, low, close, volume
        self._fetched_until: datetime = session_open

    def refresh(self, symbols: list[str], now: datetime) -> int:
        """Fetch bars with start in [last fetch, now) for every symbol (bars that have not closed are not asked for);
        returns how many bars were new (0: the feed delivered nothing this time)."""
        added = 0
        new_syms = [s for s in symbols if s not in self._row]
        if new_syms:
            self._reserve(len(self._len) + len(new_syms))
            for s in sorted(
                new_syms
            ):  # rows in symbol order, as bars() lists them: stacked views need no copy
                self._slot(s)
            # the session so far, in calls of at most an hour and about _BARS_PER_CALL bars: a late window's
            # first fetch for thousands of symbols never holds hours of bar objects for all of them at once
            so_far = max(1, int((now - self.session_open).total_seconds() // 60))
            per_call = max(1, _BARS_PER_CALL // min(so_far, int(_CHUNK.total_seconds() // 60)))
            for lo in range(0, len(new_syms), per_call):
                group = new_syms[lo : lo + per_call]
                t0 = self.session_open
                while t0 < now:
                    t1 = min(now, t0 + _CHUNK)
                    added += self._ingest(self._call(self.broker.get_bars, group, t0, t1))
                    t0 = t1
            for s in new_syms:
                self._slot(s)
        old_syms = [s for s in symbols if s not in new_syms]
        if old_syms and now > self._fetched_until:
            # from just after the oldest "newest bar" held: a bar published late is fetched next minute, not lost
            held = [self._len[self._row[s]] for s in old_syms]
            last = [int(self._t[self._row[s], n - 1]) for s, n in zip(old_syms, held, strict=True) if n]
            start = self.session_open
            if last and all(held):
                start = max(self.session_open, _EPOCH + timedelta(minutes=min(last) + 1))
            added += self._ingest(self._call(self.broker.get_bars, old_syms, start, now))
        self._fetched_until = max(self._fetched_until, now)
        return added

    def _reserve(self, rows: int) -> None:
        """Room for exactly `rows` symbols: thousands of symbols arriving at once get one allocation, not the
        doubling (and the copy next to the old buffers) that one symbol at a time needs."""
        if rows <= self._t.shape[0]:
            return
        t = np.zeros((rows, self._t.shape[1]), dtype=np.int64)
        v = np.zeros((5, rows, self._v.shape[2]))
        t[: self._t.shape[0]] = self._t
        v[:, : self._v.shape[1]] = self._v
        self._t, self._v = t, v

    def _slot(self, symbol: str) -> int:
        row = self._row.get(symbol)
        if row is None:
            row = len(self._len)
            self._row[symbol] = row
            self._len.append(0)
            if row == self._t.shape[0]:
                # rows grow geometrically: thousands of symbols must not copy the buffers once per symbol
                extra = max(16, row)
                self._t = np.vstack([self._t, np.zeros((extra, self._t.shape[1]), dtype=np.int64)])
                self._v = np.concatenate([self._v, np.zeros((5, extra, self._v.shape[2]))], axis=1)
        return row

    def _ingest(self, bars: dict[str, list[Bar]]) -> int:
        added = 0
        for sym, rows in bars.items():
            r = self._slot(sym)
            for b in rows:
                m = to_minutes(b.timestamp)
                k = self._len[r]
                if k and m <= self._t[r, k - 1]:
                    continue  # a bar already held (overlapping fetch or a duplicated reply)
                if k == self._t.shape[1]:
                    held = self._t.shape[0]
                    self._t = np.concatenate([self._t, np.zeros((held, _GROW), dtype=np.int64)], axis=1)
                    self._v = np.concatenate([self._v, np.zeros((5, held, _GROW))], axis=2)
                self._t[r, k] = m
                self._v[:, r, k] = (b.open, b.high, b.low, b.close, b.volume)
                self._len[r] = k + 1
                added += 1
        return added

    def bars(self, symbols: list[str]) -> FeedBars:
        out = FeedBars()
        present = sorted(
            s for s in symbols if self._len and self._row.get(s) is not None and self._len[self._row[s]]
        )
        t_buf, v_buf = self._t, self._v
        held = [(s, self._row[s], self._len[self._row[s]]) for s in present]  # as of now, not of a later read

        def per_symbol() -> dict[str, SymbolBars]:
            return {
                s: (
                    t_buf[r, :k],
                    v_buf[0, r, :k],
                    v_buf[1, r, :k],
                    v_buf[2, r, :k],
                    v_buf[3, r, :k],
                    v_buf[4, r, :k],
                )
                for s, r, k in held
            }

        out._fill = per_symbol
        if present:
            rows = [self._row[s] for s in present]
            lens = {self._len[r] for r in rows}
            if len(lens) == 1:
                k = lens.pop()
                # rows held in the order asked for (the usual case): views, not a copy of every bar each minute
                pick: slice | list[int] = rows
                if rows == list(range(rows[0], rows[0] + len(rows))):
                    pick = slice(rows[0], rows[0] + len(rows))
                t = self._t[pick, :k]
                if (t == t[0]).all():
                    v = self._v[:, pick, :k]
                    out.stacked = StackedBars(tuple(present), t[0], v[0], v[1], v[2], v[3], v[4])
        return out

    def symbols(self) -> list[str]:
        """Every symbol the feed holds bars for (or has asked for)."""
        return list(self._row)

    def last_close(self, symbol: str) -> float | None:
        r = self._row.get(symbol)
        if r is None or not self._len[r]:
            return None
        return float(self._v[3, r, self._len[r] - 1])
