"""The edge of the Alpaca adapter: alpaca-py exceptions -> tbot_bot.errors, alpaca-py models -> broker_api records.

Nothing outside `tbot_bot/broker/brokers/alpaca*.py` imports alpaca-py. Replies are checked, not trusted:
a reply that does not parse or contradicts itself becomes a BrokerError (code "malformed_reply").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError
from pydantic import TypeAdapter, ValidationError

from tbot_bot.broker.broker_api import (
    Account,
    AssetClass,
    Bar,
    FeeActivity,
    Fill,
    MarketClock,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Snapshot,
)
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, LogicError, MarketDataError, MarketDataUnreachable, NetworkError

log = logging.getLogger("tbot_bot.broker.alpaca")

DUPLICATE_CLIENT_ID = "client_order_id must be unique"


class BrokerRejected(BrokerError):
    """The broker answered and said no (4xx other than 429); carries the HTTP status and the broker's words."""

    def __init__(self, message: str, *, code: str | None, status: int | None, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message, code=code)

    @property
    def is_duplicate_client_id(self) -> bool:
        return self.status == 422 and DUPLICATE_CLIENT_ID in self.reason.lower()

    @property
    def is_not_found(self) -> bool:
        return self.status == 404


class MalformedReply(BrokerError):
    """The broker's reply did not parse or contradicted itself; the operation's outcome is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="malformed_reply")


class MarketDataRefused(MarketDataError):
    """The data API refused the request (401/403/404/422): retrying will not help."""

    transient = False


class TimeoutSession(requests.Session):
    """alpaca-py calls `session.request` without a timeout; this one always has API_TIMEOUT."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def tame_client(client: Any, timeout: float) -> None:
    """Give the alpaca-py client our timeout and switch off its own retries (3 x 3 s sleeps on 429/504):
    retrying is our RetryPolicy's job, where it is counted, backed off and testable."""
    for attr in ("_session", "_retry", "_retry_wait"):
        if not hasattr(client, attr):
            raise LogicError(f"alpaca-py changed: {type(client).__name__} has no {attr}; re-check alpaca.py")
    client._session.close()
    client._session = TimeoutSession(timeout)
    client._retry = 0
    client._retry_wait = 0


def _api_error_parts(exc: APIError) -> tuple[int | None, str | None, str]:
    status = exc.status_code
    try:
        body = json.loads(str(exc))
        code = str(body.get("code")) if isinstance(body, dict) and body.get("code") is not None else None
        message = str(body.get("message", "")) if isinstance(body, dict) else str(body)
    except (ValueError, TypeError):
        code, message = None, str(exc)[:200]
    return status, code, message


@contextmanager
def vendor_errors(operation: str, *, market_data: bool = False) -> Iterator[None]:
    """Translate whatever alpaca-py / requests / pydantic raise inside the block into our error classes."""
    try:
        yield
    except APIError as exc:
        status, code, message = _api_error_parts(exc)
        what = f"{operation}: HTTP {status} {message}".rstrip()
        if status is None or status == 429 or status == 408 or status >= 500:
            temporary = MarketDataUnreachable if market_data else NetworkError
            raise temporary(what) from exc
        if market_data:
            raise MarketDataRefused(what) from exc
        raise BrokerRejected(what, code=code or f"http_{status}", status=status, reason=message) from exc
    except requests.exceptions.JSONDecodeError as exc:
        if market_data:
            raise MarketDataError(f"{operation}: reply is not JSON") from exc
        raise MalformedReply(f"{operation}: reply is not JSON") from exc
    except requests.exceptions.Timeout as exc:
        temporary = MarketDataUnreachable if market_data else NetworkError
        raise temporary(f"{operation}: {_host(exc)}timed out") from exc
    except requests.exceptions.RequestException as exc:
        temporary = MarketDataUnreachable if market_data else NetworkError
        raise temporary(f"{operation}: {_host(exc)}connection failed: {type(exc).__name__}") from exc
    except (ValidationError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
        if market_data:
            raise MarketDataError(f"{operation}: malformed reply: {exc}") from exc
        raise MalformedReply(f"{operation}: malformed reply: {str(exc)[:300]}") from exc


def _host(exc: requests.exceptions.RequestException) -> str:
    """'<scheme>://<host:port> ' of the request that failed, so an operator sees which address did not answer."""
    url = getattr(getattr(exc, "request", None), "url", None)
    if not isinstance(url, str):
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc} " if parts.netloc else ""


# --- values ---------------------------------------------------------------------------------------------
def money(value: Any, what: str) -> Decimal:
    """A money string from the broker as Decimal; a missing or non-numeric value is a malformed reply."""
    if value is None or isinstance(value, bool):
        raise MalformedReply(f"{what} is missing")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise MalformedReply(f"{what} is not a number: {value!r}") from None
    if not amount.is_finite():
        raise MalformedReply(f"{what} is not finite: {value!r}")
    return amount


def optional_money(value: Any, what: str) -> Decimal | None:
    return None if value in (None, "") else money(value, what)


def utc(ts: datetime | None) -> datetime | None:
    """Aware UTC; a naive broker timestamp is taken as UTC (Alpaca's are offset-aware in practice)."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def utc_required(ts: datetime | None, what: str) -> datetime:
    out = utc(ts)
    if out is None:
        raise MalformedReply(f"{what} is missing")
    return out


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


# Alpaca's many order states collapse onto ours; anything not final stays "accepted"/"partially filled".
_STATUS = {
    "new": OrderStatus.NEW,
    "pending_new": OrderStatus.NEW,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "done_for_day": OrderStatus.EXPIRED,  # a day order that will not fill any more today
    "rejected": OrderStatus.REJECTED,
}


_ORDER_TYPES = {
    "market": OrderType.MARKET,
    "trailing_stop": OrderType.TRAILING_STOP,
    "stop": OrderType.STOP,
    "limit": OrderType.LIMIT,
    "stop_limit": OrderType.STOP_LIMIT,
}
# shares per contract of a standard US equity option (Alpaca trades no other kind)
OPTION_MULTIPLIER = Decimal(100)


def to_order(raw: Any) -> Order:
    """alpaca.trading.models.Order -> Order, checked for internal consistency."""
    status_text = _enum_value(raw.status)
    status = _STATUS.get(status_text)
    if status is None:
        log.warning(
            "unknown Alpaca order status %r for %s; treated as accepted", status_text, raw.client_order_id
        )
        status = OrderStatus.ACCEPTED
    if not raw.symbol or raw.side is None:
        raise MalformedReply(f"order {raw.id} has no symbol or side")
    filled_qty = optional_money(raw.filled_qty, "filled_qty") or Decimal(0)
    notional = optional_money(getattr(raw, "notional", None), f"order {raw.client_order_id} notional")
    if raw.qty is None and notional is not None and notional > 0:
        qty = filled_qty  # placed by amount: the shares are only known as they fill
    else:
        qty = money(raw.qty, f"order {raw.client_order_id} qty")
    if filled_qty < 0 or (qty <= 0 and notional is None) or filled_qty > qty:
        raise MalformedReply(
            f"order {raw.client_order_id}: filled_qty {filled_qty} vs qty {qty} is impossible"
        )
    if status is OrderStatus.FILLED and filled_qty != qty:
        raise MalformedReply(f"order {raw.client_order_id} is 'filled' with {filled_qty} of {qty}")
    if status is OrderStatus.ACCEPTED and filled_qty > 0:
        status = OrderStatus.PARTIALLY_FILLED
    avg = optional_money(raw.filled_avg_price, "filled_avg_price")
    if filled_qty == 0:
        avg = None  # Alpaca may say "0" before anything fills
    elif avg is None or avg <= 0:
        raise MalformedReply(f"order {raw.client_order_id} filled {filled_qty} without a price")
    filled_at = utc(raw.filled_at)
    fills: tuple[Fill, ...] = ()
    if filled_qty > 0 and avg is not None:
        # Alpaca's order carries cumulative quantity and average price only: one aggregate fill per state
        fills = (
            Fill(
                fill_id=f"{raw.id}:{filled_qty}",
                qty=filled_qty,
                price=avg,
                timestamp=filled_at or utc(raw.updated_at) or utc_required(raw.submitted_at, "submitted_at"),
            ),
        )
    kind = _enum_value(raw.type or raw.order_type)
    asset_class = AssetClass.OPTION if _enum_value(raw.asset_class) == "us_option" else AssetClass.EQUITY
    return Order(
        broker_order_id=str(raw.id),
        client_order_id=raw.client_order_id,
        symbol=raw.symbol,
        side=OrderSide(_enum_value(raw.side)),
        qty=qty,
        status=status,
        filled_qty=filled_qty,
        filled_avg_price=avg,
        submitted_at=utc(raw.submitted_at),
        filled_at=filled_at,
        fills=fills,
        reject_reason=status_text if status is OrderStatus.REJECTED else None,
        order_type=_ORDER_TYPES.get(kind, OrderType.MARKET),
        asset_class=asset_class,
        notional=notional,
    )


def to_account(raw: Any) -> Account:
    return Account(
        account_id=str(raw.account_number or raw.id),
        cash=money(raw.cash, "account cash"),
        buying_power=money(raw.buying_power, "account buying_power"),
        equity=money(raw.equity, "account equity"),
        currency=raw.currency or "USD",
        status=_enum_value(raw.status),
    )


def to_clock(raw: Any) -> MarketClock:
    return MarketClock(
        timestamp=utc_required(raw.timestamp, "clock timestamp"),
        is_open=bool(raw.is_open),
        next_open=utc(raw.next_open),
        next_close=utc(raw.next_close),
    )


def to_position(raw: Any) -> Position:
    qty = money(raw.qty, f"position {raw.symbol} qty")
    # Alpaca sends short quantities negative already; the side decides if it ever does not
    if _enum_value(raw.side) == "short":
        qty = -abs(qty)
    avg = money(
        raw.avg_entry_price, "avg_entry_price"
    )  # per share for options too (Alpaca quotes premiums so)
    if _enum_value(raw.asset_class) == "us_option":
        return Position(raw.symbol, qty, avg, AssetClass.OPTION, OPTION_MULTIPLIER)
    return Position(symbol=raw.symbol, qty=qty, avg_entry_price=avg)


def to_quote(symbol: str, raw: Any) -> Quote:
    bid = Decimal(str(raw.bid_price))
    ask = Decimal(str(raw.ask_price))
    if bid < 0 or ask <= 0:
        raise MarketDataError(f"quote for {symbol} has impossible prices bid={bid} ask={ask}")
    if ask < bid:
        log.warning("crossed quote for %s: bid %s > ask %s", symbol, bid, ask)
    return Quote(symbol=symbol, bid=bid, ask=ask, timestamp=utc_required(raw.timestamp, "quote timestamp"))


_TIMESTAMP = TypeAdapter(datetime)


def to_bar(symbol: str, raw: dict[str, Any]) -> Bar:
    """One raw bar of GET /v2/stocks/bars: `t o h l c v` are needed; `n` and `vw` may be absent or null."""
    stamp = _TIMESTAMP.validate_python(raw["t"])  # RFC 3339, up to nanoseconds, any offset
    return Bar(
        symbol=symbol,
        timestamp=utc_required(stamp, "bar timestamp"),
        open=float(raw["o"]),
        high=float(raw["h"]),
        low=float(raw["l"]),
        close=float(raw["c"]),
        volume=float(raw["v"]),
    )


def to_snapshot(symbol: str, raw: Any) -> Snapshot | None:
    trade, minute, daily, prev = raw.latest_trade, raw.minute_bar, raw.daily_bar, raw.previous_daily_bar
    price = trade.price if trade is not None else (minute.close if minute is not None else None)
    if price is None or price <= 0:
        return None
    quote = None
    if raw.latest_quote is not None:
        try:
            quote = to_quote(symbol, raw.latest_quote)
        except MarketDataError as exc:  # one bad quote must not sink the whole batch of snapshots
            log.warning("snapshot %s: quote ignored: %s", symbol, exc)
    return Snapshot(
        symbol=symbol,
        price=Decimal(str(price)),
        today_open=Decimal(str(daily.open)) if daily is not None else None,
        prev_close=Decimal(str(prev.close)) if prev is not None else None,
        prev_volume=int(prev.volume) if prev is not None else None,
        quote=quote,
    )


# Alpaca's account activity types that are charges outside fills: FEE (regulatory SEC/TAF fees and other
# fees in USD) and PTC (pass-through charges).
FEE_ACTIVITY_TYPES = ("FEE", "PTC")


def to_fee_activity(raw: Any) -> FeeActivity | None:
    """One account activity as a fee (charge > 0, refund < 0); None for other types or a canceled one."""
    if not isinstance(raw, dict):
        raise MalformedReply(f"account activity is not an object: {raw!r}"[:200])
    if raw.get("activity_type") not in FEE_ACTIVITY_TYPES or raw.get("status") == "canceled":
        return None
    activity_id = raw.get("id")
    if not isinstance(activity_id, str) or not activity_id:
        raise MalformedReply("account activity has no id")
    try:
        day = date.fromisoformat(str(raw.get("date", ""))[:10])
    except ValueError:
        raise MalformedReply(f"account activity {activity_id} has no date: {raw.get('date')!r}") from None
    # the activity's net amount is what it did to cash: a fee is negative there, a charge here
    amount = -money(raw.get("net_amount"), f"account activity {activity_id} net_amount")
    symbol = raw.get("symbol") if isinstance(raw.get("symbol"), str) and raw.get("symbol") else None
    description = str(raw.get("description") or raw.get("activity_type"))
    return FeeActivity(activity_id, day, amount, description, symbol)
