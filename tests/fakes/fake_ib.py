"""A fake TWS behind a real `ib_async.IB()` (the seam DEPENDENCIES.md describes).

The socket-facing methods (`client.isReady/isConnected/getReqId/placeOrder/cancelOrder`, `IB.connect/disconnect`)
are replaced; everything TWS would say is fed through the real wrapper callbacks (`openOrder`, `orderStatus`,
`execDetails`, `commissionReport`, `position`, `error`, `accountSummary`), so trades, fills, events,
`ib.positions()` and `ib.accountSummary()` behave as they do live. TWS's own book survives a dropped
connection and is replayed on reconnect, as a real TWS does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ib_async import IB, Contract
from ib_async.objects import CommissionReport, Execution
from ib_async.order import Order, OrderState

ACCOUNT = "DU1234567"


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
