"""The Alpaca adapter on alpaca-py: trading (orders, positions, account, clock) and market data.

Every broker reply is treated as possibly late, duplicated, partial or wrong: submissions are idempotent on
client_order_id (an unclear outcome is resolved by looking the id up), market orders are followed until
final, and every vendor error leaves this module as a `tbot_bot.errors` class. See support/architecture.md (Alpaca adapter).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from alpaca.common.enums import Sort
from alpaca.data.enums import DataFeed
from alpaca.data.historical import OptionHistoricalDataClient, StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import PositionIntent, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest, TrailingStopOrderRequest

from tbot_bot.broker.broker_api import (
    Account,
    AssetClass,
    Broker,
    FeeActivity,
    MarketClock,
    OptionContract,
    Order,
    OrderRequest,
    OrderType,
    Position,
)
from tbot_bot.broker.brokers.alpaca_data import AlpacaMarketData
from tbot_bot.broker.brokers.alpaca_translate import (
    FEE_ACTIVITY_TYPES,
    BrokerRejected,
    MalformedReply,
    MarketDataRefused,
    tame_client,
    to_account,
    to_clock,
    to_fee_activity,
    to_order,
    to_position,
    vendor_errors,
)
from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.broker.order_tracking import track_until_final
from tbot_bot.checks import REFUSED, CheckResult, cause_of
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, ConfigError, LogicError, NetworkError, OrderStateUnknown

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.support.path_resolver import BotHome

log = logging.getLogger("tbot_bot.broker.alpaca")

T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ORDERS_PAGE = 500  # Alpaca's maximum page for GET /v2/orders
ACTIVITIES_PAGE = 100  # Alpaca's maximum page for GET /v2/account/activities
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
LONG_OPTIONS_LEVEL = 2  # Alpaca's options levels: 1 covered calls/cash-secured puts, 2 + long calls and puts


class AlpacaBroker(AlpacaMarketData, Broker):
    name = "alpaca"
    # API_RETRY_LIMIT is already spent in here (reads, order look-ups, unclear submissions): a caller must not
    # wrap these methods in a second retrier, or the attempts multiply (ErrorHandler.call checks this flag)
    retries_internally = True

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        base_url: str | None = None,
        data_url: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        data_feed: str = "iex",
        fill_timeout: float = 30.0,
        poll_interval: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not api_key or not secret_key:
            raise ConfigError("Alpaca credentials need ALPACA_API_KEY and ALPACA_SECRET_KEY")
        self.capabilities = capabilities_for("ALPACA")
        self.paper = paper
        self._sleep = sleep or time.sleep
        base = retry or RetryPolicy()
        self.retry = base.with_(
            never_on=(*base.never_on, MarketDataRefused, OrderStateUnknown), on_retry=self._count_retry
        )
        self._outer_on_retry = retry.on_retry if retry is not None else None
        self.fill_timeout = fill_timeout
        self.poll_interval = poll_interval
        try:
            self.data_feed = DataFeed(data_feed.lower())
        except ValueError:
            raise ConfigError(f"unknown Alpaca data feed {data_feed!r}; use iex or sip") from None
        self._sip_volumes, self._sip_refused = {}, False
        self._trading = TradingClient(api_key, secret_key, paper=paper, url_override=base_url or None)
        self._data = StockHistoricalDataClient(api_key, secret_key, url_override=data_url or None)
        # option quotes (GET /v1beta1/options/quotes/latest) price the put a LongPut entry would buy
        self._options = OptionHistoricalDataClient(api_key, secret_key, url_override=data_url or None)
        # bars are read raw: alpaca-py's Bar model requires `n` and `vw`, which Alpaca's own examples omit
        self._data_raw = StockHistoricalDataClient(
            api_key, secret_key, url_override=data_url or None, raw_data=True
        )
        for client in (self._trading, self._data, self._data_raw, self._options):
            tame_client(client, timeout)
        self.endpoint = base_url or (PAPER_URL if paper else LIVE_URL)
        self.api_retries = 0
        self.api_errors = 0

    @classmethod
    def from_settings(cls, settings: BotSettings, home: BotHome, **kwargs: Any) -> AlpacaBroker:
        """Credentials from storage/secrets/broker_credentials.json.enc; API_TIMEOUT and API_RETRY_LIMIT."""
        from tbot_bot.support.decrypt_secrets import broker_credentials, secret_flag

        creds = broker_credentials(home, "ALPACA", ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"))
        paper = secret_flag(creds.get("ALPACA_PAPER"), default=True)
        clock = kwargs.pop("clock", None)
        options: dict[str, Any] = {
            k: kwargs.pop(k) for k in ("retry", "fill_timeout", "poll_interval", "sleep") if k in kwargs
        }
        if kwargs:
            log.debug("AlpacaBroker ignores build options %s", sorted(kwargs))
        if clock is not None and "sleep" not in options:
            options["sleep"] = clock.sleep  # a replay clock waits in replay time
        options.setdefault(
            "retry", RetryPolicy.from_settings(settings, sleep=options.get("sleep", time.sleep))
        )
        return cls(
            str(creds["ALPACA_API_KEY"]),
            str(creds["ALPACA_SECRET_KEY"]),
            paper=paper,
            base_url=creds.get("ALPACA_BASE_URL") or None,
            data_url=creds.get("ALPACA_DATA_URL") or None,
            data_feed=str(creds.get("ALPACA_DATA_FEED") or "iex"),
            timeout=float(settings.API_TIMEOUT),
            **options,
        )

    def close(self) -> None:
        for client in (self._trading, self._data, self._data_raw, self._options):
            client._session.close()

    # --- plumbing -----------------------------------------------------------------------------------
    def _count_retry(self, attempt: int, exc: BaseException, wait: float) -> None:
        self.api_retries += 1
        if self._outer_on_retry is not None:
            self._outer_on_retry(attempt, exc, wait)

    def _once(self, operation: str, fn: Callable[[], T], *, market_data: bool = False) -> T:
        """One call, vendor errors translated, no retry."""
        try:
            with vendor_errors(operation, market_data=market_data):
                return fn()
        except (NetworkError, BrokerError) as exc:
            if not (isinstance(exc, BrokerRejected) and exc.is_not_found):  # "no such order" is an answer
                self.api_errors += 1
            raise

    def _read(self, operation: str, fn: Callable[[], T], *, market_data: bool = False) -> T:
        """An idempotent call: retried on temporary failures under the retry policy."""
        return self.retry.call(self._once, operation, fn, market_data=market_data)

    # --- account ------------------------------------------------------------------------------------
    def get_account(self) -> Account:
        return self._read("get account", lambda: to_account(self._trading.get_account()))

    def get_clock(self) -> MarketClock:
        return self._read("get clock", lambda: to_clock(self._trading.get_clock()))

    def get_positions(self) -> list[Position]:
        return self._read(
            "get positions", lambda: [to_position(p) for p in self._trading.get_all_positions()]
        )

    def _get_position(self, symbol: str) -> Position | None:
        try:
            return self._read(
                f"get position {symbol}", lambda: to_position(self._trading.get_open_position(symbol))
            )
        except BrokerRejected as exc:
            if exc.is_not_found:
                return None
            raise

    # --- orders -------------------------------------------------------------------------------------
    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            return self._read(
                f"look up order {client_order_id}",
                lambda: to_order(self._trading.get_order_by_client_id(client_order_id)),
            )
        except BrokerRejected as exc:
            if exc.is_not_found:
                return None
            raise

    def _alpaca_request(self, request: OrderRequest) -> MarketOrderRequest | TrailingStopOrderRequest:
        if request.asset_class is AssetClass.OPTION or request.option is not None:
            return self._option_request(request)
        if request.qty <= 0:
            raise LogicError(f"order {request.client_order_id}: qty must be positive, got {request.qty}")
        if not 0 < len(request.client_order_id) <= 128:
            raise LogicError(f"client_order_id must be 1..128 characters: {request.client_order_id!r}")
        side = AlpacaSide.BUY if request.side is OrderSide.BUY else AlpacaSide.SELL
        common: dict[str, Any] = {
            "symbol": request.symbol,
            "qty": float(request.qty),
            "side": side,
            "time_in_force": TimeInForce.DAY,
            "client_order_id": request.client_order_id,
        }
        if request.order_type is OrderType.MARKET:
            return MarketOrderRequest(**common)
        trail = request.trail_percent
        # trail_percent is a fraction (OPEN_TRAILING_STOP_PCT=0.02 means 2%); Alpaca wants percent points
        if trail is None or not Decimal(0) < trail < Decimal(1):
            raise LogicError(
                f"trailing stop {request.client_order_id}: trail_percent must be a fraction in (0,1)"
            )
        if request.qty != request.qty.to_integral_value():
            raise BrokerError("Alpaca trailing stops need whole shares", code="fractional_trailing_stop")
        return TrailingStopOrderRequest(**common, trail_percent=float(trail * 100))

    def _check_option(self, request: OrderRequest) -> OptionContract:
        """What Alpaca refuses of a single-leg option order, refused before anything is sent."""
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
        if request.order_type is not OrderType.MARKET:
            raise BrokerError(
                f"Alpaca takes option orders as market or limit (the bot sends market), not {request.order_type}",
                code="unsupported",
            )
        if request.qty <= 0 or request.qty != request.qty.to_integral_value():
            raise BrokerError(f"Alpaca trades whole option contracts; got {request.qty}", code="fractional")
        if not 0 < len(request.client_order_id) <= 128:
            raise LogicError(f"client_order_id must be 1..128 characters: {request.client_order_id!r}")
        return contract

    def _option_request(self, request: OrderRequest) -> MarketOrderRequest:
        """A market day order for whole contracts of the OCC symbol. Its position_intent comes from the
        contracts held: a sale beyond them would write options, which this bot never does."""
        contract = self._check_option(request)
        held = self._get_position(contract.occ_symbol)
        qty_held = held.qty if held is not None else Decimal(0)
        if request.side is OrderSide.BUY:
            intent = PositionIntent.BUY_TO_CLOSE if qty_held < 0 else PositionIntent.BUY_TO_OPEN
        elif 0 < request.qty <= qty_held:
            intent = PositionIntent.SELL_TO_CLOSE
        else:
            raise BrokerError(
                f"selling {request.qty} {contract.occ_symbol} would write options (held: {qty_held}); "
                "the bot only sells option contracts it holds",
                code="uncovered_option",
            )
        return MarketOrderRequest(
            symbol=contract.occ_symbol,
            qty=int(request.qty),
            side=AlpacaSide.BUY if request.side is OrderSide.BUY else AlpacaSide.SELL,
            time_in_force=TimeInForce.DAY,  # Alpaca takes option orders for the day only
            client_order_id=request.client_order_id,
            position_intent=intent,
        )

    def submit_order(self, request: OrderRequest) -> Order:
        """Idempotent on client_order_id. Market orders are followed until final (or cancelled at the
        fill deadline, so nothing keeps filling unseen); trailing stops are returned as accepted."""
        if request.asset_class is AssetClass.OPTION or request.option is not None:
            self._check_option(request)
            # an option's intent depends on the contracts held, which this very order (sent before a
            # restart) may already have changed: an order Alpaca knows is returned, never re-derived
            known = self.get_order_by_client_id(request.client_order_id)
            if known is not None:
                self._check_matches(known, request)
                if not known.status.is_final:
                    known = self.track_order(request.client_order_id, known)
                return known
        payload = self._alpaca_request(request)
        cid = request.client_order_id
        log.info(
            "submit %s %s %s %s (%s)", cid, request.side, request.qty, request.symbol, request.order_type
        )
        try:
            order = self._once(f"submit order {cid}", lambda: to_order(self._trading.submit_order(payload)))
            self._check_matches(order, request)
        except BrokerRejected as exc:
            if not exc.is_duplicate_client_id:
                log.warning("order %s rejected: %s (code %s)", cid, exc, exc.code)
                raise
            log.info("order %s already known to Alpaca (duplicate id): returning the existing order", cid)
            order = self._existing(request, exc)
        except (NetworkError, MalformedReply) as exc:
            log.warning("order %s outcome unknown after %s: %s; looking it up", cid, type(exc).__name__, exc)
            order = self._resolve_unknown(request, payload, exc)
        if request.order_type is OrderType.MARKET and not order.status.is_final:
            order = self.track_order(cid, order)
        return order

    def _check_matches(self, order: Order, request: OrderRequest) -> None:
        if order.client_order_id != request.client_order_id:
            raise MalformedReply(f"reply is for {order.client_order_id}, not {request.client_order_id}")
        if (order.symbol, order.side, order.qty) != (request.symbol, request.side, request.qty):
            raise LogicError(
                f"client_order_id {request.client_order_id} is already used at Alpaca for "
                f"{order.side} {order.qty} {order.symbol}, not {request.side} {request.qty} {request.symbol}"
            )

    def _existing(self, request: OrderRequest, cause: Exception) -> Order:
        found = self.get_order_by_client_id(request.client_order_id)
        if found is None:
            raise OrderStateUnknown(
                f"Alpaca calls {request.client_order_id} a duplicate but cannot find it",
                client_order_id=request.client_order_id,
            ) from cause
        self._check_matches(found, request)
        return found

    def _resolve_unknown(self, request: OrderRequest, payload: Any, first: Exception) -> Order:
        """The submission may or may not have reached Alpaca. Look the id up; only when Alpaca positively
        says it has no such order is it sent again - the unique client_order_id makes a racing copy harmless."""
        cid = request.client_order_id
        last: Exception = first
        for attempt in range(1, self.retry.retries + 1):
            try:
                found = self.get_order_by_client_id(cid)
            except (NetworkError, MalformedReply) as exc:
                raise OrderStateUnknown(
                    f"order {cid}: submission and look-up both failed: {exc}", client_order_id=cid
                ) from exc
            if found is not None:
                self._check_matches(found, request)
                log.info("order %s found at Alpaca after an unclear submission (%s)", cid, found.status)
                return found
            wait = self.retry.delay(attempt)
            self._count_retry(attempt, last, wait)
            self.retry.sleep(wait)
            try:
                order = self._once(
                    f"resubmit order {cid}", lambda: to_order(self._trading.submit_order(payload))
                )
                self._check_matches(order, request)
                log.info("order %s was not at Alpaca; sent again (attempt %d)", cid, attempt + 1)
                return order
            except BrokerRejected as exc:
                if exc.is_duplicate_client_id:
                    return self._existing(request, exc)
                log.warning("order %s rejected: %s (code %s)", cid, exc, exc.code)
                raise
            except (NetworkError, MalformedReply) as exc:
                last = exc
        found = self.get_order_by_client_id(cid)
        if found is not None:
            self._check_matches(found, request)
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

    def _orders(self, flt: GetOrdersRequest) -> list[Order]:
        return [to_order(o) for o in self._trading.get_orders(flt)]

    def list_orders(self, since: datetime | None = None) -> list[Order]:
        out: dict[str, Order] = {}
        after = since
        while True:
            flt = GetOrdersRequest(
                status=QueryOrderStatus.ALL, limit=ORDERS_PAGE, after=after, direction=Sort.ASC, nested=False
            )
            page = self._read("list orders", partial(self._orders, flt))
            fresh = [o for o in page if o.broker_order_id not in out]
            for o in page:
                out[o.broker_order_id] = o  # pages overlap by design (see below): keep one of each
            if len(page) < ORDERS_PAGE or not fresh:
                break
            newest = page[-1].submitted_at
            if newest is None:
                break
            # `after` is strict: step back 1 µs so orders sharing the boundary timestamp are not skipped
            after = newest - timedelta(microseconds=1)
        return sorted(out.values(), key=lambda o: o.submitted_at or EPOCH)

    def cancel_order(self, client_order_id: str) -> None:
        order = self.get_order_by_client_id(client_order_id)
        if order is None:
            log.warning("cancel %s: Alpaca has no such order", client_order_id)
            return
        if order.status.is_final:
            return
        try:
            self._read(
                f"cancel order {client_order_id}",
                lambda: self._trading.cancel_order_by_id(order.broker_order_id),
            )
        except BrokerRejected as exc:
            # 404/422: it filled or was cancelled meanwhile - the order's own state tells which
            if exc.status in (404, 422):
                log.info("cancel %s refused (%s): already final", client_order_id, exc)
                return
            raise

    def cancel_all_orders(self) -> int:
        """DELETE /v2/orders answers 207 with one status per order: only the 2xx ones were cancelled (a 404
        entry is an order that had already gone, a 500 one an order Alpaca could not cancel)."""
        replies: Any = self._read("cancel all orders", self._trading.cancel_orders)
        cancelled = 0
        for r in replies:
            if 200 <= int(r.status) < 300:
                cancelled += 1
            else:
                log.warning("cancel all: order %s not cancelled (HTTP %s %s)", r.id, r.status, r.body or "")
        return cancelled

    def close_position(self, symbol: str, client_order_id: str) -> Order | None:
        """A market order carrying our client_order_id (DELETE /v2/positions cannot carry one). Open orders
        on the symbol are cancelled first: an open trailing stop holds the shares and Alpaca would refuse."""
        existing = self.get_order_by_client_id(client_order_id)
        if existing is not None:
            if existing.order_type is OrderType.MARKET and not existing.status.is_final:
                return self.track_order(client_order_id, existing)
            return existing
        if self._get_position(symbol) is None:
            return None
        self._cancel_open_orders(symbol)
        position = self._get_position(symbol)  # the stop may have filled while we cancelled
        if position is None or position.qty == 0:
            return None
        side = OrderSide.SELL if position.qty > 0 else OrderSide.BUY
        option = OptionContract.from_occ(symbol) if position.asset_class is AssetClass.OPTION else None
        return self.submit_order(
            OrderRequest(
                client_order_id,
                symbol,
                side,
                abs(position.qty),
                asset_class=position.asset_class,
                option=option,
            )
        )

    def _cancel_open_orders(self, symbol: str) -> None:
        flt = GetOrdersRequest(
            status=QueryOrderStatus.OPEN, symbols=[symbol], limit=ORDERS_PAGE, nested=False
        )
        open_orders = self._read(
            f"open orders {symbol}", lambda: [to_order(o) for o in self._trading.get_orders(flt)]
        )
        for o in open_orders:
            if o.symbol == symbol and not o.status.is_final:
                self.cancel_order(o.client_order_id)

    # --- health -------------------------------------------------------------------------------------
    def fee_activities(self, since: date) -> list[FeeActivity]:
        """FEE and PTC account activities dated on or after `since`, oldest first, every page."""
        out: list[FeeActivity] = []
        token: str | None = None
        while True:
            query = {
                "activity_types": ",".join(FEE_ACTIVITY_TYPES),
                "after": (since - timedelta(days=1)).isoformat(),  # `after` is strict: the day before
                "direction": "asc",
                "page_size": ACTIVITIES_PAGE,
            }
            if token is not None:
                query["page_token"] = token
            page: Any = self._read(
                "list fee activities", partial(self._trading.get, "/account/activities", query)
            )
            if not isinstance(page, list):
                raise MalformedReply(f"account activities: expected a list, got {type(page).__name__}")
            out.extend(a for raw in page if (a := to_fee_activity(raw)) is not None)
            if len(page) < ACTIVITIES_PAGE:
                return out
            token = str(page[-1].get("id")) if isinstance(page[-1], dict) else None
            if not token:
                return out

    def self_check(self) -> CheckResult:
        result = super().self_check()
        if not result.ok:
            return result
        try:
            raw: Any = self._read("get account", self._trading.get_account)
        except (NetworkError, BrokerError) as exc:
            return CheckResult(
                False,
                f"broker alpaca at {self.endpoint} unreachable: {exc}",
                {"broker": self.name},
                cause_of(exc),
            )
        if raw.trading_blocked or raw.account_blocked:
            return CheckResult(
                False, "Alpaca account is blocked from trading", {"broker": self.name}, REFUSED
            )
        level = getattr(raw, "options_trading_level", None)
        if self.capabilities.options and level is not None and int(level) < LONG_OPTIONS_LEVEL:
            # an account below level 2 cannot buy puts: LongPut entries are then denied, not sent and refused
            log.warning("Alpaca options trading level %s < %d: long puts disabled", level, LONG_OPTIONS_LEVEL)
            self.capabilities = replace(self.capabilities, options=False)
        if self.capabilities.short_sell and raw.shorting_enabled is False:
            # an account that may not short (a cash account, shorting off): ShortSell entries are then denied,
            # not sent and refused by the broker
            log.warning("Alpaca account has shorting disabled: short sales disabled")
            self.capabilities = replace(self.capabilities, short_sell=False)
        context = dict(
            result.context,
            paper=self.paper,
            shorting_enabled=bool(raw.shorting_enabled),
            options_trading_level=level,
        )
        return CheckResult(True, "ok", context)
