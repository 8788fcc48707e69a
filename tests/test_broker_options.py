"""Long puts through Alpaca and Tradier (issue 24, point 2): option orders placed as the vendors take them,
option quotes from their data APIs, and a put round trip through OrderRouter booked through the option accounts.

Every case runs the real adapter over real HTTP against the fakes, which answer in the vendors' published shapes
(fakes.vendor_shapes): Alpaca's POST /v2/orders with an OCC symbol, whole contracts, `time_in_force: day` and a
`position_intent`; Tradier's `class=option` order with `option_symbol` and an opening/closing side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import vendor_shapes as vs
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_server import FakeAlpacaServer
from fakes.alpaca_server import broker_for as alpaca_for
from fakes.tradier_server import ACCOUNT, FakeTradierServer

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.broker.broker_api import AssetClass, Broker, OptionContract, OrderRequest, OrderType
from tbot_bot.broker.brokers.alpaca import AlpacaBroker
from tbot_bot.broker.brokers.tradier import TradierBroker
from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.config.env_bot import ShortType
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.intents import Intent, IntentStatus
from tbot_bot.domain.vocab import DenialCode, Direction, InstrumentTag, InstrumentType, OrderSide
from tbot_bot.errors import BrokerError
from tbot_bot.runtime.booking import fills_to_book
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import MINOR_UNITS_PER_UNIT
from tbot_bot.trading.bearish import route_signal
from tbot_bot.trading.orders_bot import OrderRouter, option_to_json

NOW = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
DAY = "2026-11-16"
PUT = OptionContract("SPY", date(2026, 12, 18), Decimal(450), "P")
OCC = PUT.occ_symbol  # SPY261218P00450000
PRICES = {"SPY": "450.00", OCC: "4.35"}


def put_order(cid: str, side: OrderSide, qty: str = "2", **kw: Any) -> OrderRequest:
    return OrderRequest(cid, OCC, side, Decimal(qty), asset_class=AssetClass.OPTION, option=PUT, **kw)


@pytest.fixture()
def alpaca_server() -> Iterator[FakeAlpacaServer]:
    with FakeAlpacaServer(FakeAlpacaExchange(prices=dict(PRICES), now=lambda: NOW, seed=5)) as srv:
        yield srv
        srv.wait_idle()


@pytest.fixture()
def tradier_server() -> Iterator[FakeTradierServer]:
    with FakeTradierServer(prices=dict(PRICES), now=lambda: NOW) as srv:
        yield srv
        srv.wait_idle()


def tradier_for(server: FakeTradierServer) -> TradierBroker:
    return TradierBroker(
        "test-token", ACCOUNT, base_url=server.url, timeout=0.5,
        retry=RetryPolicy(retries=1, sleep=lambda s: None), fill_timeout=0.05, poll_interval=0.01,
        settle_delay=0.01, sleep=lambda s: None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- OrderRouter
@dataclass
class PutDesk:
    """An OrderRouter over a journal and the day's booking into the home's ledger (as the supervisor books)."""

    home: BotHome
    broker: Broker
    filled: list[Intent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = ReplayClock(NOW)
        self.journal = OrderJournal(self.home.root / "journal.db")
        sink = SimpleNamespace(error=lambda *a, **k: None)
        self.errors = ErrorHandler(RetryPolicy(retries=0, sleep=lambda s: None), sink)  # type: ignore[arg-type]
        events = SimpleNamespace(unresolved=lambda strategy, **kw: None)
        self.router = OrderRouter(
            self.broker, self.journal, self.errors, self.clock, events, on_filled=self.filled.append
        )

    def intent(self, cid: str, purpose: str, side: str, entry: str | None = None) -> Intent:
        return Intent(
            client_order_id=cid, session_date=DAY, strategy="open", purpose=purpose, symbol=OCC,  # type: ignore[arg-type]
            signal_ticker="SPY", direction="short", order_side=side, instrument="option", qty=Decimal(2),  # type: ignore[arg-type]
            status=IntentStatus.INTENT, created_at=self.clock.now().isoformat(), tag="LongPut",
            leverage=Decimal(1), option_json=option_to_json(PUT), entry_client_order_id=entry,
        )  # fmt: skip

    def book(self) -> int:
        binding = load_binding(self.home)
        ctx = SimpleNamespace(
            journal=self.journal, day_key=DAY, session_date=date.fromisoformat(DAY), errors=self.errors,
            broker=self.broker, log=SimpleNamespace(unresolved=lambda strategy, **kw: None),
            settings=load_settings(self.home),
            bot_id="TB01", binding=binding,
        )  # fmt: skip
        entries = [e for f in fills_to_book(ctx) for e in entries_for_fill(f)]  # type: ignore[arg-type]
        writer = LedgerWriter.for_home(self.home, binding.ledger_path, binding, 5)
        return writer.ingest(entries, actor="test").written if entries else 0


def _round_trip(desk: PutDesk, set_premium: Any) -> None:
    entry = desk.router.place(desk.intent("TB01-20261116-open-SPY-P1", "entry", "buy"))
    assert (
        entry.status is IntentStatus.FILLED
        and entry.filled_qty == 2
        and entry.filled_price == Decimal("4.35")
    )
    (held,) = desk.broker.get_positions()
    assert (held.symbol, held.qty, held.asset_class, held.multiplier) == (OCC, 2, AssetClass.OPTION, 100)
    assert held.avg_entry_price == Decimal("4.35")  # per share, as the premium is quoted
    set_premium("5.10")
    exit_ = desk.router.place(
        desk.intent("TB01-20261116-open-SPY-P1-x", "exit", "sell", entry="TB01-20261116-open-SPY-P1")
    )
    assert exit_.status is IntentStatus.FILLED and exit_.filled_price == Decimal("5.10")
    assert desk.broker.get_positions() == []
    assert desk.book() >= 2
    assert desk.book() == 0  # booked once

    path = load_binding(desk.home).ledger_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT id, trntype, ticker, size, contract_multiplier, instrument, tag, typeof(pnl), pnl "
            "FROM transactions WHERE trntype != 'FEE' AND fitid LIKE 'TB01-20261116-open-SPY-P1%' ORDER BY id"
        ).fetchall()
        splits = {
            (r[0], r[1]): (r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT transaction_id, account_code, debit, credit, typeof(debit) || typeof(credit) FROM splits"
            )
        }
    assert [(r[1], r[2], Decimal(r[3]), Decimal(r[4]), r[5], r[6]) for r in rows] == [
        ("BUYTOOPEN", OCC, Decimal(2), Decimal(100), "option", "LongPut"),
        ("SELLTOCLOSE", OCC, Decimal(2), Decimal(100), "option", "LongPut"),
    ]
    assert all(kind == "integerinteger" for *_, kind in splits.values())  # minor units, never a REAL
    buy_id, sell_id = rows[0][0], rows[1][0]

    def dollars(tx: int, account: str) -> tuple[Decimal, Decimal]:
        debit, credit, _ = splits[(tx, account)]
        return Decimal(debit) / MINOR_UNITS_PER_UNIT, Decimal(credit) / MINOR_UNITS_PER_UNIT

    # 2 contracts x 100 shares x 4.35 = 870.00 into option holdings (1120), out of broker cash (1030)
    assert dollars(buy_id, "1120") == (Decimal("870"), Decimal(0))
    assert dollars(buy_id, "1030") == (Decimal(0), Decimal("870"))
    # sold at 5.10: 1020.00 cash in, the 870.00 basis out of 1120, a 150.00 gain on options (4020)
    assert dollars(sell_id, "1030") == (Decimal("1020"), Decimal(0))
    assert dollars(sell_id, "1120") == (Decimal(0), Decimal("870"))
    assert dollars(sell_id, "4020") == (Decimal(0), Decimal("150"))
    assert rows[1][7] == "integer" and Decimal(rows[1][8]) / MINOR_UNITS_PER_UNIT == Decimal("150")


def test_alpaca_put_round_trip_through_the_router_books_the_option_accounts(
    provisioned_home: Path, alpaca_server: FakeAlpacaServer
) -> None:
    desk = PutDesk(BotHome(provisioned_home), alpaca_for(alpaca_server))
    _round_trip(desk, lambda p: alpaca_server.exchange.set_price(OCC, p))
    bodies = [r.body for r in alpaca_server.requests if r.method == "POST" and r.path == "/v2/orders"]
    assert [(b["symbol"], b["side"], b["position_intent"], b["qty"]) for b in bodies] == [
        (OCC, "buy", "buy_to_open", 2),
        (OCC, "sell", "sell_to_close", 2),
    ]


def test_tradier_put_round_trip_through_the_router_books_the_option_accounts(
    provisioned_home: Path, tradier_server: FakeTradierServer
) -> None:
    desk = PutDesk(BotHome(provisioned_home), tradier_for(tradier_server))
    _round_trip(desk, lambda p: tradier_server.prices.__setitem__(OCC, Decimal(p)))
    forms = [r.body for r in tradier_server.requests if r.method == "POST"]
    assert [(f["class"], f["symbol"], f["option_symbol"], f["side"], f["quantity"]) for f in forms] == [
        ("option", "SPY", OCC, "buy_to_open", "2"),
        ("option", "SPY", OCC, "sell_to_close", "2"),
    ]


# ---------------------------------------------------------------------------------------------- capabilities
@pytest.mark.parametrize("broker", ["ALPACA", "TRADIER"])
def test_long_puts_are_accepted_for_brokers_that_place_them(broker: str) -> None:
    from helpers import make_settings

    enabled = {"SIM_ENABLED": "false", f"{broker}_ENABLED": "true"}
    settings = make_settings(BROKER_NAME=broker, SHORT_TYPE_OPEN="LongPut", **enabled)
    assert settings.short_type("open").value == "LongPut"
    route = route_signal(
        Direction.BEARISH, "SPY", "open", settings.short_type("open"), capabilities_for(broker), broker,
        lambda s: False,
    )  # fmt: skip
    assert route.denial is None and (route.instrument, route.tag) == (
        InstrumentType.OPTION,
        InstrumentTag.LONG_PUT,
    )


def test_alpaca_account_below_options_level_2_denies_long_puts(alpaca_server: FakeAlpacaServer) -> None:
    broker: AlpacaBroker = alpaca_for(alpaca_server)
    assert broker.self_check().context["options_trading_level"] == 2 and broker.capabilities.options
    alpaca_server.exchange.options_level = 1
    result = broker.self_check()
    assert result.ok and result.context["options_trading_level"] == 1
    assert broker.capabilities.options is False  # narrowed at runtime, never widened
    route = route_signal(
        Direction.BEARISH,
        "SPY",
        "open",
        ShortType.LONG_PUT,
        broker.capabilities,
        broker.name,
        lambda s: False,
    )
    assert route.denial is not None and route.denial[0] is DenialCode.OPTIONS_UNSUPPORTED


def test_alpaca_account_that_may_not_short_denies_short_sales(alpaca_server: FakeAlpacaServer) -> None:
    """An account with shorting off sent every ShortSell entry to be refused (HTTP 403): narrowed as the options
    level is, so the route denies it (a broker review)."""
    broker: AlpacaBroker = alpaca_for(alpaca_server)
    assert broker.self_check().ok and broker.capabilities.short_sell
    alpaca_server.exchange.shorting_enabled = False
    assert broker.self_check().ok and broker.capabilities.short_sell is False
    route = route_signal(
        Direction.BEARISH,
        "SPY",
        "open",
        ShortType.SHORT_SELL,
        broker.capabilities,
        broker.name,
        lambda s: False,
    )
    assert route.denial is not None and route.denial[0] is DenialCode.SHORT_SELL_UNSUPPORTED


# ---------------------------------------------------------------------------------------------- Alpaca contract
def test_alpaca_option_quote_comes_from_the_options_data_api(alpaca_server: FakeAlpacaServer) -> None:
    broker = alpaca_for(alpaca_server)
    quote = broker.get_latest_quote(OCC)
    assert quote.symbol == OCC and quote.bid < Decimal("4.35") < quote.ask and quote.timestamp == NOW
    assert alpaca_server.count("GET", "/v1beta1/options/quotes/latest") == 1
    assert alpaca_server.count("GET", "/v2/stocks/quotes/latest") == 0
    assert broker.get_latest_quote("SPY").mid == Decimal("450.00")  # equities still from the stock API


def test_alpaca_option_quote_absent_is_a_market_data_error(alpaca_server: FakeAlpacaServer) -> None:
    from tbot_bot.errors import MarketDataError

    with pytest.raises(MarketDataError, match="no quote for SPY261218P00455000"):
        alpaca_for(alpaca_server).get_latest_quote("SPY261218P00455000")  # unlisted strike: no quote


def test_alpaca_option_orders_the_vendor_refuses_never_leave(alpaca_server: FakeAlpacaServer) -> None:
    broker = alpaca_for(alpaca_server)
    with pytest.raises(BrokerError, match="whole option contracts"):
        broker.submit_order(put_order("f1", OrderSide.BUY, "1.5"))
    with pytest.raises(BrokerError, match="market or limit"):
        broker.submit_order(put_order("t1", OrderSide.SELL, "1", order_type=OrderType.TRAILING_STOP))
    with pytest.raises(BrokerError, match="not an OCC option symbol"):
        broker.submit_order(
            OrderRequest("x1", "SPY", OrderSide.BUY, Decimal(1), asset_class=AssetClass.OPTION)
        )
    with pytest.raises(BrokerError, match="would write options") as info:
        broker.submit_order(put_order("w1", OrderSide.SELL))  # nothing held: selling would write puts
    assert info.value.code == "uncovered_option"
    assert alpaca_server.count("POST", "/v2/orders") == 0


def test_alpaca_option_submit_reads_the_vendor_reply_and_is_idempotent(
    alpaca_server: FakeAlpacaServer,
) -> None:
    broker = alpaca_for(alpaca_server)
    # POST /v2/orders answers with the order in Alpaca's option shape (vendor_shapes.ALPACA_OPTION_FILLED)
    reply = dict(vs.ALPACA_OPTION_FILLED, client_order_id="v1", symbol=OCC)
    alpaca_server.reply_with("POST", "/v2/orders", reply)
    order = broker.submit_order(put_order("v1", OrderSide.BUY))
    assert (order.symbol, order.asset_class, order.filled_qty, order.filled_avg_price) == (
        OCC, AssetClass.OPTION, 2, Decimal("4.35"),
    )  # fmt: skip
    # sent again (a restart that did not see the reply): the known order is returned, nothing is sent
    alpaca_server.reply_with("GET", "/v2/orders:by_client_order_id", reply)
    posts = alpaca_server.count("POST", "/v2/orders")
    again = broker.submit_order(put_order("v1", OrderSide.BUY))
    assert (
        again.broker_order_id == order.broker_order_id and alpaca_server.count("POST", "/v2/orders") == posts
    )


def test_alpaca_close_position_on_a_put_sells_to_close(alpaca_server: FakeAlpacaServer) -> None:
    broker = alpaca_for(alpaca_server)
    broker.submit_order(put_order("o1", OrderSide.BUY, "3"))
    closed = broker.close_position(OCC, "c1")
    assert closed is not None and closed.side is OrderSide.SELL and closed.qty == 3
    assert closed.asset_class is AssetClass.OPTION
    body = [r.body for r in alpaca_server.requests if r.method == "POST"][-1]
    assert (body["position_intent"], body["time_in_force"]) == ("sell_to_close", "day")
    assert broker.get_positions() == []


# ---------------------------------------------------------------------------------------------- Tradier contract
def test_tradier_option_quote_in_the_documented_shape(tradier_server: FakeTradierServer) -> None:
    quote = tradier_for(tradier_server).get_latest_quote(OCC)
    assert (quote.symbol, quote.bid, quote.ask) == (OCC, Decimal("4.3"), Decimal("4.4"))
    assert quote.timestamp == NOW  # bid_date in epoch milliseconds
    row = vs.tradier_option_quote(OCC, 4.35, 0)
    assert (row["type"], row["underlying"], row["contract_size"], row["option_type"]) == (
        "option",
        "SPY",
        100,
        "put",
    )


def test_tradier_option_orders_the_vendor_refuses_never_leave(tradier_server: FakeTradierServer) -> None:
    broker = tradier_for(tradier_server)
    with pytest.raises(BrokerError, match="whole contracts"):
        broker.submit_order(put_order("f1", OrderSide.BUY, "1.5"))
    with pytest.raises(BrokerError, match="market orders only"):
        broker.submit_order(put_order("t1", OrderSide.SELL, "1", order_type=OrderType.TRAILING_STOP))
    with pytest.raises(BrokerError, match="would write options") as info:
        broker.submit_order(put_order("w1", OrderSide.SELL))
    assert info.value.code == "uncovered_option"
    assert tradier_server.count("POST", f"/v1/accounts/{ACCOUNT}/orders") == 0


def test_tradier_short_option_held_is_bought_to_close(tradier_server: FakeTradierServer) -> None:
    """A person's short call (vendor_shapes.TRADIER_POSITIONS: AAPL131019C00400000, -2) is flattened with
    `buy_to_close`; the order then reads back in Tradier's option order shape."""
    broker = tradier_for(tradier_server)
    orders = f"/v1/accounts/{ACCOUNT}/orders"
    short = "AAPL131019C00400000"
    row = vs.tradier_order(
        id=229070, symbol="AAPL", option_symbol=short, side="buy_to_close", quantity=2.0, exec_quantity=2.0,
        last_fill_quantity=2.0, avg_fill_price=1.25, last_fill_price=1.25, tag="c-short", **{"class": "option"},
    )  # fmt: skip
    # close_position: the id is unknown, nothing open; submit: still unknown; then the filled option order
    null = {"orders": "null"}
    tradier_server.reply_with("GET", orders, null, null, null, {"orders": {"order": row}})
    tradier_server.reply_with("GET", f"/v1/accounts/{ACCOUNT}/positions", vs.TRADIER_POSITIONS)
    tradier_server.reply_with("POST", orders, {"order": {"id": 229070, "status": "ok", "partner_id": "p-1"}})
    closed = broker.close_position(short, "c-short")
    form = [r.body for r in tradier_server.requests if r.method == "POST"][-1]
    assert (form["class"], form["symbol"], form["option_symbol"], form["side"], form["quantity"]) == (
        "option", "AAPL", short, "buy_to_close", "2",
    )  # fmt: skip
    assert closed is not None and (closed.symbol, closed.side, closed.asset_class) == (
        short, OrderSide.BUY, AssetClass.OPTION,
    )  # fmt: skip
    assert closed.filled_avg_price == Decimal("1.25")


def test_tradier_option_submit_is_idempotent_on_the_tag(tradier_server: FakeTradierServer) -> None:
    broker = tradier_for(tradier_server)
    first = broker.submit_order(put_order("p1", OrderSide.BUY))
    again = broker.submit_order(put_order("p1", OrderSide.BUY))
    assert first.broker_order_id == again.broker_order_id
    assert len(tradier_server.orders_with_tag("p1")) == 1


def test_tradier_option_reply_lost_resolves_without_a_duplicate(tradier_server: FakeTradierServer) -> None:
    """The order reaches Tradier but its reply is lost (502 after acting): looked up by tag, never re-sent
    (the side was built before the fill, so a re-derived sell_to_close would not matter, but a second
    buy_to_open would double the position)."""
    broker = tradier_for(tradier_server)
    tradier_server.inject("POST", f"/v1/accounts/{ACCOUNT}/orders", "status_after", status=502)
    order = broker.submit_order(put_order("s1", OrderSide.BUY))
    assert order.symbol == OCC and order.filled_qty == 2
    assert len(tradier_server.orders_with_tag("s1")) == 1
