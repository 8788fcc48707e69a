"""AlpacaBroker against the fake Alpaca server: account, orders, positions, stops and market data, with a
replay clock shared by the server (as exchange and data source) and the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from helpers import make_settings

from tbot_bot.broker import factory
from tbot_bot.broker.broker_api import AssetClass, OrderRequest, OrderStatus, OrderType
from tbot_bot.broker.brokers import alpaca as alpaca_module
from tbot_bot.broker.brokers.alpaca import AlpacaBroker
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, ConfigError, LogicError, MarketDataError
from tbot_bot.support.path_resolver import BotHome

SESSION = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


@pytest.fixture()
def clock() -> ReplayClock:
    return ReplayClock(SESSION + timedelta(minutes=30))


@pytest.fixture()
def server(clock: ReplayClock) -> Iterator[FakeAlpacaServer]:
    day1 = synthetic_bars({"SPY": 450.0, "AAPL": 190.0}, SESSION - timedelta(days=1), 390, seed=1)
    day2 = synthetic_bars({"SPY": 451.0, "AAPL": 191.0}, SESSION, 390, seed=2)
    bars = pd.concat([day1, day2], ignore_index=True)
    exchange = FakeAlpacaExchange(bars=bars, now=clock.now, seed=3)
    with FakeAlpacaServer(exchange, page_size=50) as srv:
        yield srv
        srv.wait_idle()


@pytest.fixture()
def broker(server: FakeAlpacaServer) -> Iterator[AlpacaBroker]:
    b = broker_for(server)
    yield b
    b.close()


def test_account_clock_positions(broker: AlpacaBroker, clock: ReplayClock) -> None:
    account = broker.get_account()
    assert account.cash == Decimal(100000) and account.status == "ACTIVE"
    mc = broker.get_clock()
    assert mc.timestamp == clock.now() and mc.timestamp.tzinfo is UTC and mc.is_open
    assert broker.get_positions() == []
    check = broker.self_check()
    assert check.ok and check.context["shorting_enabled"] is True


def test_market_order_fills_at_the_open_of_the_current_bar(
    broker: AlpacaBroker, server: FakeAlpacaServer
) -> None:
    expected = server.exchange.price("SPY")
    order = broker.submit_order(OrderRequest("c-buy", "SPY", OrderSide.BUY, Decimal("2.5")))
    assert order.status is OrderStatus.FILLED and order.filled_avg_price == expected
    assert order.submitted_at is not None and order.submitted_at.tzinfo is UTC
    (position,) = broker.get_positions()
    assert position.qty == Decimal("2.5") and position.avg_entry_price == expected
    account = broker.get_account()
    assert account.cash == Decimal(100000) - Decimal("2.5") * expected


def test_short_sell_gives_a_negative_position(broker: AlpacaBroker) -> None:
    broker.submit_order(OrderRequest("c-short", "AAPL", OrderSide.SELL, Decimal(3)))
    (position,) = broker.get_positions()
    assert position.qty == Decimal(-3)
    closing = broker.close_position("AAPL", "c-cover")
    assert closing is not None and closing.side is OrderSide.BUY and closing.qty == Decimal(3)
    assert broker.get_positions() == []


def test_trailing_stop_follows_the_bars_and_fills(
    broker: AlpacaBroker, server: FakeAlpacaServer, clock: ReplayClock
) -> None:
    broker.submit_order(OrderRequest("c-entry", "SPY", OrderSide.BUY, Decimal(10)))
    stop = broker.submit_order(
        OrderRequest("c-stop", "SPY", OrderSide.SELL, Decimal(10), OrderType.TRAILING_STOP, Decimal("0.001"))
    )
    assert stop.status is OrderStatus.NEW and stop.order_type is OrderType.TRAILING_STOP
    assert server.requests[-1].body["trail_percent"] == pytest.approx(
        0.1
    )  # a fraction becomes percent points
    for _ in range(120):
        clock.sleep(60)
        current = broker.get_order_by_client_id("c-stop")
        assert current is not None
        if current.status.is_final:
            break
    assert current.status is OrderStatus.FILLED and current.filled_qty == Decimal(10)
    assert broker.get_positions() == []


def test_close_position_cancels_the_stop_that_holds_the_shares(
    broker: AlpacaBroker, server: FakeAlpacaServer
) -> None:
    broker.submit_order(OrderRequest("c-entry", "SPY", OrderSide.BUY, Decimal(4)))
    broker.submit_order(
        OrderRequest(
            "c-stop", "SPY", OrderSide.SELL, Decimal(4), OrderType.TRAILING_STOP, Decimal("0.5") / 10
        )
    )
    closing = broker.close_position("SPY", "c-close")
    assert (
        closing is not None and closing.status is OrderStatus.FILLED and closing.client_order_id == "c-close"
    )
    stop = broker.get_order_by_client_id("c-stop")
    assert stop is not None and stop.status is OrderStatus.CANCELED
    assert broker.get_positions() == []
    # idempotent: the same close again returns the same order, sends nothing
    posts = server.count("POST", "/v2/orders")
    again = broker.close_position("SPY", "c-close")
    assert again is not None and again.broker_order_id == closing.broker_order_id
    assert server.count("POST", "/v2/orders") == posts
    assert broker.close_position("MSFT", "c-none") is None


def test_list_cancel_and_lookup(
    broker: AlpacaBroker, server: FakeAlpacaServer, clock: ReplayClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alpaca_module, "ORDERS_PAGE", 2)
    broker.submit_order(OrderRequest("o1", "SPY", OrderSide.BUY, Decimal(6)))
    for i in range(2, 6):
        clock.sleep(1)
        broker.submit_order(
            OrderRequest(f"o{i}", "SPY", OrderSide.SELL, Decimal(1), OrderType.TRAILING_STOP, Decimal("0.05"))
        )
    orders = broker.list_orders()
    assert [o.client_order_id for o in orders] == ["o1", "o2", "o3", "o4", "o5"]
    assert [o.client_order_id for o in broker.list_orders(since=orders[2].submitted_at)] == ["o4", "o5"]
    broker.cancel_order("o2")
    broker.cancel_order("o2")  # already cancelled: no error
    broker.cancel_order("o1")  # filled: nothing to cancel
    broker.cancel_order("nope")  # unknown: logged, no error
    cancelled = broker.get_order_by_client_id("o2")
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELED
    assert broker.cancel_all_orders() == 3
    assert broker.cancel_all_orders() == 0
    assert broker.get_order_by_client_id("never-sent") is None


def test_unsupported_requests_never_leave(broker: AlpacaBroker, server: FakeAlpacaServer) -> None:
    with pytest.raises(BrokerError):
        broker.submit_order(
            OrderRequest("x1", "SPY", OrderSide.BUY, Decimal(1), asset_class=AssetClass.OPTION)
        )
    with pytest.raises(BrokerError, match="whole shares"):
        broker.submit_order(
            OrderRequest(
                "x2", "SPY", OrderSide.SELL, Decimal("1.5"), OrderType.TRAILING_STOP, Decimal("0.02")
            )
        )
    with pytest.raises(LogicError, match="fraction"):
        broker.submit_order(
            OrderRequest("x3", "SPY", OrderSide.SELL, Decimal(1), OrderType.TRAILING_STOP, Decimal(2))
        )
    assert server.count("POST", "/v2/orders") == 0


def test_rejects_carry_the_broker_code(broker: AlpacaBroker) -> None:
    with pytest.raises(BrokerError) as info:
        broker.submit_order(OrderRequest("big", "SPY", OrderSide.BUY, Decimal(100000)))
    assert info.value.code == "40310000" and "buying power" in str(info.value)
    with pytest.raises(BrokerError):
        broker.submit_order(OrderRequest("unknown", "ZZZZ", OrderSide.BUY, Decimal(1)))


def test_bars_are_paged_filtered_and_never_from_the_future(
    broker: AlpacaBroker, server: FakeAlpacaServer, clock: ReplayClock
) -> None:
    start = SESSION - timedelta(days=1)
    bars = broker.get_bars(["SPY", "AAPL", "NONE"], start, SESSION + timedelta(hours=2))
    assert len(bars["SPY"]) == 390 + 30  # all of day 1 and the 30 bars of today that have ended by 15:00
    assert len(bars["AAPL"]) == len(bars["SPY"]) and bars["NONE"] == []
    assert server.count("GET", "/v2/stocks/bars") > 10  # page_size=50: alpaca-py followed next_page_token
    last = bars["SPY"][-1]
    assert last.timestamp + timedelta(minutes=1) <= clock.now() and last.timestamp.tzinfo is UTC
    window = broker.get_bars(["SPY"], SESSION, SESSION + timedelta(minutes=5))["SPY"]
    assert [b.timestamp for b in window] == [
        SESSION + timedelta(minutes=i) for i in range(5)
    ]  # end exclusive
    with pytest.raises(LogicError):
        broker.get_bars(["SPY"], SESSION.replace(tzinfo=None), SESSION)


def test_quotes_and_snapshots(broker: AlpacaBroker, server: FakeAlpacaServer, clock: ReplayClock) -> None:
    quote = broker.get_latest_quote("SPY")
    last_close = server.exchange.completed_bars("SPY")[-1].close
    assert quote.bid < quote.ask and abs(float(quote.mid) - last_close) < 0.01
    with pytest.raises(MarketDataError):
        broker.get_latest_quote("NONE")
    snaps = broker.get_snapshots(["SPY", "AAPL", "NONE", "SPY"])
    assert set(snaps) == {"SPY", "AAPL"}
    spy = snaps["SPY"]
    day1 = server.exchange.bars["SPY"][:390]
    assert spy.prev_close == Decimal(str(day1[-1].close))
    assert spy.prev_volume == int(sum(b.volume for b in day1))
    assert spy.today_open == Decimal(str(server.exchange.bars["SPY"][390].open))
    assert spy.quote is not None


def test_on_the_iex_feed_the_previous_volume_is_the_whole_markets(
    server: FakeAlpacaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The free plan's IEX feed reports IEX's own volume (Alpaca's market-data FAQ: AAPL 923,134 on iex, 51,861,083
    on sip), and MIN_VOLUME_THRESHOLD (1,000,000 in the template) is the whole market's: almost every stock failed
    the screen. The previous session's consolidated daily bar (SIP, readable on every plan once 15 minutes old)
    gives the volume; read once a day; a plan that refuses it leaves IEX's, said once."""
    day1 = server.exchange.bars["SPY"][:390]
    whole = int(sum(b.volume for b in day1))
    iex = broker_for(server)  # ALPACA_DATA_FEED=iex, the default
    assert iex.get_snapshots(["SPY"])["SPY"].prev_volume == whole
    asked = server.count("GET", "/v2/stocks/bars")
    assert iex.get_snapshots(["SPY"])["SPY"].prev_volume == whole
    assert server.count("GET", "/v2/stocks/bars") == asked  # the day's volume is kept
    # only the session asked about is kept: a process up for weeks kept every session's volumes (a long-run review)
    (key,) = iex._sip_volumes
    iex._sip_volumes.clear()
    iex._sip_volumes[(key[0], key[1] - timedelta(days=1))] = 1
    assert iex.get_snapshots(["SPY"])["SPY"].prev_volume == whole and list(iex._sip_volumes) == [key]
    # symbols whose previous daily bars have other dates (one did not trade yesterday) are all kept (the pruning
    # dropped one date's volumes while reading another's, and every screen asked again: a reread)
    older = key[1] - timedelta(days=3)
    iex._sip_volumes[("QQQ", older)] = 5
    asked = server.count("GET", "/v2/stocks/bars")
    assert iex._consolidated_volumes({"SPY": key[1], "QQQ": older}) == {"SPY": whole, "QQQ": 5}
    assert server.count("GET", "/v2/stocks/bars") == asked
    asked = server.count("GET", "/v2/stocks/bars")
    sip = broker_for(server, data_feed="sip")
    assert sip.get_snapshots(["SPY"])["SPY"].prev_volume == whole
    assert server.count("GET", "/v2/stocks/bars") == asked  # the snapshot already had it
    server.inject(
        "GET", "/v2/stocks/bars", "status", status=503, times=4
    )  # the daily bars unreachable for now
    down = broker_for(server)
    assert (
        down.get_snapshots(["SPY"])["SPY"].prev_volume < whole / 20
    )  # the snapshots still serve: IEX's volume
    assert down.get_snapshots(["SPY"])["SPY"].prev_volume == whole  # asked again by the next screen
    server.inject("GET", "/v2/stocks/bars", "status", status=403, times=99)  # a plan without SIP history
    refused = broker_for(server)
    asked_before_refusal = server.count("GET", "/v2/stocks/bars")
    assert refused.get_snapshots(["SPY"])["SPY"].prev_volume < whole / 20  # IEX's, a few percent of it
    assert refused.get_snapshots(["AAPL"])["AAPL"].prev_volume is not None
    said = [r for r in caplog.records if "Alpaca refused consolidated (SIP) daily bars" in r.getMessage()]
    assert len(said) == 1 and server.count("GET", "/v2/stocks/bars") == asked_before_refusal + 1  # asked once


def test_client_internals_are_tamed(broker: AlpacaBroker) -> None:
    # guards the alpaca-py private attributes this adapter relies on (pinned alpaca-py 0.44.0)
    for client in (broker._trading, broker._data):
        assert client._retry == 0
        assert client._session.timeout == 2.0


def test_from_settings_reads_encrypted_credentials(tmp_path, server: FakeAlpacaServer) -> None:  # type: ignore[no-untyped-def]
    from tbot_bot.support.decrypt_secrets import save_secret_json

    home = BotHome(tmp_path)
    settings = make_settings(BROKER_NAME="ALPACA", ALPACA_ENABLED="true", SIM_ENABLED="false", API_TIMEOUT=7)
    save_secret_json(
        home,
        "broker_credentials",
        {
            "ALPACA_API_KEY": "test-key",
            "ALPACA_SECRET_KEY": "test-secret",
            "ALPACA_PAPER": "true",
            "ALPACA_BASE_URL": server.url,
            "ALPACA_DATA_URL": server.url,
        },
    )
    broker = factory.build_broker(settings, home, clock=ReplayClock(SESSION))
    try:
        assert isinstance(broker, AlpacaBroker)
        assert broker._trading._session.timeout == 7
        assert broker.retry.retries == settings.API_RETRY_LIMIT
        assert broker.get_account().status == "ACTIVE"
    finally:
        broker.close()
    save_secret_json(home, "broker_credentials", {"ALPACA_API_KEY": "k"})
    with pytest.raises(ConfigError, match="ALPACA_SECRET_KEY"):
        AlpacaBroker.from_settings(settings, home)


def test_consolidated_volumes_of_two_dates_read_in_one_call_are_both_kept() -> None:
    """A symbol that did not trade yesterday has an older previous daily bar: reading that date's volumes dropped
    the other date's just read (a reread of the pruning), and every screen asked again."""
    from tbot_bot.broker.brokers.alpaca_data import AlpacaMarketData

    yesterday, older = datetime(2024, 3, 4, 5, tzinfo=UTC), datetime(2024, 3, 1, 5, tzinfo=UTC)
    asked: list[object] = []

    class Raw:  # the SDK data client's reply to StockBarsRequest (raw mode): a daily bar per symbol asked
        def get_stock_bars(self, req):  # type: ignore[no-untyped-def]
            asked.append(req.start)
            return {
                s: [{"t": (yesterday if s == "AAA" else older).isoformat(), "o": 1, "h": 1, "l": 1, "c": 1,
                     "v": 1_000_000 if s == "AAA" else 2_000_000}]
                for s in req.symbol_or_symbols
            }  # fmt: skip

    data = AlpacaMarketData.__new__(AlpacaMarketData)
    data._sip_volumes, data._sip_refused, data._data_raw = {}, False, Raw()
    data._read = lambda op, fn, market_data=False: fn()  # type: ignore[method-assign]
    previous = {"AAA": yesterday, "BBB": older}
    assert data._consolidated_volumes(previous) == {"AAA": 1_000_000, "BBB": 2_000_000}
    assert data._consolidated_volumes(previous) == {"AAA": 1_000_000, "BBB": 2_000_000} and len(asked) == 2
