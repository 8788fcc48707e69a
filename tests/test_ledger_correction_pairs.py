"""An entry corrected after its exit: the exit is corrected with it, so the position's account nets to zero and
the trade's PnL takes the new cost, for every kind of position (long, short sale, inverse ETF, long put), however
the exit was booked or corrected before, and never for a leg that is not the position's."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from test_ledger_fixtures import account_balances, at, day_of_fills, fill, new_ledger

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.ledger_correction import CorrectionPlan, plan_correction, plan_text
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import UsageError
from tbot_bot.reporting.ledger_trades import read_trades

POSITIONS = ("1110", "1120", "2030")  # equity and option holdings, shares sold short
BREAK_EVEN = [
    fill("Z1-OPEN", ticker="MSFT", signal_ticker="MSFT", strategy="mid", price=Decimal("100"), posted_at=at(16, 0)),
    fill(
        "Z1-CLOSE", ticker="MSFT", signal_ticker="MSFT", strategy="mid", action="close", price=Decimal("100"),
        entry_price=Decimal("100"), posted_at=at(16, 30), exit_reason="timeout",
    ),
]  # fmt: skip


@pytest.fixture
def books(tmp_path: Path) -> tuple[Path, LedgerWriter]:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([e for f in [*day_of_fills(), *BREAK_EVEN] for e in entries_for_fill(f)])
    return ledger, writer


def _post(writer: LedgerWriter, plan: CorrectionPlan) -> None:
    f = plan.follows
    writer.correct(
        plan.fitid, reason=plan.reason, posted_at=plan.posted_at, replacement=plan.replacement,
        also=() if f is None else ((f.fitid, f.reason, f.posted_at, f.replacement),),
    )  # fmt: skip


def _correct(ledger: Path, writer: LedgerWriter, fitid: str, **kw: object) -> CorrectionPlan:
    plan = plan_correction(ledger, fitid, reason="broker statement", user="u", source="test", **kw)  # type: ignore[arg-type]
    _post(writer, plan)
    return plan


def _pnl(ledger: Path, coid: str) -> Decimal:
    (trade,) = [t for t in read_trades(ledger) if t.client_order_id == coid]
    assert trade.pnl is not None
    return trade.pnl


@pytest.mark.parametrize(
    ("entry", "amount", "cash"),
    [
        ("L1-OPEN", Decimal("1905"), Decimal("-2.5")),  # long: paid 2.50 more, gains 2.50 less
        ("S1-OPEN", Decimal("1262.5"), Decimal("10")),  # short sale: 10 more proceeds, 10 more gain on cover
        ("I1-OPEN", Decimal("303.64"), Decimal("5")),  # inverse ETF at a loss: paid 5 less
        ("P1-OPEN", Decimal("640"), Decimal("-10")),  # long put (1120, 4020): paid 10 more
        ("Z1-OPEN", Decimal("1010"), Decimal("-10")),  # break-even exit: it booked no gain leg, one is added
    ],
)
def test_the_position_closes_at_zero_and_the_pnl_moves_by_the_cash(
    books: tuple[Path, LedgerWriter], entry: str, amount: Decimal, cash: Decimal
) -> None:
    ledger, writer = books
    before, pnl = account_balances(ledger), _pnl(ledger, f"coid-{entry}")
    plan = _correct(ledger, writer, entry, amount=amount)
    assert plan.follows is not None and plan.follows.fitid == entry.replace("OPEN", "CLOSE")
    after = account_balances(ledger)
    moved = {code: after.get(code, Decimal(0)) - before.get(code, Decimal(0)) for code in {*before, *after}}
    assert all(not moved.get(code) for code in POSITIONS), moved
    assert moved["1030"] == cash
    assert sum((v for code, v in moved.items() if code.startswith("4")), Decimal(0)) == -cash
    assert _pnl(ledger, f"coid-{entry}") == pnl + cash
    assert verify_ledger(ledger) == []


def test_an_entry_corrected_again_and_an_exit_corrected_first_are_followed(
    books: tuple[Path, LedgerWriter],
) -> None:
    ledger, writer = books
    held = account_balances(ledger)["1110"]
    _correct(
        ledger, writer, "L1-CLOSE", amount=Decimal("1915")
    )  # the exit first: its replacement is the exit
    assert _correct(ledger, writer, "L1-OPEN", amount=Decimal("1905")).follows.fitid == "L1-CLOSE-COR"  # type: ignore[union-attr]
    # and the entry's replacement corrected once more: the exit's replacement is followed again
    assert _correct(ledger, writer, "L1-OPEN-COR", amount=Decimal("1910")).follows.fitid == "L1-CLOSE-COR-COR"  # type: ignore[union-attr]
    assert account_balances(ledger)["1110"] == held
    assert _pnl(ledger, "coid-L1-OPEN") == Decimal("1915") - Decimal("1910")
    assert verify_ledger(ledger) == []


def test_an_exit_corrected_in_a_later_month_is_still_the_entrys_exit(
    books: tuple[Path, LedgerWriter],
) -> None:
    """A correction of a closed month is dated in the open one: the exit's replacement is found through its
    original, not by its date (the entry was corrected alone and 1110 kept the difference)."""
    ledger, writer = books
    held = account_balances(ledger)["1110"]
    writer._now = lambda: datetime(2026, 12, 5, tzinfo=UTC)  # type: ignore[method-assign]
    writer.close_period("2026-11")
    late = _correct(ledger, writer, "L1-CLOSE", amount=Decimal("1915"))
    assert late.posted_at.month == 12
    assert _correct(ledger, writer, "L1-OPEN", amount=Decimal("1905")).follows.fitid == "L1-CLOSE-COR"  # type: ignore[union-attr]
    assert account_balances(ledger)["1110"] == held
    assert verify_ledger(ledger) == []


def test_a_moved_cash_leg_moves_no_gain(books: tuple[Path, LedgerWriter]) -> None:
    """Only the position's accounts are carried to the exit: moving the entry's cash leg booked a fake gain of the
    whole cost on the exit."""
    ledger, writer = books
    before, pnl = account_balances(ledger), _pnl(ledger, "coid-L1-OPEN")
    plan = _correct(ledger, writer, "L1-OPEN", account="1010", from_account="1030")
    assert plan.follows is None
    after = account_balances(ledger)
    assert after["1110"] == before["1110"] and after["4010"] == before["4010"]
    # the cost was paid from 1010, not from Broker Cash
    assert (
        before.get("1010", Decimal(0)) - after["1010"] == after["1030"] - before["1030"] == Decimal("1902.5")
    )
    assert _pnl(ledger, "coid-L1-OPEN") == pnl


def test_an_exit_booked_the_next_day_is_the_entrys_exit(tmp_path: Path) -> None:
    """A position carried over night (closed at the next start, or adopted): paired as the trade history pairs it,
    not by the entry's day (the entry was refused, or corrected alone)."""
    ledger, writer = new_ledger(tmp_path)
    late = fill(
        "L1-CLOSE", action="close", price=Decimal("191.4"), entry_price=Decimal("190.25"), exit_reason="recovered",
        posted_at=at(14, 31) + timedelta(days=1),
    )  # fmt: skip
    writer.ingest([e for f in (day_of_fills()[0], late) for e in entries_for_fill(f)])
    held = account_balances(ledger)["1110"]
    assert _correct(ledger, writer, "L1-OPEN", amount=Decimal("1905")).follows.fitid == "L1-CLOSE"  # type: ignore[union-attr]
    assert account_balances(ledger)["1110"] == held
    # and the entry cannot be reversed from under it
    with pytest.raises(
        UsageError, match="'L1-OPEN-COR' alone: it opened a position that 'L1-CLOSE-COR' closed"
    ):
        plan_correction(ledger, "L1-OPEN-COR", reason="r", user="u", source="t")


def test_an_entry_without_an_exit_is_corrected_alone_with_a_warning(tmp_path: Path) -> None:
    """The bot books an exit at the cost it filled at (its journal), not a corrected one: corrected while the bot
    still holds it, the position keeps the difference once closed. The plan says so; a position closed outside
    the bot has no exit to wait for, so the correction is not refused."""
    ledger, writer = new_ledger(tmp_path)
    writer.ingest(entries_for_fill(day_of_fills()[0]))  # L1-OPEN only
    plan = plan_correction(ledger, "L1-OPEN", reason="r", user="u", source="t", amount=Decimal("1905"))
    assert plan.follows is None and plan.warning is not None
    assert (
        "opened a position with no exit in the books" in plan.warning
        and "1110 would keep the difference" in plan.warning
    )
    assert plan.warning in plan_text(plan)
    _post(writer, plan)
    # the bot books the exit later, at the cost it filled at: 1110 keeps the 2.50 the correction added ...
    writer.ingest(entries_for_fill(day_of_fills()[1]))
    assert account_balances(ledger)["1110"] == Decimal("2.5")
    # ... until the entry is corrected again with the same amount: its exit is brought in line, the PnL with it
    again = _correct(ledger, writer, "L1-OPEN-COR", amount=Decimal("1905"))
    assert again.follows is not None and again.follows.fitid == "L1-CLOSE"
    assert account_balances(ledger)["1110"] == 0
    assert _pnl(ledger, "coid-L1-OPEN") == Decimal("1914") - Decimal("1905")
    assert verify_ledger(ledger) == []


def test_an_exit_already_reversed_is_corrected_alone_quietly(tmp_path: Path) -> None:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([e for f in day_of_fills()[:2] for e in entries_for_fill(f)])
    # an exit reversed by an accountant: the books show the position open, and the entry is corrected alone, quietly
    writer.correct("L1-CLOSE", reason="duplicate fill", posted_at=at(21, 0))
    plan = plan_correction(ledger, "L1-OPEN", reason="r", user="u", source="t", amount=Decimal("1905"))
    assert plan.follows is None and plan.warning is None


def test_a_refusal_names_the_entrys_own_exit_and_an_old_reversal(tmp_path: Path) -> None:
    """Two positions of one instrument open at once (A1, A2, then X1, X2): reversing A1 alone is refused naming X1,
    the exit the history pairs it with (it named X2, and following that advice left 1110 holding both costs)."""
    ledger, writer = new_ledger(tmp_path)
    a1, x1 = day_of_fills()[:2]
    a2 = fill("A2-OPEN", posted_at=at(14, 50), price=Decimal("190.5"))
    x2 = fill(
        "A2-CLOSE", action="close", price=Decimal("191"), entry_price=Decimal("190.5"), exit_reason="timeout",
        posted_at=at(15, 20),
    )  # fmt: skip
    writer.ingest([e for f in (a1, a2, x1, x2) for e in entries_for_fill(f)])
    with pytest.raises(UsageError, match="'L1-OPEN' alone: it opened a position that 'L1-CLOSE' closed"):
        plan_correction(ledger, "L1-OPEN", reason="r", user="u", source="t")
    # an original already reversed is named as such, not as an entry some exit needs
    _correct(ledger, writer, "L1-OPEN", amount=Decimal("1905"))
    with pytest.raises(UsageError, match="'L1-OPEN' is already reversed by 'L1-OPEN-REV'"):
        plan_correction(ledger, "L1-OPEN", reason="r", user="u", source="t")


def test_a_trade_carried_past_a_closed_months_end_reports_its_correction_as_a_prior_period_adjustment(
    tmp_path: Path,
) -> None:
    """Opened on 30 Nov, closed on 1 Dec, November closed, then the entry corrected: the exit's correction (dated 1
    Dec, its own date) moved the trade's PnL, and the trade is November's, whose reports are closed. It was in the
    books and the history but in no summary: the posting day's prior-period adjustments now carry it."""
    from tbot_bot.accounting.ledger_read import prior_period_adjustments

    ledger, writer = new_ledger(tmp_path)
    opened = datetime(2026, 11, 30, 20, 55, tzinfo=UTC)
    entry = fill("C1-OPEN", posted_at=opened, price=Decimal("100"))
    exit_ = fill(
        "C1-CLOSE", action="close", price=Decimal("101"), entry_price=Decimal("100"), exit_reason="recovered",
        posted_at=opened + timedelta(hours=17, minutes=36),
    )  # fmt: skip
    writer.ingest([e for f in (entry, exit_) for e in entries_for_fill(f)])
    writer._now = lambda: datetime(2026, 12, 5, tzinfo=UTC)  # type: ignore[method-assign]
    writer.close_period("2026-11")
    assert prior_period_adjustments(ledger, "2026-12-01") == (0, 0)
    plan = _correct(ledger, writer, "C1-OPEN", amount=Decimal("1005"))
    assert plan.closed_period == "2026-11" and plan.follows is not None and plan.follows.closed_period is None
    assert prior_period_adjustments(ledger, "2026-12-01") == (Decimal("-5"), 0)
    assert _pnl(ledger, "coid-C1-OPEN") == Decimal("5")


def _carried(tmp_path: Path) -> tuple[Path, LedgerWriter]:
    ledger, writer = new_ledger(tmp_path)
    opened = datetime(2026, 11, 30, 20, 55, tzinfo=UTC)
    entry = fill("C1-OPEN", posted_at=opened, price=Decimal("100"))
    exit_ = fill(
        "C1-CLOSE", action="close", price=Decimal("101"), entry_price=Decimal("100"), exit_reason="recovered",
        posted_at=opened + timedelta(hours=17, minutes=36), fee=Decimal("0.40"),
    )  # fmt: skip
    writer.ingest([e for f in (entry, exit_) for e in entries_for_fill(f)])
    writer._now = lambda: datetime(2026, 12, 5, tzinfo=UTC)  # type: ignore[method-assign]
    return ledger, writer


def test_a_correction_posted_before_the_close_is_the_months_own(tmp_path: Path) -> None:
    """Corrected while November was open, the carried trade's summary (30 Nov) was rebuilt with it; closing the
    month later must not make its exit's correction (dated 1 Dec) a prior-period adjustment too (counted twice)."""
    from tbot_bot.accounting.ledger_read import prior_period_adjustments

    ledger, writer = _carried(tmp_path)
    _correct(ledger, writer, "C1-OPEN", amount=Decimal("1005"))
    _correct(ledger, writer, "C1-CLOSE-FEE", amount=Decimal("0.80"))
    writer.close_period("2026-11")
    assert prior_period_adjustments(ledger, "2026-12-01") == (0, 0)


def test_an_account_fee_corrected_twice_after_the_close_counts_once(tmp_path: Path) -> None:
    """The second correction corrects a row dated in the open month: the day's own fees counted it, and the
    prior-period adjustments (by the fee's original date) counted it again. One rule serves both now."""
    from tbot_bot.accounting.account_transaction import entry_for_broker_fee
    from tbot_bot.accounting.ledger_read import account_fees, prior_period_adjustments

    ledger, writer = new_ledger(tmp_path)
    writer.ingest([
        entry_for_broker_fee(
            broker="ALPACA", activity_id="9", day=datetime(2026, 11, 16, tzinfo=UTC).date(), amount=Decimal("1.00"),
            description="reg fee", symbol=None, currency_code="USD",
        )
    ])  # fmt: skip
    writer._now = lambda: datetime(2026, 12, 5, tzinfo=UTC)  # type: ignore[method-assign]
    writer.close_period("2026-11")
    _correct(ledger, writer, "ALPACA-ACT-9", amount=Decimal("1.50"))
    _correct(ledger, writer, "ALPACA-ACT-9-COR", amount=Decimal("0.50"))
    day = "2026-12-01"
    own, (_, adjusted) = account_fees(ledger, day), prior_period_adjustments(ledger, day)
    assert own == 0 and adjusted == Decimal("-0.50")  # 1.00 booked in November, 0.50 in the end


def test_a_fee_like_name_is_no_fee(tmp_path: Path) -> None:
    """Only a fee entry (`X-FEE`) belongs to trade X: a December trade of a ticker spelled FEEL is its own."""
    from tbot_bot.accounting.ledger_pairs import trade_date
    from tbot_bot.accounting.ledger_schema import open_ledger

    ledger, writer = new_ledger(tmp_path)
    writer.ingest(entries_for_fill(fill("A", posted_at=datetime(2026, 11, 2, 15, tzinfo=UTC))))
    feel = fill(
        "A-FEEL-1", ticker="FEEL", signal_ticker="FEEL", posted_at=datetime(2026, 12, 3, 15, tzinfo=UTC)
    )
    writer.ingest(entries_for_fill(feel))
    with open_ledger(ledger, readonly=True) as conn:
        conn.row_factory = sqlite3.Row
        (row,) = conn.execute("SELECT * FROM transactions WHERE fitid = 'A-FEEL-1'").fetchall()
        assert trade_date(conn, row).startswith("2026-12-03")


def test_a_carried_trades_exit_reversed_after_the_close_is_a_prior_period_adjustment(tmp_path: Path) -> None:
    """A reversed exit closes nothing any more, yet its reversal belongs to the trade it closed when booked: its
    profit left the books and every summary kept it (30 Nov frozen at 10, 1 Dec 0)."""
    from tbot_bot.accounting.ledger_read import prior_period_adjustments, prior_period_ids
    from tbot_bot.accounting.ledger_schema import open_ledger

    ledger, writer = _carried(tmp_path)
    writer.close_period("2026-11")
    _correct(ledger, writer, "C1-CLOSE")
    # its fee is reversed with it (the fill did not happen): a prior-period adjustment of the fees too
    assert prior_period_adjustments(ledger, "2026-12-01") == (Decimal("-10"), Decimal("-0.4"))
    with open_ledger(ledger, readonly=True) as conn:  # the caller's rows stay as it reads them
        assert prior_period_ids(conn) and isinstance(conn.execute("SELECT 1").fetchone(), tuple)


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        ("99999", "--account 99999: account '99999' is not in the chart of accounts"),
        (
            "1030",
            "--account 1030: L1-OPEN already has a leg on 1030; moving its 1110 leg there would merge the two",
        ),
    ],
)
def test_an_account_the_post_would_refuse_is_refused_before_any_plan(
    books: tuple[Path, LedgerWriter], account: str, problem: str
) -> None:
    """The plan was shown first and the post then failed (exit 1, or "needs at least two splits, got 0")."""
    ledger, _ = books
    with pytest.raises(UsageError, match=re.escape(problem)):
        plan_correction(ledger, "L1-OPEN", reason="r", user="u", source="t", account=account)


def test_a_corrected_entry_amount_is_at_its_price_so_the_gross_is_the_prices_difference(
    books: tuple[Path, LedgerWriter],
) -> None:
    """The entry kept its price while the exit's PnL took the new cost: 10 x (191.40 - 190.25) shown beside a gross
    of 9.00. Its price follows the amount now, as an exit's does."""
    ledger, writer = books
    _correct(ledger, writer, "L1-OPEN", amount=Decimal("1905"))
    [trade] = [t for t in read_trades(ledger) if t.client_order_id == "coid-L1-OPEN"]
    assert trade.entry_price == Decimal("190.5") and trade.exit_price == Decimal("191.4")
    assert trade.pnl == Decimal("9") == trade.size * (trade.exit_price - trade.entry_price)


def test_a_fill_reversed_takes_its_fee_with_it(tmp_path: Path) -> None:
    """An exit reversed alone left its fee in the books (ledger, OFX: fees 0.13) while every trade listing dropped
    it with the fill (0.10). The fee is reversed with it, in the same batch, and the plan says so."""
    ledger, writer = _carried(tmp_path)
    plan = plan_correction(ledger, "C1-CLOSE", reason="busted", user="u", source="t")
    assert plan.follows is not None and plan.follows.role == "fee" and plan.follows.fitid == "C1-CLOSE-FEE"
    assert "; and its fee C1-CLOSE-FEE: reverse Dr 5010 0.4000, Cr 1030 0.4000" in plan_text(plan)
    _post(writer, plan)
    fees = account_balances(ledger).get("5010", Decimal(0))
    assert fees == 0 == sum((t.fees for t in read_trades(ledger)), Decimal(0))
    assert verify_ledger(ledger) == []


def test_a_corrected_fee_is_named_with_its_trade(tmp_path: Path) -> None:
    """A trade's fee corrected changed its fees in every listing, and no listing said why."""
    ledger, writer = _carried(tmp_path)
    _correct(ledger, writer, "C1-CLOSE-FEE", amount=Decimal("0.80"))
    [trade] = read_trades(ledger)
    assert trade.fees == Decimal("0.80") and trade.correction == "C1-CLOSE-FEE -> C1-CLOSE-FEE-COR"


def test_a_corrected_fill_reversed_takes_the_fee_of_its_original(tmp_path: Path) -> None:
    """An exit corrected with its entry is C1-CLOSE-COR; its fee is still C1-CLOSE-FEE (the original's name), which
    the reversal looked for as C1-CLOSE-COR-FEE and so left standing."""
    ledger, writer = _carried(tmp_path)
    _correct(ledger, writer, "C1-OPEN", amount=Decimal("1005"))
    plan = plan_correction(ledger, "C1-CLOSE-COR", reason="busted", user="u", source="t")
    assert plan.follows is not None and plan.follows.fitid == "C1-CLOSE-FEE"
    _post(writer, plan)
    assert (
        account_balances(ledger).get("5010", Decimal(0))
        == 0
        == sum((t.fees for t in read_trades(ledger)), Decimal(0))
    )


@pytest.mark.parametrize(
    ("amount", "memo"), [(Decimal("1010"), "realized gain"), (Decimal("990"), "realized loss")]
)
def test_an_exit_at_cost_corrected_realises_the_difference(
    books: tuple[Path, LedgerWriter], amount: Decimal, memo: str
) -> None:
    """An exit at cost has no gain/loss leg: a new amount moved its position leg with the cash, leaving the
    position account off by the difference and the PnL unchanged (an accountant's review)."""
    ledger, writer = books
    before, pnl = account_balances(ledger), _pnl(ledger, "coid-Z1-OPEN")
    (proceeds,) = [s.debit for s in plan_correction(ledger, "Z1-CLOSE", reason="r", user="u", source="t").original_splits if s.account_code == "1030"]  # fmt: skip
    plan = _correct(ledger, writer, "Z1-CLOSE", amount=amount)
    after = account_balances(ledger)
    moved = {code: after.get(code, Decimal(0)) - before.get(code, Decimal(0)) for code in {*before, *after}}
    assert not moved.get("1110"), moved  # the position still leaves at its cost
    assert moved["1030"] == amount - proceeds and moved["4010"] == proceeds - amount
    assert _pnl(ledger, "coid-Z1-OPEN") == pnl + amount - proceeds
    assert plan.replacement is not None
    assert [s.memo for s in plan.replacement.splits if s.account_code == "4010"] == [memo]
    assert verify_ledger(ledger) == []


def test_a_float_movement_corrected_in_one_ledger_says_the_float_ledger_is_not(tmp_path: Path) -> None:
    """The float ledger holds the same movement: correcting only the bot ledger split the two books without a word
    (an accountant's review)."""
    ledger, writer = new_ledger(tmp_path)
    from tbot_bot.accounting.float_injection import bot_float_entry, default_fitid

    when = at(9, 0)
    float_in = bot_float_entry(
        Decimal("25000"), currency_code="USD", posted_at=when, fitid=default_fitid(when)
    )
    writer.ingest([float_in])
    plan = plan_correction(ledger, float_in.fitid, reason="r", user="u", source="t", amount=Decimal("26000"))
    assert plan.warning is not None and "held by the float ledger too" in plan.warning
    assert "warning: " in plan_text(plan) and "held by the float ledger too" in plan_text(plan)
