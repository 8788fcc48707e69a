"""Tradier adapter (DESIGN §9): long equities, inverse ETFs and long options, market orders, over Tradier's REST API.

Declared capabilities: whole shares, no short sales, options (single-leg, whole contracts), no trailing stops —
bearish signals trade inverse ETFs (SHORT_TYPE_X=InverseETF), long puts (LongPut) or are logged (disabled). An
option order is Tradier's `class=option` with the OCC `option_symbol`, the underlying as `symbol`, and a side
that says whether it opens or closes (`buy_to_open`, `sell_to_close`, `buy_to_close`); the adapter never writes
options (`sell_to_open` is refused). Our client order id travels as the order's
`tag`. Tradier does NOT enforce unique tags, so idempotency is ours: a submission whose outcome is unclear
(timeout, dropped connection, 5xx, unreadable reply) is looked up by tag; when absent, the adapter waits
`settle_delay` (a request still in flight lands) and looks again before it sends the order a second time. Reads
are retried with RetryPolicy (API_RETRY_LIMIT); a market order is polled until final and, at `fill_timeout`, its
unfilled remainder is cancelled. Credentials (broker_credentials): TRADIER_ACCESS_TOKEN, TRADIER_ACCOUNT_ID,
optional TRADIER_BASE_URL (default the sandbox when TRADIER_SANDBOX=true, the default; else the live API).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from tbot_bot.broker.broker_api import (
    Account,
    AssetClass,
    Bar,
    Broker,
    Fill,
    ListedEquity,
    MarketClock,
    OptionContract,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Snapshot,
)
from tbot_bot.broker.brokers.tradier_api import (
    LIVE_URL,
    SANDBOX_URL,
    BrokerRejected,
    TradierHttp,
    as_list,
    dec,
    exchange_local,
    section,
    utc_time,
)
from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.broker.order_tracking import track_until_final
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, LogicError, NetworkError, OrderStateUnknown
from tbot_bot.support.utils_bot import utc_now

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.support.path_resolver import BotHome

log = logging.getLogger(__name__)
_PAGE = 100  # orders asked for per page of the day's list (Tradier's default is 25)
T = TypeVar("T")
_TAG = re.compile(r"^[A-Za-z0-9-]{1,255}$")


# Tradier's exchange codes for the listing exchanges a universe may take (anything else, e.g. OTC, stays out)
_EXCHANGES = {"N": "NYSE", "Q": "NASDAQ", "P": "ARCA", "A": "AMEX", "Z": "BATS"}


def to_tag(client_order_id: str) -> str:
    """Tradier tags allow letters, digits and '-': a share-class dot (BRK.B) travels as '--' (never in our ids)."""
    tag = client_order_id.replace(".", "--")
    if not _TAG.match(tag) or "--" in client_order_id:
        raise LogicError(
            f"client order id {client_order_id!r} cannot be a Tradier tag (letters, digits, '-', '.')"
        )
    return tag


def from_tag(tag: Any) -> str:
    return str(tag or "").replace("--", ".")


_STATUS = {
    "pending": OrderStatus.NEW,
    "open": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "error": OrderStatus.REJECTED,
}


_ORDER_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    # multileg option orders are priced as a net debit/credit: limit orders in our terms
    "debit": OrderType.LIMIT,
    "credit": OrderType.LIMIT,
    "even": OrderType.LIMIT,
}
OPTION_MULTIPLIER = Decimal(100)  # shares per standard US equity option contract


def to_order(raw: dict[str, Any]) -> Order:
    status = _STATUS.get(str(raw.get("status")))
    if status is None:
        raise BrokerError(f"Tradier order status {raw.get('status')!r} is unknown", code="malformed_reply")
    qty = dec(raw.get("quantity"), "order quantity")
    filled = dec(raw.get("exec_quantity"), "exec_quantity", default=Decimal(0))
    price = dec(raw.get("avg_fill_price"), "avg_fill_price", default=Decimal(0)) if filled else None
    if filled > qty or (status is OrderStatus.FILLED and filled != qty) or (filled and not price):
        raise BrokerError(f"Tradier order {raw.get('id')} contradicts itself: {raw}", code="malformed_reply")
    when = utc_time(raw.get("transaction_date")) or utc_time(raw.get("create_date"))
    fills = (Fill(f"{raw['id']}:{filled}", filled, price, when or utc_now()),) if filled and price else ()
    side = OrderSide.BUY if str(raw.get("side", "")).startswith("buy") else OrderSide.SELL
    # an option order names the underlying in `symbol` and the contract in `option_symbol` (OCC)
    option = raw.get("class") == "option" and bool(raw.get("option_symbol"))
    return Order(
        broker_order_id=str(raw["id"]),
        client_order_id=from_tag(raw.get("tag")),
        symbol=str(raw["option_symbol"] if option else raw.get("symbol")),
        side=side,
        qty=qty,
        status=status,
        filled_qty=filled,
        filled_avg_price=price,
        submitted_at=utc_time(raw.get("create_date")),
        filled_at=when if status is OrderStatus.FILLED else None,
        fills=fills,
        reject_reason=str(raw.get("reason_description")) if status is OrderStatus.REJECTED else None,
        asset_class=AssetClass.OPTION if option else AssetClass.EQUITY,
        order_type=_ORDER_TYPES.get(str(raw.get("type")), OrderType.MARKET),
    )


def to_position(raw: dict[str, Any]) -> Position | None:
    """One row of GET /accounts/{id}/positions; None for a zero quantity. `cost_basis` is the total paid, so
    an option's per-share price is cost_basis / contracts / 100."""
    qty = dec(raw.get("quantity"), "position quantity")
    if not qty:
        return None
    symbol = str(raw["symbol"])
    basis = dec(raw.get("cost_basis"), "cost_basis")
    if OptionContract.from_occ(symbol) is not None:
        avg = (basis / qty / OPTION_MULTIPLIER).quantize(Decimal("0.0001"))
        return Position(symbol, qty, avg, AssetClass.OPTION, OPTION_MULTIPLIER)
    return Position(symbol, qty, (basis / qty).quantize(Decimal("0.0001")))


def option_of(request: OrderRequest) -> OptionContract:
    """The contract an option order names: its `option`, or else its OCC symbol; they must agree."""
    contract = request.option or OptionContract.from_occ(request.symbol)
    if contract is None:
        raise BrokerError(
            f"option order {request.client_order_id}: {request.symbol!r} is not an OCC option symbol",
            code="unsupported",
        )
    if request.symbol != contract.occ_symbol:
        raise LogicError(
            f"option order {request.client_order_id}: symbol {request.symbol} is not {contract.occ_symbol}"
        )
    return contract


class TradierBroker(Broker):
    name = "TRADIER"
    retries_internally = True

    def __init__(
        self,
        token: str,
        account_id: str,
        *,
        base_url: str = SANDBOX_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        fill_timeout: float = 30.0,
        poll_interval: float = 0.5,
        settle_delay: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capabilities = capabilities_for("TRADIER")
        self.account_id = account_id
        self.http = TradierHttp(base_url, token, timeout)
        self.endpoint = self.http.base_url
        self.retry = retry or RetryPolicy(sleep=sleep)
        self.fill_timeout = fill_timeout
        self.poll_interval = poll_interval
        # how long an unclear submission may still be in flight: a little more than one request timeout
        self.settle_delay = timeout * 1.5 if settle_delay is None else settle_delay
        self._sleep = sleep
        self.api_retries = 0
        # Tradier's order id by our client id (from the POST's reply or a listing): an order is then read by
        # its id, not searched for in the day's paged list
        self._order_ids: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: BotSettings, home: BotHome, **kwargs: Any) -> TradierBroker:
        from tbot_bot.support.decrypt_secrets import broker_credentials, secret_flag

        creds = broker_credentials(home, "TRADIER", ("TRADIER_ACCESS_TOKEN", "TRADIER_ACCOUNT_ID"))
        sandbox = secret_flag(creds.get("TRADIER_SANDBOX"), default=True)
        clock = kwargs.pop("clock", None)
        options = {
            k: kwargs.pop(k)
            for k in ("retry", "fill_timeout", "poll_interval", "settle_delay", "sleep")
            if k in kwargs
        }
        if clock is not None and "sleep" not in options:
            options["sleep"] = clock.sleep
        options.setdefault(
            "retry", RetryPolicy.from_settings(settings, sleep=options.get("sleep", time.sleep))
        )
        return cls(
            str(creds["TRADIER_ACCESS_TOKEN"]),
            str(creds["TRADIER_ACCOUNT_ID"]),
            base_url=str(creds.get("TRADIER_BASE_URL") or (SANDBOX_URL if sandbox else LIVE_URL)),
            timeout=float(settings.API_TIMEOUT),
            **options,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ transport
    def _read(self, fn: Callable[[], T], what: str) -> T:
        """`fn` with retries; `what` names it in the retry lines an operator reads ("retry 1/3 of Tradier GET
        /v1/markets/quotes ..."), not the lambda's internal name."""

        def count(attempt: int, exc: BaseException, wait: float) -> None:
            self.api_retries += 1

        def call() -> T:
            return fn()

        call.__qualname__ = what
        return self.retry.with_(on_retry=count).call(call)

    def _get(self, path: str, **params: Any) -> Any:
        return self._read(lambda: self.http.call("GET", path, params=params or None), f"Tradier GET {path}")

    @property
    def _acct(self) -> str:
        return f"/v1/accounts/{self.account_id}"

    # ------------------------------------------------------------------ account
    def get_account(self) -> Account:
        b = section(self._get(f"{self._acct}/balances"), "balances")
        if not isinstance(b, dict):
            raise BrokerError("Tradier balances reply is not an object", code="malformed_reply")
        power = None
        for kind, key in (
            ("margin", "stock_buying_power"),
            ("cash", "cash_available"),
            ("pdt", "stock_buying_power"),
        ):
            if isinstance(b.get(kind), dict) and b[kind].get(key) is not None:
                power = dec(b[kind][key], f"{kind}.{key}")
                break
        cash = dec(b.get("total_cash"), "total_cash")
        return Account(
            self.account_id,
            cash,
            power if power is not None else cash,
            dec(b.get("total_equity"), "total_equity"),
        )

    def get_clock(self) -> MarketClock:
        from tbot_bot.market_time import session_for

        c = section(self._get("/v1/markets/clock"), "clock")
        now = utc_time(c.get("timestamp")) if isinstance(c, dict) else None
        if now is None:
            raise BrokerError("Tradier clock reply lacks a timestamp", code="malformed_reply")
        today = session_for(now.date())
        is_open = isinstance(c, dict) and c.get("state") == "open"
        next_open = next(
            (s.open for d in range(8) if (s := session_for(now.date() + timedelta(days=d))) and s.open > now),
            None,
        )
        return MarketClock(now, is_open, next_open, today.close if today and now < today.close else None)

    def get_positions(self) -> list[Position]:
        rows = as_list(section(self._get(f"{self._acct}/positions"), "positions", "position"))
        return [p for p in (to_position(r) for r in rows if isinstance(r, dict)) if p is not None]

    # ------------------------------------------------------------------ orders
    def _orders(self) -> list[Order]:
        """The day's orders, every page of them: Tradier answers a page at a time (25 by default), and the 26th
        order of the day was on a page never read (its fill lost, and an unclear submission of it sent again)."""
        out: list[Order] = []
        seen: set[str] = set()
        first = 0
        for page in range(1, 1000):
            raw = section(
                self._get(f"{self._acct}/orders", includeTags="true", page=page, limit=_PAGE),
                "orders",
                "order",
            )
            rows = [to_order(o) for o in as_list(raw)]
            new = [o for o in rows if o.broker_order_id not in seen]
            seen.update(o.broker_order_id for o in new)
            out += new
            first = first or len(rows)
            # the last page is short (or empty); a server that ignores paging repeats itself: nothing new
            if not new or len(rows) < min(first, _PAGE):
                break
        for o in out:
            if o.client_order_id:
                self._order_ids[o.client_order_id] = o.broker_order_id
        return out

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        known = self._order_ids.get(client_order_id)
        if known is not None:
            try:
                raw = section(self._get(f"{self._acct}/orders/{known}", includeTags="true"), "order")
            except BrokerRejected as exc:
                if exc.status not in (400, 404):
                    raise
                raw = None  # Tradier does not know that id (any more): the day's list is searched instead
            if isinstance(raw, dict):
                return to_order(raw)
        mine = [o for o in self._orders() if o.client_order_id == client_order_id]
        return mine[-1] if mine else None

    def list_orders(self, since: datetime | None = None) -> list[Order]:
        orders = self._orders()
        if since is not None:
            orders = [o for o in orders if o.submitted_at is None or o.submitted_at >= since]
        return sorted(
            orders,
            key=lambda o: o.submitted_at or datetime.min.replace(tzinfo=since.tzinfo if since else None),
        )  # type: ignore[arg-type]

    def _check(self, request: OrderRequest) -> None:
        """What Tradier would refuse, refused before anything is sent."""
        if request.order_type is not OrderType.MARKET:
            raise BrokerError(
                "Tradier adapter sends market orders only (capability trailing_stop=False)",
                code="unsupported",
            )
        what = "contracts" if request.asset_class is AssetClass.OPTION else "shares"
        if request.qty <= 0 or request.qty != request.qty.to_integral_value():
            raise BrokerError(f"Tradier trades whole {what}; got quantity {request.qty}", code="fractional")
        if request.asset_class is AssetClass.OPTION or request.option is not None:
            option_of(request)
        to_tag(request.client_order_id)

    def _form(self, request: OrderRequest) -> dict[str, str]:
        """The order's form; the request was checked by submit_order."""
        common = {
            "quantity": str(int(request.qty)),
            "type": "market",
            "duration": "day",
            "tag": to_tag(request.client_order_id),
        }
        if request.asset_class is AssetClass.OPTION or request.option is not None:
            contract = option_of(request)
            return {
                "class": "option",
                "symbol": contract.underlying,
                "option_symbol": contract.occ_symbol,
                "side": self._option_side(request),
                **common,
            }
        return {"class": "equity", "symbol": request.symbol, "side": request.side.value, **common}

    def _option_side(self, request: OrderRequest) -> str:
        """Tradier wants to know whether an option order opens or closes: the position held decides. A sale
        beyond the long contracts held would write options, which this bot never does."""
        held = next((p.qty for p in self.get_positions() if p.symbol == request.symbol), Decimal(0))
        if request.side is OrderSide.BUY:
            return "buy_to_close" if held < 0 else "buy_to_open"
        if held <= 0 or request.qty > held:
            raise BrokerError(
                f"selling {request.qty} {request.symbol} would write options (held: {held}); "
                "the bot only sells option contracts it holds",
                code="uncovered_option",
            )
        return "sell_to_close"

    def submit_order(self, request: OrderRequest) -> Order:
        self._check(request)
        existing = self.get_order_by_client_id(request.client_order_id)
        if existing is not None:
            return self.track_order(request.client_order_id, existing)
        # built after the look-up: an option's side depends on the contracts held, which a fill of this very
        # order (sent before a restart) would already have changed
        form = self._form(request)
        try:
            self._post_order(request.client_order_id, form)
        except BrokerRejected:
            raise
        except (NetworkError, BrokerError) as exc:  # may have reached Tradier: never send blindly again
            order = self._resolve_unknown(request, form, exc)
            return self.track_order(request.client_order_id, order)
        return self.track_order(request.client_order_id)

    def _post_order(self, client_order_id: str, form: dict[str, str]) -> None:
        reply = self.http.call("POST", f"{self._acct}/orders", form=form)
        placed = section(reply, "order")
        if not isinstance(placed, dict):
            raise BrokerError("Tradier order reply lacks the order", code="malformed_reply")
        if placed.get("id") is not None:
            self._order_ids[client_order_id] = str(placed["id"])

    def _lookup(self, cid: str) -> Order | None:
        try:
            return self.get_order_by_client_id(cid)
        except NetworkError as exc:
            raise OrderStateUnknown(
                f"order {cid}: submission and look-up both failed: {exc}", client_order_id=cid
            ) from exc

    def _resolve_unknown(self, request: OrderRequest, form: dict[str, str], first: Exception) -> Order:
        cid, last = request.client_order_id, first
        for attempt in range(1, self.retry.retries + 1):
            found = self._lookup(cid)
            if found is None:
                self._sleep(self.settle_delay)  # a copy still in flight would land now
                found = self._lookup(cid)
            if found is not None:
                log.info("order %s found at Tradier after an unclear submission (%s)", cid, found.status)
                return found
            self.api_retries += 1
            self._sleep(self.retry.delay(attempt))
            try:
                self._post_order(cid, form)
            except BrokerRejected:
                raise
            except (NetworkError, BrokerError) as exc:
                last = exc
                continue
            # placed: whatever the look-up says now, the order is never sent again
            return self._lookup(cid) or self.track_order(cid)
        found = self._lookup(cid)
        if found is not None:
            return found
        raise NetworkError(
            f"order {cid} could not be placed after {self.retry.retries + 1} attempts: {last}"
        ) from last

    def track_order(self, client_order_id: str, order: Order | None = None) -> Order:
        """Poll until final; at the fill deadline cancel the remainder and return the result."""
        return track_until_final(
            client_order_id,
            order,
            get_order=self.get_order_by_client_id,
            cancel=self.cancel_order,
            fill_timeout=self.fill_timeout,
            poll_interval=self.poll_interval,
            sleep=self._sleep,
            settle_polls=max(3, self.retry.retries),
        )

    def cancel_order(self, client_order_id: str) -> None:
        order = self.get_order_by_client_id(client_order_id)
        if order is None or order.status.is_final:
            return
        self._cancel(order)

    def _cancel(self, order: Order) -> None:
        """DELETE an order. Tradier refuses to cancel an order already final (HTTP 400 "order already in finalized
        state"): it filled or was cancelled meanwhile (the race at a fill deadline, or a DELETE whose first reply
        was lost), which its own state says; that refusal was taken for a rejected order and the fill was lost."""
        try:
            self._read(
                lambda: self.http.call("DELETE", f"{self._acct}/orders/{order.broker_order_id}"),
                f"Tradier cancel of order {order.broker_order_id}",
            )
        except BrokerRejected as exc:
            if exc.status not in (400, 404):
                raise
            now = self.get_order_by_client_id(order.client_order_id) if order.client_order_id else None
            if now is None or not now.status.is_final:
                raise
            log.info(
                "cancel of order %s refused (%s): already %s", order.broker_order_id, exc, now.status.value
            )

    def cancel_all_orders(self) -> int:
        """Only our (tagged) orders: a person's manual orders on the account are left alone."""
        mine = [o for o in self._orders() if o.client_order_id and not o.status.is_final]
        for o in mine:
            self._cancel(o)
        return len(mine)

    def close_position(self, symbol: str, client_order_id: str) -> Order | None:
        existing = self.get_order_by_client_id(client_order_id)
        if existing is not None:
            return self.track_order(client_order_id, existing)
        for o in self._orders():
            if o.symbol == symbol and o.client_order_id and not o.status.is_final:
                self.cancel_order(o.client_order_id)
        held = next((p for p in self.get_positions() if p.symbol == symbol), None)
        if held is None:
            return None
        side = OrderSide.SELL if held.qty > 0 else OrderSide.BUY
        option = OptionContract.from_occ(symbol) if held.asset_class is AssetClass.OPTION else None
        return self.submit_order(
            OrderRequest(
                client_order_id, symbol, side, abs(held.qty), asset_class=held.asset_class, option=option
            )
        )

    # ------------------------------------------------------------------ market data
    def _quotes(self, symbols: list[str]) -> list[dict[str, Any]]:
        raw = section(self._get("/v1/markets/quotes", symbols=",".join(symbols)), "quotes", "quote")
        return [q for q in as_list(raw) if isinstance(q, dict) and q.get("symbol")]

    def get_latest_quote(self, symbol: str) -> Quote:
        for q in self._quotes([symbol]):
            if q["symbol"] == symbol and q.get("bid") is not None and q.get("ask") is not None:
                when = utc_time(q.get("bid_date") or q.get("trade_date")) or utc_now()
                return Quote(symbol, dec(q["bid"], "bid"), dec(q["ask"], "ask"), when)
        raise BrokerError(f"Tradier has no quote for {symbol}", code="no_quote")

    def list_equities(self, symbols: list[str] | None = None) -> list[ListedEquity]:
        """Tradier lists no whole market: the given symbols are looked up by quote (stocks and ETFs only)."""
        if symbols is None:
            raise BrokerError(
                "Tradier has no list of all tradable equities: give the symbols to check (tbot universe build --symbols-file)"
            )
        out = []
        wanted = list(dict.fromkeys(s.upper() for s in symbols))
        for i in range(0, len(wanted), 100):
            for q in self._quotes(wanted[i : i + 100]):
                if q.get("type") in ("stock", "etf"):
                    out.append(
                        ListedEquity(str(q["symbol"]), _EXCHANGES.get(str(q.get("exch")), str(q.get("exch"))))
                    )
        return out

    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        out: dict[str, Snapshot] = {}
        for q in self._quotes(symbols):
            sym = str(q["symbol"])
            if q.get("last") is None:
                continue
            quote = None
            if q.get("bid") is not None and q.get("ask") is not None:
                quote = Quote(sym, dec(q["bid"], "bid"), dec(q["ask"], "ask"), utc_now())
            out[sym] = Snapshot(
                sym,
                dec(q["last"], "last"),
                dec(q["open"], "open") if q.get("open") is not None else None,
                dec(q["prevclose"], "prevclose") if q.get("prevclose") is not None else None,
                self._previous_volume(sym),
                quote,
            )
        return out

    def _previous_volume(self, symbol: str) -> int | None:
        today = utc_now().date()
        days = as_list(
            section(
                self._get(
                    "/v1/markets/history",
                    symbol=symbol,
                    interval="daily",
                    start=(today - timedelta(days=10)).isoformat(),
                    end=today.isoformat(),
                ),
                "history",
                "day",
            )
        )
        earlier = [d for d in days if date.fromisoformat(str(d.get("date"))) < today]
        return int(earlier[-1]["volume"]) if earlier and earlier[-1].get("volume") is not None else None

    def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        out: dict[str, list[Bar]] = {}
        for sym in symbols:
            params = {
                "symbol": sym,
                "interval": "1min",
                "start": exchange_local(start),
                "end": exchange_local(end),
                "session_filter": "all",
            }
            data = as_list(section(self._get("/v1/markets/timesales", **params), "series", "data"))
            bars = []
            for d in data:
                t = utc_time(d.get("time"))
                if t is not None and start <= t < end:
                    bars.append(
                        Bar(
                            sym,
                            t,
                            float(d["open"]),
                            float(d["high"]),
                            float(d["low"]),
                            float(d["close"]),
                            float(d.get("volume") or 0),
                        )
                    )
            out[sym] = bars
        return out
