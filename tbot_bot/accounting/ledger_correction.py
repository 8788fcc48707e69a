"""Corrections an accountant posts (`tbot ledger correct`): never an UPDATE, always new flagged entries.

A correction reverses a posted entry (`{fitid}-REV`, every split swapped) and, unless it is a plain reversal,
posts the corrected entry (`{fitid}-COR`, or `-COR2`… when an earlier correction was itself corrected), both with
`is_correction=1`, `correction_of` = the original FITID, a memo naming the reason, the user and the source, and
audit rows (actor = user via source) in the same chained, anchored batch (LedgerWriter.correct).
- `--amount A`: the Broker Cash (1030) leg becomes A; in a two-leg entry the other leg follows, in an entry with a
  gain/loss leg (4xxx) that leg absorbs the difference and the realised PnL follows it.
- `--account N`: the entry's one non-cash leg (or the leg on `--from-account M`) moves to account N.
- The entry of a round trip whose exit stands: the exit is corrected with it, in the same batch, so the position's
  account is back at zero once the position is closed. A new cost moves the exit's gain (and the trade's PnL) by
  the difference; a position leg moved to another account is closed on that account.
Dates are the data's: a correction is dated at the original's time; when that period is closed it is dated at
the first instant after the lock, its memo naming the original date (as fee booking does).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tbot_bot.accounting.account_transaction import EQUITY_GAINS, OPTION_GAINS, OPTION_HOLDINGS, fee_fitid
from tbot_bot.accounting.coa import account_problem
from tbot_bot.accounting.ledger_entry import LedgerEntry, LedgerSplit
from tbot_bot.accounting.ledger_pairs import exit_of, pairs, root_of
from tbot_bot.accounting.ledger_period import closed_through
from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.domain.results import FLOAT_MAX
from tbot_bot.errors import UsageError
from tbot_bot.reporting.ledger_trades import fill_size, is_entry, is_exit
from tbot_bot.support.utils_bot import from_minor

CASH = "1030"
FLOAT_FITID_PREFIX = "FLOAT-"  # float movements (float_injection, float_bot): in both ledgers


@dataclass(frozen=True, slots=True)
class CorrectionPlan:
    fitid: str
    original_date: datetime
    posted_at: datetime  # the original's time, or the first open instant when its period is closed
    closed_period: str | None  # the closed period the original lies in
    reason: str  # as posted: the accountant's reason, who, how, and the original date when moved
    replacement: LedgerEntry | None  # None: a plain reversal
    original_splits: tuple[LedgerSplit, ...]
    # the exit corrected with an entry whose round trip it closed (posted in the same batch), else None
    follows: CorrectionPlan | None = None
    # what a person should know before confirming (shown by the CLI and the dashboard)
    warning: str | None = None
    # a follow's relation to the correction it follows: "exit" (closes the corrected entry's position) or "fee"
    # (charged for the fill being reversed)
    role: str = "exit"


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _signed(split: LedgerSplit) -> Decimal:
    return split.debit - split.credit


def _leg(code: str, signed: Decimal, memo: str | None) -> LedgerSplit:
    if signed >= 0:
        return LedgerSplit(code, debit=signed, memo=memo)
    return LedgerSplit(code, credit=-signed, memo=memo)


def _refuse_orphaning(conn: sqlite3.Connection, entry: sqlite3.Row) -> None:
    """Reversing an entry that an exit needs would leave that exit's gain in the books with no trade in any report
    (the history pairs an exit with an open entry of its instrument): that exit is reversed first. An entry whose
    exit was reversed is no longer needed by it (the next exit pairs with the next entry, as in the history)."""
    root = root_of(conn, entry)
    pairing = pairs(conn, root)
    before = {row["fitid"] for row in pairing.unpaired}
    orphaned = [
        row for row in pairs(conn, root, without=root["fitid"]).unpaired if row["fitid"] not in before
    ]
    if orphaned:
        own = (pairing.exits.get(root["fitid"]) or orphaned)[0]  # the exit the history pairs it with
        raise UsageError(
            f"cannot reverse {entry['fitid']!r} alone: it opened a position that {own['fitid']!r} closed, "
            "whose gain would stay in the books with no trade in any report; reverse the exit first (then this "
            "entry), or correct this entry's amount with --amount"
        )


def _splits_of(conn: sqlite3.Connection, transaction_id: int) -> list[LedgerSplit]:
    return [
        LedgerSplit(
            str(s["account_code"]),
            debit=from_minor(s["debit"]),
            credit=from_minor(s["credit"]),
            memo=s["memo"],
        )
        for s in conn.execute("SELECT * FROM splits WHERE transaction_id = ? ORDER BY id", (transaction_id,))
    ]


def _load(conn: sqlite3.Connection, fitid: str, ledger: Path) -> tuple[sqlite3.Row, list[LedgerSplit]]:
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM transactions WHERE fitid = ?", (fitid,)).fetchone()
    if row is None:
        raise UsageError(
            f"cannot correct {fitid!r}: no such FITID in {ledger.name} (see `tbot trades` or the OFX)"
        )
    if row["trntype"] in ("CORRECTION", "CLOSE"):
        raise UsageError(
            f"cannot correct {fitid!r}: it is a {row['trntype']} entry; correct the entry it "
            f"{'reverses (' + str(row['correction_of']) + ')' if row['trntype'] == 'CORRECTION' else 'closes'} instead"
        )
    splits = _splits_of(conn, row["id"])
    return row, splits


def _new_splits(
    fitid: str,
    splits: list[LedgerSplit],
    amount: Decimal | None,
    account: str | None,
    from_account: str | None,
    *,
    closes: bool = False,
) -> tuple[list[LedgerSplit], Decimal | None]:
    """The corrected legs and the change in realised PnL (None when PnL is unchanged). `closes`: the entry closes
    a position (an exit): its position leg stays at cost and the gain/loss absorbs a new amount, also when the
    exit was at cost and so had no gain/loss leg."""
    legs = list(splits)
    pnl_change: Decimal | None = None
    if amount is not None:
        if amount <= 0:
            raise UsageError(f"--amount {amount} must be positive (the size of the Broker Cash leg)")
        cash = [i for i, s in enumerate(legs) if s.account_code == CASH]
        if len(cash) != 1:
            raise UsageError(
                f"--amount needs an entry with one Broker Cash ({CASH}) leg; {fitid} has {len(cash)}"
            )
        i = cash[0]
        old = _signed(legs[i])
        delta = (amount if old >= 0 else -amount) - old
        legs[i] = _leg(CASH, old + delta, legs[i].memo)
        others = [j for j in range(len(legs)) if j != i]
        income = [j for j in others if legs[j].account_code.startswith("4")]
        if closes and len(others) == 1 and not income:
            # an exit at cost (no gain/loss leg): the cash left the position at cost, the difference is realised
            gains = OPTION_GAINS if legs[others[0]].account_code == OPTION_HOLDINGS else EQUITY_GAINS
            legs.append(LedgerSplit(gains))
            j = len(legs) - 1
            pnl_change = delta
        elif len(others) == 1:
            j = others[0]
        elif len(income) == 1:
            j = income[0]
            pnl_change = delta  # the gain/loss leg absorbs the change: profit moves with the cash
        else:
            raise UsageError(
                f"--amount cannot tell which leg of {fitid} absorbs the change (legs: "
                + ", ".join(s.account_code for s in legs)
                + "); correct it with --reverse and post the right entry"
            )
        signed = _signed(legs[j]) - delta
        # a gain/loss leg is named by its side once corrected (a loss corrected into a gain said "realized loss")
        memo = (
            ("realized gain" if signed < 0 else "realized loss") if pnl_change is not None else legs[j].memo
        )
        legs[j] = _leg(legs[j].account_code, signed, memo)
        # a gain/loss that the correction brings to exactly zero leaves no leg (a leg needs one positive side)
        legs = [leg for leg in legs if leg.debit or leg.credit]
    if account is not None:
        candidates = [i for i, s in enumerate(legs) if s.account_code != CASH]
        if from_account is not None:
            candidates = [i for i, s in enumerate(legs) if s.account_code == from_account]
        if len(candidates) != 1:
            found = ", ".join(s.account_code for s in legs)
            raise UsageError(
                f"--account: {fitid} has legs on {found}; name the one to move with --from-account"
                if from_account is None
                else f"--from-account {from_account}: {fitid} has no single leg on it (legs: {found})"
            )
        i = candidates[0]
        if legs[i].account_code == account:
            raise UsageError(f"--account {account}: that leg of {fitid} is already on {account}")
        if any(s.account_code == account for s in legs):
            # two legs on one account are one leg (a two-leg entry would net to nothing at all)
            raise UsageError(
                f"--account {account}: {fitid} already has a leg on {account}; moving its {legs[i].account_code} "
                "leg there would merge the two: name another account"
            )
        legs[i] = replace(legs[i], account_code=account)
    return legs, pnl_change


def legs_text(splits: tuple[LedgerSplit, ...] | list[LedgerSplit]) -> str:
    """Legs as people read a plan: `Dr 1110 1000.0000, Cr 1030 1000.0000`."""
    return ", ".join(f"{'Dr' if s.debit else 'Cr'} {s.account_code} {s.debit or s.credit}" for s in splits)


def plan_text(plan: CorrectionPlan) -> str:
    """A plan in one line (the dashboard's confirmation and activity log): what is reversed and posted, the exit
    corrected with its entry (or the fee reversed with its fill) included."""

    def one(p: CorrectionPlan) -> str:
        post = f"; post {p.replacement.fitid}: {legs_text(p.replacement.splits)}" if p.replacement else ""
        return f"{p.fitid}: reverse {legs_text(p.original_splits)}{post}"

    follows = f"; and its {plan.follows.role} {one(plan.follows)}" if plan.follows is not None else ""
    warning = f"; warning: {plan.warning}" if plan.warning else ""
    return one(plan) + follows + warning


def parse_amount(text: str) -> Decimal:
    """An amount as a person types it (ASCII digits, a point, a sign, an exponent: Decimal alone would also read
    "１２" and "1_000"); its range is plan_correction's to check."""
    try:
        if not text.isascii() or "_" in text:
            raise InvalidOperation
        return Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(f"amount {text!r} is not a number; give it like 1234.56") from None


def plan_correction(ledger: Path, fitid: str, **kwargs: Any) -> CorrectionPlan:
    """What `tbot ledger correct` will post (nothing is written); UsageError naming what is wrong with the request
    (exit 2). A float movement is corrected with a warning: the float ledger holds it too."""
    plan = _plan(ledger, fitid, **kwargs)
    if fitid.startswith(FLOAT_FITID_PREFIX):
        # the float ledger is not corrected with it: the two books then differ until the accounting system acts
        note = (
            f"{fitid} is a float movement, held by the float ledger too, which this correction leaves as it is: "
            "the bot's float and this ledger's float account then differ until the accounting system corrects "
            "the float (inject or return the difference)"
        )
        plan = replace(plan, warning=f"{plan.warning}; {note}" if plan.warning else note)
    return plan


def _plan(
    ledger: Path,
    fitid: str,
    *,
    reason: str,
    user: str,
    source: str,
    amount: Decimal | None = None,
    account: str | None = None,
    from_account: str | None = None,
) -> CorrectionPlan:
    if not reason.strip():
        raise UsageError('a correction needs a reason: --reason "..."')
    if from_account is not None and account is None:
        raise UsageError("--from-account only applies with --account")
    if account is not None:
        # checked before any plan is shown: a plan naming an account the post then refuses is no plan
        problem = account_problem(account)
        if problem:
            raise UsageError(
                f"--account {account}: {problem}; name a posting account of the chart of accounts"
            )
    # the one check of an amount, for the CLI and the dashboard alike: what the ledger's integers can hold
    if amount is not None and (
        not amount.is_finite() or int(amount.as_tuple().exponent) < -4 or abs(amount) > FLOAT_MAX
    ):
        raise UsageError(
            f"--amount {amount} must be a finite amount up to {FLOAT_MAX:,} with at most 4 decimal places"
        )
    with open_ledger(ledger, readonly=True) as conn:
        row, splits = _load(conn, fitid, ledger)
        reversal = conn.execute(
            "SELECT fitid FROM transactions WHERE correction_of = ? AND trntype = 'CORRECTION'", (fitid,)
        ).fetchone()
        if reversal is not None:
            raise UsageError(f"{fitid!r} is already reversed by {reversal['fitid']!r}")
        if amount is None and account is None and is_entry(row):
            _refuse_orphaning(conn, row)
        lock = closed_through(conn)
        cor_fitid = _next_cor_fitid(conn, fitid)
        # a fill's fee entry as its corrections leave it: reversed with the fill (it was charged for it)
        # by the original's FITID: a corrected fill (X-COR) is reversed by that name, its fee is still X-FEE
        fee = _standing_fee(conn, root_of(conn, row)["fitid"]) if is_entry(row) or is_exit(row) else None
        fee_splits = _splits_of(conn, fee["id"]) if fee is not None else []
        exited, exits = exit_of(conn, row) if is_entry(row) else (True, [])
        sold = sum((fill_size(x) for x in exits), Decimal(0))
        partly = bool(exits) and sold < fill_size(row)
        if (len(exits) > 1 or partly) and (amount is not None or account is not None):
            # each exit closed part of the position (or one closed part, the rest still held): which part of a new
            # cost each should carry is a choice; the one exit took all of it, leaving the rest's cost at nothing
            named = ", ".join(x["fitid"] for x in exits)
            what = (
                f"was partly closed by {named} ({sold} of {fill_size(row)})"
                if partly and len(exits) == 1
                else f"was closed by {len(exits)} exits ({named}), each selling part of the position"
            )
            raise UsageError(
                f"{fitid!r} {what}: correct each exit with its own --amount, or reverse the entry and its exits "
                "(--reverse) and post the right entries"
            )
        exit_ = exits[0] if exits else None
        exit_splits = _splits_of(conn, exit_["id"]) if exit_ is not None else []
        exit_cor = _next_cor_fitid(conn, exit_["fitid"]) if exit_ is not None else ""
    how = f"by {user} via {source}"
    original_date, posted_at, closed, text = _dating(row, lock, reason.strip(), how)
    if amount is None and account is None:
        follows = None
        if fee is not None:
            # a fill reversed did not happen, nor did what was charged for it: the books keep no fee of a trade no
            # surface lists (its fee row stood in the ledger and the OFX while every trade listing dropped it)
            f_date, f_posted, f_closed, f_text = _dating(
                fee, lock, f"follows the reversal of {fitid}: {reason.strip()}", how
            )
            follows = CorrectionPlan(
                fee["fitid"], f_date, f_posted, f_closed, f_text, None, tuple(fee_splits), role="fee"
            )
        return CorrectionPlan(fitid, original_date, posted_at, closed, text, None, tuple(splits), follows)
    legs, pnl_change = _new_splits(fitid, splits, amount, account, from_account, closes=is_exit(row))
    entry_price = exit_price = None
    size, multiplier = _dec(row["size"]), _dec(row["contract_multiplier"]) or Decimal(1)
    if amount is not None and size:
        # a corrected amount is at a corrected price, an entry's as an exit's: the history and the OFX statement
        # show the price the amount was at, so a trade's gross stays its size x the difference of its prices (an
        # entry that kept its price showed 13.1821 x (38.60 - 37.97) beside a gross of 8.00)
        price = (amount / (abs(size) * multiplier)).quantize(Decimal("0.0001"))
        if is_exit(row):
            exit_price = price
        else:
            entry_price = price
    replacement = _replacement(
        row, cor_fitid, posted_at, legs, pnl_change, entry_price=entry_price, exit_price=exit_price
    )
    tracked = tracked_of(splits, account, from_account)
    follows = None
    if exit_ is not None:
        follows = _follow_exit(
            exit_, exit_splits, exit_cor, legs, tracked, fitid, lock, reason.strip(), how, entry_price
        )
    warning = None
    if not exited:
        # a position carried past its day, or closed outside the bot: the bot books an exit at the cost it filled
        # at (its journal), not at a corrected one, so correcting now may leave the difference on the position
        warning = (
            f"{fitid} opened a position with no exit in the books: if the bot still holds it, the exit it books "
            f"later closes the position at the cost it filled at, and {', '.join(sorted(tracked))} would keep the "
            "difference; once that exit is booked, correct this entry again with the same amount: its exit is "
            "then brought in line"
        )
    return CorrectionPlan(
        fitid, original_date, posted_at, closed, text, replacement, tuple(splits), follows, warning
    )


def tracked_of(splits: list[LedgerSplit], account: str | None, from_account: str | None) -> set[str]:
    """The position's accounts in an entry's correction: its non-cash leg, and the account that leg moves to (not
    where its cash leg moves)."""
    tracked = {leg.account_code for leg in splits if leg.account_code != CASH}
    if account is not None and (from_account is None or from_account in tracked):
        tracked.add(account)
    return tracked


def _standing_fee(conn: sqlite3.Connection, fitid: str) -> sqlite3.Row | None:
    """The fee entry of fill `fitid` (`{fitid}-FEE`) as its corrections leave it: its last replacement, or None
    when it has none, or was reversed without a replacement."""
    row = conn.execute("SELECT * FROM transactions WHERE fitid = ?", (fee_fitid(fitid),)).fetchone()
    while (
        row is not None
        and conn.execute(
            "SELECT 1 FROM transactions WHERE correction_of = ? AND trntype = 'CORRECTION'", (row["fitid"],)
        ).fetchone()
    ):
        row = conn.execute(
            "SELECT * FROM transactions WHERE correction_of = ? AND trntype != 'CORRECTION' AND is_correction = 1",
            (row["fitid"],),
        ).fetchone()
    return row  # type: ignore[no-any-return]


def _next_cor_fitid(conn: sqlite3.Connection, fitid: str) -> str:
    """`F-COR`, or `F-COR2`... when an earlier correction of F was itself reversed."""
    cor_fitid, n = f"{fitid}-COR", 1
    while conn.execute("SELECT 1 FROM transactions WHERE fitid = ?", (cor_fitid,)).fetchone():
        n += 1
        cor_fitid = f"{fitid}-COR{n}"
    return cor_fitid


def _dating(
    row: sqlite3.Row, lock: tuple[str, str] | None, reason: str, how: str
) -> tuple[datetime, datetime, str | None, str]:
    """The original's date, the correction's (the first open instant when the original's period is closed), that
    closed period, and the memo text."""
    original_date = _dt(row["dtposted"])
    posted_at, closed = original_date, None
    if lock is not None and row["dtposted"] <= lock[1]:
        closed = lock[0]
        posted_at = _dt(lock[1]) + timedelta(microseconds=1)
    when = f"; original dated {original_date:%Y-%m-%d}, period {closed} closed" if closed else ""
    return original_date, posted_at, closed, f"{reason} ({how}{when})"


def _replacement(
    row: sqlite3.Row,
    cor_fitid: str,
    posted_at: datetime,
    legs: list[LedgerSplit],
    pnl_change: Decimal | None,
    *,
    entry_price: Decimal | None = None,
    exit_price: Decimal | None = None,
) -> LedgerEntry:
    """The corrected entry: the original's fields with new legs (and PnL, and the prices when given)."""
    pnl = from_minor(row["pnl"]) if row["pnl"] is not None else None
    if pnl is not None and pnl_change is not None:
        pnl += pnl_change
    if entry_price is None and row["entry_price"] is not None:
        entry_price = from_minor(row["entry_price"])
    if exit_price is None and row["exit_price"] is not None:
        exit_price = from_minor(row["exit_price"])
    return LedgerEntry(
        fitid=cor_fitid, trntype=row["trntype"], dtposted=posted_at, currency_code=row["currency_code"],
        splits=tuple(legs), strategy=row["strategy"], ticker=row["ticker"], signal_ticker=row["signal_ticker"],
        side=row["side"], direction=row["direction"], size=_dec(row["size"]),
        entry_price=entry_price, exit_price=exit_price,
        pnl=pnl, broker=row["broker"], client_order_id=row["client_order_id"], tag=row["tag"],
        leverage_multiplier=_dec(row["leverage_multiplier"]), exit_reason=row["exit_reason"],
        session_id=row["session_id"], instrument=row["instrument"],
        contract_multiplier=_dec(row["contract_multiplier"]),
    )  # fmt: skip


def _follow_exit(
    exit_: sqlite3.Row,
    exit_splits: list[LedgerSplit],
    cor_fitid: str,
    entry_legs: list[LedgerSplit],
    tracked: set[str],
    entry_fitid: str,
    lock: tuple[str, str] | None,
    reason: str,
    how: str,
    entry_price: Decimal | None = None,
) -> CorrectionPlan | None:
    """The correction of the exit that closed an entry's position, so that the position's accounts (`tracked`: the
    entry's non-cash leg and the account it moves to) net to zero over the round trip: the exit's leg on each is
    set to close what the corrected entry holds there, and its gain/loss leg (4xxx) absorbs what is left, the
    trade's realised PnL with it. Set, not shifted: an exit booked after an entry was corrected alone (at the cost
    the bot filled at) is brought in line by correcting the entry again. None when the exit already closes exactly
    what the entry holds (e.g. only the entry's cash leg moved). An entry closed by several exits (an exit
    cancelled after a partial fill, then the rest) is refused before this (_plan)."""
    target: dict[str, Decimal] = dict.fromkeys(tracked, Decimal(0))
    for leg in entry_legs:
        if leg.account_code in tracked:
            target[leg.account_code] -= _signed(leg)
    signed: dict[str, Decimal] = {}
    for leg in exit_splits:
        signed[leg.account_code] = signed.get(leg.account_code, Decimal(0)) + _signed(leg)
    if all(signed.get(code, Decimal(0)) == want for code, want in target.items()):
        return None
    signed.update(target)
    # what keeps the exit balanced is its gain or loss: the position cost it closed is now another
    rest = -sum(signed.values(), Decimal(0))
    gains = [code for code in signed if code.startswith("4")]
    if len(gains) > 1:
        raise UsageError(
            f"the exit {exit_['fitid']!r} that closed {entry_fitid!r} has gain/loss legs on {', '.join(gains)}: "
            "correct it by hand (--reverse both, then post the right entries)"
        )
    gain = gains[0] if gains else (OPTION_GAINS if exit_["instrument"] == "option" else EQUITY_GAINS)
    signed[gain] = signed.get(gain, Decimal(0)) + rest
    memos = {leg.account_code: leg.memo for leg in exit_splits}
    memos[gain] = "realized loss" if signed[gain] > 0 else "realized gain"
    legs = [_leg(code, amount, memos.get(code)) for code, amount in signed.items() if amount]
    original_date, posted_at, closed, text = _dating(
        exit_, lock, f"follows the correction of {entry_fitid}: {reason}", how
    )
    # the exit's record of its entry's price follows the entry's (entry_price: the corrected one, if any)
    replacement = _replacement(
        exit_, cor_fitid, posted_at, legs, -rest if exit_["pnl"] is not None else None,
        entry_price=entry_price if exit_["entry_price"] is not None else None,
    )  # fmt: skip
    return CorrectionPlan(
        exit_["fitid"], original_date, posted_at, closed, text, replacement, tuple(exit_splits)
    )


def post_correction(
    home: Any, binding: Any, plan: CorrectionPlan, *, user: str, source: str, backup_keep: int
) -> tuple[int, str | None]:
    """Post a planned correction through the anchored writer, then bring what derives from the books along: the
    trade history, the summaries of the sessions it touches (those that have one) and the system log. Returns the
    number of entries written and, when the system log could not record it, why. `source` says where it was asked
    (the CLI, the dashboard)."""
    from tbot_bot.accounting.accounting_api import LedgerWriter

    also = plan.follows
    result = LedgerWriter.for_home(home, binding.ledger_path, binding, backup_keep).correct(
        plan.fitid,
        reason=plan.reason,
        posted_at=plan.posted_at,
        replacement=plan.replacement,
        actor=f"{user} via {source}",
        also=() if also is None else ((also.fitid, also.reason, also.posted_at, also.replacement),),
    )
    _refresh_derived(home, binding, plan)
    unrecorded = None
    if home.core_db("SYSTEM_LOGS").exists():
        from tbot_bot.core.audit import log_done_event

        # posted: a system log that cannot take the row is said (the correction entries carry who and why)
        unrecorded = log_done_event(
            home, source="ledger", event="correction", actor=user,
            detail=f"{plan.fitid}: {plan.reason}" + (f"; with its {also.role} {also.fitid}" if also is not None else ""),
        )  # fmt: skip
    return result.written, unrecorded


def _refresh_derived(home: Any, binding: Any, plan: CorrectionPlan) -> None:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.reporting.daily_summary import summary_path
    from tbot_bot.reporting.ledger_history import rebuild_summaries, refresh_trade_history
    from tbot_bot.support.trading_mode import trading_mode

    broker = load_settings(home).BROKER_NAME
    mode = trading_mode(home, broker)  # paper, live or replay, as the run that traded recorded it
    scope = binding.scope
    refresh_trade_history(binding.ledger_path, home.trades_dir(scope), scope, broker=broker, mode=mode)
    # only sessions that have a summary: a correction dated on a non-session day creates none; one posted in the
    # open period for an entry of a closed one leaves the closed day's reports as the closed books are
    touched = {
        p.posted_at.date() if p.closed_period else p.original_date.date()
        for p in (plan, plan.follows)
        if p is not None
    }
    closed = any(p.closed_period for p in (plan, plan.follows) if p is not None)
    # the posting day of a closed month's correction gets a summary if it has none: its figures are the only place
    # the change is reported (prior_period_adjustments)
    days = sorted(d for d in touched if closed or summary_path(home.summaries_dir(scope), d).exists())
    if days:
        rebuild_summaries(
            binding.ledger_path, home.summaries_dir(scope), scope, broker=broker, mode=mode, days=days
        )
    # the session OFX statements (the files the accountant imports): the touched days' carry the reversal and the
    # corrected entry, and every later one its cash balance (AVAILCASH runs on from the corrected day: they were
    # left stale); a closed month's correction is dated on its posting day, which gets its statement as it gets a
    # summary (its postings were in none). Other days with no statement written get none (`tbot ofx export`)
    from tbot_bot.accounting.generate_ofx import export_statements, statement_days_since, statement_ids
    from tbot_bot.accounting.ledger_anchor import AnchorStore

    later = statement_days_since(home, scope, min(touched))
    posting_days = {p.posted_at.date() for p in (plan, plan.follows) if p is not None and p.closed_period}
    broker_id, account_id = statement_ids(binding)
    # one verification of the ledger for them all (one per statement took a minute on a year of sessions)
    statements: dict[date | None, Path] = {
        day: home.session_ofx(scope, day) for day in sorted(later | posting_days)
    }
    if not statements:
        return
    export_statements(
        binding.ledger_path, statements,
        broker_id=broker_id, account_id=account_id, anchors=AnchorStore.for_home(home), backup_dir=binding.backup_dir,
        mode=mode,
    )  # fmt: skip
