"""Books the day (spec: reporting_bot / accounting_api): reconcile fills with the broker's own order records, ingest
them into the injected ledger in one batch, then write trade history, the daily summary and (LEDGER_EXPORT_MODE=auto)
the OFX statement. Idempotent: FITIDs are client order ids, so booking the same fills again writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from tbot_bot.accounting.account_transaction import (
    BROKER_FEES,
    TradeFill,
    entries_for_fill,
    entry_for_broker_fee,
)
from tbot_bot.accounting.accounting_api import LedgerWriter, existing_digests
from tbot_bot.accounting.ledger_entry import LedgerEntry, format_dtposted
from tbot_bot.accounting.ledger_period import closed_through
from tbot_bot.accounting.ledger_read import account_fees
from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.domain.crashpoints import crashpoint
from tbot_bot.domain.intents import Intent
from tbot_bot.domain.vocab import ADOPTED_MARK, ADOPTED_MEMO, DEFENSE_MODE_MEMO
from tbot_bot.errors import LedgerError, NetworkError, TbotError
from tbot_bot.runtime.positions import is_final_with_fill, position_side, position_symbol, signal_direction

if TYPE_CHECKING:
    from tbot_bot.runtime.day_context import DayContext

# Alpaca dates regulatory fees on the trade day but may post them a day or more later (and a weekend or a
# stopped bot can sit in between): each booking looks this far back; FITIDs keep a fee from being booked twice
FEE_LOOKBACK = timedelta(days=10)


def reconcile_with_broker(ctx: DayContext, intent: Intent) -> Intent:
    """The broker's order record is the source of truth for quantity and price; differences are logged."""
    try:
        order = ctx.errors.call(ctx.broker.get_order_by_client_id, intent.client_order_id)
    except NetworkError as exc:
        # broker unreachable: the journal holds what the broker reported at fill time; book it, flag it
        ctx.log.unresolved(
            intent.strategy,
            event="fill_not_reconciled",
            ticker=intent.symbol,
            client_order_id=intent.client_order_id,
            error_code="broker_unreachable",
            reason=f"booked from the journal: {exc}",
        )
        return intent
    if order is None:
        ctx.log.unresolved(
            intent.strategy,
            event="fill_without_broker_record",
            ticker=intent.symbol,
            client_order_id=intent.client_order_id,
            error_code="no_broker_record",
            reason="booked from the journal",
        )
        return intent
    # the fee as the broker's fills carry it: a commission reported after the order's final status (IBKR sends
    # its commission report apart) reached no journal sync, and the trade was booked without it
    held_fee = intent.fee or Decimal(0)
    fee = order.fee if order.fills else held_fee
    if (
        order.filled_qty != intent.filled_qty
        or (order.filled_avg_price is not None and order.filled_avg_price != intent.filled_price)
        or fee != held_fee
    ):
        ctx.log.unresolved(
            intent.strategy,
            event="fill_reconciled",
            ticker=intent.symbol,
            client_order_id=intent.client_order_id,
            error_code="fill_mismatch",
            reason=(
                f"journal {intent.filled_qty}@{intent.filled_price} fee {held_fee}, broker "
                f"{order.filled_qty}@{order.filled_avg_price} fee {fee}: broker wins"
            ),
        )
        return ctx.journal.update(
            intent.client_order_id,
            filled_qty=order.filled_qty,
            filled_price=order.filled_avg_price or intent.filled_price,
            fee=fee,
        )
    return intent


def _late_fills(ctx: DayContext) -> list[Intent]:
    """Fills of earlier days (FEE_LOOKBACK) the ledger does not hold: an exit sent after its day's booking (a
    restart after the close or over a weekend closes a leftover; the broker fills it at the next open) was never
    booked, since each booking took its own day's intents only."""
    since = (ctx.session_date - FEE_LOOKBACK).isoformat()
    earlier = ctx.journal.intents_before(ctx.day_key, since)
    entries = {i.client_order_id for i in earlier if i.purpose == "entry"}

    def has_entry(i: Intent) -> bool:
        # an exit whose entry the journal lacks is never booked (its own day's booking logged it): not again
        return (
            i.purpose == "entry"
            or i.entry_client_order_id in entries
            or (ctx.journal.get(i.entry_client_order_id or "") is not None)
        )

    done = [i for i in earlier if is_final_with_fill(i.status, i.filled_qty) and has_entry(i)]
    if not done:
        return []
    with open_ledger(ctx.binding.ledger_path, readonly=True) as conn:
        held = existing_digests(conn, [i.client_order_id for i in done])
    return [i for i in done if i.client_order_id not in held]


def fills_to_book(ctx: DayContext) -> list[TradeFill]:
    # earlier days' fills not yet booked first: an entry is booked before its exit
    intents = _late_fills(ctx) + ctx.journal.intents(ctx.day_key)
    by_id = {i.client_order_id: i for i in intents}
    out: list[TradeFill] = []
    for intent in intents:
        # booked once it can no longer change: filled, or cancelled, expired or REJECTED after a partial fill
        # (what was executed before the broker refused the rest is held all the same)
        if not is_final_with_fill(intent.status, intent.filled_qty):
            continue
        # an adopted position has no order at the broker: its fill is the broker's position, booked as adopted
        if not intent.client_order_id.endswith(ADOPTED_MARK):
            intent = reconcile_with_broker(ctx, intent)
            # its exit is booked against the entry as reconciled: the broker's price is its cost basis too
            by_id[intent.client_order_id] = intent
        entry = (
            (
                by_id.get(intent.entry_client_order_id or "")
                or ctx.journal.get(intent.entry_client_order_id or "")
            )
            if intent.purpose == "exit"
            else None
        )
        if intent.purpose == "exit" and entry is None:
            ctx.log.unresolved(
                intent.strategy,
                event="exit_without_entry",
                ticker=intent.symbol,
                client_order_id=intent.client_order_id,
                error_code="orphan_exit",
                reason="no entry in the journal; not booked",
            )
            continue
        opener = entry if entry is not None else intent
        out.append(
            TradeFill(
                fitid=intent.client_order_id,
                strategy=intent.strategy,
                ticker=position_symbol(intent),
                signal_ticker=intent.signal_ticker,
                side=position_side(opener),
                direction=signal_direction(opener),
                action="open" if intent.purpose == "entry" else "close",
                instrument=intent.instrument,
                qty=intent.filled_qty or Decimal(0),
                price=intent.filled_price or Decimal(0),
                fee=intent.fee or Decimal(0),
                posted_at=_when(intent),
                broker=ctx.settings.BROKER_NAME,
                client_order_id=intent.client_order_id,
                tag=intent.tag,
                leverage_multiplier=intent.leverage,
                exit_reason=intent.exit_reason,
                session_id=f"{ctx.bot_id}-{intent.session_date}",  # a late fill keeps its own session
                currency_code=ctx.binding.currency_code,
                entry_price=entry.filled_price if entry is not None else None,
                # an entry made in defense mode carries the mark on both its legs
                memo=_memo(opener),
            )
        )
    return out


def _memo(opener: Intent) -> str | None:
    if opener.defense_mode:
        return DEFENSE_MODE_MEMO
    # `tbot positions --adopt`: both legs of an adopted position carry the flag
    return ADOPTED_MEMO if opener.client_order_id.endswith(ADOPTED_MARK) else None


def _when(intent: Intent):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(intent.filled_at or intent.created_at)


def broker_fee_entries(ctx: DayContext) -> list[LedgerEntry]:
    """Fees the broker posted apart from fills over the last FEE_LOOKBACK (Alpaca's regulatory fees). A broker
    that cannot answer now is logged and asked again at the next booking: the lookback still covers them."""
    since = ctx.session_date - FEE_LOOKBACK
    try:
        activities = ctx.errors.call(ctx.broker.fee_activities, since)
    except TbotError as exc:
        ctx.log.event("supervisor", "broker_fees_unavailable", since=since.isoformat(), reason=str(exc))
        return []
    return [
        entry_for_broker_fee(
            broker=ctx.settings.BROKER_NAME,
            activity_id=a.activity_id,
            day=a.day,
            amount=a.amount,
            description=a.description,
            symbol=a.symbol,
            currency_code=ctx.binding.currency_code,
        )
        for a in activities
        if a.amount != 0
    ]


def _entry_days(ctx: DayContext, fills: list[TradeFill]) -> list[date]:
    """The earlier days whose entries today's exit fills closed (a position carried over night): those days'
    summaries listed the trade open, and are written again with its result."""
    days = set()
    for f in fills:
        exit_ = ctx.journal.get(f.fitid) if f.action == "close" else None
        entry = ctx.journal.get(exit_.entry_client_order_id or "") if exit_ is not None else None
        if entry is not None and entry.session_date < ctx.day_key:
            days.add(date.fromisoformat(entry.session_date))
    return sorted(days)


def book_day(ctx: DayContext) -> None:
    fills = fills_to_book(ctx)
    opened_before: list[date] = []
    if fills:
        crashpoint("before_ingest")
        result = _writer(ctx).ingest(
            [e for f in fills for e in entries_for_fill(f)], actor=f"tbot:{ctx.bot_id}"
        )
        if result.written:
            opened_before = _entry_days(ctx, fills)
            ctx.log.event(
                "supervisor",
                "ledger_ingested",
                written=result.written,
                skipped=result.skipped_duplicates,
                backup=result.backup_path.name if result.backup_path else None,
            )
    fee_days = _book_broker_fees(ctx)
    # status shows the day's fees as the ledger holds them, those posted apart from fills included
    held = account_fees(ctx.binding.ledger_path, ctx.day_key)
    if held != ctx.status.account_fees:
        ctx.status.publish(account_fees=held)
    from tbot_bot.runtime.reports import refresh_earlier_reports, write_reports

    # a fill of an earlier day (booked late) is in that day's statement and summary: they are written again; so
    # is a day the broker dated a fee on after it was booked (Alpaca posts regulatory fees a day or more later)
    booked_on = [f.posted_at.date() for f in fills] + fee_days + opened_before
    earlier = sorted({d for d in booked_on if d < ctx.session_date})
    if earlier:
        refresh_earlier_reports(ctx, earlier)
    write_reports(ctx, exported=bool(fills) or bool(fee_days))


def _writer(ctx: DayContext) -> LedgerWriter:
    b = ctx.binding
    return LedgerWriter.for_home(ctx.home, b.ledger_path, b, ctx.settings.LEDGER_BACKUP_KEEP)


def book_broker_fees(ctx: DayContext) -> int:
    """Books the broker's fee activities not in the ledger yet, after the fills (a fee never holds the fills
    back). One dated in a period already closed is posted on the session's date instead, its memo naming the
    broker's date (a late charge goes in the open period). Returns how many were written."""
    return len(_book_broker_fees(ctx))


def _book_broker_fees(ctx: DayContext) -> list[date]:
    """book_broker_fees: the UTC date each fee written was posted on (an earlier day's report then holds it)."""
    entries = broker_fee_entries(ctx)
    if not entries:
        return []
    with open_ledger(ctx.binding.ledger_path, readonly=True) as conn:
        held = existing_digests(conn, [e.fitid for e in entries])
        lock = closed_through(conn)
    fresh = [e for e in entries if e.fitid not in held]
    if lock is not None:
        period, through = lock
        session = datetime.combine(ctx.session_date, datetime.min.time(), tzinfo=UTC)
        fresh = [
            replace(
                e,
                dtposted=session,
                memo=f"{e.memo} (broker date {e.dtposted:%Y-%m-%d}; period {period} closed)",
            )
            if format_dtposted(e.dtposted) <= through
            else e
            for e in fresh
        ]
    if not fresh:
        return []
    try:
        result = _writer(ctx).ingest(fresh, actor=f"tbot:{ctx.bot_id}")
    except LedgerError as exc:
        ctx.log.event("supervisor", "broker_fees_not_booked", count=len(fresh), reason=str(exc))
        return []
    total = sum(
        (s.debit - s.credit for e in fresh for s in e.splits if s.account_code == BROKER_FEES), Decimal(0)
    )
    ctx.log.event("supervisor", "broker_fees_booked", written=result.written, total=str(total))
    return [e.dtposted.date() for e in fresh] if result.written else []
