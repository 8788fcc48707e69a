"""Interactive Brokers adapter on ib_async (DESIGN §9): stocks, inverse ETFs, long puts, trailing stops,
orderRef = our client_order_id, reconnect with backoff after drops and the nightly reset, reconcile on reconnect.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tbot_bot.broker.broker_api import (
    Account,
    AssetClass,
    Bar,
    Broker,
    ListedEquity,
    MarketClock,
    Order,
    OrderRequest,
    OrderType,
    Position,
    Quote,
    Snapshot,
)
from tbot_bot.broker.brokers import ibkr_market
from tbot_bot.broker.brokers.ibkr_market import AuctionImbalance
from tbot_bot.broker.brokers.ibkr_translate import (
    build_contract,
    build_order,
    contract_symbol,
    option_from_contract,
    order_from_trade,
    position_from_ib,
)
from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, ConfigError, NetworkError, TbotError

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.domain.clock import Clock
    from tbot_bot.support.path_resolver import BotHome

_log = logging.getLogger(__name__)

_CONNECTION_ERRORS = ibkr_market.CONNECTION_ERRORS
# OrderRequest.trail_percent is a fraction (0.02 = 2%, as in .env_bot); IB's trailingPercent is percent points
MAX_TRAIL_FRACTION = Decimal("0.5")
_EPOCH = datetime.fromtimestamp(0, UTC)
_LOST_CODES = frozenset({1100, 2110})  # connectivity between TWS and IB lost
_RESTORED_DATA_LOST = 1101  # restored, but subscriptions and state must be rebuilt
# a cancel TWS could not carry out (161 not in a cancellable state; 10148 cannot be cancelled, state: ...): nothing
# was cancelled, the order lives on and may still fill (10147/10149, an order TWS does not know, stay finished)
_CANCEL_REFUSED = frozenset({161, 10148})


@dataclass(slots=True)
class ReconcileReport:
    at: datetime
    open_orders: list[Order] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    unknown_to_broker: list[str] = field(default_factory=list)  # client ids we sent that IB never saw


class IbkrBroker(Broker):
    name = "IBKR"

    def __init__(
        self,
        ib: Any,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        connect_timeout: float = 10.0,
        reconnect_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        market_calendar: str = "XNYS",
        on_reconcile: Callable[[ReconcileReport], None] | None = None,
    ) -> None:
        self.capabilities = capabilities_for("IBKR")
        self.ib = ib
        self.host, self.port, self.client_id, self.account = host, port, client_id, account
        self.endpoint = f"{host}:{port}"
        self._clock = clock
        self._sleep = sleep
        self.connect_timeout = connect_timeout
        # a request TWS never answers (a frozen Gateway, a half-open socket) raises after this long instead of
        # waiting for ever (ib_async's default, 0): the supervisor's outage handling then takes over
        ib.RequestTimeout = connect_timeout
        self.reconnect_attempts = max(1, reconnect_attempts)
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.market_calendar = market_calendar
        self.on_reconcile = on_reconcile
        self.unconfirmed: dict[str, None] = {}  # client ids sent but not yet seen in IB's records (ordered)
        self.connection_lost_at: datetime | None = None
        self.reconnects = 0
        self.last_reconcile: ReconcileReport | None = None
        self._needs_reconcile = False
        self._volume_cache: dict[tuple[str, date], int] = {}
        self._con_ids: dict[str, int] = {}  # IB's contract id by our symbol: ib_async's tickers need it
        # executions: the newest one seen (ib_async forgets them all on a disconnect) and those recovered after
        # a reconnect that no trade holds, by orderRef then execId
        self.last_execution_at: datetime | None = None
        self._recovered: dict[str, dict[str, Any]] = {}
        ib.disconnectedEvent += self._on_disconnected
        ib.errorEvent += self._on_error
        # ib_async sends at most 45 messages a second and queues the rest for its event loop (_send_queued)
        self._throttled = False
        ib.client.throttleStart += self._on_throttle_start
        ib.client.throttleEnd += self._on_throttle_end

    @classmethod
    def from_settings(cls, settings: BotSettings, home: BotHome, *, ib: Any = None, **kw: Any) -> IbkrBroker:
        """IBKR_HOST/IBKR_PORT/IBKR_CLIENT_ID/IBKR_ACCOUNT from broker_credentials.json.enc."""
        from tbot_bot.support.decrypt_secrets import broker_credentials

        creds = broker_credentials(home, "IBKR", ("IBKR_HOST", "IBKR_PORT", "IBKR_CLIENT_ID"))
        try:
            port, client_id = int(creds["IBKR_PORT"]), int(creds["IBKR_CLIENT_ID"])
        except (TypeError, ValueError) as e:
            raise ConfigError("IBKR_PORT and IBKR_CLIENT_ID must be integers") from e
        known = (
            "clock",
            "sleep",
            "connect_timeout",
            "reconnect_attempts",
            "backoff_base",
            "backoff_max",
            "on_reconcile",
        )
        options: dict[str, Any] = {k: kw.pop(k) for k in known if k in kw}
        if kw:
            _log.debug("IbkrBroker ignores build options %s", sorted(kw))
        options.setdefault("market_calendar", settings.MARKET_CALENDAR)
        options.setdefault("connect_timeout", float(settings.API_TIMEOUT))
        # API_RETRY_LIMIT: reconnect attempts per call = the first try plus this many retries
        options.setdefault("reconnect_attempts", int(settings.API_RETRY_LIMIT) + 1)
        if ib is None:
            from ib_async import IB

            ib = IB()
        return cls(
            ib,
            host=str(creds["IBKR_HOST"]).strip(),
            port=port,
            client_id=client_id,
            account=str(creds.get("IBKR_ACCOUNT") or "").strip(),
            **options,
        )

    # ------------------------------------------------------------------ connection
    def _now(self) -> datetime:
        if self._clock is not None:
            return self._clock.now()
        from tbot_bot.support.utils_bot import utc_now

        return utc_now()

    def _on_disconnected(self) -> None:
        # runs inside ib_async's event loop: only note it; the next call (or maintain_connection) reconnects
        self.connection_lost_at = self._now()
        self._needs_reconcile = True
        _log.warning("ibkr: connection lost at %s", self.connection_lost_at.isoformat())

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code in _LOST_CODES or code == _RESTORED_DATA_LOST:
            self._needs_reconcile = True
        if code in _CANCEL_REFUSED:
            self._undo_local_cancel(req_id, code)
        if req_id != -1 or code < 2100:
            _log.info("ibkr error %s (req %s): %s", code, req_id, message)

    def _on_throttle_start(self) -> None:
        self._throttled = True

    def _on_throttle_end(self) -> None:
        self._throttled = False

    def _send_queued(self) -> None:
        """ib_async's queue of messages held back by its pacing (45 a second) is sent only by its event loop, which
        runs inside adapter calls alone: a burst (a flatten, the close's cancels) left the rest unsent for as long as
        the supervisor waited, or for good when it exited. The loop runs here until the queue is empty."""
        deadline = time.monotonic() + max(5.0, self.connect_timeout)
        while self._throttled and time.monotonic() < deadline:
            try:
                self.ib.sleep(0.05)
            except _CONNECTION_ERRORS as e:
                raise NetworkError(f"IB connection failed while sending queued requests: {e}") from e

    def _undo_local_cancel(self, order_id: int, code: int) -> None:
        """ib_async marks an order Cancelled on any error about it, a refused cancel too: the order read as
        finished (REJECTED) while TWS still worked it, and its fill was never journaled. Its status goes back to
        what it was before the error; TWS's own status reports decide from there (Filled, Cancelled, ...)."""
        w = self.ib.wrapper
        trade = w.trades.get((w.clientId, order_id))
        if trade is None or not trade.log:
            return
        last = trade.log[-1]
        if last.errorCode != code or last.status != "Cancelled":
            return
        # the state before the cancel, not the PendingCancel it wrote: a later cancel (the fill deadline's, the
        # close's) is sent again
        before = [
            e.status for e in trade.log[:-1] if e.status and e.status not in ("Cancelled", "PendingCancel")
        ]
        prior = before[-1] if before else "Submitted"
        trade.orderStatus.status = prior
        trade.log[-1] = dataclasses.replace(last, status=prior)
        _log.warning("ibkr: cancel of order %s refused (%s); it stays %s", order_id, code, prior)

    def connect(self) -> None:
        """Connect once (startup state is fetched by ib_async: positions, open/completed orders, executions)."""
        # the connect has its own timeout for each of its steps (handshake, startup sync): RequestTimeout, meant
        # for one request, would cap them all together and fail a slow but working reconnect
        per_request, self.ib.RequestTimeout = self.ib.RequestTimeout, 0
        try:
            self.ib.connect(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.connect_timeout,
                account=self.account,
            )
        except _CONNECTION_ERRORS as e:
            raise NetworkError(f"cannot connect to IB at {self.host}:{self.port}: {e}") from e
        finally:
            self.ib.RequestTimeout = per_request
        if not self.account:
            accounts = list(self.ib.managedAccounts() or [])
            self.account = accounts[0] if len(accounts) == 1 else self.account
        self._needs_reconcile = True

    def _ensure_connected(self) -> None:
        if self.ib.isConnected():
            self._note_executions(self.ib.fills())
            self._pump()  # lets a socket close that already happened surface before we trust the link
        if not self.ib.isConnected():
            last: Exception | None = None
            for attempt in range(1, self.reconnect_attempts + 1):
                try:
                    self.ib.disconnect()  # clears stale session state; a no-op when already down
                    self.connect()
                    self.reconnects += 1
                    _log.info("ibkr: connected (attempt %d)", attempt)
                    break
                except NetworkError as e:
                    last = e
                    if attempt < self.reconnect_attempts:
                        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                        _log.warning(
                            "ibkr: connect attempt %d failed (%s); retry in %.1fs", attempt, e, delay
                        )
                        self._sleep(delay)
            else:
                raise NetworkError(
                    f"IB unreachable after {self.reconnect_attempts} attempts: {last}"
                ) from last
        if self._needs_reconcile:
            self._needs_reconcile = False
            self.reconcile()

    def maintain_connection(self) -> bool:
        """For the supervisor's poll: reconnect (and reconcile) if needed; True when connected."""
        try:
            self._ensure_connected()
        except NetworkError as e:
            _log.warning("ibkr: still disconnected: %s", e)
            return False
        return True

    def _note_executions(self, fills: Iterable[Any]) -> None:
        for f in fills:
            ts = getattr(f.execution, "time", None)
            if isinstance(ts, datetime):
                ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
                if self.last_execution_at is None or ts > self.last_execution_at:
                    self.last_execution_at = ts

    def recover_executions(self) -> int:
        """After a (re)connect: ask IB for our account's executions since the last one seen (`reqExecutions`
        with an ExecutionFilter; ib_async's own startup fetch may have timed out, and a fill that arrived while
        the link was down is otherwise never seen) and keep each one no trade holds. Returns how many were new.
        Everything is keyed by execId, so an execution reported again is still one execution."""
        from ib_async import ExecutionFilter

        since = self.last_execution_at
        # IB reads a time with a dash as UTC; an empty one means all of today's
        flt = ExecutionFilter(acctCode=self.account, time=since.strftime("%Y%m%d-%H:%M:%S") if since else "")
        try:
            with self._answered():
                fills = list(self.ib.reqExecutions(flt) or [])
        except _CONNECTION_ERRORS as e:
            raise NetworkError(f"IB executions request failed: {e}") from e
        held = {f.execution.execId for t in self.ib.trades() for f in t.fills}
        fresh = 0
        for f in fills:
            ref, exec_id = str(f.execution.orderRef or ""), str(f.execution.execId)
            if not ref or exec_id in held or exec_id in self._recovered.get(ref, {}):
                continue
            self._recovered.setdefault(ref, {})[exec_id] = f
            fresh += 1
        self._note_executions(fills)
        if fills:
            _log.info(
                "ibkr: %d executions since %s; %d not held by any trade kept for booking",
                len(fills),
                since.isoformat() if since else "the start of the day",
                fresh,
            )
        return fresh

    def _order(self, trade: Any) -> Order:
        return order_from_trade(trade, self._recovered.get(str(trade.order.orderRef or ""), {}).values())

    def reconcile(self) -> ReconcileReport:
        """After a (re)connect: missed executions first, then what IB holds now and which of our orders it
        never saw."""
        self.recover_executions()
        trades = {str(t.order.orderRef): t for t in self.ib.trades() if t.order.orderRef}
        for cid in [c for c in self.unconfirmed if c in trades and trades[c].order.permId]:
            del self.unconfirmed[cid]  # IB assigned a permId: it has the order
        report = ReconcileReport(
            at=self._now(),
            open_orders=[self._order(t) for t in self.ib.openTrades() if t.order.orderRef],
            positions=[position_from_ib(p) for p in self.ib.positions(self.account)],
            unknown_to_broker=list(self.unconfirmed),
        )
        if report.unknown_to_broker:
            _log.warning("ibkr reconcile: orders IB never received: %s", report.unknown_to_broker)
        _log.info(
            "ibkr reconcile: %d open orders, %d positions", len(report.open_orders), len(report.positions)
        )
        self.last_reconcile = report
        if self.on_reconcile is not None:
            self.on_reconcile(report)
        return report

    @contextmanager
    def _answered(self) -> Iterator[None]:
        """Around a request that waits for TWS's answer: one that timed out (ib.RequestTimeout) means a link that
        looks connected and says nothing. It is closed, so the next call reconnects (and reconciles) instead of
        waiting out the timeout again on the same dead socket."""
        try:
            yield
        except TimeoutError:
            self._drop_silent_link()
            raise
        except TbotError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                self._drop_silent_link()
            raise

    def _drop_silent_link(self) -> None:
        _log.warning("ibkr: no answer within %.0fs; closing the link to reconnect", self.ib.RequestTimeout)
        try:
            self.ib.disconnect()
        except _CONNECTION_ERRORS:
            pass

    def _pump(self) -> None:
        """Let ib_async process what has arrived (statuses, fills) before we read its state."""
        try:
            self.ib.sleep(0)
        except _CONNECTION_ERRORS as e:
            raise NetworkError(f"IB connection failed: {e}") from e

    # ------------------------------------------------------------------ account
    def get_account(self) -> Account:
        self._ensure_connected()
        try:
            with self._answered():
                values = self.ib.accountSummary(self.account)
        except _CONNECTION_ERRORS as e:
            raise NetworkError(f"IB account summary failed: {e}") from e
        tags: dict[str, tuple[str, str]] = {}
        for v in values:
            if not self.account or v.account in (self.account, "All"):
                tags[v.tag] = (v.value, v.currency)

        def money(tag: str) -> Decimal:
            try:
                return Decimal(tags[tag][0])
            except (KeyError, ArithmeticError) as e:
                raise BrokerError(f"IB account summary lacks {tag}") from e

        return Account(
            account_id=self.account or (values[0].account if values else ""),
            cash=money("TotalCashValue"),
            buying_power=money("BuyingPower"),
            equity=money("NetLiquidation"),
            currency=tags.get("NetLiquidation", ("", "USD"))[1] or "USD",
            status="ACTIVE",  # IB has no account status field: an answering account is an active one
        )

    def get_clock(self) -> MarketClock:
        """IB has no market clock: the exchange calendar (MARKET_CALENDAR) decides."""
        from tbot_bot.market_time import session_bounds

        now = self._now()
        is_open, next_open, next_close = False, None, None
        for offset in range(0, 10):
            bounds = session_bounds((now + timedelta(days=offset)).date(), self.market_calendar)
            if bounds is None:
                continue
            open_, close = bounds
            if open_ <= now < close:
                is_open, next_close = True, close
            elif now < open_ and next_open is None:
                next_open = open_
            if next_close is None and now < close:
                next_close = close
            if next_open is not None and next_close is not None:
                break
        return MarketClock(now, is_open, next_open, next_close)

    def get_positions(self) -> list[Position]:
        self._ensure_connected()
        return [position_from_ib(p) for p in self.ib.positions(self.account) if p.position != 0]

    # ------------------------------------------------------------------ orders
    def _find_trade(self, client_order_id: str) -> Any | None:
        matches = [t for t in self.ib.trades() if t.order.orderRef == client_order_id]
        if not matches:
            return None
        if any(t.order.permId for t in matches):  # a permId means IB itself acknowledged the order
            self.unconfirmed.pop(client_order_id, None)
        # duplicates should not exist; if IB shows more than one, the most filled is the one that matters
        return max(matches, key=lambda t: (t.orderStatus.filled or 0, len(t.fills)))

    def _validate(self, request: OrderRequest) -> None:
        if not request.client_order_id:
            raise BrokerError("an order needs a client_order_id", code="invalid")
        if request.qty <= 0 or request.qty != request.qty.to_integral_value():
            raise BrokerError(
                f"IBKR orders need a positive whole quantity, got {request.qty}", code="invalid"
            )
        if request.asset_class is AssetClass.OPTION and request.option is None:
            raise BrokerError("an option order needs an option contract", code="invalid")
        if request.order_type is OrderType.TRAILING_STOP:
            pct = request.trail_percent
            if pct is None or not Decimal(0) < pct <= MAX_TRAIL_FRACTION:
                raise BrokerError(
                    f"trail_percent is a fraction (0.02 = 2%) and must be in (0, {MAX_TRAIL_FRACTION}]; got {pct}",
                    code="invalid",
                )

    def submit_order(self, request: OrderRequest) -> Order:
        self._validate(request)
        self._ensure_connected()
        existing = self._find_trade(request.client_order_id)
        if existing is not None:
            _log.info("ibkr: %s already known to IB; not sent again", request.client_order_id)
            return self._order(existing)
        try:
            contract = build_contract(request)
            ib_order = build_order(request, self.account)
        except ValueError as e:
            raise BrokerError(str(e), code="invalid") from e
        self.unconfirmed[request.client_order_id] = None
        try:
            trade = self.ib.placeOrder(contract, ib_order)
        except _CONNECTION_ERRORS as e:
            # whether IB got it is unknown: the caller looks it up by client_order_id after reconnecting
            raise NetworkError(f"IB placeOrder for {request.client_order_id} failed: {e}") from e
        _log.info(
            "ibkr: sent %s %s %s x%s (%s)",
            request.client_order_id,
            request.side.value,
            contract_symbol(contract),
            request.qty,
            ib_order.orderType,
        )
        self._send_queued()
        return self._order(trade)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        self._ensure_connected()
        trade = self._find_trade(client_order_id)
        return self._order(trade) if trade is not None else None

    def list_orders(self, since: datetime | None = None) -> list[Order]:
        """Our orders (those carrying an orderRef) IB knows this session, oldest first."""
        self._ensure_connected()
        orders = [self._order(t) for t in self.ib.trades() if t.order.orderRef]
        if since is not None:
            orders = [o for o in orders if o.submitted_at is None or o.submitted_at >= since]
        return sorted(orders, key=lambda o: o.submitted_at or _EPOCH)

    def cancel_order(self, client_order_id: str) -> None:
        self._ensure_connected()
        trade = self._find_trade(client_order_id)
        if trade is None:
            raise BrokerError(f"unknown order {client_order_id}", code="not_found")
        # a cancel already asked for is not sent again (TWS refuses the second one: 10148)
        if trade.isDone() or trade.orderStatus.status == "PendingCancel":
            return
        try:
            self.ib.cancelOrder(trade.order)
        except _CONNECTION_ERRORS as e:
            raise NetworkError(f"IB cancel of {client_order_id} failed: {e}") from e
        self._send_queued()

    def cancel_all_orders(self) -> int:
        """Cancels our open orders (with an orderRef); manual orders on the account are left alone."""
        self._ensure_connected()
        count = 0
        for trade in self.ib.openTrades():
            if trade.order.orderRef and not trade.isDone() and trade.orderStatus.status != "PendingCancel":
                try:
                    self.ib.cancelOrder(trade.order)
                except _CONNECTION_ERRORS as e:
                    raise NetworkError(f"IB cancel failed after {count} orders: {e}") from e
                count += 1
        self._send_queued()
        return count

    def close_position(self, symbol: str, client_order_id: str) -> Order | None:
        self._ensure_connected()
        existing = self._find_trade(client_order_id)
        if existing is not None:
            return self._order(existing)
        for pos in self.ib.positions(self.account):
            if contract_symbol(pos.contract) != symbol or pos.position == 0:
                continue
            held = position_from_ib(pos)
            option = option_from_contract(pos.contract)
            request = OrderRequest(
                client_order_id=client_order_id,
                symbol=option.underlying if option else symbol,
                side=OrderSide.SELL if held.qty > 0 else OrderSide.BUY,
                qty=abs(held.qty),
                asset_class=held.asset_class,
                option=option,
            )
            return self.submit_order(request)
        return None

    # ------------------------------------------------------------------ market data
    def get_latest_quote(self, symbol: str) -> Quote:
        self._ensure_connected()
        with self._answered():
            return ibkr_market.latest_quote(self.ib, symbol, self._now(), self._con_ids)

    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        self._ensure_connected()
        with self._answered():
            return ibkr_market.snapshots(self.ib, symbols, self._now(), self._volume_cache, self._con_ids)

    def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        self._ensure_connected()
        with self._answered():
            return ibkr_market.minute_bars(self.ib, symbols, start, end)

    def list_equities(self, symbols: list[str] | None = None) -> list[ListedEquity]:
        """IB has no master list a client may download: the symbols to check must be given."""
        if symbols is None:
            raise BrokerError(
                "IBKR has no list of all tradable equities: give the symbols to check (tbot universe build --symbols-file)"
            )
        self._ensure_connected()
        with self._answered():
            return ibkr_market.qualify_equities(self.ib, [s.upper() for s in symbols])

    def prime_previous_volumes(self, volumes: Mapping[str, int], today: date) -> None:
        """Previous-session volumes from the boot warm-up: snapshots then skip IB's per-symbol daily request."""
        for sym, vol in volumes.items():
            self._volume_cache[(sym, today)] = int(vol)

    def get_index_daily_closes(self, symbol: str, exchange: str = "CBOE") -> dict[date, float]:
        """Recent daily closes of an index (the VIX source with VIX_SOURCE=broker)."""
        self._ensure_connected()
        with self._answered():
            return ibkr_market.index_daily_closes(self.ib, symbol, exchange)

    def get_auction_imbalance(self, symbol: str, wait: float = 2.0) -> AuctionImbalance | None:
        """The imbalance source of enhancements/imbalance_scanner_ibkr.py (IBKR only)."""
        self._ensure_connected()
        with self._answered():
            return ibkr_market.auction_imbalance(self.ib, symbol, wait, self._now(), self._con_ids)
