"""Seeded randomized micro-trades through AlpacaBroker to the fake Alpaca server: order flow, replies, books
and logs agree, with recoverable faults sprinkled in (none may lose or duplicate an order)."""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer, broker_for

from tbot_bot.broker.broker_api import Order, OrderRequest, OrderStatus, OrderType
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError

START = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
SYMBOLS = {"SPY": 450.0, "QQQ": 380.0, "SH": 14.0}
RECOVERABLE = [
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 429},
    {"kind": "status_after", "status": 502},
    {"kind": "drop"},
    {"kind": "drop_after"},
    {"kind": "garbage"},
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_micro_trades(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    clock = ReplayClock(START + timedelta(minutes=5))
    exchange = FakeAlpacaExchange(
        bars=synthetic_bars(SYMBOLS, START, 240, seed=seed), now=clock.now, cash=Decimal(20000), seed=seed
    )
    caplog.set_level(logging.INFO, logger="tbot_bot.broker.alpaca")
    submitted: list[str] = []
    rejected: list[str] = []
    faults = 0
    with FakeAlpacaServer(exchange) as server:
        broker = broker_for(server)
        try:
            for step in range(30):
                clock.sleep(rng.choice([30, 60, 120, 300]))
                symbol = rng.choice(sorted(SYMBOLS))
                held = {p.symbol: p.qty for p in broker.get_positions()}.get(symbol, Decimal(0))
                action = rng.choice(["buy", "buy", "sell", "short", "stop", "close", "cancel"])
                cid = f"TB01-{seed}-{step:03d}-{symbol}"
                if rng.random() < 0.3:
                    faults += 1
                    server.inject("POST", "/v2/orders", **rng.choice(RECOVERABLE))
                if action == "close":
                    server.faults.clear()
                    order = broker.close_position(symbol, cid)
                    if order is not None:
                        submitted.append(cid)
                        assert order.qty == abs(held) and order.status is OrderStatus.FILLED
                    else:
                        assert held == 0
                    continue
                if action == "cancel":
                    server.faults.clear()
                    broker.cancel_all_orders()
                    continue
                if action == "stop":
                    if held <= 0 or held != held.to_integral_value():
                        server.faults.clear()
                        continue
                    request = OrderRequest(
                        cid,
                        symbol,
                        OrderSide.SELL,
                        held,
                        OrderType.TRAILING_STOP,
                        Decimal(rng.choice(["0.002", "0.005"])),
                    )
                elif action == "sell" and held > 0:
                    request = OrderRequest(cid, symbol, OrderSide.SELL, min(held, Decimal(rng.randint(1, 3))))
                elif action == "short" and held <= 0:
                    request = OrderRequest(cid, symbol, OrderSide.SELL, Decimal(rng.randint(1, 5)))
                else:
                    qty = (
                        Decimal(rng.randint(1, 5))
                        if rng.random() < 0.6
                        else Decimal(rng.randint(1, 900)) / 100
                    )
                    if held < 0:
                        qty = min(qty, -held).to_integral_value() or Decimal(1)
                    request = OrderRequest(cid, symbol, OrderSide.BUY, qty)
                price_now = exchange.price(symbol)
                try:
                    order = broker.submit_order(request)
                except BrokerError as exc:
                    # the fake refuses what Alpaca refuses (shares held by a stop, fractional shorts, money)
                    rejected.append(cid)
                    assert exc.code is not None
                    server.faults.clear()
                    continue
                submitted.append(cid)
                _check_reply(order, request, price_now)
                server.faults.clear()
            server.wait_idle()
            _check_books(broker, exchange, submitted)
        finally:
            broker.close()
    # logs: every submission is logged once by its id; a refusal is logged as a warning
    logged = Counter(r.args[0] for r in caplog.records if r.msg.startswith("submit ") and r.args)
    for cid in submitted + rejected:
        assert logged[cid] == 1, cid
    warned = {r.args[0] for r in caplog.records if r.levelno == logging.WARNING and "rejected" in r.msg}
    assert warned == set(rejected)
    assert faults > 0 and len(submitted) > 10


def _check_reply(order: Order, request: OrderRequest, price_now: Decimal | None) -> None:
    assert (order.client_order_id, order.symbol, order.side, order.qty) == (
        request.client_order_id,
        request.symbol,
        request.side,
        request.qty,
    )
    assert order.submitted_at is not None and order.submitted_at.tzinfo is UTC
    if request.order_type is OrderType.MARKET:
        assert order.status is OrderStatus.FILLED and order.filled_qty == request.qty
        assert order.filled_avg_price == price_now  # the open of the bar that contains now
        assert order.fills and sum(f.qty for f in order.fills) == order.filled_qty
    else:
        assert order.status is OrderStatus.NEW and order.order_type is OrderType.TRAILING_STOP


def _check_books(broker, exchange: FakeAlpacaExchange, submitted: list[str]) -> None:  # type: ignore[no-untyped-def]
    orders = broker.list_orders()
    ids = [o.client_order_id for o in orders]
    assert sorted(ids) == sorted(submitted)  # every accepted order exactly once, nothing extra
    assert len(exchange.orders) == len(submitted)
    expected: dict[str, Decimal] = {}
    cash = Decimal(20000)
    for o in orders:
        if o.filled_qty:
            signed = o.filled_qty if o.side is OrderSide.BUY else -o.filled_qty
            expected[o.symbol] = expected.get(o.symbol, Decimal(0)) + signed
            assert o.filled_avg_price is not None
            cash -= signed * o.filled_avg_price
    positions = {p.symbol: p.qty for p in broker.get_positions()}
    assert positions == {s: q for s, q in expected.items() if q != 0}
    assert broker.get_account().cash == cash
