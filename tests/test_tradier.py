"""Tradier adapter against the fake Tradier server: reads, orders, the Alpaca fault matrix, CLI (issue 14).

Tradier does not enforce unique tags, so every case counts the orders the fake holds for the client id: a lost
or slow reply must never leave the order lost (0) or duplicated (2).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fakes.tradier_server import ACCOUNT, FakeTradierServer

from rigd_tbot.cli import main
from tbot_bot.broker.broker_api import OrderRequest, OrderStatus, OrderType
from tbot_bot.broker.brokers.tradier import TradierBroker
from tbot_bot.broker.brokers.tradier_api import BrokerRejected
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, ConfigError, NetworkError, OrderStateUnknown

ORDERS = f"/v1/accounts/{ACCOUNT}/orders"
NY_OPEN = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)  # a Monday, 09:30 New York


@pytest.fixture
def server() -> Iterator[FakeTradierServer]:
    with FakeTradierServer(now=lambda: NY_OPEN + timedelta(minutes=30)) as srv:
        yield srv
        srv.wait_idle()


def broker_for(
    srv: FakeTradierServer, *, retries: int = 3, token: str = "test-token", settle: float = 0.05
) -> TradierBroker:
    return TradierBroker(
        token,
        ACCOUNT,
        base_url=srv.url,
        timeout=0.3,
        retry=RetryPolicy(retries=retries, sleep=lambda s: None),
        fill_timeout=0.3,
        poll_interval=0.01,
        settle_delay=settle,  # real time: a request still in flight at the fake lands meanwhile
    )


def buy(cid: str, qty: str = "10", symbol: str = "SPY") -> OrderRequest:
    return OrderRequest(cid, symbol, OrderSide.BUY, Decimal(qty))


def test_reads_account_clock_positions_quotes_and_bars(server: FakeTradierServer) -> None:
    b = broker_for(server)
    a = b.get_account()
    assert (a.account_id, a.cash, a.equity, a.buying_power) == (
        ACCOUNT,
        Decimal("100000"),
        Decimal("100000"),
        Decimal("100000"),
    )
    c = b.get_clock()
    assert c.is_open and c.timestamp == NY_OPEN + timedelta(minutes=30)
    assert c.next_close == datetime(2026, 11, 16, 21, 0, tzinfo=UTC)
    assert b.get_positions() == []
    q = b.get_latest_quote("SPY")
    assert (q.bid, q.ask) == (Decimal("449.99"), Decimal("450.01"))
    server.daily_volume["SPY"] = 70_000_000
    snap = b.get_snapshots(["SPY", "NOPE"])
    assert (
        list(snap) == ["SPY"]
        and snap["SPY"].prev_volume == 70_000_000
        and snap["SPY"].price == Decimal("450")
    )
    server.bars["SPY"] = [
        (NY_OPEN + timedelta(minutes=i), 450.0 + i, 451.0 + i, 449.0 + i, 450.5 + i, 1000 + i)
        for i in range(40)
    ]
    bars = b.get_bars(["SPY"], NY_OPEN + timedelta(minutes=5), NY_OPEN + timedelta(minutes=10))["SPY"]
    assert [x.timestamp for x in bars] == [
        NY_OPEN + timedelta(minutes=m) for m in range(5, 10)
    ]  # UTC, [start, end)
    assert bars[0].open == 455.0 and bars[0].volume == 1005
    later = b.get_bars(["SPY"], NY_OPEN + timedelta(minutes=25), NY_OPEN + timedelta(hours=1))["SPY"]
    assert later[-1].timestamp == NY_OPEN + timedelta(minutes=29)  # only bars that have ended


def test_market_order_fills_and_is_idempotent_on_the_client_id(server: FakeTradierServer) -> None:
    b = broker_for(server)
    order = b.submit_order(buy("TB01-20261116-open-SPY-1"))
    assert (order.status, order.filled_qty, order.filled_avg_price) == (
        OrderStatus.FILLED,
        Decimal(10),
        Decimal(450),
    )
    assert order.client_order_id == "TB01-20261116-open-SPY-1" and len(order.fills) == 1
    again = b.submit_order(buy("TB01-20261116-open-SPY-1"))
    assert again.broker_order_id == order.broker_order_id
    assert server.count("POST", ORDERS) == 1 and len(server.orders_with_tag("TB01-20261116-open-SPY-1")) == 1
    [pos] = b.get_positions()
    assert (pos.symbol, pos.qty, pos.avg_entry_price) == ("SPY", Decimal(10), Decimal("450.0000"))
    closed = b.close_position("SPY", "TB01-20261116-open-SPY-1x")
    assert closed is not None and closed.side is OrderSide.SELL and closed.status is OrderStatus.FILLED
    assert b.get_positions() == [] and b.close_position("SPY", "TB01-20261116-open-SPY-1y") is None


@pytest.mark.parametrize(
    ("kind", "status", "posts"),
    [
        ("status", 500, 2),  # refused before acting: looked up, absent, sent again
        ("status", 503, 2),
        ("status", 429, 2),
        ("drop", 0, 2),
        ("status_after", 500, 1),  # accepted, reply lost: found by tag, never sent again
        ("drop_after", 0, 1),
        ("delay_after", 0, 1),
        ("garbage", 0, 1),
        ("delay", 0, 1),  # slow before acceptance: the adapter waits for the copy in flight, finds it
    ],
)
def test_submission_faults_never_lose_or_duplicate(
    server: FakeTradierServer, kind: str, status: int, posts: int
) -> None:
    server.inject("POST", ORDERS, kind, status=status or 500, delay=0.6)  # type: ignore[arg-type]
    cid = f"TB01-20261116-open-SPY-{kind.replace('_', '')}{status}"
    # "delay": the copy in flight lands 0.6 s after it was sent; the adapter gives up on it at 0.3 s and
    # settles 3 s before it looks (room for a loaded machine: a look before the landing sends it again)
    order = broker_for(server, settle=3.0 if kind == "delay" else 0.05).submit_order(buy(cid))
    server.wait_idle()
    assert order.status is OrderStatus.FILLED and order.filled_qty == 10
    assert len(server.orders_with_tag(cid)) == 1, "lost or duplicated"
    assert server.count("POST", ORDERS) == posts


def test_refusals_are_not_retried_and_rejections_carry_the_reason(server: FakeTradierServer) -> None:
    b = broker_for(server)
    with pytest.raises(BrokerRejected, match="insufficient buying power"):
        b.submit_order(buy("TB01-20261116-open-SPY-big", "100000"))
    assert server.count("POST", ORDERS) == 1 and server.orders == []
    with pytest.raises(BrokerRejected, match="not enough shares"):
        b.submit_order(OrderRequest("TB01-20261116-open-SPY-short", "SPY", OrderSide.SELL, Decimal(1)))
    server.reject_symbols["SH"] = "Symbol is not available for trading"
    rejected = b.submit_order(buy("TB01-20261116-open-SH-1", "5", "SH"))
    assert (
        rejected.status is OrderStatus.REJECTED
        and rejected.reject_reason == "Symbol is not available for trading"
    )
    for bad in (
        OrderRequest("TB01-x-1", "SPY", OrderSide.BUY, Decimal("1.5")),
        OrderRequest("TB01-x-2", "SPY", OrderSide.BUY, Decimal(1), order_type=OrderType.TRAILING_STOP),
    ):
        with pytest.raises(BrokerError):
            b.submit_order(bad)
    assert server.count("POST", ORDERS) == 3


def test_server_error_forever_is_a_network_error_with_no_order(server: FakeTradierServer) -> None:
    server.inject("POST", ORDERS, "status", status=500, times=99)
    with pytest.raises(NetworkError, match="could not be placed after 3 attempts"):
        broker_for(server, retries=2).submit_order(buy("TB01-20261116-open-SPY-9"))
    assert server.orders == [] and server.count("POST", ORDERS) == 3


def test_submission_and_lookup_both_failing_is_order_state_unknown(server: FakeTradierServer) -> None:
    server.inject("POST", ORDERS, "status_after", status=502)
    server.inject("GET", ORDERS, "status", status=500, times=99, skip=1)  # the pre-check passes, then nothing
    with pytest.raises(OrderStateUnknown) as exc:
        broker_for(server, retries=1).submit_order(buy("TB01-20261116-open-SPY-u"))
    assert exc.value.client_order_id == "TB01-20261116-open-SPY-u"  # type: ignore[attr-defined]
    assert len(server.orders_with_tag("TB01-20261116-open-SPY-u")) == 1  # accepted: reconciliation finds it


def test_partial_fills_complete_or_the_remainder_is_cancelled(server: FakeTradierServer) -> None:
    b = broker_for(server)
    server.inject_partial_fill(["0.3", "0.3"])
    done = b.submit_order(buy("TB01-20261116-open-SPY-p1"))
    assert (done.status, done.filled_qty) == (OrderStatus.FILLED, Decimal(10))
    server.inject_partial_fill(["0.3"], stall=True)
    stalled = b.submit_order(buy("TB01-20261116-open-SPY-p2"))
    assert (stalled.status, stalled.filled_qty, stalled.qty) == (
        OrderStatus.CANCELED,
        Decimal(3),
        Decimal(10),
    )
    assert server.orders_with_tag("TB01-20261116-open-SPY-p2")[0].status == "canceled"


@pytest.mark.parametrize(("kind", "status"), [("status", 500), ("status", 429), ("drop", 0), ("delay", 0)])
def test_read_fault_once_is_retried(
    server: FakeTradierServer, kind: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server.inject("GET", f"/v1/accounts/{ACCOUNT}/balances", kind, status=status or 500, delay=0.6)  # type: ignore[arg-type]
    b = broker_for(server)
    assert b.get_account().cash == Decimal("100000") and b.api_retries == 1
    # the retry line names the request, not an internal function (it said TradierBroker._get.<locals>.<lambda>)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry 1/3 of ")]
    assert line.startswith(f"retry 1/3 of Tradier GET /v1/accounts/{ACCOUNT}/balances in ")


def test_read_faults_forever_and_bad_token(server: FakeTradierServer) -> None:
    server.inject("GET", "/v1/markets/clock", "status", status=429, times=99)
    with pytest.raises(NetworkError, match="HTTP 429"):
        broker_for(server).get_clock()
    assert server.count("GET", "/v1/markets/clock") == 4
    with pytest.raises(ConfigError, match="TRADIER_ACCESS_TOKEN"):
        broker_for(server, token="wrong").get_account()


def test_capabilities_allow_inverse_etfs_and_long_puts_not_short_sales(tmp_path: Path) -> None:
    from helpers import make_settings

    base = {"BROKER_NAME": "TRADIER", "SIM_ENABLED": "false", "TRADIER_ENABLED": "true"}
    ok = make_settings(
        **base, SHORT_TYPE_OPEN="InverseETF", SHORT_TYPE_MID="disabled", SHORT_TYPE_CLOSE="InverseETF"
    )
    assert ok.BROKER_NAME == "TRADIER"
    with pytest.raises(ConfigError, match="SHORT_TYPE_OPEN=ShortSell but broker TRADIER does not short sell"):
        make_settings(**base, SHORT_TYPE_OPEN="ShortSell")
    # Tradier places single-leg option orders (class=option): long puts are a bearish instrument there
    assert make_settings(**base, SHORT_TYPE_MID="LongPut").short_type("mid").value == "LongPut"


def test_provision_and_broker_check_against_the_fake(
    tmp_path: Path,
    server: FakeTradierServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TRADIER_ACCESS_TOKEN", "test-token")
    monkeypatch.setenv("TRADIER_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("TRADIER_BASE_URL", server.url)
    home = tmp_path / "tradier"
    args = [
        "provision",
        "--home",
        str(home),
        "--broker",
        "tradier",
        "--entity",
        "RGL",
        "--jurisdiction",
        "USA",
    ]
    assert main([*args, "--account", "main", "--bot-id", "TB01", "--float", "2500"]) == 0
    assert main(["broker-check", "--home", str(home), "--symbol", "SPY"]) == 0
    out = capsys.readouterr().out
    assert "broker TRADIER" in out and "broker-check OK" in out
    for label in ("account", "clock", "positions", "quote"):
        assert f"OK   {label}" in out
    # the quote's bid_date is epoch milliseconds, as Tradier documents it (issue 24)
    assert (
        f"broker TRADIER at {server.url}" in out
        and "SPY bid 449.99 ask 450.01" in out
        and "at 15:00:00Z" in out
    )
    # a reply shape nobody foresaw: one readable line naming the host, no traceback, the other steps still run
    row = {"cost_basis": 10.0, "id": 1, "quantity": 1.0}
    server.reply_with("GET", f"/v1/accounts/{ACCOUNT}/positions", {"positions": {"position": row}})
    assert main(["broker-check", "--home", str(home), "--symbol", "SPY"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL positions  BrokerError: broker TRADIER at {server.url}: get_positions failed" in out
    assert "OK   quote" in out and "Traceback" not in out
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.support.path_resolver import BotHome

    s = load_settings(BotHome(home))
    assert (s.BROKER_NAME, s.TRADIER_ENABLED, s.SHORT_TYPE_OPEN.value) == ("TRADIER", True, "InverseETF")


def test_client_ids_with_a_share_class_dot_travel_as_tags() -> None:
    from tbot_bot.broker.brokers.tradier import from_tag, to_tag
    from tbot_bot.errors import LogicError

    assert to_tag("TB01-20261116-open-BRK.B-1") == "TB01-20261116-open-BRK--B-1"
    assert from_tag("TB01-20261116-open-BRK--B-1") == "TB01-20261116-open-BRK.B-1"
    with pytest.raises(LogicError):
        to_tag("TB01 open")


def test_the_26th_order_of_the_day_is_found_and_an_unclear_one_is_placed_once(
    server: FakeTradierServer,
) -> None:
    """Tradier lists the day's orders a page at a time (25 by default): the 26th order was never found, its fill
    lost ("vanished while tracking"), and an unclear submission of it was placed again and again (400 shares for
    a 100-share order). Orders are read by the id the POST returned, and the day's list is read page by page."""
    server.cash = Decimal("10000000")
    b = broker_for(server)
    for i in range(25):
        b.submit_order(buy(f"TB01-20261116-open-SPY-{i}", qty="1"))
    found = b.submit_order(buy("TB01-20261116-open-SPY-25", qty="1"))
    assert (found.status, found.filled_qty) == (OrderStatus.FILLED, Decimal(1))
    server.inject("POST", ORDERS, "status_after", status=502)  # placed at Tradier, its reply lost
    unclear = b.submit_order(buy("TB01-20261116-open-SPY-26", qty="100"))
    assert (unclear.status, unclear.filled_qty) == (OrderStatus.FILLED, Decimal(100))
    assert len(server.orders_with_tag("TB01-20261116-open-SPY-26")) == 1
    fresh = broker_for(server)  # a restart: no id known, the list is searched (every page of it)
    assert fresh.get_order_by_client_id("TB01-20261116-open-SPY-25").filled_qty == 1  # type: ignore[union-attr]
    assert len(fresh.list_orders()) == 27


@pytest.mark.parametrize("how", ["filled as the cancel arrived", "cancel reply lost"])
def test_a_cancel_tradier_refuses_as_already_final_is_not_a_rejected_order(
    server: FakeTradierServer, how: str
) -> None:
    """Tradier refuses to cancel a final order (HTTP 400 "order already in finalized state"): at the fill deadline
    the rest may fill as the cancel arrives, or a DELETE that did cancel loses its reply and its retry is refused.
    That refusal escaped as a rejected order, and the shares bought were never journaled."""
    server.inject_partial_fill(["0.5"], stall=True)  # 5 of 10 now, the rest waits
    if how == "filled as the cancel arrived":
        server.fill_before_cancel = True
    else:
        server.inject("DELETE", f"{ORDERS}/", "status_after", status=502)
    done = broker_for(server).submit_order(buy("TB01-20261116-open-SPY-c"))
    expected = (
        (OrderStatus.FILLED, Decimal(10)) if server.fill_before_cancel else (OrderStatus.CANCELED, Decimal(5))
    )
    assert (done.status, done.filled_qty) == expected
