"""A real HTTP fake of Tradier's brokerage and market-data API on 127.0.0.1, with the fault matrix of the Alpaca fake.

Like Tradier it does NOT enforce unique order tags, so a duplicated submission shows up as two orders — exactly
what the adapter must never cause. Market orders fill at once at the symbol's price (or in steps with
`inject_partial_fill`); `reject_symbols` makes orders come back `rejected`; an unknown symbol is a 400.
Market-data times are exchange-local (America/New_York), as Tradier sends them. Option orders are Tradier's
single-leg `class=option` orders (trading/place-option-order): `symbol` the underlying, `option_symbol` the OCC
contract, side `buy_to_open` / `buy_to_close` / `sell_to_close` (`sell_to_open`, writing, is refused here as for an
account approved for long options only), whole contracts, premiums per share and cash moved x100. Put a contract's
premium in `prices` under its OCC symbol.
By hand: `PYTHONPATH=tests .venv/bin/python -m fakes.tradier_server --port 8767`.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fakes.json_server import ApiError, FakeJsonServer
from fakes.vendor_shapes import occ_parts, tradier_option_quote, tradier_quote

NY = ZoneInfo("America/New_York")
ACCOUNT = "VA000001"


def _multiplier(symbol: str) -> Decimal:
    """Shares per unit: 100 for a standard option contract (Tradier's quotes say `contract_size: 100`)."""
    return Decimal(100) if occ_parts(symbol) is not None else Decimal(1)


@dataclass
class FakeOrder:
    id: int
    symbol: str
    side: str
    quantity: Decimal
    tag: str | None
    created: datetime
    status: str = "open"
    filled: Decimal = Decimal(0)
    price: Decimal | None = None
    reason: str | None = None
    steps: list[Decimal] = field(default_factory=list)  # remaining partial-fill fractions
    stall: bool = False
    option_symbol: str | None = None  # an option order: `symbol` is then the underlying

    @property
    def instrument(self) -> str:
        return self.option_symbol or self.symbol

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": "market",
            "symbol": self.symbol,
            "side": self.side,
            "quantity": float(self.quantity),
            "status": self.status,
            "duration": "day",
            "avg_fill_price": float(self.price) if self.price is not None else 0.0,
            "exec_quantity": float(self.filled),
            "last_fill_price": float(self.price) if self.price is not None else 0.0,
            "last_fill_quantity": float(self.filled),
            "remaining_quantity": float(self.quantity - self.filled),
            "create_date": self.created.isoformat().replace("+00:00", "Z"),
            "transaction_date": self.created.isoformat().replace("+00:00", "Z"),
            "class": "option" if self.option_symbol else "equity",
        }
        if self.option_symbol:
            # accounts/get-account-orders: an option order carries `option_symbol` beside the underlying
            out["option_symbol"] = self.option_symbol
        if self.tag:
            out["tag"] = self.tag
        if self.reason:
            out["reason_description"] = self.reason
        return out


class FakeTradierServer(FakeJsonServer):
    def __init__(
        self,
        *,
        prices: dict[str, str] | None = None,
        cash: str = "100000",
        now: Callable[[], datetime] | None = None,
        port: int = 0,
        token: str | None = "test-token",
    ) -> None:
        super().__init__(port=port, token=token)
        self.prices = {
            k: Decimal(v) for k, v in (prices or {"SPY": "450.00", "SH": "13.50", "QQQ": "380.00"}).items()
        }
        self.cash = Decimal(cash)
        self.now = now or (lambda: datetime.now(UTC))
        self.orders: list[FakeOrder] = []
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (qty, cost basis)
        self.reject_symbols: dict[str, str] = {}
        self.bars: dict[str, list[tuple[datetime, float, float, float, float, int]]] = {}
        self.daily_volume: dict[str, int] = {}
        self.listings: dict[str, tuple[str, str]] = {}  # symbol -> (type, exch code); default stock on "N"
        self._partials: list[tuple[list[Decimal], bool]] = []
        self.fill_before_cancel = False  # a stalled order's remainder fills just before a DELETE reaches it
        self._lock = threading.RLock()

    def inject_partial_fill(self, steps: list[str], *, stall: bool = False) -> None:
        """The next market order fills in these fractions: the first at once, then one per read of the orders."""
        self._partials.append(([Decimal(s) for s in steps], stall))

    def orders_with_tag(self, tag: str) -> list[FakeOrder]:
        with self._lock:
            return [o for o in self.orders if o.tag == tag]

    # ------------------------------------------------------------------ book
    def _fill(self, o: FakeOrder, qty: Decimal) -> None:
        key = o.instrument
        price = self.prices[key]
        # positions' cost_basis is the total paid: x100 for an option contract (accounts/get-account-positions)
        value = qty * price * _multiplier(key)
        held, basis = self.positions.get(key, (Decimal(0), Decimal(0)))
        if o.side.startswith("buy"):
            self.cash -= value
            held, basis = held + qty, basis + value
        else:
            self.cash += value
            basis = basis - (basis / held) * qty if held else Decimal(0)
            held -= qty
        self.positions[key] = (held, basis)
        if held == 0:
            del self.positions[key]
        total = o.filled + qty
        o.price = ((o.price or Decimal(0)) * o.filled + price * qty) / total
        o.filled = total
        o.status = "filled" if o.filled == o.quantity else "partially_filled"

    def _advance(self) -> None:
        for o in self.orders:
            if o.status == "partially_filled" and o.steps:
                step = min(o.quantity - o.filled, (o.quantity * o.steps.pop(0)).to_integral_value())
                if step > 0:
                    self._fill(o, step)
            elif o.status == "partially_filled" and not o.stall:
                self._fill(o, o.quantity - o.filled)

    def _place(self, form: dict[str, str]) -> tuple[int, Any]:
        symbol, side, klass = form.get("symbol", ""), form.get("side", ""), form.get("class")
        option_symbol = form.get("option_symbol") if klass == "option" else None
        if klass not in ("equity", "option") or form.get("type") != "market":
            raise ApiError(400, "only equity and option market orders in this fake", "invalid")
        if form.get("duration") != "day":
            raise ApiError(400, f"Invalid duration {form.get('duration')}", "invalid")
        if klass == "option":
            parts = occ_parts(option_symbol or "")
            if parts is None or parts["root"] != symbol:
                raise ApiError(400, f"Invalid option_symbol {option_symbol} for {symbol}", "invalid")
        key = option_symbol or symbol
        if key not in self.prices:
            raise ApiError(400, f"Invalid symbol {key}", "invalid")
        sides = ("buy_to_open", "buy_to_close", "sell_to_close") if option_symbol else ("buy", "sell")
        if side not in sides:
            raise ApiError(400, f"Invalid side {side} for class {klass}", "invalid")
        qty = Decimal(form.get("quantity", "0"))
        if qty <= 0 or qty != qty.to_integral_value():
            raise ApiError(400, "quantity must be a positive whole number", "invalid")
        held = self.positions.get(key, (Decimal(0), Decimal(0)))[0]
        if side in ("sell", "sell_to_close") and qty > held:
            raise ApiError(
                400, "Sell order cannot be placed: not enough shares (no short selling)", "invalid"
            )
        if side == "buy_to_close" and qty > -held:
            raise ApiError(400, "Order cannot be placed: no short option position to close", "invalid")
        if side.startswith("buy") and qty * self.prices[key] * _multiplier(key) > self.cash:
            raise ApiError(400, "Order cannot be placed: insufficient buying power", "invalid")
        o = FakeOrder(
            len(self.orders) + 1, symbol, side, qty, form.get("tag"), self.now(), option_symbol=option_symbol
        )
        self.orders.append(o)
        if key in self.reject_symbols:
            o.status, o.reason = "rejected", self.reject_symbols[symbol]
        elif self._partials:
            steps, stall = self._partials.pop(0)
            o.steps, o.stall = steps[1:], stall
            self._fill(o, (qty * steps[0]).to_integral_value())
        else:
            self._fill(o, qty)
        return 200, {"order": {"id": o.id, "status": "ok", "partner_id": "fake"}}

    # ------------------------------------------------------------------ routes
    def route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        with self._lock:
            acct = f"/v1/accounts/{ACCOUNT}"
            if path.startswith("/v1/accounts/") and not path.startswith(acct):
                raise ApiError(400, "Invalid account", "invalid")
            if method == "GET" and path == f"{acct}/balances":
                equity = self.cash + sum(
                    (q * self.prices[s] * _multiplier(s) for s, (q, _) in self.positions.items()), Decimal(0)
                )
                return 200, {"balances": {"account_number": ACCOUNT, "account_type": "cash", "total_cash": float(self.cash),
                                          "total_equity": float(equity), "cash": {"cash_available": float(self.cash)}}}  # fmt: skip
            if method == "GET" and path == f"{acct}/positions":
                # accounts/get-account-positions (fakes.vendor_shapes.TRADIER_POSITIONS)
                rows = [{"symbol": s, "quantity": float(q), "cost_basis": float(b), "id": i,
                         "date_acquired": self.now().isoformat().replace("+00:00", "Z")}
                        for i, (s, (q, b)) in enumerate(sorted(self.positions.items()), 1)]  # fmt: skip
                return 200, {
                    "positions": "null" if not rows else {"position": rows[0] if len(rows) == 1 else rows}
                }
            if method == "GET" and path == f"{acct}/orders":
                # accounts/get-account-orders: one page at a time (`page` from 1, `limit` 25 by default),
                # oldest first
                self._advance()
                page, limit = int(query.get("page") or 1), int(query.get("limit") or 25)
                rows = [o.as_json() for o in self.orders][(page - 1) * limit : page * limit]
                return 200, {"orders": "null" if not rows else {"order": rows[0] if len(rows) == 1 else rows}}
            if method == "POST" and path == f"{acct}/orders":
                return self._place(body or {})
            if path.startswith(f"{acct}/orders/"):
                oid = int(path.rsplit("/", 1)[1])
                o = next((x for x in self.orders if x.id == oid), None)
                if o is None:
                    raise ApiError(400, "order not found", "invalid")
                if method == "GET":
                    self._advance()  # an order works on whichever endpoint is read
                    return 200, {"order": o.as_json()}
                if method == "DELETE":
                    if self.fill_before_cancel and o.status == "partially_filled":
                        self._fill(
                            o, o.quantity - o.filled
                        )  # the race: the rest filled as the cancel arrived
                    if o.status not in ("open", "partially_filled", "pending"):
                        # Tradier refuses to cancel a filled, cancelled, rejected or expired order
                        raise ApiError(400, "order already in finalized state", "invalid")
                    o.status = "canceled"
                    return 200, {"order": {"id": o.id, "status": "ok"}}
            if method == "GET" and path == "/v1/markets/clock":
                now = self.now()
                local = now.astimezone(NY)
                is_open = local.weekday() < 5 and (9, 30) <= (local.hour, local.minute) < (16, 0)
                return 200, {"clock": {"date": local.date().isoformat(), "timestamp": int(now.timestamp()),
                                       "state": "open" if is_open else "closed", "description": "fake"}}  # fmt: skip
            if method == "GET" and path == "/v1/markets/quotes":
                rows = []
                for sym in query.get("symbols", "").split(","):
                    if sym in self.prices:
                        p = float(self.prices[sym])
                        kind, exch = self.listings.get(sym, ("stock", "N"))
                        row = tradier_quote(sym, p)  # markets/get-quotes: dates in epoch milliseconds
                        ms = int(self.now().timestamp() * 1000)
                        row.update(bid=round(p - 0.01, 2), ask=round(p + 0.01, 2), open=p, prevclose=p,
                                   volume=1000, type=kind, exch=exch, bid_date=ms, ask_date=ms, trade_date=ms)  # fmt: skip
                        if occ_parts(sym) is not None:
                            # reference/response/quotes: an option quote adds its contract's fields
                            row = tradier_option_quote(sym, p, ms)
                        rows.append(row)
                # markets/get-quotes: unknown symbols come back as `unmatched_symbols` {"symbol": ...} entries
                unknown = [
                    {"symbol": s} for s in query.get("symbols", "").split(",") if s and s not in self.prices
                ]
                quotes: dict[str, Any] = {"quote": rows[0] if len(rows) == 1 else rows} if rows else {}
                if unknown:
                    quotes["unmatched_symbols"] = unknown[0] if len(unknown) == 1 else unknown
                return 200, {"quotes": quotes}
            if method == "GET" and path == "/v1/markets/history":
                sym = query.get("symbol", "")
                day = (self.now().astimezone(NY) - timedelta(days=1)).date().isoformat()
                vol = self.daily_volume.get(sym)
                return 200, {"history": None if vol is None else {"day": [{"date": day, "volume": vol, "close": float(self.prices.get(sym, 0))}]}}  # fmt: skip
            if method == "GET" and path == "/v1/markets/timesales":
                sym, now = query.get("symbol", ""), self.now()
                start = datetime.strptime(query["start"], "%Y-%m-%d %H:%M").replace(tzinfo=NY)
                end = datetime.strptime(query["end"], "%Y-%m-%d %H:%M").replace(tzinfo=NY)
                data = [{"time": t.astimezone(NY).replace(tzinfo=None).isoformat(), "timestamp": int(t.timestamp()),
                         "open": o, "high": h, "low": lo, "close": c, "volume": v, "price": c}
                        for t, o, h, lo, c, v in self.bars.get(sym, [])
                        if start <= t <= end and t + timedelta(minutes=1) <= now]  # fmt: skip
                return 200, {"series": {"data": data[0] if len(data) == 1 else data} if data else None}
        raise ApiError(404, f"no route {method} {path}", "not_found")


def main() -> None:
    parser = argparse.ArgumentParser(description="fake Tradier API on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    srv = FakeTradierServer(port=args.port, token=None)
    print(f"fake Tradier API on {srv.url} (account {ACCOUNT})", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
