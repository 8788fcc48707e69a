"""The market side of the fake Alpaca: replayed 1-minute bars (or fixed prices) seen through a `now()` clock.

The data API never shows the future: only bars whose minute has ended are served. The current price for
fills is the open of the bar that contains now (else the last close).
"""

from __future__ import annotations

import random
import threading
import uuid
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

MINUTE = timedelta(minutes=1)
IEX_SHARE = 0.018  # IEX's share of a day's volume (Alpaca's market-data FAQ: 923,134 of 51,861,083)
NY = ZoneInfo("America/New_York")


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def exchange_iso(ts: datetime) -> str:
    """Alpaca's clock style: New York offset and nine fraction digits (fakes.vendor_shapes.ALPACA_CLOCK)."""
    local = ts.astimezone(NY)
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{local.microsecond:06d}000"
        + local.strftime("%z")[:3]
        + ":"
        + local.strftime("%z")[3:]
    )


def parse_ts(raw: str) -> datetime:
    ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class BarRow:
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class FakeMarket:
    """Prices, clock and market data; FakeAlpacaExchange adds the account and the order book."""

    def __init__(
        self,
        *,
        bars: pd.DataFrame | None,
        now: Callable[[], datetime] | None,
        prices: dict[str, Decimal | str | float] | None,
        session: tuple[time, time],
        spread_pct: Decimal,
    ) -> None:
        self._lock = threading.RLock()
        self._now = now or (lambda: datetime.now(UTC))
        self.bars: dict[str, list[BarRow]] = {}
        self._bar_times: dict[str, list[datetime]] = {}
        if bars is not None:
            self.load_bars(bars)
        self.price_overrides: dict[str, Decimal] = {k: Decimal(str(v)) for k, v in (prices or {}).items()}
        self.session = session
        self.spread_pct = spread_pct
        self.assets: list[dict[str, Any]] | None = None  # None: every priced symbol, active and tradable

    # --- market -------------------------------------------------------------------------------------
    def load_bars(self, frame: pd.DataFrame) -> None:
        df = frame.copy()
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        df = df.sort_values(["symbol", "timestamp"])
        with self._lock:
            for symbol, group in df.groupby("symbol", sort=True):
                rows = [
                    BarRow(ts.to_pydatetime(), float(o), float(h), float(lo), float(c), float(v))
                    for ts, o, h, lo, c, v in zip(
                        group["timestamp"],
                        group["open"],
                        group["high"],
                        group["low"],
                        group["close"],
                        group["volume"],
                        strict=True,
                    )
                ]
                self.bars[str(symbol)] = rows
                self._bar_times[str(symbol)] = [r.ts for r in rows]

    def now(self) -> datetime:
        return self._now().astimezone(UTC)

    def set_price(self, symbol: str, price: Decimal | str | float) -> None:
        with self._lock:
            self.price_overrides[symbol] = Decimal(str(price))

    def completed_bars(self, symbol: str, now: datetime | None = None) -> list[BarRow]:
        """Bars whose minute has ended by now: the data API never shows the future."""
        now = now or self.now()
        times = self._bar_times.get(symbol, [])
        return self.bars.get(symbol, [])[: bisect_right(times, now - MINUTE)]

    def price(self, symbol: str) -> Decimal | None:
        if symbol in self.price_overrides:
            return self.price_overrides[symbol]
        rows = self.bars.get(symbol)
        if not rows:
            return None
        now = self.now()
        i = bisect_right(self._bar_times[symbol], now) - 1
        if i < 0:
            return None
        bar = rows[i]
        # the bar containing now has opened (its open is known); an older one only has its close
        value = bar.open if bar.ts + MINUTE > now else bar.close
        return Decimal(str(round(value, 4)))

    def is_open(self) -> bool:
        now = self.now()
        return now.weekday() < 5 and self.session[0] <= now.time() < self.session[1]

    def clock(self) -> dict[str, Any]:
        now = self.now()
        day = now.date()
        open_today = datetime.combine(day, self.session[0], UTC)
        close_today = datetime.combine(day, self.session[1], UTC)
        next_open = open_today if now < open_today else open_today + timedelta(days=1)
        while next_open.weekday() >= 5:
            next_open += timedelta(days=1)
        next_close = close_today if now < close_today else close_today + timedelta(days=1)
        while next_close.weekday() >= 5:
            next_close += timedelta(days=1)
        return {
            "timestamp": exchange_iso(now),
            "is_open": self.is_open(),
            "next_open": exchange_iso(next_open),
            "next_close": exchange_iso(next_close),
        }

    # --- assets -------------------------------------------------------------------------------------
    def set_assets(self, assets: list[dict[str, Any]]) -> None:
        """The asset master list, as `asset(...)` rows (inactive, non-tradable and OTC ones included)."""
        with self._lock:
            self.assets = list(assets)

    def list_assets(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """GET /v2/assets: filtered by status, asset_class and exchange as Alpaca does."""
        with self._lock:
            rows = (
                self.assets
                if self.assets is not None
                else [asset(s) for s in sorted(set(self.bars) | set(self.price_overrides))]
            )
        status, cls, exchange = query.get("status"), query.get("asset_class"), query.get("exchange")
        return [
            r
            for r in rows
            if (not status or r["status"] == status)
            and (not cls or r["class"] == cls)
            and (not exchange or r["exchange"] == exchange)
        ]

    # --- market data --------------------------------------------------------------------------------
    def quote(self, symbol: str) -> dict[str, Any] | None:
        price = self.last_trade_price(symbol)
        if price is None:
            return None
        half = price * self.spread_pct / 2
        return {
            "t": iso(self.now()),
            "ax": "V",
            "ap": float(round(price + half, 4)),
            "as": 3,
            "bx": "V",
            "bp": float(round(price - half, 4)),
            "bs": 2,
            "c": ["R"],
            "z": "B",
        }

    def last_trade_price(self, symbol: str) -> Decimal | None:
        if symbol in self.price_overrides:
            return self.price_overrides[symbol]
        done = self.completed_bars(symbol)
        return Decimal(str(done[-1].close)) if done else None

    def _bar_json(self, bar: BarRow) -> dict[str, Any]:
        return {
            "t": iso(bar.ts),
            "o": bar.open,
            "h": bar.high,
            "l": bar.low,
            "c": bar.close,
            "v": bar.volume,
            "n": None,
            "vw": round((bar.high + bar.low + bar.close) / 3, 4),
        }

    def bars_between(
        self, symbols: list[str], start: datetime | None, end: datetime | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(symbol, bar) pairs, by symbol then time; `end` is inclusive as on Alpaca."""
        out = []
        with self._lock:
            for symbol in sorted(set(symbols)):
                for bar in self.completed_bars(symbol):
                    if (start is None or bar.ts >= start) and (end is None or bar.ts <= end):
                        out.append((symbol, self._bar_json(bar)))
        return out

    def daily_bars_between(
        self, symbols: list[str], start: datetime | None, end: datetime | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """GET /v2/stocks/bars?timeframe=1Day: one bar per date (stamped 04:00 UTC, as the snapshots' daily bars),
        the whole market's volume; a symbol priced without minute bars has the flat day its snapshot shows."""
        out = []
        with self._lock:
            for symbol in sorted(set(symbols)):
                done = self.completed_bars(symbol)
                days = sorted({r.ts.date() for r in done})
                rows = [self._daily([r for r in done if r.ts.date() == d]) for d in days]
                if not done and (price := self.last_trade_price(symbol)) is not None and start is not None:
                    p = float(price)
                    rows = [
                        {"t": iso(start), "o": p, "h": p, "l": p, "c": p, "v": 1_000_000, "n": None, "vw": p}
                    ]
                for bar in rows:
                    at = parse_ts(bar["t"])
                    if (start is None or at >= start) and (end is None or at <= end):
                        out.append((symbol, bar))
        return out

    def _daily(self, rows: list[BarRow]) -> dict[str, Any]:
        return {
            "t": iso(datetime.combine(rows[0].ts.date(), time(4, 0), UTC)),
            "o": rows[0].open,
            "h": max(r.high for r in rows),
            "l": min(r.low for r in rows),
            "c": rows[-1].close,
            "v": sum(r.volume for r in rows),
            "n": None,
            "vw": None,
        }

    def _opening_print(self, symbol: str, now: datetime, completed: int) -> BarRow | None:
        """The bar containing now, as far as it is known: only its open (the price fills get). The daily bar
        includes it, so today's open is visible from the first bar's start - as the sim exchange shows it."""
        rows = self.bars.get(symbol, [])
        if completed >= len(rows):
            return None
        bar = rows[completed]
        if not (bar.ts <= now < bar.ts + MINUTE) or bar.ts.date() != now.date():
            return None
        return BarRow(bar.ts, bar.open, bar.open, bar.open, bar.open, 0.0)

    def snapshot(self, symbol: str, feed: str = "sip") -> dict[str, Any] | None:
        """GET /v2/stocks/snapshots: on the IEX feed (`feed=iex`, the free plan's) every volume is IEX's own, a few
        percent of the market's (Alpaca's market-data FAQ: AAPL 51,861,083 on sip, 923,134 on iex)."""
        snap = self._snapshot(symbol)
        if snap is not None and feed == "iex":
            for key in ("minuteBar", "dailyBar", "prevDailyBar"):
                if key in snap:
                    snap[key] = {**snap[key], "v": round(snap[key]["v"] * IEX_SHARE)}
        return snap

    def _snapshot(self, symbol: str) -> dict[str, Any] | None:
        with self._lock:
            price = self.last_trade_price(symbol)
            if price is None:
                return None
            now = self.now()
            trade = {"t": iso(now), "x": "V", "p": float(price), "s": 100, "c": ["@"], "i": 1, "z": "B"}
            snap: dict[str, Any] = {"latestTrade": trade, "latestQuote": self.quote(symbol)}
            done = self.completed_bars(symbol, now)
            if done:
                snap["minuteBar"] = self._bar_json(done[-1])
                today = [r for r in done if r.ts.date() == now.date()]
                opening = self._opening_print(symbol, now, len(done))
                if opening is not None:
                    today.append(opening)
                earlier = [r for r in done if r.ts.date() < now.date()]
                if today:
                    snap["dailyBar"] = self._daily(today)
                if earlier:
                    last_day = earlier[-1].ts.date()
                    snap["prevDailyBar"] = self._daily([r for r in earlier if r.ts.date() == last_day])
            else:
                p = float(price)
                flat = {"t": iso(now), "o": p, "h": p, "l": p, "c": p, "v": 1_000_000, "n": None, "vw": p}
                snap.update(minuteBar=flat, dailyBar=flat, prevDailyBar=flat)
            return snap


def asset(
    symbol: str,
    exchange: str = "NYSE",
    *,
    status: str = "active",
    tradable: bool = True,
    asset_class: str = "us_equity",
) -> dict[str, Any]:
    """One row of Alpaca's asset master list (GET /v2/assets)."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-asset:{symbol}")),
        "class": asset_class,
        "exchange": exchange,
        "symbol": symbol,
        "name": f"{symbol} fake listing",
        "status": status,
        "tradable": tradable,
        "marginable": tradable,
        "shortable": tradable,
        "easy_to_borrow": tradable,
        "fractionable": tradable,
        "attributes": [],
    }


def synthetic_bars(symbols: dict[str, float], start: datetime, minutes: int, seed: int = 0) -> pd.DataFrame:
    """Seeded random-walk 1-minute bars (timestamp = bar start, UTC) for {symbol: first price}."""
    rng = random.Random(seed)
    rows = []
    for symbol, first in sorted(symbols.items()):
        price = first
        for i in range(minutes):
            open_ = price
            close = max(0.5, open_ * (1 + rng.gauss(0, 0.002)))
            high = max(open_, close) * (1 + abs(rng.gauss(0, 0.001)))
            low = min(open_, close) * (1 - abs(rng.gauss(0, 0.001)))
            volume = rng.randint(1_000, 50_000)
            rows.append(
                (
                    start + i * MINUTE,
                    symbol,
                    round(open_, 2),
                    round(high, 2),
                    round(low, 2),
                    round(close, 2),
                    volume,
                )
            )
            price = close
    return pd.DataFrame(rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"])
