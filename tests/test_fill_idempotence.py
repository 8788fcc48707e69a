"""Fill events are idempotent through the order path (issue 24): the same fill reported two or three times,
cumulative quantities that repeat or arrive out of order, a fill after the cancel, a partial fill then a reject,
an execution missed while IB was disconnected. Through OrderRouter and the day's booking into the real ledger,
for Alpaca and Tradier (real HTTP fakes serving vendor-shaped replies), IBKR (the ib_async seam) and the sim:
the ledger holds exactly the executed quantity, in one transaction per order, however often the day is booked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from fakes import vendor_shapes as vs
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_server import FakeAlpacaServer
from fakes.alpaca_server import broker_for as alpaca_for
from fakes.fake_ib import ACCOUNT as IB_ACCOUNT
from fakes.fake_ib import FakeTws
from fakes.json_server import Reply
from fakes.tradier_server import ACCOUNT, FakeTradierServer

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.broker.broker_api import Broker
from tbot_bot.broker.brokers.ibkr import IbkrBroker
from tbot_bot.broker.brokers.sim import SimBroker
from tbot_bot.broker.brokers.tradier import TradierBroker
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.intents import Intent, IntentStatus
from tbot_bot.runtime.booking import fills_to_book
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import MINOR_UNITS_PER_UNIT
from tbot_bot.trading.orders_bot import OrderRouter

NOW = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
DAY = "2026-11-16"
CID = "TB01-20261116-open-SPY-1"


class _Sink:
    def error(self, strategy: str, reason: str, context: dict[str, Any], exc: Any = None) -> None:
        pass


@dataclass
class Desk:
    """An OrderRouter over a journal, and the day's booking into the home's ledger."""

    home: BotHome
    broker: Broker
    clock: ReplayClock
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    filled: list[Intent] = field(default_factory=list)
    rejected: list[Intent] = field(default_factory=list)  # refused with nothing filled (slots given back)

    def __post_init__(self) -> None:
        self.journal = OrderJournal(self.home.root / "journal.db")
        self.errors = ErrorHandler(RetryPolicy(retries=0, sleep=lambda s: None), _Sink())
        events = SimpleNamespace(unresolved=lambda strategy, **kw: self.unresolved.append(kw))
        self.router = OrderRouter(
            self.broker, self.journal, self.errors, self.clock, events, on_filled=self.filled.append,
            on_rejected=self.rejected.append,
        )  # fmt: skip

    def intent(self, symbol: str = "SPY", qty: str = "10", cid: str = CID) -> Intent:
        return Intent(
            client_order_id=cid, session_date=DAY, strategy="open", purpose="entry", symbol=symbol,
            signal_ticker=symbol, direction="long", order_side="buy", instrument="equity", qty=Decimal(qty),
            status=IntentStatus.INTENT, created_at=self.clock.now().isoformat(),
        )  # fmt: skip

    def sent(self, symbol: str = "SPY", qty: str = "10") -> Intent:
        """An intent the broker holds already (journaled SENT, as after a submission or a restart)."""
        self.journal.record_intent(self.intent(symbol, qty))
        return self.journal.update(CID, status=IntentStatus.SENT, sent_at=self.clock.now().isoformat())

    def book(self) -> int:
        """The day's booking (booking.fills_to_book, then the ledger writer): how many entries were written."""
        binding = load_binding(self.home)
        log = SimpleNamespace(unresolved=lambda strategy, **kw: self.unresolved.append(kw))
        ctx = SimpleNamespace(
            journal=self.journal, day_key=DAY, session_date=date.fromisoformat(DAY), errors=self.errors,
            broker=self.broker, log=log,
            settings=load_settings(self.home), bot_id="TB01", binding=binding,
        )  # fmt: skip
        entries = [e for f in fills_to_book(ctx) for e in entries_for_fill(f)]
        if not entries:
            return 0
        return (
            LedgerWriter.for_home(self.home, binding.ledger_path, binding, 5)
            .ingest(entries, actor="test")
            .written
        )

    def ledger(self) -> list[tuple[str, str]]:
        path = load_binding(self.home).ledger_path
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return list(conn.execute("SELECT fitid, size FROM transactions WHERE fitid LIKE ? ORDER BY fitid", [f"%{CID}%"]))  # fmt: skip

    def assert_booked_once(self, executed: str) -> None:
        assert self.book() >= 1
        assert self.book() == 0  # booking the day again writes nothing
        trades = [(fitid, size) for fitid, size in self.ledger() if not fitid.endswith("-FEE")]
        assert len(trades) == 1 and Decimal(trades[0][1]) == Decimal(executed)
        assert self.journal.get(CID).filled_qty == Decimal(executed)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- Alpaca
BY_CID = "/v2/orders:by_client_order_id"
NOT_FOUND = Reply(404, {"code": 40410000, "message": "order not found"})


def _alpaca(status: str, filled: str, avg: str | None = "450.01") -> dict[str, Any]:
    return vs.alpaca_order(
        client_order_id=CID, status=status, filled_qty=filled, filled_avg_price=avg if filled != "0" else None
    )


@pytest.fixture()
def alpaca_server() -> Iterator[FakeAlpacaServer]:
    with FakeAlpacaServer(FakeAlpacaExchange(prices={"SPY": "450.00"}, now=lambda: NOW, seed=3)) as srv:
        yield srv
        srv.wait_idle()


def _alpaca_desk(provisioned_home: Path, server: FakeAlpacaServer) -> Desk:
    return Desk(BotHome(provisioned_home), alpaca_for(server), ReplayClock(NOW))


def test_alpaca_replayed_out_of_order_and_after_cancel(
    provisioned_home: Path, alpaca_server: FakeAlpacaServer
) -> None:
    desk = _alpaca_desk(provisioned_home, alpaca_server)
    desk.sent()
    alpaca_server.reply_with(
        "GET",
        BY_CID,
        _alpaca("partially_filled", "4"),
        _alpaca("partially_filled", "4"),  # the same fill reported again ...
        _alpaca("partially_filled", "4"),  # ... and a third time
        _alpaca("partially_filled", "2"),  # an older cumulative quantity, read late
        _alpaca("canceled", "4"),
        _alpaca("canceled", "6"),  # two more shares filled as the cancel went through: the broker's last word
    )
    seen = []
    for _ in range(5):
        desk.router.sync()
        seen.append(desk.journal.get(CID).filled_qty)  # type: ignore[union-attr]
    assert seen == [Decimal(4)] * 5  # never lowered by the late read; the cancel settles at 4
    assert [i.filled_qty for i in desk.filled] == [Decimal(4)]  # reported once, when final
    desk.assert_booked_once("6")  # the booking asks the broker once more: 6 were executed, 6 are held
    assert any(u["error_code"] == "fill_mismatch" for u in desk.unresolved)


def test_alpaca_partial_fill_then_reject_books_what_was_executed(
    provisioned_home: Path, alpaca_server: FakeAlpacaServer
) -> None:
    desk = _alpaca_desk(provisioned_home, alpaca_server)
    alpaca_server.reply_with("GET", BY_CID, NOT_FOUND, _alpaca("rejected", "4"))
    alpaca_server.reply_with("POST", "/v2/orders", _alpaca("partially_filled", "4"))
    placed = desk.router.place(desk.intent())
    assert placed.status is IntentStatus.REJECTED and placed.filled_qty == Decimal(4)
    assert desk.rejected == []  # part of it traded: its window keeps the slot
    desk.assert_booked_once("4")


def test_alpaca_an_entry_rejected_after_it_was_accepted_is_reported_once(
    provisioned_home: Path, alpaca_server: FakeAlpacaServer
) -> None:
    """Accepted, then refused before any fill (found by a sync, not on placing): reported once, so its window
    gets the slot back, as a restart would count it."""
    desk = _alpaca_desk(provisioned_home, alpaca_server)
    desk.sent()
    alpaca_server.reply_with("GET", BY_CID, _alpaca("rejected", "0"))
    desk.router.sync()
    desk.router.sync()
    assert [i.client_order_id for i in desk.rejected] == [CID]
    assert desk.journal.get(CID).status is IntentStatus.REJECTED  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- Tradier
def _tradier(status: str, filled: str) -> dict[str, Any]:
    return vs.tradier_order(
        tag=CID, status=status, exec_quantity=float(filled), last_fill_quantity=float(filled),
        remaining_quantity=10.0 - float(filled), avg_fill_price=450.01 if filled != "0" else 0.0,
    )  # fmt: skip


def _tradier_replies(server: FakeTradierServer, *rows: dict[str, Any]) -> None:
    """The order as Tradier reports it read after read: first found in the day's list (one order: Tradier sends it
    as a bare object), then read by its id."""
    orders = f"/v1/accounts/{ACCOUNT}/orders"
    server.reply_with("GET", orders, {"orders": {"order": rows[0]}})
    server.reply_with("GET", f"{orders}/{rows[0]['id']}", *[{"order": r} for r in rows[1:] or rows[:1]])


@pytest.fixture()
def tradier_server() -> Iterator[FakeTradierServer]:
    with FakeTradierServer(now=lambda: NOW) as srv:
        yield srv
        srv.wait_idle()


def _tradier_desk(provisioned_home: Path, server: FakeTradierServer) -> Desk:
    broker = TradierBroker(
        "test-token", ACCOUNT, base_url=server.url, timeout=0.5,
        retry=RetryPolicy(retries=1, sleep=lambda s: None), fill_timeout=0.05, poll_interval=0.01,
        settle_delay=0.01, sleep=lambda s: None,
    )  # fmt: skip
    return Desk(BotHome(provisioned_home), broker, ReplayClock(NOW))


def test_tradier_replayed_and_out_of_order(provisioned_home: Path, tradier_server: FakeTradierServer) -> None:
    desk = _tradier_desk(provisioned_home, tradier_server)
    desk.sent()
    _tradier_replies(
        tradier_server,
        _tradier("partially_filled", "7"),
        _tradier("partially_filled", "7"),
        _tradier("partially_filled", "3"),  # out of order
        _tradier("filled", "10"),
    )
    for _ in range(4):
        desk.router.sync()
    assert desk.journal.get(CID).status is IntentStatus.FILLED  # type: ignore[union-attr]
    assert [i.filled_qty for i in desk.filled] == [Decimal(10)]
    desk.assert_booked_once("10")


def test_tradier_partial_fill_then_reject(provisioned_home: Path, tradier_server: FakeTradierServer) -> None:
    desk = _tradier_desk(provisioned_home, tradier_server)
    desk.sent()
    _tradier_replies(tradier_server, _tradier("partially_filled", "3"), _tradier("rejected", "3"))
    desk.router.sync()
    desk.router.sync()
    assert desk.journal.get(CID).status is IntentStatus.REJECTED  # type: ignore[union-attr]
    desk.assert_booked_once("3")


# ---------------------------------------------------------------------------------------------- IBKR
def _ibkr_desk(provisioned_home: Path, tws: FakeTws) -> Desk:
    broker = IbkrBroker(
        tws.ib, host="127.0.0.1", port=4002, client_id=7, account=IB_ACCOUNT, clock=ReplayClock(NOW),
        sleep=lambda s: None, reconnect_attempts=2,
    )  # fmt: skip
    broker.connect()
    return Desk(BotHome(provisioned_home), broker, ReplayClock(NOW))


def test_ibkr_replayed_executions_count_once(provisioned_home: Path) -> None:
    tws = FakeTws(now=NOW)
    desk = _ibkr_desk(provisioned_home, tws)
    desk.router.place(desk.intent())
    oid = tws.placed[-1][0]
    tws.ack(oid)
    first = tws.fill(oid, 4, 450.0, commission=1.0)
    tws.replay_execution(first)
    tws.replay_execution(first)  # the same execution three times in all
    desk.router.sync()
    assert desk.journal.get(CID).filled_qty == Decimal(4)  # type: ignore[union-attr]
    tws.fill(oid, 6, 451.0, commission=1.0)
    tws.replay_execution(first)
    desk.router.sync()
    intent = desk.journal.get(CID)
    assert intent is not None and intent.status is IntentStatus.FILLED and intent.fee == Decimal("2.0")
    desk.assert_booked_once("10")


def test_ibkr_execution_missed_while_disconnected_is_recovered_and_booked_once(
    provisioned_home: Path,
) -> None:
    tws = FakeTws(now=NOW)
    desk = _ibkr_desk(provisioned_home, tws)
    broker = desk.broker
    assert isinstance(broker, IbkrBroker)
    desk.router.place(desk.intent())
    oid = tws.placed[-1][0]
    tws.ack(oid)
    tws.fill(oid, 4, 450.0)
    desk.router.sync()
    assert desk.journal.get(CID).status is IntentStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    tws.drop()  # the link dies during the fill: the rest executes while nobody listens
    tws.now = NOW + timedelta(seconds=20)
    tws.fill(oid, 6, 451.0)
    # ib_async's startup fetch of executions times out on this reconnect: only the adapter's own
    # reqExecutions (filtered from the last execution it saw) brings the missed one back
    tws.startup_executions = False
    desk.router.sync()
    flt = tws.execution_requests[-1]
    assert (flt.acctCode, flt.time) == (IB_ACCOUNT, NOW.strftime("%Y%m%d-%H:%M:%S"))
    order = broker.get_order_by_client_id(CID)
    assert order is not None and order.filled_qty == 10 and len(order.fills) == 2
    assert order.filled_avg_price == Decimal("450.6")
    intent = desk.journal.get(CID)
    assert intent is not None and intent.status is IntentStatus.FILLED and intent.fee == Decimal("2.0")
    broker.recover_executions()  # asking again finds nothing new
    assert broker.get_order_by_client_id(CID).fills == order.fills  # type: ignore[union-attr]
    desk.assert_booked_once("10")


# ---------------------------------------------------------------------------------------------- sim
def test_sim_partial_fill_then_cancel_books_the_partial(provisioned_home: Path) -> None:
    start = NOW - timedelta(minutes=30)
    rows = [(start + timedelta(minutes=i), "SPY", 450.0, 451.0, 449.0, 450.5, 1000.0) for i in range(60)]
    bars = pd.DataFrame(rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"])
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    clock = ReplayClock(NOW + timedelta(seconds=30))
    sim = SimBroker(
        provisioned_home / "fill_idem_sim.db", clock=clock, bars=bars, starting_cash=Decimal(100_000),
        partial_fill_fraction=Decimal("0.3"),
    )  # fmt: skip
    desk = Desk(BotHome(provisioned_home), sim, clock)
    desk.router.place(desk.intent())
    clock.advance_to(NOW + timedelta(minutes=1, seconds=5))
    for _ in range(3):  # the same state read three times
        desk.router.sync()
    intent = desk.journal.get(CID)
    assert intent is not None and intent.status is IntentStatus.PARTIALLY_FILLED and intent.filled_qty == 3
    desk.router.cancel(intent, "window closed")
    desk.assert_booked_once("3")


def test_an_earlier_days_exit_without_its_entry_is_not_looked_up_at_every_booking(
    provisioned_home: Path, alpaca_server: FakeAlpacaServer
) -> None:
    """A filled exit of an earlier day whose entry the journal lacks cannot be booked; each booking of the next
    ten days asked the broker for it again and logged another orphan_exit (a diff review). Its own day's
    booking says it; later ones pass it over."""
    desk = _alpaca_desk(provisioned_home, alpaca_server)
    orphan = Intent(
        client_order_id="TB01-20261113-open-SPY-2", session_date="2026-11-13", strategy="open", purpose="exit",
        symbol="SPY", signal_ticker="SPY", direction="long", order_side="sell", instrument="equity",
        qty=Decimal("10"), status=IntentStatus.FILLED, created_at="2026-11-13T15:00:00+00:00",
        filled_qty=Decimal("10"), filled_price=Decimal("450"), filled_at="2026-11-13T15:00:00+00:00",
        entry_client_order_id="TB01-20261113-open-SPY-1",
    )  # fmt: skip
    desk.journal.record_intent(orphan)
    before = alpaca_server.count("GET", BY_CID)
    assert desk.book() == 0
    assert not [u for u in desk.unresolved if u.get("event") == "exit_without_entry"]
    assert alpaca_server.count("GET", BY_CID) == before  # no broker look-up for it


def test_ibkr_commission_reported_after_the_fill_status_is_booked(provisioned_home: Path) -> None:
    """TWS may send an execution's commission report after the order's Filled status: the journal was final by
    then (a sync skips final intents), and the trade was booked without its fee. The booking takes the fee the
    broker's fills carry, as it takes their quantity and price."""
    tws = FakeTws(now=NOW)
    desk = _ibkr_desk(provisioned_home, tws)
    desk.router.place(desk.intent())
    oid = tws.placed[-1][0]
    tws.ack(oid)
    exec_id = tws.fill(oid, 10, 450.0, commission=1.25, commission_later=True)
    desk.router.sync()
    assert desk.journal.get(CID).status is IntentStatus.FILLED  # type: ignore[union-attr]
    assert desk.journal.get(CID).fee == 0  # type: ignore[union-attr]
    tws.report_commission(exec_id)
    desk.router.sync()  # final: not read again
    assert desk.book() >= 1
    assert desk.journal.get(CID).fee == Decimal("1.25")  # type: ignore[union-attr]
    path = load_binding(desk.home).ledger_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        fee = conn.execute(
            "SELECT sum(s.debit) - sum(s.credit) FROM transactions t JOIN splits s ON s.transaction_id = t.id "
            "WHERE t.fitid = ? AND s.account_code LIKE '5%'",
            [f"{CID}-FEE"],
        ).fetchone()[0]
    assert Decimal(fee) / MINOR_UNITS_PER_UNIT == Decimal("1.25")
    assert any(u["event"] == "fill_reconciled" and "fee 1.25" in u["reason"] for u in desk.unresolved)


def test_an_exit_is_booked_against_its_entry_as_reconciled(provisioned_home: Path) -> None:
    """The broker's record wins at booking (here the entry's price: 100.05, the journal held 100.00); its exit was
    booked against the journal's entry all the same: a cost basis of 1000.00, a gain of 10.00 instead of 9.50,
    and 0.50 left on the position account of a position that is flat."""
    from tbot_bot.broker.broker_api import Fill, Order, OrderSide, OrderStatus
    from tbot_bot.reporting.ledger_trades import read_trades

    entry_id, exit_id = CID, f"{CID}-x"
    broker_price = {entry_id: Decimal("100.05"), exit_id: Decimal("101.00")}

    class Records:
        def get_order_by_client_id(self, cid: str) -> Order:
            return Order(
                f"B-{cid}", cid, "SPY", OrderSide.BUY if cid == entry_id else OrderSide.SELL, Decimal(10),
                OrderStatus.FILLED, Decimal(10), broker_price[cid],
                fills=(Fill(f"F-{cid}", Decimal(10), broker_price[cid], NOW),),
            )  # fmt: skip

    desk = Desk(BotHome(provisioned_home), Records(), ReplayClock(NOW))  # type: ignore[arg-type]
    for cid, purpose, side, price in (
        (entry_id, "entry", "buy", "100.00"),
        (exit_id, "exit", "sell", "101.00"),
    ):
        desk.journal.record_intent(
            Intent(
                client_order_id=cid, session_date=DAY, strategy="open", purpose=purpose, symbol="SPY",
                signal_ticker="SPY", direction="long", order_side=side, instrument="equity", qty=Decimal(10),
                status=IntentStatus.FILLED, created_at=NOW.isoformat(), filled_qty=Decimal(10),
                filled_price=Decimal(price), filled_at=NOW.isoformat(), fee=Decimal(0),
                entry_client_order_id=entry_id if purpose == "exit" else None,
            )
        )  # fmt: skip
    assert desk.book() == 2
    path = load_binding(desk.home).ledger_path
    (trade,) = read_trades(path)
    assert (trade.entry_price, trade.exit_price, trade.pnl) == (
        Decimal("100.05"),
        Decimal("101"),
        Decimal("9.5"),
    )
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        held = conn.execute(
            "SELECT coalesce(sum(s.debit), 0) - coalesce(sum(s.credit), 0) FROM splits s "
            "JOIN transactions t ON s.transaction_id = t.id WHERE t.fitid IN (?, ?) AND s.account_code LIKE '11%'",
            [entry_id, exit_id],
        ).fetchone()[0]
    assert held == 0  # the position's account nets to zero over the round trip


def test_ibkr_a_refused_cancel_leaves_the_order_working_and_its_fill_is_journaled(
    provisioned_home: Path,
) -> None:
    """TWS refuses a cancel it cannot carry out (10148 "cannot be cancelled, state: PendingCancel"); ib_async then
    marks the order Cancelled on its side, and the adapter read that as a final REJECTED: the fill that followed
    was never journaled, and the bot held 10 SPY it did not know of. The order stays working now; the second
    cancel (the close's, after the window's) is not even sent, as TWS would refuse it."""
    tws = FakeTws(now=NOW)
    desk = _ibkr_desk(provisioned_home, tws)
    desk.router.place(desk.intent())
    oid = tws.placed[-1][0]
    tws.ack(oid)
    desk.router.cancel(desk.journal.get(CID), "window over")  # type: ignore[arg-type]
    desk.router.cancel(desk.journal.get(CID), "closing")  # type: ignore[arg-type]
    assert tws.cancelled == [oid]  # asked once: it is pending cancel at IB
    tws.refuse_cancel(oid)  # TWS could not cancel it (it was filling)
    desk.router.sync()
    order = desk.broker.get_order_by_client_id(CID)
    assert order is not None and not order.status.is_final and order.reject_reason is None
    desk.broker.cancel_order(CID)  # a later cancel (the close's) is sent: the order is working again
    assert tws.cancelled == [oid, oid]
    tws.fill(oid, 10, 450.0)
    desk.router.sync()
    intent = desk.journal.get(CID)
    assert intent is not None and intent.status is IntentStatus.FILLED and intent.filled_qty == Decimal(10)
    assert desk.rejected == []  # no slot given back for an order that filled
    desk.assert_booked_once("10")
