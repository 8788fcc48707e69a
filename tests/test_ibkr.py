"""IbkrBroker at the ib_async seam: a real IB() with its socket replaced by a fake TWS (fakes.fake_ib)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fakes.fake_ib import ACCOUNT, FakeTws
from helpers import make_settings
from ib_async import Option, Stock

from tbot_bot.broker.broker_api import AssetClass, OptionContract, OrderRequest, OrderStatus, OrderType
from tbot_bot.broker.brokers.ibkr import IbkrBroker, ReconcileReport
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, ConfigError, NetworkError
from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import BotHome

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
PUT = OptionContract("SPY", date(2026, 12, 18), Decimal(450), "P")


class Sleeps(list[float]):
    def __call__(self, s: float) -> None:
        self.append(s)


@pytest.fixture
def tws() -> FakeTws:
    return FakeTws(now=NOW)


@pytest.fixture
def reports() -> list[ReconcileReport]:
    return []


@pytest.fixture
def broker(tws: FakeTws, reports: list[ReconcileReport]) -> Iterator[IbkrBroker]:
    b = IbkrBroker(
        tws.ib, host="127.0.0.1", port=4002, client_id=7, account=ACCOUNT, clock=ReplayClock(NOW),
        sleep=Sleeps(), reconnect_attempts=3, on_reconcile=reports.append,
    )  # fmt: skip
    b.connect()
    yield b


def buy(cid: str, symbol: str = "SPY", qty: int = 10, **kw: object) -> OrderRequest:
    return OrderRequest(cid, symbol, OrderSide.BUY, Decimal(qty), **kw)  # type: ignore[arg-type]


def last_order_id(tws: FakeTws) -> int:
    return tws.placed[-1][0]


def test_account_summary_and_self_check(broker: IbkrBroker) -> None:
    acct = broker.get_account()
    assert acct.account_id == ACCOUNT and acct.equity == Decimal("100000.00")
    assert acct.cash == Decimal("60000.00") and acct.buying_power == Decimal("200000.00")
    assert broker.self_check().ok


def test_market_order_fill(broker: IbkrBroker, tws: FakeTws) -> None:
    order = broker.submit_order(buy("B1-open-SPY-1"))
    assert order.status is OrderStatus.NEW and order.client_order_id == "B1-open-SPY-1"
    oid, contract, ib_order = tws.placed[-1]
    assert (contract.secType, contract.symbol, contract.exchange, contract.currency) == (
        "STK",
        "SPY",
        "SMART",
        "USD",
    )
    assert (ib_order.orderRef, ib_order.orderType, ib_order.tif, ib_order.account) == (
        "B1-open-SPY-1",
        "MKT",
        "DAY",
        ACCOUNT,
    )
    assert ib_order.action == "BUY" and ib_order.totalQuantity == 10
    tws.ack(oid)
    assert broker.get_order_by_client_id("B1-open-SPY-1").status is OrderStatus.ACCEPTED  # type: ignore[union-attr]
    tws.fill(oid, 10, 450.25, commission=1.25)
    filled = broker.get_order_by_client_id("B1-open-SPY-1")
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert filled.filled_qty == 10 and filled.filled_avg_price == Decimal("450.25")
    assert filled.fills[0].fee == Decimal("1.25") and filled.filled_at == NOW
    assert filled.broker_order_id == str(tws.book[oid].perm_id)
    [pos] = broker.get_positions()
    assert (pos.symbol, pos.qty, pos.avg_entry_price) == ("SPY", Decimal(10), Decimal("450.25"))
    assert [o.client_order_id for o in broker.list_orders()] == ["B1-open-SPY-1"]


def test_partial_fills_and_duplicate_executions(broker: IbkrBroker, tws: FakeTws) -> None:
    broker.submit_order(buy("P1", "SQQQ", 100))  # an inverse ETF is an ordinary stock contract
    oid = last_order_id(tws)
    tws.ack(oid)
    exec_id = tws.fill(oid, 40, 10.0)
    part = broker.get_order_by_client_id("P1")
    assert part is not None and part.status is OrderStatus.PARTIALLY_FILLED and part.filled_qty == 40
    # the same execution delivered again (as after a reconnect) counts once
    rec = tws.book[oid]
    tws.ib.wrapper.execDetails(-1, rec.contract, rec.executions[0][0])
    assert broker.get_order_by_client_id("P1").filled_qty == 40  # type: ignore[union-attr]
    tws.fill(oid, 60, 10.5)
    done = broker.get_order_by_client_id("P1")
    assert done is not None and done.status is OrderStatus.FILLED and done.filled_qty == 100
    assert (
        done.filled_avg_price == Decimal("10.3") and len(done.fills) == 2 and done.fills[0].fill_id == exec_id
    )


def test_same_client_order_id_is_never_sent_twice(broker: IbkrBroker, tws: FakeTws) -> None:
    first = broker.submit_order(buy("D1"))
    again = broker.submit_order(buy("D1"))
    assert len(tws.placed) == 1 and again.broker_order_id == first.broker_order_id


def test_long_put_order(broker: IbkrBroker, tws: FakeTws) -> None:
    req = OrderRequest("PUT1", "SPY", OrderSide.BUY, Decimal(2), asset_class=AssetClass.OPTION, option=PUT)
    order = broker.submit_order(req)
    assert order.symbol == PUT.occ_symbol == "SPY261218P00450000" and order.asset_class is AssetClass.OPTION
    oid, contract, _ = tws.placed[-1]
    assert isinstance(contract, Option)
    assert (contract.symbol, contract.lastTradeDateOrContractMonth, contract.strike, contract.right) == (
        "SPY",
        "20261218",
        450.0,
        "P",
    )
    assert contract.multiplier == "100" and contract.exchange == "SMART"
    tws.ack(oid)
    tws.fill(oid, 2, 3.5)
    assert broker.get_order_by_client_id("PUT1").status is OrderStatus.FILLED  # type: ignore[union-attr]
    [pos] = broker.get_positions()
    assert pos.symbol == PUT.occ_symbol and pos.asset_class is AssetClass.OPTION
    assert pos.qty == 2 and pos.avg_entry_price == Decimal("3.5")  # IB's avgCost 350 per contract / 100
    close = broker.close_position(PUT.occ_symbol, "PUT1-exit")
    assert close is not None and close.side is OrderSide.SELL and close.qty == 2
    assert tws.placed[-1][1].secType == "OPT" and tws.placed[-1][2].orderType == "MKT"


def test_trailing_stop(broker: IbkrBroker, tws: FakeTws) -> None:
    req = OrderRequest(
        "T1",
        "SPY",
        OrderSide.SELL,
        Decimal(10),
        order_type=OrderType.TRAILING_STOP,
        trail_percent=Decimal("0.02"),
    )
    order = broker.submit_order(req)
    assert order.order_type is OrderType.TRAILING_STOP
    ib_order = tws.placed[-1][2]
    assert (ib_order.orderType, ib_order.trailingPercent, ib_order.action) == ("TRAIL", 2.0, "SELL")
    for bad in (Decimal(2), None):
        with pytest.raises(BrokerError, match="trail_percent is a fraction"):
            broker.submit_order(
                OrderRequest(
                    "T2",
                    "SPY",
                    OrderSide.SELL,
                    Decimal(10),
                    order_type=OrderType.TRAILING_STOP,
                    trail_percent=bad,
                )
            )


def test_invalid_requests_never_reach_ib(broker: IbkrBroker, tws: FakeTws) -> None:
    with pytest.raises(BrokerError):
        broker.submit_order(OrderRequest("F1", "SPY", OrderSide.BUY, Decimal("1.5")))
    with pytest.raises(BrokerError):
        broker.submit_order(
            OrderRequest("F2", "SPY", OrderSide.BUY, Decimal(1), asset_class=AssetClass.OPTION)
        )
    assert tws.placed == []


def test_reject_is_reported_with_reason(broker: IbkrBroker, tws: FakeTws) -> None:
    broker.submit_order(buy("R1"))
    tws.reject(last_order_id(tws))
    order = broker.get_order_by_client_id("R1")
    assert order is not None and order.status is OrderStatus.REJECTED
    assert order.reject_reason is not None and "IB error 201" in order.reject_reason


def test_cancel(broker: IbkrBroker, tws: FakeTws) -> None:
    broker.submit_order(buy("C1"))
    broker.submit_order(buy("C2"))
    for oid, _, _ in tws.placed:
        tws.ack(oid)
    tws.fill(tws.placed[1][0], 10, 1.0)
    broker.cancel_order("C1")
    assert tws.cancelled == [tws.placed[0][0]]
    tws.confirm_cancel(tws.placed[0][0])
    assert broker.get_order_by_client_id("C1").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    broker.cancel_order("C2")  # already filled: nothing to cancel
    assert len(tws.cancelled) == 1
    with pytest.raises(BrokerError) as err:
        broker.cancel_order("nope")
    assert err.value.code == "not_found"
    broker.submit_order(buy("C3"))
    tws.ack(last_order_id(tws))
    assert broker.cancel_all_orders() == 1 and tws.cancelled[-1] == last_order_id(tws)


def test_a_burst_of_cancels_beyond_ibs_pacing_all_leave_before_the_call_returns(
    broker: IbkrBroker, tws: FakeTws
) -> None:
    """ib_async sends at most 45 messages a second and queues the rest for its event loop, which runs only inside
    adapter calls: 5 of the close's 50 cancels waited as long as the supervisor did (or for good, at an exit).
    Here ib_async's own client encodes and paces the cancels, written to a recording socket."""
    for i in range(50):
        broker.submit_order(buy(f"T{i}", qty=1))
        tws.ack(last_order_id(tws))
    written: list[bytes] = []
    client = tws.ib.client
    client._serverVersion = client.MaxClientVersion
    client.conn.transport = type("Socket", (), {"write": lambda self, data: written.append(data)})()
    del client.cancelOrder  # ib_async's Client.cancelOrder: encoded, paced, sent
    del tws.ib.sleep  # and its event loop runs when the adapter waits on it
    assert broker.cancel_all_orders() == 50
    assert len(written) == 50


def test_close_position(broker: IbkrBroker, tws: FakeTws) -> None:
    assert broker.close_position("SPY", "X0") is None
    tws.set_position(Stock("SPY", "SMART", "USD"), -5, 450.0)
    order = broker.close_position("SPY", "X1")
    assert order is not None and order.side is OrderSide.BUY and order.qty == 5
    assert broker.close_position("SPY", "X1") is not None and len(tws.placed) == 1  # idempotent


def test_fill_during_disconnect_is_found_after_reconnect(
    broker: IbkrBroker, tws: FakeTws, reports: list[ReconcileReport]
) -> None:
    broker.submit_order(buy("N1"))
    oid = last_order_id(tws)
    tws.ack(oid)
    tws.drop()  # nightly reset / network drop
    assert broker.connection_lost_at == NOW
    tws.fill(oid, 10, 451.0)  # TWS fills it while we are away
    order = broker.get_order_by_client_id("N1")  # reconnects, then reads what TWS replayed
    assert order is not None and order.status is OrderStatus.FILLED and order.filled_avg_price == Decimal(451)
    assert tws.connect_calls == 2 and broker.reconnects == 1
    assert reports[-1].positions[0].symbol == "SPY" and reports[-1].unknown_to_broker == []
    assert broker.submit_order(buy("N1")).status is OrderStatus.FILLED and len(tws.placed) == 1


def test_reply_lost_after_ib_accepted(broker: IbkrBroker, tws: FakeTws) -> None:
    tws.lose_next_place = True
    broker.submit_order(buy("L1"))  # IB got it; the connection died before any reply
    again = broker.submit_order(buy("L1"))  # the caller retries: found by orderRef, not sent again
    assert len(tws.placed) == 1 and again.client_order_id == "L1" and again.status is OrderStatus.ACCEPTED


def test_order_that_never_left_is_reported_unknown(
    broker: IbkrBroker, tws: FakeTws, reports: list[ReconcileReport]
) -> None:
    tws.fail_next_place = True
    with pytest.raises(NetworkError):
        broker.submit_order(buy("U1"))
    tws.drop()
    assert broker.get_order_by_client_id("U1") is None
    assert reports[-1].unknown_to_broker == ["U1"]


def test_reconnect_backoff_then_success(broker: IbkrBroker, tws: FakeTws) -> None:
    tws.drop()
    tws.refuse_connects = 2
    assert broker.get_positions() == []
    assert broker._sleep == [1.0, 2.0]  # type: ignore[comparison-overlap]


def test_reconnect_gives_up_as_network_error(broker: IbkrBroker, tws: FakeTws) -> None:
    tws.drop()
    tws.refuse_connects = 10
    with pytest.raises(NetworkError, match="unreachable after 3 attempts"):
        broker.get_account()
    assert broker.maintain_connection() is False
    tws.refuse_connects = 0
    assert broker.maintain_connection() is True


# exchange_calendars 4.13 on pandas 3.1 warns while building a calendar (not our code)
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_clock_from_exchange_calendar(tws: FakeTws) -> None:
    def at(ts: datetime) -> IbkrBroker:
        return IbkrBroker(tws.ib, host="h", port=1, client_id=1, account=ACCOUNT, clock=ReplayClock(ts))

    open_clock = at(NOW).get_clock()
    assert open_clock.is_open and open_clock.next_close == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    # Thanksgiving 2026-11-26 is closed; the 27th closes early
    evening = at(datetime(2026, 11, 25, 22, 0, tzinfo=UTC)).get_clock()
    assert not evening.is_open
    assert evening.next_open == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    assert evening.next_close == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def test_connect_refused_is_network_error(tws: FakeTws) -> None:
    tws.refuse_connects = 1
    sleeps = Sleeps()
    b = IbkrBroker(tws.ib, host="h", port=1, client_id=1, account=ACCOUNT, sleep=sleeps, reconnect_attempts=2)
    with pytest.raises(NetworkError):
        b.connect()
    tws.refuse_connects = 2
    check = b.self_check()
    assert not check.ok and "unreachable" in check.reason and sleeps == [1.0]


def test_from_settings(tmp_path: Path, tws: FakeTws) -> None:
    settings = make_settings(BROKER_NAME="IBKR", IBKR_ENABLED="true", SIM_ENABLED="false")
    home = BotHome(tmp_path)
    save_secret_json(
        home,
        "broker_credentials",
        {"IBKR_HOST": "127.0.0.1", "IBKR_PORT": "4002", "IBKR_CLIENT_ID": "7", "IBKR_ACCOUNT": ACCOUNT},
    )
    b = IbkrBroker.from_settings(settings, home, ib=tws.ib)
    assert (b.host, b.port, b.client_id, b.account, b.market_calendar) == (
        "127.0.0.1",
        4002,
        7,
        ACCOUNT,
        "XNYS",
    )
    save_secret_json(
        home, "broker_credentials", {"IBKR_HOST": "127.0.0.1", "IBKR_PORT": "x", "IBKR_CLIENT_ID": ""}
    )
    with pytest.raises(ConfigError, match="IBKR_CLIENT_ID"):
        IbkrBroker.from_settings(settings, home, ib=tws.ib)


def test_real_event_loop_pump(broker: IbkrBroker, tws: FakeTws) -> None:
    del tws.ib.sleep  # back to ib_async's own IB.sleep, which runs its asyncio loop
    broker.submit_order(buy("E1"))
    tws.ack(last_order_id(tws))
    assert broker.get_order_by_client_id("E1").status is OrderStatus.ACCEPTED  # type: ignore[union-attr]


def test_from_settings_ignores_sim_only_options(tmp_path: Path, tws: FakeTws) -> None:
    settings = make_settings(
        BROKER_NAME="IBKR", IBKR_ENABLED="true", SIM_ENABLED="false", API_RETRY_LIMIT="2"
    )
    home = BotHome(tmp_path)
    save_secret_json(home, "broker_credentials", {"IBKR_HOST": "h", "IBKR_PORT": 4001, "IBKR_CLIENT_ID": 3})
    b = IbkrBroker.from_settings(settings, home, ib=tws.ib, bars=object(), clock=ReplayClock(NOW))
    assert b.reconnect_attempts == 3 and b.account == ""
    b.get_positions()  # connects lazily; the account comes from IB's managed accounts
    assert b.account == ACCOUNT


def test_local_pending_order_is_not_taken_as_confirmed(
    broker: IbkrBroker, tws: FakeTws, reports: list[ReconcileReport]
) -> None:
    broker.submit_order(buy("Q1"))
    assert broker.get_order_by_client_id("Q1") is not None  # only ib_async's local PendingSubmit copy
    assert "Q1" in broker.unconfirmed
    del tws.book[last_order_id(tws)]  # TWS never really got it
    tws.drop()
    assert broker.get_order_by_client_id("Q1") is None
    assert reports[-1].unknown_to_broker == ["Q1"]
    broker.submit_order(buy("Q2"))
    tws.ack(last_order_id(tws))
    broker.get_order_by_client_id("Q2")
    assert "Q2" not in broker.unconfirmed
