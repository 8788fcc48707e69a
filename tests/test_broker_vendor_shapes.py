"""Contract tests: every public method of the Alpaca and Tradier adapters on the replies the vendors really send
(fakes.vendor_shapes, each shape cited there), over real HTTP through the real clients (issue 24)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from fakes import vendor_shapes as vs
from fakes.alpaca_exchange import FakeAlpacaExchange, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer
from fakes.alpaca_server import broker_for as alpaca_for
from fakes.tradier_server import ACCOUNT, FakeTradierServer

from tbot_bot.broker.broker_api import (
    AssetClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
)
from tbot_bot.broker.brokers.alpaca import AlpacaBroker
from tbot_bot.broker.brokers.tradier import TradierBroker
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.errors import BrokerError

SESSION = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)  # a Monday, 09:30 New York
NOW = SESSION + timedelta(minutes=30)
ORDERS = f"/v1/accounts/{ACCOUNT}/orders"


# ---------------------------------------------------------------------------------------------- Alpaca
@pytest.fixture()
def alpaca_server() -> Iterator[FakeAlpacaServer]:
    bars = synthetic_bars({"SPY": 450.0, "QQQ": 380.0}, SESSION - timedelta(days=1), 390, seed=1)
    more = synthetic_bars({"SPY": 451.0, "QQQ": 381.0}, SESSION, 60, seed=2)
    exchange = FakeAlpacaExchange(bars=pd.concat([bars, more], ignore_index=True), now=lambda: NOW, seed=3)
    with FakeAlpacaServer(exchange) as srv:
        yield srv
        srv.wait_idle()


@pytest.fixture()
def alpaca(alpaca_server: FakeAlpacaServer) -> Iterator[AlpacaBroker]:
    b = alpaca_for(alpaca_server)
    yield b
    b.close()


def test_alpaca_account_and_clock(alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.reply_with("GET", "/v2/account", vs.alpaca_account())
    alpaca_server.reply_with("GET", "/v2/clock", vs.ALPACA_CLOCK)
    a = alpaca.get_account()
    assert (a.account_id, a.cash, a.buying_power, a.equity) == (
        "PA3EJQDZ7AIH",
        Decimal("-23140.2"),
        Decimal("262113.632"),
        Decimal("103820.56"),
    )
    c = alpaca.get_clock()
    assert c.timestamp == datetime(2026, 11, 16, 15, 6, 23, 713474, tzinfo=UTC) and c.timestamp.tzinfo is UTC
    assert c.next_open == datetime(2026, 11, 17, 14, 30, tzinfo=UTC) and c.is_open


def test_alpaca_option_positions_are_options(alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.reply_with("GET", "/v2/positions", vs.alpaca_positions())
    equity, option = alpaca.get_positions()
    assert (equity.symbol, equity.asset_class, equity.qty, equity.multiplier) == (
        "AAPL",
        AssetClass.EQUITY,
        Decimal(5),
        Decimal(1),
    )
    assert (option.symbol, option.asset_class, option.qty, option.avg_entry_price, option.multiplier) == (
        "SPY261218P00450000",
        AssetClass.OPTION,
        Decimal(2),
        Decimal("4.35"),  # per share, as Alpaca quotes it: 2 x 4.35 x 100 = the 870 cost basis
        Decimal(100),
    )


def test_alpaca_orders_of_every_kind(alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.reply_with(
        "GET", "/v2/orders", [vs.ALPACA_NOTIONAL_OPEN, vs.ALPACA_STOP_OPEN, vs.ALPACA_OPTION_FILLED]
    )
    notional, stop, option = alpaca.list_orders()
    assert (notional.notional, notional.qty, notional.status, notional.filled_qty) == (
        Decimal(500),
        Decimal(0),
        OrderStatus.ACCEPTED,
        Decimal(0),
    )
    assert (stop.order_type, stop.side, stop.qty) == (OrderType.STOP, OrderSide.SELL, Decimal(10))
    assert (option.symbol, option.asset_class, option.status, option.filled_avg_price) == (
        "SPY261218P00450000",
        AssetClass.OPTION,
        OrderStatus.FILLED,
        Decimal("4.35"),
    )
    assert [(f.qty, f.price) for f in option.fills] == [(Decimal(2), Decimal("4.35"))]
    alpaca_server.reply_with("GET", "/v2/orders:by_client_order_id", vs.ALPACA_OPTION_FILLED)
    found = alpaca.get_order_by_client_id("B1-open-SPY-P")
    assert found is not None and found.asset_class is AssetClass.OPTION and found.filled_qty == 2


def test_alpaca_submit_and_cancel_on_recorded_replies(
    alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer
) -> None:
    filled = vs.alpaca_order(
        status="filled", filled_qty="10", filled_avg_price="450.01", filled_at="2026-11-16T14:35:02.10443Z"
    )
    alpaca_server.reply_with("POST", "/v2/orders", filled)
    order = alpaca.submit_order(OrderRequest("B1-open-SPY-1", "SPY", OrderSide.BUY, Decimal(10)))
    assert (order.status, order.filled_qty, order.filled_avg_price) == (
        OrderStatus.FILLED,
        Decimal(10),
        Decimal("450.01"),
    )
    assert order.filled_at == datetime(2026, 11, 16, 14, 35, 2, 104430, tzinfo=UTC)
    alpaca_server.reply_with("GET", "/v2/orders:by_client_order_id", vs.alpaca_order())
    alpaca_server.reply_with("DELETE", f"/v2/orders/{vs.ALPACA_ORDER_ID}", None, status=204)
    alpaca.cancel_order("B1-open-SPY-1")
    assert alpaca_server.count("DELETE", f"/v2/orders/{vs.ALPACA_ORDER_ID}") == 1


def test_alpaca_cancel_all_counts_only_the_cancelled(
    alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer
) -> None:
    alpaca_server.reply_with("DELETE", "/v2/orders", vs.alpaca_cancel_all(), status=207)
    assert alpaca.cancel_all_orders() == 1  # the 404 ("order not found") and the 500 entries were not


def test_alpaca_notional_order_does_not_block_a_flatten(
    alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer
) -> None:
    bought = alpaca.submit_order(OrderRequest("B1-open-SPY-1", "SPY", OrderSide.BUY, Decimal(10)))
    assert bought.status is OrderStatus.FILLED
    # a person's open orders on the symbol: one by amount (qty null), one protective stop
    alpaca_server.reply_with("GET", "/v2/orders", [vs.ALPACA_NOTIONAL_OPEN, vs.ALPACA_STOP_OPEN])
    closed = alpaca.close_position("SPY", "B1-close-SPY-1")
    assert closed is not None and closed.status is OrderStatus.FILLED and closed.qty == Decimal(10)
    assert alpaca.get_positions() == []


def test_alpaca_market_data_on_recorded_replies(
    alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer
) -> None:
    alpaca_server.reply_with("GET", "/v2/stocks/bars", vs.ALPACA_BARS)
    bars = alpaca.get_bars(["SPY", "QQQ"], SESSION, SESSION + timedelta(minutes=5))
    assert [(b.timestamp, b.close, b.volume) for b in bars["SPY"]] == [
        (SESSION, 450.5, 120311.0),
        (SESSION + timedelta(minutes=1), 451.0, 98213.0),
    ]
    assert bars["QQQ"] == []
    alpaca_server.reply_with("GET", "/v2/stocks/quotes/latest", vs.ALPACA_LATEST_QUOTE)
    q = alpaca.get_latest_quote("SPY")
    assert (q.bid, q.ask) == (Decimal("449.98"), Decimal("450.02"))
    assert q.timestamp == datetime(2026, 11, 16, 14, 35, 1, 123456, tzinfo=UTC)
    snaps = alpaca.get_snapshots(["SPY", "QQQ"])  # the fake's snapshots carry Alpaca's shape (n null, vw)
    assert set(snaps) == {"SPY", "QQQ"} and snaps["SPY"].price > 0
    alpaca_server.reply_with("GET", "/v2/stocks/snapshots", vs.ALPACA_SNAPSHOTS)
    snap = alpaca.get_snapshots(["SPY", "QQQ"])
    assert list(snap) == ["SPY"] and (snap["SPY"].price, snap["SPY"].prev_close, snap["SPY"].prev_volume) == (
        Decimal("450.01"),
        Decimal("448.2"),
        70123456,
    )
    assert snap["SPY"].quote is not None and snap["SPY"].quote.bid == Decimal("449.99")
    alpaca_server.reply_with("GET", "/v2/assets", vs.alpaca_assets())
    assert [(e.symbol, e.exchange) for e in alpaca.list_equities()] == [("AAPL", "NASDAQ"), ("SPY", "ARCA")]


def test_alpaca_fee_activities_of_every_type(alpaca: AlpacaBroker, alpaca_server: FakeAlpacaServer) -> None:
    alpaca_server.reply_with("GET", "/v2/account/activities", vs.alpaca_activities())
    fees = alpaca.fee_activities(date(2026, 11, 10))
    assert [(f.day, f.amount, f.symbol) for f in fees] == [
        (date(2026, 11, 17), Decimal("0.03"), "SPY"),
        (date(2026, 11, 17), Decimal("0.01"), None),
    ]  # the FILL and the DIV are not fees; the cancelled FEE was never charged


# ---------------------------------------------------------------------------------------------- Tradier
@pytest.fixture()
def tradier_server() -> Iterator[FakeTradierServer]:
    with FakeTradierServer(now=lambda: NOW) as srv:
        yield srv
        srv.wait_idle()


@pytest.fixture()
def tradier(tradier_server: FakeTradierServer) -> TradierBroker:
    return TradierBroker(
        "test-token",
        ACCOUNT,
        base_url=tradier_server.url,
        timeout=0.5,
        retry=RetryPolicy(retries=2, sleep=lambda s: None),
        fill_timeout=0.3,
        poll_interval=0.01,
        settle_delay=0.05,
    )


def test_tradier_quote_dates_are_epoch_milliseconds(
    tradier: TradierBroker, tradier_server: FakeTradierServer
) -> None:
    tradier_server.reply_with("GET", "/v1/markets/quotes", {"quotes": {"quote": vs.tradier_quote()}})
    q = tradier.get_latest_quote("SPY")
    assert (q.bid, q.ask) == (Decimal("449.98"), Decimal("450.02"))
    assert q.timestamp == datetime(2026, 11, 16, 15, 0, 6, tzinfo=UTC)
    both = {"quotes": {"quote": [vs.tradier_quote(), vs.tradier_quote("QQQ", 380.0)]}}
    tradier_server.reply_with("GET", "/v1/markets/quotes", both)
    assert [e.symbol for e in tradier.list_equities(["SPY", "QQQ"])] == ["SPY", "QQQ"]


def test_tradier_option_positions_per_share(
    tradier: TradierBroker, tradier_server: FakeTradierServer
) -> None:
    path = f"/v1/accounts/{ACCOUNT}/positions"
    tradier_server.reply_with("GET", path, vs.TRADIER_POSITIONS)
    spy, dell, aapl = tradier.get_positions()
    assert (spy.asset_class, spy.avg_entry_price, spy.multiplier) == (
        AssetClass.EQUITY,
        Decimal(450),
        Decimal(1),
    )
    assert (dell.symbol, dell.asset_class, dell.qty, dell.avg_entry_price, dell.multiplier) == (
        "DELL140118C00015000",
        AssetClass.OPTION,
        Decimal(1),
        Decimal("49.70"),  # 4970.00 paid for one contract of 100 shares
        Decimal(100),
    )
    assert (aapl.asset_class, aapl.qty, aapl.avg_entry_price) == (
        AssetClass.OPTION,
        Decimal(-2),
        Decimal("6.40"),
    )
    tradier_server.reply_with("GET", path, vs.TRADIER_ONE_POSITION)
    assert [p.symbol for p in tradier.get_positions()] == ["SPY"]  # one item: a bare object
    tradier_server.reply_with("GET", path, vs.TRADIER_NO_POSITIONS)
    assert tradier.get_positions() == []  # none: the string "null"


def test_tradier_orders_of_every_kind(tradier: TradierBroker, tradier_server: FakeTradierServer) -> None:
    rows = [vs.tradier_order(), vs.TRADIER_OPTION_ORDER, vs.TRADIER_STOP_ORDER]
    tradier_server.reply_with("GET", ORDERS, {"orders": {"order": rows}})
    equity, option, stop = tradier.list_orders()
    assert (equity.symbol, equity.status, equity.filled_avg_price) == (
        "SPY",
        OrderStatus.FILLED,
        Decimal("450.01"),
    )
    assert (option.symbol, option.asset_class, option.side, option.filled_qty) == (
        "SPY261218P00450000",
        AssetClass.OPTION,
        OrderSide.BUY,
        Decimal(2),
    )
    assert (stop.order_type, stop.status, stop.client_order_id) == (OrderType.STOP, OrderStatus.ACCEPTED, "")
    found = tradier.get_order_by_client_id("B1-open-SPY-P")
    assert found is not None and found.symbol == "SPY261218P00450000"
    tradier_server.reply_with("GET", ORDERS, {"orders": "null"})
    assert tradier.list_orders() == [] and tradier.cancel_all_orders() == 0


def test_tradier_account_and_clock(tradier: TradierBroker, tradier_server: FakeTradierServer) -> None:
    tradier_server.reply_with("GET", f"/v1/accounts/{ACCOUNT}/balances", vs.TRADIER_BALANCES)
    tradier_server.reply_with("GET", "/v1/markets/clock", vs.TRADIER_CLOCK)
    a = tradier.get_account()
    assert (a.cash, a.buying_power, a.equity) == (
        Decimal("6363.86"),
        Decimal("12727.72"),
        Decimal("17798.36"),
    )
    c = tradier.get_clock()
    assert c.timestamp == datetime(2026, 11, 16, 15, 0, 6, tzinfo=UTC) and c.is_open


def test_tradier_order_path_on_the_documented_shapes(
    tradier: TradierBroker, tradier_server: FakeTradierServer
) -> None:
    """The fake's own replies follow the documented shapes: submit, track, flatten, cancel, snapshots, bars."""
    order = tradier.submit_order(OrderRequest("B1-open-SPY-1", "SPY", OrderSide.BUY, Decimal(10)))
    assert order.status is OrderStatus.FILLED and order.filled_qty == 10
    tradier_server.daily_volume["SPY"] = 70_000_000
    snap = tradier.get_snapshots(["SPY"])["SPY"]
    assert snap.prev_volume == 70_000_000 and snap.quote is not None
    tradier_server.bars["SPY"] = [
        (SESSION + timedelta(minutes=i), 450.0, 451.0, 449.0, 450.5, 100) for i in range(3)
    ]
    assert len(tradier.get_bars(["SPY"], SESSION, NOW)["SPY"]) == 3
    closed = tradier.close_position("SPY", "B1-close-SPY-1")
    assert closed is not None and closed.status is OrderStatus.FILLED
    tradier.cancel_order("B1-close-SPY-1")  # final already: nothing to do
    assert tradier.get_positions() == [] and tradier.fee_activities(date(2026, 11, 10)) == []


def test_an_unforeseen_reply_leaves_as_a_broker_error_naming_the_host(
    tradier: TradierBroker, tradier_server: FakeTradierServer
) -> None:
    # a position row without a symbol: a KeyError inside the adapter, caught by the boundary guard
    row = {"cost_basis": 10.0, "id": 1, "quantity": 1.0}
    tradier_server.reply_with("GET", f"/v1/accounts/{ACCOUNT}/positions", {"positions": {"position": row}})
    with pytest.raises(BrokerError, match=f"TRADIER at {tradier_server.url}: get_positions") as err:
        tradier.get_positions()
    assert err.value.code == "unexpected_reply" and isinstance(err.value.__cause__, KeyError)


def test_an_unexpected_failure_in_the_sim_is_a_logic_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.broker.brokers.sim import SimBroker
    from tbot_bot.domain.clock import ReplayClock
    from tbot_bot.errors import LogicError

    rows = [(SESSION + timedelta(minutes=i), "SPY", 450.0, 451.0, 449.0, 450.5, 1000.0) for i in range(5)]
    bars = pd.DataFrame(rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"])
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    sim = SimBroker(tmp_path / "sim.db", clock=ReplayClock(NOW), bars=bars, starting_cash=Decimal(1000))

    def broken(self: SimBroker) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(SimBroker, "_sync", broken)
    # no remote reply to blame: a bug in the sim escalates instead of passing for a broker refusal
    with pytest.raises(LogicError, match="SIM at the simulated exchange .*get_account failed"):
        sim.get_account()
