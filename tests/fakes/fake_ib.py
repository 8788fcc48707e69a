"""A fake TWS behind a real `ib_async.IB()` (the seam DEPENDENCIES.md describes).

The socket-facing methods (`client.isReady/isConnected/getReqId/placeOrder/cancelOrder`, the market data requests
`client.reqContractDetails/reqMktData/cancelMktData/reqHistoricalData`, `IB.connect/disconnect`) are replaced; everything TWS would
say is fed through the real wrapper callbacks (`openOrder`, `orderStatus`, `execDetails`, `commissionReport`,
`position`, `error`, `accountSummary`, `contractDetails`, `priceSizeTick`, `tickSize`, `tickSnapshotEnd`, `historicalData`,
`historicalDataEnd`), so trades, fills, events, `ib.positions()`, `ib.accountSummary()`, `ib.reqTickers()`,
`ib.qualifyContracts()`, `ib.reqMktData()` and `ib.reqHistoricalData()` behave as they do live (ib_async's own request code runs). TWS's own book survives a dropped
connection and is replayed on reconnect, as a real TWS does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ib_async import IB, Contract
from ib_async.contract import ContractDetails
from ib_async.objects import BarData, CommissionReport, Execution
from ib_async.order import Order, OrderState

ACCOUNT = "DU1234567"
SIZE_TICKS = (
    34,
    36,
    61,
)  # auction volume, auction imbalance, regulatory imbalance (sizes; 35, the price, is not)


def contract_key(contract: Contract) -> str:
    """The symbol TWS's data is kept under: the ticker, or an option's OCC symbol."""
    if contract.secType != "OPT":
        return str(contract.symbol)
    ymd = str(contract.lastTradeDateOrContractMonth)
    return f"{contract.symbol}{ymd[2:8]}{contract.right}{round(contract.strike * 1000):08d}"


@dataclass
class TwsOrder:
    order_id: int
    perm_id: int
    contract: Contract
    order: Order
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    executions: list[tuple[Execution, float]] = field(default_factory=list)  # (execution, commission)


class FakeTws:
    def __init__(self, account: str = ACCOUNT, now: datetime | None = None) -> None:
        self.ib = IB()
        self.account = account
        self.now = now or datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
        self.connected = False
        self.refuse_connects = 0
        self.connect_calls = 0
        self.book: dict[int, TwsOrder] = {}
        self.positions: dict[str, tuple[Contract, float, float]] = {}  # key -> (contract, qty, avgCost)
        self.account_values = {
            "NetLiquidation": "100000.00",
            "TotalCashValue": "60000.00",
            "BuyingPower": "200000.00",
        }
        self.placed: list[tuple[int, Contract, Order]] = []
        self.cancelled: list[int] = []
        # ib_async's startup fetch re-reads the day's executions on connect; False models the fetch timing out
        # (ib_async logs it and carries on), so only an explicit reqExecutions brings them back
        self.startup_executions = True
        self.execution_requests: list[Any] = []  # the ExecutionFilter of every reqExecutions
        self.lose_next_place = False  # the order reaches TWS but the connection dies before any reply
        self.fail_next_place = False  # the order never leaves: the socket is already dead
        # market data TWS answers with: by symbol (an option by its OCC symbol) the ticks of a snapshot or a
        # subscription ({tick type: value}), and the historical bars as TWS sends them (date text, o, h, l, c, v)
        self.ticks: dict[str, dict[int, float]] = {}
        self.history: dict[str, list[tuple[str, float, float, float, float, float]]] = {}
        self.market_requests: list[tuple[Contract, str, bool]] = []  # (contract, generic ticks, snapshot)
        self.history_requests: list[tuple[Contract, str, str, str, str, bool, int]] = []
        self.market_data_cancelled: list[int] = []
        self.contract_requests: list[str] = []  # the symbols whose contract details were asked for
        self.con_ids: dict[str, int] = {}  # the ids TWS gave the contracts it knows
        # contracts TWS knows beyond those it has data for, with their primary exchange (a contract search's answer)
        self.listings: dict[str, str] = {}
        # the socket died: every market data request raises as ib_async's send does
        self.market_data_lost = False
        # TWS ends a market data request with this error instead of data (10197 a competing live session, 354
        # no subscription); or (silent) never answers at all (a frozen Gateway, a half-open socket)
        self.market_data_refusal: tuple[int, str] | None = None
        self.market_data_silent = False
        self._next_id = 1
        self._next_perm = 9000
        self._next_exec = 1
        c = self.ib.client
        c.isReady = lambda: self.connected  # type: ignore[method-assign]
        c.isConnected = lambda: self.connected  # type: ignore[method-assign]
        c.getReqId = self._req_id  # type: ignore[method-assign]
        c.placeOrder = self._place  # type: ignore[method-assign]
        c.cancelOrder = self._cancel  # type: ignore[method-assign]
        c.reqAccountSummary = self._req_account_summary  # type: ignore[method-assign]
        c.reqExecutions = self._req_executions  # type: ignore[method-assign]
        c.reqContractDetails = self._req_contract_details  # type: ignore[method-assign]
        c.reqMktData = self._req_mkt_data  # type: ignore[method-assign]
        c.cancelMktData = self._cancel_mkt_data  # type: ignore[method-assign]
        c.reqHistoricalData = self._req_historical_data  # type: ignore[method-assign]
        self.ib.connect = self._connect  # type: ignore[method-assign]
        self.ib.disconnect = self._disconnect  # type: ignore[method-assign]
        self.ib.sleep = lambda *a, **k: True  # type: ignore[method-assign]  # nothing to pump: we feed directly

    # ---------------------------------------------------------------- socket stand-ins
    def _req_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _connect(self, host: str = "", port: int = 0, clientId: int = 1, timeout: float = 4, **kw: Any) -> IB:
        self.connect_calls += 1
        if self.refuse_connects > 0:
            self.refuse_connects -= 1
            raise ConnectionRefusedError(111, "Connection refused")
        w = self.ib.wrapper
        w.reset()
        w.clientId = clientId
        w.accounts = [self.account]
        self.connected = True
        self._replay()
        self.ib.connectedEvent.emit()
        return self.ib

    def _disconnect(self) -> None:
        if self.connected:
            self.connected = False
            self.ib.disconnectedEvent.emit()
            self.ib.wrapper.reset()

    def _place(self, order_id: int, contract: Contract, order: Order) -> None:
        if self.fail_next_place:
            self.fail_next_place = False
            raise ConnectionError("Not connected")
        self.placed.append((order_id, copy.copy(contract), copy.copy(order)))
        perm = self._next_perm
        self._next_perm += 1
        self.book[order_id] = TwsOrder(order_id, perm, copy.copy(contract), copy.copy(order))
        if self.lose_next_place:
            self.lose_next_place = False
            self.drop()

    def _cancel(self, order_id: int, manual_time: str = "") -> None:
        self.cancelled.append(order_id)

    def refuse_cancel(self, order_id: int, state: str = "PendingCancel") -> None:
        """TWS's answer to a cancel it cannot carry out: the order is left as it is (and may still fill)."""
        self.ib.wrapper.error(
            order_id,
            10148,
            f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {state}.",
            "",
        )

    def _market_data_socket(self) -> None:
        if self.market_data_lost or not self.connected:
            raise ConnectionError("Socket disconnect")

    def _req_contract_details(self, req_id: int, contract: Contract) -> None:
        """A contract TWS lists or has data for is found (with its id and primary exchange); any other is answered as
        TWS does: error 200."""
        self._market_data_socket()
        symbol = contract_key(contract)
        self.contract_requests.append(symbol)
        w = self.ib.wrapper
        if symbol not in self.ticks and symbol not in self.history and symbol not in self.listings:
            w.error(req_id, 200, "No security definition has been found for the request", "")
            return
        found = copy.copy(contract)
        found.conId = self.con_ids.setdefault(symbol, 756733 + len(self.con_ids))
        found.primaryExchange = self.listings.get(symbol, "")
        w.contractDetails(req_id, ContractDetails(contract=found))
        w.contractDetailsEnd(req_id)

    def _req_mkt_data(
        self,
        req_id: int,
        contract: Contract,
        generic_ticks: str,
        snapshot: bool,
        regulatory: bool,
        options: Any,
    ) -> None:
        """TWS's answer to a market data request: the ticks it holds for the contract, then (a snapshot) the end."""
        self._market_data_socket()
        symbol = contract_key(contract)
        self.market_requests.append((copy.copy(contract), generic_ticks, snapshot))
        w = self.ib.wrapper
        if self.market_data_silent:
            return
        if self.market_data_refusal is not None:
            w.error(req_id, *self.market_data_refusal, "")
            return
        for tick, value in self.ticks.get(symbol, {}).items():
            if tick in SIZE_TICKS:
                w.tickSize(req_id, tick, value)
            else:  # a price tick; bid, ask and last come with a size (a zero size is IB's "no quote")
                w.priceSizeTick(req_id, tick, value, 100.0 if tick in (1, 2, 4) else 0.0)
        if snapshot:
            w.tickSnapshotEnd(req_id)

    def _cancel_mkt_data(self, req_id: int) -> None:
        self.market_data_cancelled.append(req_id)

    def _req_historical_data(
        self, req_id: int, contract: Contract, end: str, duration: str, bar_size: str, what: str, rth: bool,
        date_format: int, keep_up_to_date: bool, chart_options: Any,
    ) -> None:  # fmt: skip
        self._market_data_socket()
        symbol = contract_key(contract)
        self.history_requests.append((copy.copy(contract), end, duration, bar_size, what, rth, date_format))
        w = self.ib.wrapper
        for text, o, h, low, c, v in self.history.get(symbol, []):
            w.historicalData(req_id, BarData(date=text, open=o, high=h, low=low, close=c, volume=v))
        w.historicalDataEnd(req_id, "", "")

    # ---------------------------------------------------------------- what TWS says
    def _order_for_wire(self, rec: TwsOrder) -> Order:
        o = copy.copy(rec.order)
        o.orderId, o.permId, o.clientId = rec.order_id, rec.perm_id, self.ib.wrapper.clientId
        return o

    def _status(self, rec: TwsOrder) -> None:
        self.ib.wrapper.orderStatus(
            rec.order_id, rec.status, rec.filled, float(rec.order.totalQuantity) - rec.filled,
            rec.avg_price, rec.perm_id, 0, rec.avg_price, self.ib.wrapper.clientId, "", 0.0,
        )  # fmt: skip

    def _replay(self) -> None:
        w = self.ib.wrapper
        for rec in self.book.values():
            state = OrderState(status=rec.status)
            if rec.status in ("Filled", "Cancelled", "Inactive"):
                w._results["completedOrders"] = []
                w.completedOrder(copy.copy(rec.contract), self._order_for_wire(rec), state)
                w._results.pop("completedOrders")
            else:
                w.openOrder(rec.order_id, copy.copy(rec.contract), self._order_for_wire(rec), state)
                self._status(rec)
            for ex, commission in rec.executions if self.startup_executions else []:
                w.execDetails(-1, copy.copy(rec.contract), copy.copy(ex))
                w.commissionReport(CommissionReport(execId=ex.execId, commission=commission, currency="USD"))
        for contract, qty, avg in self.positions.values():
            w.position(self.account, copy.copy(contract), qty, avg)

    def ack(self, order_id: int) -> None:
        rec = self.book[order_id]
        self.ib.wrapper.openOrder(
            order_id, rec.contract, self._order_for_wire(rec), OrderState(status="Submitted")
        )
        self._status(rec)

    def fill(
        self, order_id: int, qty: float, price: float, commission: float = 1.0, commission_later: bool = False
    ) -> str:
        """One execution of `qty` at `price`; updates status, position and commission like TWS.
        `commission_later`: the commission report is not sent yet (TWS may send it after the order's status):
        `report_commission` sends it."""
        rec = self.book[order_id]
        exec_id = f"0000e0d5.{self._next_exec:08d}.01.01"
        self._next_exec += 1
        new_total = rec.filled + qty
        rec.avg_price = (rec.avg_price * rec.filled + price * qty) / new_total
        rec.filled = new_total
        rec.status = "Filled" if rec.filled >= float(rec.order.totalQuantity) else "Submitted"
        side = "BOT" if rec.order.action == "BUY" else "SLD"
        ex = Execution(
            execId=exec_id, time=self.now, acctNumber=self.account, exchange="ISLAND", side=side,
            shares=qty, price=price, permId=rec.perm_id, clientId=self.ib.wrapper.clientId,
            orderId=order_id, cumQty=rec.filled, avgPrice=rec.avg_price, orderRef=rec.order.orderRef,
        )  # fmt: skip
        rec.executions.append((ex, commission))
        if self.connected:
            self.ib.wrapper.execDetails(-1, rec.contract, copy.copy(ex))
            if not commission_later:
                self.report_commission(exec_id)
            self._status(rec)
        signed = qty if side == "BOT" else -qty
        self._add_position(rec.contract, signed, price)
        return exec_id

    def report_commission(self, exec_id: str) -> None:
        """The commission report of an execution (`fill` sends it, unless told to leave it for later)."""
        commission = next(c for rec in self.book.values() for ex, c in rec.executions if ex.execId == exec_id)
        self.ib.wrapper.commissionReport(
            CommissionReport(execId=exec_id, commission=commission, currency="USD")
        )

    def reject(
        self, order_id: int, code: int = 201, text: str = "Order rejected - reason: insufficient margin"
    ) -> None:
        rec = self.book[order_id]
        rec.status = "Cancelled"
        self.ib.wrapper.error(order_id, code, text, "")

    def confirm_cancel(self, order_id: int) -> None:
        rec = self.book[order_id]
        rec.status = "Cancelled"
        self._status(rec)

    def _key(self, contract: Contract) -> str:
        return f"{contract.secType}:{contract.symbol}:{contract.lastTradeDateOrContractMonth}:{contract.strike}:{contract.right}"

    def _add_position(self, contract: Contract, signed_qty: float, price: float) -> None:
        key = self._key(contract)
        mult = float(contract.multiplier or 1) if contract.secType == "OPT" else 1.0
        _, qty, avg = self.positions.get(key, (contract, 0.0, 0.0))
        new_qty = qty + signed_qty
        new_avg = (
            avg
            if abs(new_qty) < abs(qty)
            else (avg * abs(qty) + price * mult * abs(signed_qty)) / max(abs(new_qty), 1e-12)
        )
        pos_contract = copy.copy(contract)
        if not pos_contract.conId:
            pos_contract.conId = 100000 + len(self.positions) + 1
        self.positions[key] = (
            self.positions.get(key, (pos_contract,))[0],
            new_qty,
            new_avg if new_qty else 0.0,
        )
        if self.connected:
            self.ib.wrapper.position(self.account, self.positions[key][0], new_qty, self.positions[key][2])

    def set_position(self, contract: Contract, qty: float, avg_cost: float) -> None:
        c = copy.copy(contract)
        c.conId = c.conId or 200000 + len(self.positions)
        self.positions[self._key(c)] = (c, qty, avg_cost)
        if self.connected:
            self.ib.wrapper.position(self.account, c, qty, avg_cost)

    def _req_executions(self, req_id: int, flt: Any) -> None:
        """TWS answers reqExecutions with the account's executions at or after the filter's time
        ("yyyymmdd-hh:mm:ss", UTC), then execDetailsEnd."""
        self.execution_requests.append(copy.copy(flt))
        since = datetime.strptime(flt.time, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC) if flt.time else None
        w = self.ib.wrapper
        for rec in self.book.values():
            for ex, commission in rec.executions:
                if flt.acctCode and ex.acctNumber != flt.acctCode or since and ex.time < since:
                    continue
                w.execDetails(req_id, copy.copy(rec.contract), copy.copy(ex))
                w.commissionReport(CommissionReport(execId=ex.execId, commission=commission, currency="USD"))
        w.execDetailsEnd(req_id)

    def replay_execution(self, exec_id: str) -> None:
        """TWS sends an execution it already sent (a replay after a hiccup): same execId, same fill."""
        for rec in self.book.values():
            for ex, commission in rec.executions:
                if ex.execId == exec_id:
                    self.ib.wrapper.execDetails(-1, copy.copy(rec.contract), copy.copy(ex))
                    self.ib.wrapper.commissionReport(
                        CommissionReport(execId=exec_id, commission=commission, currency="USD")
                    )

    def _req_account_summary(self, req_id: int, group: str, tags: str) -> None:
        for tag, value in self.account_values.items():
            self.ib.wrapper.accountSummary(req_id, self.account, tag, value, "USD")
        self.ib.wrapper.accountSummaryEnd(req_id)

    def drop(self) -> None:
        """The socket dies (nightly reset, network): ib_async resets its state and emits disconnectedEvent."""
        if not self.connected:
            return
        self.connected = False
        self.ib.wrapper.connectionClosed()
        self.ib.disconnectedEvent.emit()
