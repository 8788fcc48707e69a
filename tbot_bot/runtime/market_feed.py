"""Incremental minute-bar cache for the supervisor: fetch only bars not seen yet, keep numpy arrays per symbol.

The evaluator receives `(t_minutes, open, high, low, close, volume)` tuples, so a 200-symbol replay does not
rebuild Python objects for the whole session every minute.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from tbot_bot.broker.broker_api import Bar, Broker
from tbot_bot.strategy.window import to_minutes

SymbolBars = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class MarketFeed:
    def __init__(
        self, broker: Broker, session_open: datetime, call: Callable[..., Any] | None = None
    ) -> None:
        self.broker = broker
        self.session_open = session_open
        self._call = call or (lambda fn, *a, **k: fn(*a, **k))
        self._cols: dict[str, list[list[float]]] = {}
        self._t: dict[str, list[int]] = {}
        self._fetched_until: datetime = session_open

    def refresh(self, symbols: list[str], now: datetime) -> None:
        """Fetch bars with start in [last fetch, now) for every symbol (bars that have not closed are not asked for)."""
        new_syms = [s for s in symbols if s not in self._t]
        if new_syms:
            self._ingest(self._call(self.broker.get_bars, new_syms, self.session_open, now))
        old_syms = [s for s in symbols if s not in new_syms]
        if old_syms and now > self._fetched_until:
            self._ingest(self._call(self.broker.get_bars, old_syms, self._fetched_until, now))
        self._fetched_until = max(self._fetched_until, now)

    def _ingest(self, bars: dict[str, list[Bar]]) -> None:
        for sym, rows in bars.items():
            ts = self._t.setdefault(sym, [])
            cols = self._cols.setdefault(sym, [[], [], [], [], []])
            last = ts[-1] if ts else -1
            for b in rows:
                m = to_minutes(b.timestamp)
                if m <= last:
                    continue  # a bar already held (overlapping fetch or a duplicated reply)
                ts.append(m)
                for col, v in zip(cols, (b.open, b.high, b.low, b.close, b.volume), strict=True):
                    col.append(float(v))
                last = m

    def bars(self, symbols: list[str]) -> dict[str, SymbolBars]:
        out: dict[str, SymbolBars] = {}
        for s in symbols:
            if self._t.get(s):
                c = self._cols[s]
                out[s] = (np.asarray(self._t[s], dtype=np.int64), *(np.asarray(x, dtype=float) for x in c))  # type: ignore[assignment]
        return out

    def last_close(self, symbol: str) -> float | None:
        c = self._cols.get(symbol)
        return c[3][-1] if c and c[3] else None

    def last_bar_time(self) -> datetime | None:
        latest = max((t[-1] for t in self._t.values() if t), default=None)
        return (
            None
            if latest is None
            else datetime(1970, 1, 1, tzinfo=self.session_open.tzinfo) + timedelta(minutes=latest)
        )
