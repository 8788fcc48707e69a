"""The order book behind the fake Alpaca server: account cash, positions, market and trailing-stop orders.

Market orders fill at the current price (FakeMarket); trailing stops follow bar highs/lows and fill when
crossed. Everything is rendered in Alpaca's JSON shapes; refusals raise ApiReject (status, code, message).

Options (docs.alpaca.markets "Options Trading"): an OCC symbol trades as `asset_class: us_option`, in whole
contracts, market or limit, `time_in_force: day` only; premiums are per share and cash moves x100; positions
report `exchange: ""` and per-share prices (fakes.vendor_shapes.alpaca_positions). `position_intent` may say
buy_to_open / buy_to_close / sell_to_close; writing (`sell_to_open`, or a sale beyond the contracts held) is
refused as for an account at options level 2 (long calls and puts), the level the account reports in
`options_trading_level` / `options_approved_level` (docs.alpaca.markets/reference/getaccount-1).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal
from typing import Any

import pandas as pd

from fakes.alpaca_market import BarRow, FakeMarket, iso, parse_ts, synthetic_bars
from fakes.json_server import ApiError
from fakes.vendor_shapes import occ_parts

__all__ = ["ApiReject", "FakeAlpacaExchange", "PartialPlan", "parse_ts", "synthetic_bars", "BarRow"]

FINAL = {"filled", "canceled", "expired", "rejected", "replaced"}


class ApiReject(ApiError):
    """An Alpaca error reply: HTTP status plus {"code", "message"} (a numeric code)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(status, message, code)


def _mult(symbol: str) -> Decimal:
    """Shares per unit: 100 for a standard option contract."""
    return Decimal(100) if occ_parts(symbol) is not None else Decimal(1)


def _num(d: Decimal) -> str:
    return format(d.normalize(), "f") if d == d.to_integral_value() else format(d, "f")


@dataclass
class PartialPlan:
    steps: list[Decimal]  # fractions of the order filled at submit and at each later read
    stall: bool = False  # after the steps, nothing more fills (the remainder waits for a cancel)


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    submitted_at: datetime
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    updated_at: datetime | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    evaluated_until: datetime | None = None
    plan: PartialPlan | None = None
    asset_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.status not in FINAL

    @property
    def avg_price(self) -> Decimal | None:
        return (self.filled_value / self.filled_qty).quantize(Decimal("0.0001")) if self.filled_qty else None


class FakeAlpacaExchange(FakeMarket):
    """Thread-safe state; every public method takes the lock."""

    def __init__(
        self,
        *,
        bars: pd.DataFrame | None = None,
        now: Callable[[], datetime] | None = None,
        prices: dict[str, Decimal | str | float] | None = None,
        cash: Decimal = Decimal("100000"),
        seed: int = 0,
        session: tuple[time, time] = (time(14, 30), time(21, 0)),
        spread_pct: Decimal = Decimal("0.0004"),
        shorting_enabled: bool = True,
    ) -> None:
        super().__init__(bars=bars, now=now, prices=prices, session=session, spread_pct=spread_pct)
        self._rng = random.Random(seed)
        self.cash = Decimal(cash)
        self.shorting_enabled = shorting_enabled
        self.account_id = self.new_uuid()
        self.orders: dict[str, FakeOrder] = {}
        self.by_client_id: dict[str, str] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, avg entry)
        self.asset_ids: dict[str, str] = {}
        self.partial_plans: list[PartialPlan] = []
        self.activities: list[dict[str, Any]] = []  # non-trade account activities (FEE, PTC, DIV ...)
        self.options_level = 2  # 0 none, 1 covered calls, 2 long calls/puts, 3 spreads

    # --- ids ----------------------------------------------------------------------------------------
    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def asset_id(self, symbol: str) -> str:
        if symbol not in self.asset_ids:
            self.asset_ids[symbol] = self.new_uuid()
        return self.asset_ids[symbol]

    # --- account and positions ---------------------------------------------------------------------
    def equity(self) -> Decimal:
        total = self.cash
        for symbol, (qty, avg) in self.positions.items():
            total += qty * (self.price(symbol) or avg) * _mult(symbol)
        return total

    def account(self) -> dict[str, Any]:
        with self._lock:
            self.tick()
            equity = self.equity()
            return {
                "id": self.account_id,
                "account_number": "PA0FAKE0001",
                "status": "ACTIVE",
                "currency": "USD",
                "cash": _num(self.cash),
                "buying_power": _num(max(Decimal(0), self.buying_power())),
                "equity": _num(equity),
                "portfolio_value": _num(equity),
                "last_equity": _num(equity),
                "shorting_enabled": self.shorting_enabled,
                "trading_blocked": False,
                "account_blocked": False,
                "transfers_blocked": False,
                "multiplier": "1",
                "created_at": "2024-01-02T15:00:00Z",
                "options_approved_level": self.options_level,
                "options_trading_level": self.options_level,
                "options_buying_power": _num(max(Decimal(0), self.buying_power())),
            }

    def buying_power(self) -> Decimal:
        # a cash-style account: what is left after every position's value and open buy orders
        held = Decimal(0)
        for symbol, (qty, avg) in self.positions.items():
            if qty < 0:
                held += -qty * avg * _mult(symbol)
        for o in self.orders.values():
            if o.open and o.side == "buy" and o.type == "market":
                held += (o.qty - o.filled_qty) * (self.price(o.symbol) or Decimal(0)) * _mult(o.symbol)
        return self.cash - held

    def position_json(self, symbol: str) -> dict[str, Any]:
        qty, avg = self.positions[symbol]
        price = self.price(symbol) or avg
        mult = _mult(symbol)
        option = mult != 1
        return {
            "asset_id": self.asset_id(symbol),
            "symbol": symbol,
            "exchange": "" if option else "ARCA",
            "asset_class": "us_option" if option else "us_equity",
            "asset_marginable": True,
            "avg_entry_price": _num(avg),
            "qty": _num(qty),
            "qty_available": _num(qty),
            "side": "long" if qty > 0 else "short",
            "market_value": _num(qty * price * mult),
            "cost_basis": _num(qty * avg * mult),
            "unrealized_pl": _num(qty * (price - avg) * mult),
            "current_price": _num(price),
        }

    def list_positions(self) -> list[dict[str, Any]]:
        with self._lock:
            self.tick()
            return [self.position_json(s) for s in sorted(self.positions)]

    def get_position(self, symbol: str) -> dict[str, Any]:
        with self._lock:
            self.tick()
            if symbol not in self.positions:
                raise ApiReject(404, 40410000, "position does not exist")
            return self.position_json(symbol)

    def _book_fill(self, order: FakeOrder, qty: Decimal, price: Decimal) -> None:
        now = self.now()
        signed = qty if order.side == "buy" else -qty
        old_qty, old_avg = self.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        new_qty = old_qty + signed
        if new_qty == 0:
            self.positions.pop(order.symbol, None)
        elif old_qty == 0 or (old_qty > 0) != (signed > 0):
            # opening, or reducing (the avg entry stays) - flips are refused at submission
            avg = price if old_qty == 0 else old_avg
            self.positions[order.symbol] = (new_qty, avg)
        else:
            avg = (old_qty * old_avg + signed * price) / new_qty
            self.positions[order.symbol] = (new_qty, avg.quantize(Decimal("0.0001")))
        self.cash -= signed * price * _mult(order.symbol)
        order.filled_qty += qty
        order.filled_value += qty * price
        order.updated_at = now
        if order.filled_qty >= order.qty:
            order.status = "filled"
            order.filled_at = now
        else:
            order.status = "partially_filled"

    # --- orders -------------------------------------------------------------------------------------
    def order_json(self, o: FakeOrder) -> dict[str, Any]:
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "created_at": iso(o.submitted_at),
            "updated_at": iso(o.updated_at or o.submitted_at),
            "submitted_at": iso(o.submitted_at),
            "filled_at": iso(o.filled_at),
            "expired_at": None,
            "canceled_at": iso(o.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": o.asset_id,
            "symbol": o.symbol,
            "asset_class": "us_option" if occ_parts(o.symbol) else "us_equity",
            "notional": None,
            "qty": _num(o.qty),
            "filled_qty": _num(o.filled_qty),
            "filled_avg_price": None if o.avg_price is None else _num(o.avg_price),
            "order_class": "simple",
            "order_type": o.type,
            "type": o.type,
            "side": o.side,
            "time_in_force": "day",
            "limit_price": None,
            "stop_price": None if o.hwm is None or o.trail_percent is None else _num(self._stop(o)),
            "status": o.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None if o.trail_percent is None else _num(o.trail_percent),
            "trail_price": None,
            "hwm": None if o.hwm is None else _num(o.hwm),
            **({"position_intent": o.extra["position_intent"]} if "position_intent" in o.extra else {}),
        }

    def _stop(self, o: FakeOrder) -> Decimal:
        assert o.hwm is not None and o.trail_percent is not None
        factor = o.trail_percent / 100
        stop = o.hwm * (1 - factor) if o.side == "sell" else o.hwm * (1 + factor)
        return stop.quantize(Decimal("0.01"))

    def _held(self, symbol: str, side: str) -> Decimal:
        return sum(
            (
                o.qty - o.filled_qty
                for o in self.orders.values()
                if o.open and o.symbol == symbol and o.side == side
            ),
            Decimal(0),
        )

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.tick()
            client_order_id = str(body.get("client_order_id") or self.new_uuid())
            if client_order_id in self.by_client_id:
                raise ApiReject(422, 40010001, "client_order_id must be unique")
            symbol = str(body.get("symbol") or "")
            side = body.get("side")
            kind = body.get("type")
            if side not in ("buy", "sell") or kind not in ("market", "trailing_stop"):
                raise ApiReject(422, 40010001, f"unsupported side/type {side}/{kind}")
            try:
                qty = Decimal(str(body["qty"]))
            except Exception:
                raise ApiReject(422, 40010001, "qty is required") from None
            if qty <= 0:
                raise ApiReject(422, 40010001, "qty must be > 0")
            price = self.price(symbol)
            if price is None:
                raise ApiReject(422, 40010001, f'asset "{symbol}" not found')
            extra: dict[str, Any] = {}
            if occ_parts(symbol) is not None:
                extra = self._check_option(symbol, str(side), str(kind), qty, body)
            fractional = qty != qty.to_integral_value()
            if fractional and kind != "market":
                raise ApiReject(422, 40010001, "fractional orders must be market, limit, stop, or stop_limit")
            pos_qty = self.positions.get(symbol, (Decimal(0), Decimal(0)))[0]
            if side == "sell" and pos_qty > 0:
                available = pos_qty - self._held(symbol, "sell")
                if qty > available:
                    raise ApiReject(
                        403,
                        40310000,
                        f"insufficient qty available for order (requested: {qty}, available: {available})",
                    )
            elif side == "buy" and pos_qty < 0:
                available = -pos_qty - self._held(symbol, "buy")
                if qty > available:
                    raise ApiReject(
                        403,
                        40310000,
                        f"insufficient qty available for order (requested: {qty}, available: {available})",
                    )
            elif side == "sell":
                if not self.shorting_enabled:
                    raise ApiReject(403, 40310000, "account is not allowed to short")
                if fractional:
                    raise ApiReject(403, 40310000, "fractional orders cannot be sold short")
            if side == "buy" and pos_qty >= 0 and qty * price * _mult(symbol) > self.buying_power():
                raise ApiReject(403, 40310000, "insufficient buying power")
            trail_percent = None
            if kind == "trailing_stop":
                trail_percent = Decimal(str(body.get("trail_percent") or "0"))
                if trail_percent <= 0:
                    raise ApiReject(422, 40010001, "trail_percent must be > 0")
            now = self.now()
            order = FakeOrder(
                id=self.new_uuid(),
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                qty=qty,
                type=kind,
                submitted_at=now,
                asset_id=self.asset_id(symbol),
                evaluated_until=now,
                extra=extra,
            )
            self.orders[order.id] = order
            self.by_client_id[client_order_id] = order.id
            if kind == "trailing_stop":
                order.trail_percent = trail_percent
                order.hwm = price
                order.status = "new"
            else:
                order.status = "accepted"
                if self.partial_plans:
                    order.plan = self.partial_plans.pop(0)
                    self._fill_step(order)
                else:
                    self._book_fill(order, qty, price)
            return self.order_json(order)

    def _check_option(
        self, symbol: str, side: str, kind: str, qty: Decimal, body: dict[str, Any]
    ) -> dict[str, Any]:
        """What Alpaca refuses of a single-leg option order; the order's position_intent, given or inferred."""
        if self.options_level < 2:
            raise ApiReject(403, 40310000, "account is not approved for options trading level 2")
        if qty != qty.to_integral_value():
            raise ApiReject(422, 40010001, "qty must be a whole number of contracts for options")
        if kind != "market":
            raise ApiReject(422, 40010001, f"order type {kind} is not supported for options")
        if body.get("time_in_force") != "day":
            raise ApiReject(422, 40010001, "options orders must be time_in_force day")
        held = self.positions.get(symbol, (Decimal(0), Decimal(0)))[0]
        intent = body.get("position_intent") or (
            ("buy_to_close" if held < 0 else "buy_to_open")
            if side == "buy"
            else ("sell_to_close" if held > 0 else "sell_to_open")
        )
        if not str(intent).startswith(side):
            raise ApiReject(422, 40010001, f"position_intent {intent} does not match side {side}")
        if intent == "sell_to_open" or (intent == "sell_to_close" and qty > held):
            raise ApiReject(403, 40310000, "account not eligible to trade uncovered option contracts")
        if intent == "buy_to_close" and qty > -held:
            raise ApiReject(403, 40310000, f"insufficient qty to close (requested: {qty}, held: {held})")
        return {"position_intent": intent}

    def _fill_step(self, order: FakeOrder) -> None:
        plan = order.plan
        price = self.price(order.symbol)
        if plan is None or price is None or not order.open:
            return
        if not plan.steps:
            if not plan.stall:
                self._book_fill(order, order.qty - order.filled_qty, price)
            return
        step = plan.steps.pop(0)
        qty = min(order.qty - order.filled_qty, (order.qty * step).quantize(Decimal("0.000000001")))
        if qty > 0:
            self._book_fill(order, qty, price)

    def tick(self) -> None:
        """Evaluate trailing stops over the bars completed since each was last looked at."""
        with self._lock:
            now = self.now()
            for o in list(self.orders.values()):
                if not (o.open and o.type == "trailing_stop"):
                    continue
                assert o.hwm is not None
                if o.symbol in self.price_overrides or o.symbol not in self.bars:
                    price = self.price(o.symbol)
                    if price is not None:
                        self._trail(o, price, price, price)
                    continue
                since = o.evaluated_until or o.submitted_at
                for bar in self.completed_bars(o.symbol, now):
                    if bar.ts < since or not o.open:
                        continue
                    self._trail(o, Decimal(str(bar.high)), Decimal(str(bar.low)), Decimal(str(bar.open)))
                o.evaluated_until = now

    def _trail(self, o: FakeOrder, high: Decimal, low: Decimal, open_: Decimal) -> None:
        assert o.hwm is not None
        if o.side == "sell":
            stop = self._stop(o)
            if low <= stop:
                self._book_fill(o, o.qty - o.filled_qty, min(stop, open_))
                return
            o.hwm = max(o.hwm, high)
        else:
            stop = self._stop(o)
            if high >= stop:
                self._book_fill(o, o.qty - o.filled_qty, max(stop, open_))
                return
            o.hwm = min(o.hwm, low)

    def find(self, order_id: str | None = None, client_order_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            self.tick()
            if client_order_id is not None:
                order_id = self.by_client_id.get(client_order_id)
            order = self.orders.get(order_id or "")
            if order is None:
                raise ApiReject(404, 40410000, "order not found")
            self._fill_step(order)
            return self.order_json(order)

    def list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            self.tick()
            status = query.get("status", "open")
            limit = min(int(query.get("limit", "50")), 500)
            after = parse_ts(query["after"]) if query.get("after") else None
            until = parse_ts(query["until"]) if query.get("until") else None
            symbols = set(query["symbols"].split(",")) if query.get("symbols") else None
            chosen = []
            for o in self.orders.values():
                if status == "open" and not o.open or status == "closed" and o.open:
                    continue
                if after and o.submitted_at <= after or until and o.submitted_at >= until:
                    continue
                if symbols and o.symbol not in symbols:
                    continue
                chosen.append(o)
            ascending = query.get("direction", "desc") == "asc"
            chosen.sort(key=lambda o: o.submitted_at, reverse=not ascending)
            return [self.order_json(o) for o in chosen[:limit]]

    def post_activity(self, activity_type: str, day: str, net_amount: str, **extra: Any) -> dict[str, Any]:
        """A non-trade activity as Alpaca reports it: id `<YYYYMMDDhhmmssmmm>::<uuid>`, net_amount signed."""
        with self._lock:
            stamp = day.replace("-", "") + f"{len(self.activities):09d}"
            activity = {
                "activity_type": activity_type,
                "id": f"{stamp}::{self.new_uuid()}",
                "date": day,
                "net_amount": net_amount,
                "status": "executed",
                **extra,
            }
            self.activities.append(activity)
            return activity

    def list_activities(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """GET /v2/account/activities: activity_types, date | after/until (dates, strict), direction (default
        desc), page_size (at most 100), page_token (the id the next page starts after)."""
        with self._lock:
            kinds = set(query["activity_types"].split(",")) if query.get("activity_types") else None
            size = int(query.get("page_size", "100"))
            if not 1 <= size <= 100:
                raise ApiReject(422, 42210000, f"page_size must be 1..100, got {size}")
            chosen = [
                a
                for a in self.activities
                if (kinds is None or a["activity_type"] in kinds)
                and (not query.get("date") or a["date"] == query["date"])
                and (not query.get("after") or a["date"] > query["after"][:10])
                and (not query.get("until") or a["date"] < query["until"][:10])
            ]
            ascending = query.get("direction", "desc") == "asc"
            chosen.sort(key=lambda a: a["id"], reverse=not ascending)
            token = query.get("page_token")
            if token:
                chosen = [a for a in chosen if (a["id"] > token if ascending else a["id"] < token)]
            return [dict(a) for a in chosen[:size]]

    def cancel(self, order_id: str) -> None:
        with self._lock:
            self.tick()
            order = self.orders.get(order_id)
            if order is None:
                raise ApiReject(404, 40410000, "order not found")
            if not order.open:
                raise ApiReject(422, 42210000, f"order is not cancelable (status {order.status})")
            order.status = "canceled"
            order.canceled_at = order.updated_at = self.now()

    def cancel_all(self) -> list[dict[str, Any]]:
        with self._lock:
            self.tick()
            out = []
            for o in self.orders.values():
                if o.open:
                    o.status = "canceled"
                    o.canceled_at = o.updated_at = self.now()
                    # 207 multi-status entries carry the order as `body` (vendor_shapes.alpaca_cancel_all)
                    out.append({"id": o.id, "status": 200, "body": self.order_json(o)})
            return out

    def close_position(self, symbol: str) -> dict[str, Any]:
        with self._lock:
            self.tick()
            if symbol not in self.positions:
                raise ApiReject(404, 40410000, "position does not exist")
            qty = self.positions[symbol][0]
            side = "sell" if qty > 0 else "buy"
            return self.submit({"symbol": symbol, "qty": str(abs(qty)), "side": side, "type": "market"})
