"""Market data side of the sim exchange: an index over replayed 1-minute bars (bar START stamps, UTC),
session bounds and daily aggregates derived from the bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd

from tbot_bot.broker.broker_api import Bar

NS_PER_MINUTE = 60_000_000_000
PRICE_QUANTUM = Decimal("0.0001")
REQUIRED_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


def to_ns(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}; the sim exchange needs timezone-aware UTC")
    return int(pd.Timestamp(when).value)


def from_ns(ns: int) -> datetime:
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def price_decimal(value: float) -> Decimal:
    """A float price from the bars as Decimal with four places (the ledger's precision)."""
    return Decimal(repr(float(value))).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class _SymbolBars:
    ts: np.ndarray  # int64 ns, sorted ascending
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    day: np.ndarray  # datetime64[D] of each bar (UTC date = the US session)


class BarIndex:
    """Read-only lookups over a frame of 1-minute bars."""

    def __init__(self, bars: pd.DataFrame) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
        if missing:
            raise ValueError(f"bars frame lacks columns {missing}; needs {list(REQUIRED_COLUMNS)}")
        frame = bars.loc[:, list(REQUIRED_COLUMNS)].copy()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("ns")
        frame = frame.sort_values(["symbol", "timestamp"], kind="stable")
        self._by_symbol: dict[str, _SymbolBars] = {}
        for symbol, g in frame.groupby("symbol", sort=True):
            ts = g["timestamp"].to_numpy(dtype="datetime64[ns]")
            self._by_symbol[str(symbol)] = _SymbolBars(
                ts=ts.astype(np.int64),
                open=g["open"].to_numpy(dtype=float),
                high=g["high"].to_numpy(dtype=float),
                low=g["low"].to_numpy(dtype=float),
                close=g["close"].to_numpy(dtype=float),
                volume=g["volume"].to_numpy(dtype=float),
                day=ts.astype("datetime64[D]"),
            )
        all_ts = frame["timestamp"].to_numpy(dtype="datetime64[ns]")
        days = all_ts.astype("datetime64[D]")
        sessions: list[tuple[int, int]] = []
        for d in np.unique(days):
            in_day = all_ts[days == d].astype(np.int64)
            sessions.append((int(in_day.min()), int(in_day.max()) + NS_PER_MINUTE))
        self._sessions = sessions  # (open_ns, close_ns) per UTC date, ascending

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._by_symbol)

    def has(self, symbol: str) -> bool:
        return symbol in self._by_symbol

    def first_bar_from(self, symbol: str, start_ns: int, until_ns: int) -> int | None:
        """Index of the first bar with start in [start_ns, until_ns], or None."""
        b = self._by_symbol.get(symbol)
        if b is None:
            return None
        i = int(np.searchsorted(b.ts, start_ns, side="left"))
        if i < len(b.ts) and b.ts[i] <= until_ns:
            return i
        return None

    def bar_start_ns(self, symbol: str, i: int) -> int:
        return int(self._by_symbol[symbol].ts[i])

    def bar_open(self, symbol: str, i: int) -> float:
        return float(self._by_symbol[symbol].open[i])

    def last_closed(self, symbol: str, now_ns: int) -> int | None:
        """Index of the last bar that has closed by now (start + 1 minute <= now)."""
        b = self._by_symbol.get(symbol)
        if b is None:
            return None
        i = int(np.searchsorted(b.ts, now_ns - NS_PER_MINUTE, side="right")) - 1
        return i if i >= 0 else None

    def close_at(self, symbol: str, i: int) -> float:
        return float(self._by_symbol[symbol].close[i])

    def bars(self, symbol: str, start_ns: int, end_ns: int, now_ns: int) -> list[Bar]:
        """Closed bars with start in [start, end); nothing that has not closed by now (no look-ahead)."""
        b = self._by_symbol.get(symbol)
        if b is None:
            return []
        hi = min(end_ns, now_ns - NS_PER_MINUTE + 1)  # start < end and start + 1 min <= now
        lo_i = int(np.searchsorted(b.ts, start_ns, side="left"))
        hi_i = int(np.searchsorted(b.ts, hi, side="left"))
        return [
            Bar(
                symbol,
                from_ns(int(b.ts[i])),
                float(b.open[i]),
                float(b.high[i]),
                float(b.low[i]),
                float(b.close[i]),
                float(b.volume[i]),
            )
            for i in range(lo_i, hi_i)
        ]

    def daily_view(self, symbol: str, now_ns: int) -> tuple[float | None, float | None, int | None]:
        """(today's open if the first bar has started, previous session close, previous session volume)."""
        b = self._by_symbol.get(symbol)
        if b is None:
            return None, None, None
        today = np.datetime64(from_ns(now_ns).date(), "D")
        started = b.ts <= now_ns
        today_mask = (b.day == today) & started
        today_open = float(b.open[today_mask][0]) if today_mask.any() else None
        earlier_days = b.day[b.day < today]
        if len(earlier_days) == 0:
            return today_open, None, None
        prev = earlier_days.max()
        prev_mask = b.day == prev
        return today_open, float(b.close[prev_mask][-1]), int(b.volume[prev_mask].sum())

    def session_clock(self, now_ns: int) -> tuple[bool, int | None, int | None]:
        """(is_open, next_open_ns, next_close_ns) from the sessions present in the data."""
        for open_ns, close_ns in self._sessions:
            if open_ns <= now_ns < close_ns:
                later = [o for o, _ in self._sessions if o > now_ns]
                return True, (later[0] if later else None), close_ns
            if open_ns > now_ns:
                return False, open_ns, close_ns
        return False, None, None

    def all_bar_starts(self) -> list[datetime]:
        """Every distinct bar start in the data, ascending (a replay driver steps through these)."""
        starts = sorted({int(t) for b in self._by_symbol.values() for t in b.ts})
        return [from_ns(t) for t in starts]
