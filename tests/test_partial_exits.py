"""A position closed in two exits (an exit order cancelled after a partial fill, then another for the rest): the
trade history pairs each exit with its quantity of the entry, so one trade carries both exits, the positions the
ledger holds are what is left, and a correction that cannot be spread over several exits is refused by name."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from test_ledger_fixtures import account_balances, at, fill, new_ledger

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.ledger_correction import plan_correction
from tbot_bot.errors import UsageError
from tbot_bot.reporting.ledger_trades import read_trades, totals
from tbot_bot.runtime.position_check import ledger_positions

ENTRY = fill("E1", qty=Decimal(10), price=Decimal("100"), fee=Decimal("1.00"), posted_at=at(14, 45))
FIRST = fill(
    "X1", action="close", qty=Decimal(6), price=Decimal("101"), entry_price=Decimal("100"), fee=Decimal("0.02"),
    exit_reason="timeout", posted_at=at(15, 10),
)  # fmt: skip
REST = fill(
    "X2", action="close", qty=Decimal(4), price=Decimal("102"), entry_price=Decimal("100"), fee=Decimal("0.02"),
    exit_reason="timeout", posted_at=at(15, 11),
)  # fmt: skip


def _book(tmp_path: Path, *fills: object) -> Path:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([e for f in fills for e in entries_for_fill(f)])  # type: ignore[arg-type]
    return ledger


def _listed_row(tmp_path: Path, capsys: pytest.CaptureFixture[str], fills: list[object], ticker: str) -> str:
    """The `tbot trades --date 2011-01-05` row of `ticker` in a demo home whose ledger holds `fills`."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.accounting.accounting_config import load_binding

    home = provision_demo_home(tmp_path / "home")
    binding = load_binding(home)
    LedgerWriter.for_home(home, binding.ledger_path, binding, 5).ingest(
        [e for f in fills for e in entries_for_fill(f)],  # type: ignore[arg-type]
        actor="test",
    )
    capsys.readouterr()
    assert main(["trades", "--home", str(home.root), "--date", "2011-01-05"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if ticker in line]
    return row


def test_one_trade_carries_both_exits(tmp_path: Path) -> None:
    ledger = _book(tmp_path, ENTRY, FIRST, REST)
    (trade,) = read_trades(ledger)
    gains = -account_balances(ledger)["4010"]  # the ledger's realised gain on the two exits: 6.00 + 8.00
    assert trade.pnl == gains == Decimal(14)
    assert trade.fees == Decimal("1.04") and trade.net_pnl == Decimal("12.96")
    assert trade.exit_price == Decimal("101.4")  # 6 at 101 and 4 at 102
    assert trade.exit_time == REST.posted_at and trade.held == 0 and trade.size == 10
    assert totals([trade])["net_pnl"] == Decimal("12.96") and totals([trade])["closed"] == 1
    assert ledger_positions(ledger) == {}


def test_after_the_first_exit_the_rest_is_held(tmp_path: Path) -> None:
    ledger = _book(tmp_path, ENTRY, FIRST)
    (trade,) = read_trades(ledger)
    assert trade.held == 4 and trade.exit_time is None
    assert trade.pnl == Decimal(6)  # what the ledger realised on the six sold
    assert trade.exit_reason is None  # listed as open while four are held
    shown = totals([trade])
    assert (shown["closed"], shown["open"], shown["wins"], shown["pnl"]) == (0, 1, 0, Decimal(6))
    assert ledger_positions(ledger) == {"AAPL": Decimal(4)}
    assert account_balances(ledger)["1110"] == Decimal(400)  # the position account holds the same four


def test_a_new_entry_after_a_partly_closed_one_is_paired_after_it(tmp_path: Path) -> None:
    """First in first out by quantity: the second entry's exit does not close the first entry's remainder."""
    again = fill("E2", qty=Decimal(5), price=Decimal("103"), posted_at=at(15, 30))
    out = fill(
        "X3", action="close", qty=Decimal(4), price=Decimal("104"), entry_price=Decimal("100"),
        exit_reason="timeout", posted_at=at(15, 40),
    )  # fmt: skip
    ledger = _book(tmp_path, ENTRY, FIRST, again, out)
    first, second = read_trades(ledger)
    assert (first.held, first.pnl, first.exit_time) == (0, Decimal(6 + 16), out.posted_at)
    assert (second.held, second.pnl) == (5, None)
    assert ledger_positions(ledger) == {"AAPL": Decimal(5)}


def test_an_entry_closed_by_two_exits_is_not_corrected_by_amount(tmp_path: Path) -> None:
    """Correcting the entry's amount moved its whole cost onto one exit: the position account went negative and
    the trade showed the other exit's loss; which part of a new cost each exit carries is a choice, so it is
    refused, naming the exits and what to do instead."""
    ledger = _book(tmp_path, ENTRY, FIRST, REST)
    with pytest.raises(UsageError, match=r"closed by 2 exits \(X1, X2\).*correct each exit"):
        plan_correction(ledger, "E1", reason="statement", user="u", source="test", amount=Decimal("1005"))
    # one exit that sold part of it: the same (it moved the whole cost onto that exit, the rest held at nothing)
    partly = tmp_path / "partly"
    partly.mkdir()
    held = _book(partly, ENTRY, FIRST)
    with pytest.raises(UsageError, match=r"partly closed by X1 \(6 of 10\).*correct each exit"):
        plan_correction(held, "E1", reason="statement", user="u", source="test", amount=Decimal("1005"))
    # each exit on its own is corrected as before
    plan = plan_correction(ledger, "X2", reason="statement", user="u", source="test", amount=Decimal("409"))
    assert plan.replacement is not None and plan.replacement.exit_price == Decimal("102.25")


def test_a_premium_under_a_dollar_reads_alike_in_the_cli_and_the_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbot trades` showed a put bought at 0.0525 and sold at 0.0675 as 0.05 / 0.07 beside a gross of 4.50, while
    the dashboard showed four places: one rule (domain.results.price_text) for both."""
    from datetime import UTC, datetime

    from tbot_web.py.numbers_web import price

    put = {"strategy": "mid", "ticker": "SPY110121P00127000", "signal_ticker": "SPY", "instrument": "option",
           "tag": "LongPut", "qty": Decimal(3)}  # fmt: skip
    fills = [
        fill("TB01-20110105-mid-P-1", price=Decimal("0.0525"), posted_at=datetime(2011, 1, 5, 15, 45, tzinfo=UTC), **put),
        fill(
            "TB01-20110105-mid-P-2", action="close", price=Decimal("0.0675"), entry_price=Decimal("0.0525"),
            exit_reason="timeout", posted_at=datetime(2011, 1, 5, 16, 15, tzinfo=UTC), **put,
        ),
    ]  # fmt: skip
    row = _listed_row(tmp_path, capsys, fills, "SPY110121P00127000")
    assert f" {price('0.0525')} " in row and f" {price('0.0675')} " in row and " 4.50 " in row
    assert (price("0.0525"), price("101.4")) == ("0.0525", "101.40")


def test_an_exit_larger_than_its_entry_closes_the_next_one_too(tmp_path: Path) -> None:
    """Two entries of one strategy and instrument open at once (a position carried over, a new entry before its
    exit filled), then one exit of 5 and one of 10: the ledger's position is flat, and so are the books' positions."""
    second = fill("E2", qty=Decimal(5), price=Decimal("101"), posted_at=at(14, 50))
    five = fill(
        "X5", action="close", qty=Decimal(5), price=Decimal("102"), entry_price=Decimal("101"),
        exit_reason="timeout", posted_at=at(15, 0),
    )  # fmt: skip
    ten = fill(
        "X10", action="close", qty=Decimal(10), price=Decimal("103"), entry_price=Decimal("100"),
        exit_reason="timeout", posted_at=at(15, 5),
    )  # fmt: skip
    ledger = _book(tmp_path, ENTRY, second, five, ten)
    assert account_balances(ledger)["1110"] == 0
    assert ledger_positions(ledger) == {}
    assert sum((t.held for t in read_trades(ledger)), Decimal(0)) == 0


def test_the_live_count_is_one_trade_for_two_exits() -> None:
    """Status counted a trade per exit fill (2 here) while the books count one: the exit that sells the rest is the
    one that counts it (`RoundTrip.closes`); the first still carries the entry's fee."""
    from tbot_bot.domain.intents import Intent, IntentStatus
    from tbot_bot.runtime.positions import round_trips

    def intent(cid: str, purpose: str, qty: str, status: IntentStatus, entry: str | None = None) -> Intent:
        return Intent(
            client_order_id=cid, session_date="2026-11-16", strategy="open", purpose=purpose, symbol="SPY",
            signal_ticker="SPY", direction="long", order_side="buy" if purpose == "entry" else "sell",
            instrument="equity", qty=Decimal(10), status=status, created_at="2026-11-16T14:45:00+00:00",
            filled_qty=Decimal(qty), filled_price=Decimal(100), fee=Decimal(0), entry_client_order_id=entry,
        )  # fmt: skip

    trips = round_trips(
        [
            intent("E", "entry", "10", IntentStatus.FILLED),
            intent("X1", "exit", "6", IntentStatus.CANCELED, "E"),
            intent("X2", "exit", "4", IntentStatus.FILLED, "E"),
        ]
    )
    assert [(t.exit.client_order_id, t.carries_entry_fee, t.closes) for t in trips] == [
        ("X1", True, False),
        ("X2", False, True),
    ]


def test_defense_judges_a_trade_sold_in_two_exits_once() -> None:
    """Six sold at +6 then four at -12: one losing trade, not one win and one loss (a win rate of 0.5); a trade only
    partly sold is no result yet."""
    from types import SimpleNamespace

    from tbot_bot.runtime.defense import realised_performance

    def trip(exit_id: str, pnl: str, closes: bool) -> SimpleNamespace:
        at = f"2026-11-16T15:{len(exit_id):02d}:00+00:00"
        return SimpleNamespace(
            entry=SimpleNamespace(client_order_id="E"), pnl=Decimal(pnl), closes=closes,
            exit=SimpleNamespace(filled_at=at, created_at=at, client_order_id=exit_id),
        )  # fmt: skip

    both = realised_performance([trip("X1", "6", False), trip("X22", "-12", True)], Decimal(25000))
    assert both.win_rate == 0.0 and both.drawdown == 0.00048  # 12 from a peak of 6 to -6, over 25,000
    assert realised_performance([trip("X1", "6", False)], Decimal(25000)).win_rate is None


def test_a_carried_position_is_sized_and_counted_with_its_earlier_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten bought and four sold on day 1, two more on day 2 before that exit order was cancelled: the next exit
    was sized from the entry's day alone (six, while four are held: a short opened), and status took the day-2
    exit for the trade's only one (the entry's fee again, a trade closed)."""
    from datetime import UTC, datetime
    from types import MethodType, SimpleNamespace

    from tbot_bot.domain.intents import Intent, IntentStatus
    from tbot_bot.runtime import run_mode
    from tbot_bot.runtime.day_context import DayContext
    from tbot_bot.runtime.order_journal import OrderJournal

    def intent(
        cid: str, day: str, purpose: str, qty: str, status: IntentStatus, entry: str | None = None
    ) -> Intent:
        return Intent(
            client_order_id=cid, session_date=day, strategy="open", purpose=purpose, symbol="MSFT",
            signal_ticker="MSFT", direction="long", order_side="buy" if purpose == "entry" else "sell",
            instrument="equity", qty=Decimal(10), status=status, created_at=f"{day}T15:00:00+00:00",
            filled_qty=Decimal(qty), filled_price=Decimal(50), fee=Decimal("0.10"), entry_client_order_id=entry,
            filled_at=f"{day}T15:00:00+00:00",
        )  # fmt: skip

    journal = OrderJournal(tmp_path / "journal.db")
    for i in (
        intent("E", "2011-01-05", "entry", "10", IntentStatus.FILLED),
        intent("X1", "2011-01-05", "exit", "4", IntentStatus.CANCELED, "E"),
        intent("X2", "2011-01-06", "exit", "2", IntentStatus.CANCELED, "E"),
    ):
        journal.record_intent(i)
    placed: list[Intent] = []
    ctx = SimpleNamespace(
        journal=journal, day_key="2011-01-06", bot_id="TB01", _carried=None,
        clock=SimpleNamespace(now=lambda: datetime(2011, 1, 6, 15, 5, tzinfo=UTC)),
        orders=SimpleNamespace(place=lambda i: placed.append(i) or i), log=SimpleNamespace(event=lambda *a, **k: None),
    )  # fmt: skip
    ctx._held_intents = MethodType(DayContext._held_intents, ctx)
    monkeypatch.setattr(run_mode, "market_closed", lambda ctx: False)
    DayContext.place_exit(
        ctx, journal.get("E"), "recovered_after_window", datetime(2011, 1, 6, 15, 5, tzinfo=UTC)
    )  # type: ignore[arg-type]
    assert [i.qty for i in placed] == [Decimal(4)]
    (trip,) = DayContext.trips(ctx)  # type: ignore[arg-type]
    assert (trip.exit.client_order_id, trip.carries_entry_fee, trip.closes) == ("X2", False, False)
    journal.close()


def test_the_dashboard_counts_no_win_for_a_trade_partly_sold() -> None:
    """The Trades page counted a trade with money but no exit time (six of ten sold) as a win, as `tbot trades`
    and the summaries do not; its money stays in the total."""
    from tbot_web.py.readers_web import trade_summary

    rows = [
        {"strategy_name": "open", "PnL": "6", "fees": "1.02", "exit_time": None},
        {"strategy_name": "open", "PnL": "3", "fees": "0.01", "exit_time": "2011-01-04T15:10:00Z"},
    ]
    assert trade_summary(rows)["open"] == {"trades": 2, "wins": 1, "pnl": Decimal("7.97")}


def test_an_exit_of_a_carried_position_rewrites_its_entry_days_summary(tmp_path: Path) -> None:
    """The entry day's summary listed the trade open; the exit booked the next session wrote only that session's
    reports, so `tbot summary` disagreed with `tbot trades` until a rebuild. The booking names the entry's day among
    the earlier days whose reports it writes again."""
    from types import SimpleNamespace

    from tbot_bot.domain.intents import Intent, IntentStatus
    from tbot_bot.runtime.booking import _entry_days
    from tbot_bot.runtime.order_journal import OrderJournal

    journal = OrderJournal(tmp_path / "journal.db")
    for cid, day, purpose, entry in (("E", "2011-01-05", "entry", None), ("X", "2011-01-06", "exit", "E")):
        journal.record_intent(
            Intent(
                client_order_id=cid, session_date=day, strategy="open", purpose=purpose, symbol="MSFT",
                signal_ticker="MSFT", direction="long", order_side="buy" if entry is None else "sell",
                instrument="equity", qty=Decimal(10), status=IntentStatus.FILLED, created_at=f"{day}T15:00:00+00:00",
                filled_qty=Decimal(10), filled_price=Decimal(50), entry_client_order_id=entry,
            )
        )  # fmt: skip
    ctx = SimpleNamespace(journal=journal, day_key="2011-01-06")
    exit_fill = fill("X", action="close", qty=Decimal(10), entry_price=Decimal(50), exit_reason="timeout")
    assert _entry_days(ctx, [fill("E"), exit_fill]) == [date(2011, 1, 5)]  # type: ignore[arg-type]
    ctx.day_key = "2011-01-05"  # booked the same day: nothing earlier
    assert _entry_days(ctx, [fill("E"), exit_fill]) == []  # type: ignore[arg-type]
    journal.close()


def test_an_exit_on_a_later_day_says_its_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tbot trades` showed a position carried over night as entered 15:50 and exited 09:40: the exit on the
    next day read as before the entry."""
    from datetime import UTC, datetime

    fills = [
        fill("TB01-E", posted_at=datetime(2011, 1, 5, 20, 50, tzinfo=UTC)),
        fill(
            "TB01-X", action="close", price=Decimal("191"), entry_price=Decimal("190.25"), exit_reason="timeout",
            posted_at=datetime(2011, 1, 6, 14, 40, tzinfo=UTC),
        ),
    ]  # fmt: skip
    row = _listed_row(tmp_path, capsys, fills, "AAPL")
    assert "15:50 EST / 20:50Z" in row and "2011-01-06 09:40 EST / " in row
