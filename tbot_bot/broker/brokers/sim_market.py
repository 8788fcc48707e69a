"""Market data side of the sim exchange: an index over replayed 1-minute bars (bar START stamps, UTC),
session bounds and daily aggregates derived from the bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


# the sim exchange's quote: bid/ask this fraction of the mid either side of the last close (SimBroker's default)
DEFAULT_HALF_SPREAD_PCT = Decimal("0.0002")


def quote_around(mid: Decimal, half_spread_pct: Decimal = DEFAULT_HALF_SPREAD_PCT) -> tuple[Decimal, Decimal]:
    """(bid, ask) the sim quotes around a mid price; the one spread model of the sim and the backtest."""
    half = (mid * half_spread_pct).quantize(PRICE_QUANTUM)
    return max(Decimal(0), mid - half), mid + half


NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class _SymbolBars:
    """One symbol's bars: read-only views into the index's shared arrays (no per-symbol copies)."""

    ts: np.ndarray  # int64 ns, sorted ascending
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @property
    def day(self) -> np.ndarray:
        """UTC day number of each bar (the UTC date = the US session), computed when asked, not stored."""
        return self.ts // NS_PER_DAY


def _read_only(values: np.ndarray) -> np.ndarray:
    out = values.view()
    out.flags.writeable = False  # a view of the caller's frame must never be written through
    return out


def _symbol_runs(symbol: pd.Series, ts: np.ndarray) -> tuple[list[str], np.ndarray] | None:
    """(symbols, row bounds) when the bars are already in (symbol, timestamp) order, else None. Decided on the
    Arrow strings as they are (adjacent compares), not by hashing millions of symbols into codes."""
    n = len(ts)
    if n == 0:
        return [], np.zeros(1, dtype=np.int64)
    text = pa.array(symbol.astype("str").array)
    if text.null_count:
        return None
    changes = pc.not_equal(text.slice(1), text.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.r_[0, np.flatnonzero(changes) + 1]
    # within a symbol's run the stamps never go back
    if not ((ts[1:] >= ts[:-1]) | changes).all():
        return None
    del changes
    names = [str(x) for x in text.take(pa.array(starts)).to_pylist()]
    if any(later <= earlier for earlier, later in zip(names, names[1:], strict=False)):
        return None  # a symbol in two runs, or runs out of name order
    return names, np.r_[starts, n]


def _sessions(ts: np.ndarray) -> list[tuple[int, int]]:
    """(first bar start, last bar end) per UTC date present, ascending; a million stamps at a time."""
    span: dict[int, tuple[int, int]] = {}
    step = 1 << 20
    for lo in range(0, len(ts), step):
        part = ts[lo : lo + step]
        days = part // NS_PER_DAY
        for d in np.unique(days):
            in_day = part[days == d]
            first, last = int(in_day.min()), int(in_day.max())
            held = span.get(int(d))
            span[int(d)] = (first, last) if held is None else (min(held[0], first), max(held[1], last))
    return [(first, last + NS_PER_MINUTE) for _, (first, last) in sorted(span.items())]


class BarIndex:
    """Read-only lookups over a frame of 1-minute bars.

    Memory: one int64 and five float64 per bar, in arrays sorted by (symbol, timestamp); each symbol holds
    views into them. A frame already in that order (load_bars(..., by_symbol=True)) is shared, not copied.
    """

    def __init__(self, bars: pd.DataFrame) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
        if missing:
            raise ValueError(f"bars frame lacks columns {missing}; needs {list(REQUIRED_COLUMNS)}")
        stamps = bars["timestamp"]
        if not (isinstance(stamps.dtype, pd.DatetimeTZDtype) and str(stamps.dtype.tz) == "UTC"):
            stamps = pd.to_datetime(stamps, utc=True)
        ts = stamps.dt.as_unit("ns").array.asi8  # int64 ns since the epoch (UTC), no copy
        cols = {c: bars[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}
        runs = _symbol_runs(bars["symbol"], ts)
        if runs is None:
            # any other order: sorted once into shared arrays
            codes, uniques = pd.factorize(bars["symbol"].astype(str), sort=True)
            order = np.lexsort((ts, codes))
            ts = ts[order]
            cols = {c: v[order] for c, v in cols.items()}
            bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1), side="left")
            del codes, order
            runs = ([str(u) for u in uniques], bounds)
        names, bounds = runs
        ts_all = _read_only(ts)
        cols = {c: _read_only(v) for c, v in cols.items()}
        self._by_symbol: dict[str, _SymbolBars] = {}
        for k, symbol in enumerate(names):
            a, b = int(bounds[k]), int(bounds[k + 1])
            self._by_symbol[symbol] = _SymbolBars(ts_all[a:b], *(cols[c][a:b] for c in cols))
        self._sessions = _sessions(ts_all)  # (open_ns, close_ns) per UTC date, ascending

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
        today = now_ns // NS_PER_DAY
        day = b.day
        started = b.ts <= now_ns
        today_mask = (day == today) & started
        today_open = float(b.open[today_mask][0]) if today_mask.any() else None
        earlier_days = day[day < today]
        if len(earlier_days) == 0:
            return today_open, None, None
        prev = earlier_days.max()
        prev_mask = day == prev
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
