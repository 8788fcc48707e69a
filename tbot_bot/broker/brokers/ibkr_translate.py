"""Pure translations between ib_async objects and the broker interface's records (no I/O here).

IB reports order state as strings on `Trade.orderStatus.status`, fills as `Trade.fills` (one per execution,
deduplicated by execId) and rejections as error log entries on the trade; this module turns them into `Order`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tbot_bot.broker.broker_api import (
    AssetClass,
    Fill,
    OptionContract,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
)
from tbot_bot.domain.vocab import OPTION_MULTIPLIER, OrderSide

UNSET_DOUBLE_LIMIT = 1e300  # ib_async's UNSET_DOUBLE is sys.float_info.max: "not reported yet"

# IB status string -> ours, before partial fills are taken into account
_STATUS = {
    "PendingSubmit": OrderStatus.NEW,
    "ApiPending": OrderStatus.NEW,
    "PreSubmitted": OrderStatus.ACCEPTED,
    "Submitted": OrderStatus.ACCEPTED,
    "PendingCancel": OrderStatus.ACCEPTED,
    "ValidationError": OrderStatus.ACCEPTED,  # a warning: IB keeps the order live
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Inactive": OrderStatus.REJECTED,
}
_ORDER_TYPES = {
    "MKT": OrderType.MARKET,
    "TRAIL": OrderType.TRAILING_STOP,
    "STP": OrderType.STOP,
    "LMT": OrderType.LIMIT,
    "STP LMT": OrderType.STOP_LIMIT,
}
# IB error codes on an order that mean "refused", not "cancelled by us" (a refused *cancel*, 161 and 10147-10149,
# refuses nothing of the order: the adapter undoes ib_async's local Cancelled for those)
REJECT_CODES = frozenset({103, 110, 200, 201, 203, 382, 383, 387, 388, 392, 434, 461})


def _dec(x: Any) -> Decimal:
    return Decimal(str(x))


def _utc(ts: Any) -> datetime | None:
    if not isinstance(ts, datetime):
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def build_contract(request: OrderRequest) -> Any:
    """Stock (incl. inverse ETFs) or Option contract, SMART-routed in USD."""
    from ib_async import Stock

    if request.asset_class is AssetClass.OPTION:
        if request.option is None:
            raise ValueError("an option order needs OrderRequest.option")
        return option_contract(request.option)
    return Stock(request.symbol, "SMART", "USD")


def option_contract(o: OptionContract) -> Any:
    """IB's contract for an option, SMART-routed in USD (orders and quotes ask for the same one)."""
    from ib_async import Option

    return Option(
        o.underlying,
        o.expiry.strftime("%Y%m%d"),
        float(o.strike),
        o.right,
        "SMART",
        multiplier=str(OPTION_MULTIPLIER),
        currency="USD",
    )


def quote_contract(symbol: str) -> Any:
    """The contract a quote of `symbol` asks for: an option for an OCC symbol (a put's premium), else a stock."""
    from ib_async import Stock

    option = OptionContract.from_occ(symbol)
    return option_contract(option) if option is not None else Stock(symbol, "SMART", "USD")


def build_order(request: OrderRequest, account: str) -> Any:
    """A DAY order carrying our client_order_id as orderRef (how we find it again after any failure)."""
    from ib_async import Order as IbOrder

    action = "BUY" if request.side is OrderSide.BUY else "SELL"
    common: dict[str, Any] = {
        "action": action,
        "totalQuantity": float(request.qty),
        "orderRef": request.client_order_id,
        "tif": "DAY",
        "outsideRth": False,
        "account": account,
    }
    if request.order_type is OrderType.TRAILING_STOP:
        if request.trail_percent is None:
            raise ValueError("a trailing stop needs trail_percent")
        return IbOrder(orderType="TRAIL", trailingPercent=float(request.trail_percent * 100), **common)
    return IbOrder(orderType="MKT", **common)


def option_from_contract(contract: Any) -> OptionContract | None:
    if getattr(contract, "secType", "") not in ("OPT", "FOP"):
        return None
    ymd = str(contract.lastTradeDateOrContractMonth)[:8]
    expiry = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8]))
    return OptionContract(contract.symbol, expiry, _dec(contract.strike), str(contract.right)[:1].upper())


def contract_symbol(contract: Any) -> str:
    """Our symbol for a contract: the ticker for stocks/ETFs, the OCC symbol for options."""
    option = option_from_contract(contract)
    return option.occ_symbol if option else str(contract.symbol)


def _fills(trade: Any, recovered: Iterable[Any] = ()) -> tuple[Fill, ...]:
    out: list[Fill] = []
    seen: set[str] = set()
    for f in [*(getattr(trade, "fills", []) or []), *recovered]:
        ex = f.execution
        if ex.execId in seen:  # duplicated executions (replays after reconnect) count once
            continue
        seen.add(ex.execId)
        fee = Decimal(0)
        report = getattr(f, "commissionReport", None)
        commission = getattr(report, "commission", 0.0) if report is not None else 0.0
        if commission and 0 < abs(commission) < UNSET_DOUBLE_LIMIT:
            fee = _dec(commission)
        ts = (
            _utc(getattr(ex, "time", None))
            or _utc(getattr(f, "time", None))
            or datetime.fromtimestamp(0, UTC)
        )
        out.append(Fill(str(ex.execId), _dec(ex.shares), _dec(ex.price), ts, fee))
    return tuple(out)


def reject_reason(trade: Any) -> str | None:
    for entry in reversed(getattr(trade, "log", []) or []):
        code = getattr(entry, "errorCode", 0) or 0
        if code in REJECT_CODES or (code and entry.status in ("Cancelled", "Inactive") and code != 202):
            return f"IB error {code}: {entry.message}"
    return None


def order_from_trade(trade: Any, recovered: Iterable[Any] = ()) -> Order:
    """`recovered`: ib_async fills of this order that the adapter asked IB for after a reconnect and that the
    trade does not hold (see IbkrBroker.recover_executions); each counts once, by execId."""
    order, status, contract = trade.order, trade.orderStatus, trade.contract
    fills = _fills(trade, recovered)
    fill_qty = sum((f.qty for f in fills), Decimal(0))
    reported = _dec(status.filled) if status.filled and status.filled < UNSET_DOUBLE_LIMIT else Decimal(0)
    filled_qty = max(fill_qty, reported)  # statuses may lag executions and vice versa: trust the larger
    qty = _dec(order.totalQuantity)
    ours = _STATUS.get(status.status, OrderStatus.ACCEPTED)
    reason: str | None = None
    if ours is OrderStatus.CANCELED and filled_qty == 0:
        reason = reject_reason(trade)
        if reason:
            ours = OrderStatus.REJECTED
    elif ours is OrderStatus.REJECTED:
        reason = reject_reason(trade) or "order inactive at IB"
    if ours in (OrderStatus.NEW, OrderStatus.ACCEPTED) and filled_qty > 0:
        ours = OrderStatus.FILLED if filled_qty >= qty else OrderStatus.PARTIALLY_FILLED
    avg: Decimal | None = None
    if fills and fill_qty > 0:
        avg = sum((f.qty * f.price for f in fills), Decimal(0)) / fill_qty
    elif status.avgFillPrice and 0 < status.avgFillPrice < UNSET_DOUBLE_LIMIT:
        avg = _dec(status.avgFillPrice)
    log = getattr(trade, "log", []) or []
    submitted_at = _utc(log[0].time) if log else None
    filled_at = fills[-1].timestamp if fills and ours is OrderStatus.FILLED else None
    option = option_from_contract(contract)
    return Order(
        broker_order_id=str(order.permId or order.orderId),
        client_order_id=str(order.orderRef or ""),
        symbol=contract_symbol(contract),
        side=OrderSide.BUY if str(order.action).upper() == "BUY" else OrderSide.SELL,
        qty=qty,
        status=ours,
        filled_qty=filled_qty,
        filled_avg_price=avg,
        submitted_at=submitted_at,
        filled_at=filled_at,
        fills=fills,
        reject_reason=reason,
        asset_class=AssetClass.OPTION if option else AssetClass.EQUITY,
        order_type=_ORDER_TYPES.get(str(order.orderType), OrderType.MARKET),
    )


def position_from_ib(pos: Any) -> Position:
    option = option_from_contract(pos.contract)
    avg = _dec(pos.avgCost)
    mult = Decimal(1)
    if option:
        # IB's avgCost of an option includes the multiplier (per contract, not per share)
        mult = _dec(getattr(pos.contract, "multiplier", "") or OPTION_MULTIPLIER)
        avg = avg / mult
    return Position(
        symbol=contract_symbol(pos.contract),
        qty=_dec(pos.position),
        avg_entry_price=avg,
        asset_class=AssetClass.OPTION if option else AssetClass.EQUITY,
        multiplier=mult,
    )
