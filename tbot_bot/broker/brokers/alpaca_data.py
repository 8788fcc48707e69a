"""Market data for the Alpaca adapter: latest quotes (equities and option contracts), snapshots and 1-minute
bars (a mixin of AlpacaBroker).

Every failure here is a MarketDataError (retried when temporary, MarketDataRefused when the API says no).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import OptionHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.requests import (
    OptionLatestQuoteRequest,
    StockBarsRequest,
    StockLatestQuoteRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, AssetStatus
from alpaca.trading.requests import GetAssetsRequest

from tbot_bot.broker.broker_api import Bar, ListedEquity, OptionContract, Quote, Snapshot
from tbot_bot.broker.brokers.alpaca_translate import (
    MarketDataRefused,
    to_bar,
    to_quote,
    to_snapshot,
    vendor_errors,
)
from tbot_bot.errors import LogicError, MarketDataError

T = TypeVar("T")
log = logging.getLogger(__name__)

SYMBOLS_PER_REQUEST = 100


class AlpacaMarketData:
    """Needs `_data` (alpaca-py StockHistoricalDataClient), `data_feed` and `_read` from AlpacaBroker."""

    _data: StockHistoricalDataClient
    _data_raw: StockHistoricalDataClient  # raw_data=True: replies as Alpaca's JSON, parsed by to_bar
    _options: OptionHistoricalDataClient  # option contracts' quotes (OPRA, or Alpaca's indicative feed)
    _trading: TradingClient
    data_feed: DataFeed
    _sip_volumes: dict[tuple[str, datetime], int]  # consolidated previous-session volumes read (IEX feed)
    _sip_refused: bool  # the plan refused consolidated daily bars (said once)

    def _read(self, operation: str, fn: Callable[[], T], *, market_data: bool = False) -> T:
        raise NotImplementedError

    def list_equities(self, symbols: list[str] | None = None) -> list[ListedEquity]:
        """GET /v2/assets (active US equities), keeping only tradable ones; NYSEARCA is reported as ARCA."""
        req = GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.US_EQUITY)
        assets: Any = self._read("list assets", partial(self._trading.get_all_assets, req))
        wanted = {s.upper() for s in symbols} if symbols is not None else None
        out = []
        with vendor_errors("list assets"):
            for a in assets:
                exchange = str(getattr(a.exchange, "value", a.exchange)).upper()
                if (
                    not a.tradable
                    or a.status != AssetStatus.ACTIVE
                    or (wanted is not None and a.symbol not in wanted)
                ):
                    continue
                out.append(ListedEquity(a.symbol, "ARCA" if exchange == "NYSEARCA" else exchange))
        return out

    def get_latest_quote(self, symbol: str) -> Quote:
        """An OCC option symbol is quoted from the options data API (the feed the plan allows: OPRA with a
        subscription, else indicative), anything else from the stock data API (ALPACA_DATA_FEED)."""
        quotes: Any
        if OptionContract.from_occ(symbol) is not None:
            oreq = OptionLatestQuoteRequest(symbol_or_symbols=[symbol])
            quotes = self._read(
                f"latest option quote {symbol}",
                lambda: self._options.get_option_latest_quote(oreq),
                market_data=True,
            )
        else:
            req = StockLatestQuoteRequest(symbol_or_symbols=[symbol], feed=self.data_feed)
            quotes = self._read(
                f"latest quote {symbol}", lambda: self._data.get_stock_latest_quote(req), market_data=True
            )
        raw = quotes.get(symbol)
        if raw is None:
            raise MarketDataError(f"Alpaca returned no quote for {symbol}")
        with vendor_errors(f"latest quote {symbol}", market_data=True):
            return to_quote(symbol, raw)

    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        out: dict[str, Snapshot] = {}
        previous: dict[str, datetime] = {}  # each symbol's previous daily bar (its start)
        unique = list(dict.fromkeys(symbols))
        for i in range(0, len(unique), SYMBOLS_PER_REQUEST):
            chunk = unique[i : i + SYMBOLS_PER_REQUEST]
            req = StockSnapshotRequest(symbol_or_symbols=chunk, feed=self.data_feed)
            raw: Any = self._read("snapshots", partial(self._data.get_stock_snapshot, req), market_data=True)
            with vendor_errors("snapshots", market_data=True):
                for symbol, snap in raw.items():
                    converted = to_snapshot(symbol, snap) if symbol in chunk else None
                    if converted is not None:
                        out[symbol] = converted
                        if snap.previous_daily_bar is not None:
                            previous[symbol] = snap.previous_daily_bar.timestamp
        # ALPACA_DATA_FEED=iex: the snapshot's previous-session volume is IEX's alone (a few percent of the
        # market), compared with a MIN_VOLUME_THRESHOLD meant for the whole market's: it is replaced by the
        # consolidated (SIP) daily volume, which every plan may read once it is 15 minutes old
        if self.data_feed is DataFeed.IEX and previous:
            for symbol, volume in self._consolidated_volumes(previous).items():
                out[symbol] = replace(out[symbol], prev_volume=volume)
        return out

    def _consolidated_volumes(self, previous: dict[str, datetime]) -> dict[str, int]:
        """The whole market's (SIP) volume of each symbol's previous daily bar, kept for the day; a refusal
        (a plan without it) leaves IEX's volumes and is said once."""
        cache = self._sip_volumes
        # only the bars asked about now are kept (each symbol's previous daily bar, whatever its date: one that did
        # not trade yesterday has an older one): a process up for weeks held every session's volumes
        current = set(previous.values())
        for old in [k for k in cache if k[1] not in current]:
            del cache[old]
        # the plan refused them once: not asked again (a plan changes with a restart)
        if not self._sip_refused:
            self._read_consolidated({s: t for s, t in previous.items() if (s, t) not in cache})
        return {s: cache[(s, t)] for s, t in previous.items() if (s, t) in cache}

    def _read_consolidated(self, wanted: dict[str, datetime]) -> None:
        """Into `_sip_volumes`, the SIP daily bars of `wanted` (symbol -> its previous daily bar's start); on a
        refusal or an outage, what was read so far (the rest keep IEX's volumes)."""
        by_day: dict[datetime, list[str]] = {}
        for symbol, start in wanted.items():
            by_day.setdefault(start, []).append(symbol)
        for start, names in by_day.items():
            for i in range(0, len(names), SYMBOLS_PER_REQUEST):
                req = StockBarsRequest(
                    symbol_or_symbols=names[i : i + SYMBOLS_PER_REQUEST], timeframe=TimeFrame.Day, start=start,
                    end=start + timedelta(hours=12), adjustment=Adjustment.RAW, feed=DataFeed.SIP,
                )  # fmt: skip
                try:
                    barset: Any = self._read(
                        "consolidated daily bars",
                        partial(self._data_raw.get_stock_bars, req),
                        market_data=True,
                    )
                except MarketDataRefused as exc:
                    self._sip_refused = True
                    log.warning(
                        "Alpaca refused consolidated (SIP) daily bars (%s): previous-session volumes are IEX's "
                        "alone, a few percent of the market's, against MIN_VOLUME_THRESHOLD",
                        exc,
                    )
                    return
                except MarketDataError as exc:
                    # not reachable after the retries: this screen keeps IEX's volumes (the snapshots themselves
                    # arrived); the next one asks again
                    log.warning("consolidated (SIP) daily bars unavailable (%s): IEX volumes this time", exc)
                    return
                with vendor_errors("consolidated daily bars", market_data=True):
                    for symbol, rows in barset.items():
                        for bar in (to_bar(symbol, r) for r in rows):
                            if bar.timestamp == start:
                                self._sip_volumes[(symbol, start)] = int(bar.volume)

    def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        if start.tzinfo is None or end.tzinfo is None:
            raise LogicError("get_bars needs timezone-aware start and end")
        out: dict[str, list[Bar]] = {s: [] for s in symbols}
        unique = list(dict.fromkeys(symbols))
        for i in range(0, len(unique), SYMBOLS_PER_REQUEST):
            chunk = unique[i : i + SYMBOLS_PER_REQUEST]
            req = StockBarsRequest(
                symbol_or_symbols=chunk,
                timeframe=TimeFrame.Minute,
                start=start,
                end=end,
                adjustment=Adjustment.RAW,
                feed=self.data_feed,
            )
            barset: Any = self._read(
                "minute bars", partial(self._data_raw.get_stock_bars, req), market_data=True
            )
            with vendor_errors("minute bars", market_data=True):
                for symbol, rows in barset.items():
                    if symbol not in out:
                        continue
                    bars = {
                        b.timestamp: b
                        for b in (to_bar(symbol, r) for r in rows)
                        if start <= b.timestamp < end
                    }
                    out[symbol].extend(bars[t] for t in sorted(bars))
        return out
