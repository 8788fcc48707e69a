"""IBKR market data for the adapter: ticker snapshots, daily and minute bars, closing-auction imbalance.

Functions take a connected `ib_async.IB`. A connection that fails inside a call is MarketDataUnreachable (an
outage the supervisor rides out, as Alpaca's data host not answering is); no data is MarketDataError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tbot_bot.broker.broker_api import Bar, ListedEquity, Quote, Snapshot
from tbot_bot.broker.brokers.ibkr_translate import contract_symbol, quote_contract
from tbot_bot.errors import MarketDataError, MarketDataUnreachable

CONNECTION_ERRORS = (ConnectionError, OSError, TimeoutError)
AUCTION_TICKS = "225"  # generic tick list: auction volume, price and imbalance
# contracts per qualify or snapshot call: ib_async paces 45 messages a second, so each call is answered well within
# one request's timeout (API_TIMEOUT), however large the universe
PER_REQUEST = 40


@dataclass(frozen=True, slots=True)
class AuctionImbalance:
    symbol: str
    imbalance: float  # shares; positive = more buyers than sellers in the auction
    paired_volume: float
    price: float | None
    regulatory_imbalance: float | None
    timestamp: datetime


def _stock(symbol: str) -> Any:
    from ib_async import Stock

    return Stock(symbol, "SMART", "USD")


def price(x: Any) -> Decimal | None:
    """IB reports "no value" as nan (or -1 / 0): only a finite positive number is a price."""
    return Decimal(str(x)) if isinstance(x, int | float) and math.isfinite(x) and x > 0 else None


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


_SNAPSHOT_FIELDS = ("bid", "ask", "last", "open", "close", "high", "low", "bidSize", "askSize", "lastSize")
_AUCTION_FIELDS = ("auctionImbalance", "auctionVolume", "auctionPrice", "regulatoryImbalance")


def _blank(ticker: Any, fields: tuple[str, ...]) -> None:
    """ib_async keeps one ticker per contract for the process and a request only writes what TWS sends: a request
    TWS ends with an error (10197 a competing live session, 354 no subscription) or answers in part left the
    previous figures in place, read as current. A request starts from a blank ticker."""
    if ticker is not None:
        for name in fields:
            setattr(ticker, name, math.nan)


def qualified(ib: Any, contracts: list[Any], con_ids: dict[str, int]) -> list[Any]:
    """The contracts with IB's contract id, which ib_async needs before any ticker (it keys its tickers by the id
    and refuses a contract without one): ids known from `con_ids` (by our symbol; an id never changes), the others
    asked of IB once (a contract-details request each) and kept there. A contract IB does not know is left out:
    no data, as IB would give none."""
    missing = [c for c in contracts if not c.conId and contract_symbol(c) not in con_ids]
    for i in range(0, len(missing), PER_REQUEST):
        part = missing[i : i + PER_REQUEST]
        try:
            ib.qualifyContracts(*part)
        except CONNECTION_ERRORS as e:
            raise MarketDataUnreachable(f"IB contract search failed: {e}") from e
        con_ids.update({contract_symbol(c): c.conId for c in part if c.conId})
    out = []
    for c in contracts:
        c.conId = c.conId or con_ids.get(contract_symbol(c), 0)
        if c.conId:
            out.append(c)
    return out


def tickers(ib: Any, symbols: list[str], con_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """Tickers by our symbol: an OCC symbol asks for the option (IB has no stock by that name), its ticker is
    keyed back by the OCC symbol. `con_ids`: the contract ids learned so far (the adapter keeps them)."""
    contracts = qualified(ib, [quote_contract(s) for s in symbols], {} if con_ids is None else con_ids)
    if not contracts:
        return {}
    for contract in contracts:
        _blank(ib.ticker(contract), _SNAPSHOT_FIELDS)
    out = {}
    for i in range(0, len(contracts), PER_REQUEST):
        try:
            result = ib.reqTickers(*contracts[i : i + PER_REQUEST])
        except CONNECTION_ERRORS as e:
            raise MarketDataUnreachable(f"IB market data failed: {e}") from e
        out.update({contract_symbol(t.contract): t for t in result})
    return out


def latest_quote(ib: Any, symbol: str, now: datetime, con_ids: dict[str, int] | None = None) -> Quote:
    ticker = tickers(ib, [symbol], con_ids).get(symbol)
    bid, ask = (price(ticker.bid), price(ticker.ask)) if ticker is not None else (None, None)
    if bid is None or ask is None:
        raise MarketDataError(f"IB returned no bid/ask for {symbol}")
    return Quote(symbol, bid, ask, now)


def prev_volume(ib: Any, symbol: str, today: date) -> int | None:
    """Volume of the last completed daily bar before `today` (regular trading hours)."""
    try:
        bars = ib.reqHistoricalData(_stock(symbol), "", "3 D", "1 day", "TRADES", True, 2)
    except CONNECTION_ERRORS as e:
        raise MarketDataUnreachable(f"IB daily bars for {symbol} failed: {e}") from e

    def day(d: Any) -> Any:
        return d.date() if isinstance(d, datetime) else d

    past = [b for b in bars or [] if isinstance(b.date, date) and day(b.date) < today]
    return int(past[-1].volume) if past else None


def index_daily_closes(ib: Any, symbol: str, exchange: str, duration: str = "1 M") -> dict[date, float]:
    """Daily closes of an index (e.g. VIX on CBOE) from IB's historical data; only finite positive closes."""
    from ib_async import Index

    try:
        bars = ib.reqHistoricalData(Index(symbol, exchange, "USD"), "", duration, "1 day", "TRADES", True, 1)
    except CONNECTION_ERRORS as e:
        raise MarketDataUnreachable(f"IB daily bars for index {symbol} failed: {e}") from e
    out: dict[date, float] = {}
    for b in bars or []:
        day = b.date.date() if isinstance(b.date, datetime) else b.date
        close = _finite(b.close)
        if isinstance(day, date) and close is not None and close > 0:
            out[day] = close
    return out


def qualify_equities(ib: Any, symbols: list[str]) -> list[ListedEquity]:
    """IB's contract search for each symbol: a US stock found on SMART is listed on its primary exchange."""
    out = []
    for sym in symbols:
        try:
            details = ib.reqContractDetails(_stock(sym))
        except CONNECTION_ERRORS as e:
            raise MarketDataUnreachable(f"IB contract search for {sym} failed: {e}") from e
        for d in details or []:
            c = d.contract
            if c is not None and c.secType == "STK" and c.currency == "USD" and c.symbol == sym:
                exchange = (c.primaryExchange or c.exchange or "").upper()
                out.append(ListedEquity(sym, "ARCA" if exchange == "NYSEARCA" else exchange))
                break
    return out


def snapshots(
    ib: Any,
    symbols: list[str],
    now: datetime,
    volume_cache: dict[tuple[str, date], int] | None = None,
    con_ids: dict[str, int] | None = None,
) -> dict[str, Snapshot]:
    """Last/bid/ask/open/previous close from one ticker snapshot each; previous volume from daily bars,
    remembered per day in `volume_cache` (IB paces historical requests: about 60 per 10 minutes)."""
    cache = volume_cache if volume_cache is not None else {}
    out: dict[str, Snapshot] = {}
    for sym, t in tickers(ib, symbols, con_ids).items():
        last = price(t.last) or price(t.close)
        if last is None:
            continue  # no usable price: omitted, as the interface allows
        bid, ask = price(t.bid), price(t.ask)
        quote = Quote(sym, bid, ask, now) if bid is not None and ask is not None else None
        key = (sym, now.date())
        if key not in cache:
            volume = prev_volume(ib, sym, now.date())
            if volume is None:
                out[sym] = Snapshot(sym, last, price(t.open), price(t.close), None, quote)
                continue  # unknown is not cached: the next screen asks again
            cache[key] = volume
        out[sym] = Snapshot(sym, last, price(t.open), price(t.close), cache[key], quote)
    return out


def minute_bars(ib: Any, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
    seconds = max(60, int((end - start).total_seconds()))
    duration = f"{seconds} S" if seconds <= 86400 else f"{math.ceil(seconds / 86400)} D"
    out: dict[str, list[Bar]] = {}
    for sym in symbols:
        try:
            raw = ib.reqHistoricalData(_stock(sym), end, duration, "1 min", "TRADES", True, 2)
        except CONNECTION_ERRORS as e:
            raise MarketDataUnreachable(f"IB minute bars for {sym} failed: {e}") from e
        out[sym] = [
            Bar(sym, b.date, float(b.open), float(b.high), float(b.low), float(b.close), float(b.volume))
            for b in raw or []
            if isinstance(b.date, datetime) and start <= b.date < end
        ]
    return out


def auction_imbalance(
    ib: Any, symbol: str, wait: float, now: datetime, con_ids: dict[str, int] | None = None
) -> AuctionImbalance | None:
    """Imbalance for the next auction (generic tick 225); None when IB publishes none (or knows no such stock)."""
    known = qualified(ib, [_stock(symbol)], {} if con_ids is None else con_ids)
    if not known:
        return None
    (contract,) = known
    _blank(ib.ticker(contract), _AUCTION_FIELDS)
    try:
        ticker = ib.reqMktData(contract, AUCTION_TICKS, False, False)
        ib.sleep(wait)
        ib.cancelMktData(contract)
    except CONNECTION_ERRORS as e:
        raise MarketDataUnreachable(f"IB imbalance data for {symbol} failed: {e}") from e
    imbalance = _finite(ticker.auctionImbalance)
    if imbalance is None:
        return None
    return AuctionImbalance(
        symbol,
        imbalance,
        _finite(ticker.auctionVolume) or 0.0,
        _finite(ticker.auctionPrice),
        _finite(ticker.regulatoryImbalance),
        now,
    )
