"""Start-up reconciliation (DESIGN §8): journal vs the broker's orders vs the broker's positions, before anything.

No order is ever sent twice (unsent intents are resolved by asking the broker for their client_order_id), no fill
is lost (fills found at the broker are recorded and booked), and a position that outlived its window is closed.
Everything found is returned for the log.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tbot_bot.domain.intents import IntentStatus
from tbot_bot.domain.vocab import ExitReason
from tbot_bot.errors import ConfigError
from tbot_bot.market_time import window_for
from tbot_bot.runtime.positions import OpenTrade, open_trades
from tbot_bot.runtime.run_mode import market_closed

if TYPE_CHECKING:
    from tbot_bot.runtime.day_context import DayContext
    from tbot_bot.runtime.position_check import PositionReport

STALE_ENTRY = timedelta(minutes=1)


class ReconciliationRefused(ConfigError):
    """Start refused: the broker shows what the journal and ledger cannot account for (exit 2, a person acts)."""


def reconcile(ctx: DayContext) -> dict[str, Any]:
    now = ctx.clock.now()
    synced = abandoned = closed = 0
    for intent in ctx.journal.open_intents():
        order = ctx.errors.call(ctx.broker.get_order_by_client_id, intent.client_order_id)
        if order is not None:
            ctx.orders.apply_broker_record(intent, order)
            synced += 1
        elif intent.status in (IntentStatus.SENT, IntentStatus.PARTIALLY_FILLED):
            ctx.journal.update(
                intent.client_order_id,
                status=IntentStatus.ABANDONED,
                note="sent but unknown to the broker at restart",
            )
            ctx.log.unresolved(
                intent.strategy,
                event="order_unknown_at_broker",
                ticker=intent.symbol,
                client_order_id=intent.client_order_id,
                error_code="unknown_order",
                reason="journal says sent; broker has no such client_order_id",
            )
            abandoned += 1
        elif intent.purpose == "exit" and intent.status is IntentStatus.INTENT:
            ctx.orders.place(intent)  # an exit decided before the crash must still leave
            synced += 1
        elif intent.purpose == "entry" and datetime.fromisoformat(intent.created_at) < now - STALE_ENTRY:
            # an entry never sent whose moment has passed: sending it late would trade on a stale signal
            ctx.journal.update(
                intent.client_order_id,
                status=IntentStatus.ABANDONED,
                note="found unsent at restart; signal is stale",
            )
            abandoned += 1
    # fills already at the broker but not yet in the ledger: booking is idempotent (FITIDs), so book now
    ctx.book_day()
    held = {p.symbol: p for p in ctx.errors.call(ctx.broker.get_positions)}
    ours = {tr.entry.symbol for tr in open_trades(ctx.journal.intents())}
    closed = close_overdue(ctx)
    unknown = sorted(s for s, p in held.items() if s not in ours and p.qty != Decimal(0))
    for sym in unknown:
        ctx.log.unresolved(
            "supervisor",
            event="position_not_in_journal",
            ticker=sym,
            error_code="unknown_position",
            reason=f"broker holds {held[sym].qty} {sym} that this bot's journal does not know; left untouched",
        )
    return {
        "orders_synced": synced,
        "intents_abandoned": abandoned,
        "positions_closed": closed,
        "unknown_positions": ",".join(unknown),
    }


def overdue_trades(ctx: DayContext) -> list[OpenTrade]:
    """Positions without a working exit whose window is over (or from an earlier day), or every one once trading
    is halted (the kill switch)."""
    now, out = ctx.clock.now(), []
    for tr in open_trades(ctx.journal.intents()):
        entry_day = date.fromisoformat(tr.entry.session_date)
        w = window_for(tr.entry.strategy, entry_day, ctx.settings)
        if tr.exit is None and (entry_day < ctx.session_date or now >= w.monitoring_end or ctx.halted_reason):
            out.append(tr)
    return out


def close_overdue(ctx: DayContext) -> int:
    """Send the exit of every position whose window is over (or from an earlier day), or of any position once
    the kill switch tripped; how many were sent. Called at a restart, at each window's cron and, live, each minute
    between windows while the market is open (`Supervisor._close_left_behind`). While the market is closed none
    is sent: they are held until the open (said, alerted once)."""
    now, closed, waiting = ctx.clock.now(), 0, []
    for tr in overdue_trades(ctx):
        if market_closed(ctx):
            waiting.append(f"{tr.remaining.normalize():f} {tr.entry.symbol}")
            continue
        ctx.place_exit(
            tr.entry,
            ExitReason.RECOVERED_AFTER_WINDOW if not ctx.halted_reason else ExitReason.KILL_SWITCH,
            now,
        )
        closed += 1
    if waiting:
        ctx.hold_until_open(waiting)
    return closed


def check_positions(ctx: DayContext, *, outage_tolerated: bool = False) -> PositionReport:
    """Broker, journal and ledger side by side (status.json `reconciliation`); a difference is logged and alerted
    once per distinct finding, and one the bot cannot account for blocks new entries for the day.

    `outage_tolerated`: a broker that did not answer (an outage) is returned as is (`broker_unreachable`) for the
    supervisor to suspend entries, probe it and run the reconciliation again when it answers."""
    from tbot_bot.market_time import session_bounds
    from tbot_bot.runtime.position_check import compare_positions
    from tbot_bot.trading.notifier_bot import AlertLevel

    now = ctx.clock.now()
    bounds = session_bounds(ctx.session_date, ctx.settings.MARKET_CALENDAR)
    since = (bounds[0] if bounds else now.replace(hour=0, minute=0, second=0, microsecond=0)) - timedelta(
        hours=6
    )
    report = compare_positions(
        ctx.broker,
        ctx.journal,
        ctx.binding.ledger_path,
        ctx.session_date,
        now,
        since=since,
        bot_id=ctx.bot_id,
    )
    if outage_tolerated and report.broker_unreachable:
        return report
    previous = (ctx.status.reconciliation or {}).get("summary")
    ctx.status.publish(reconciliation=report.to_json())
    if report.differs and report.summary() != previous:
        ctx.log.unresolved(
            "supervisor",
            event="reconciliation_difference",
            error_code="positions_differ",
            reason=report.summary(),
        )
        # once per distinct finding and day: a start refused again for the same difference does not re-alert
        ctx.alert_once(AlertLevel.CRITICAL, "reconciliation", f"positions differ: {report.summary()}",
                       key=f"reconciliation:{report.summary()}")  # fmt: skip
    if report.blocks_trading and ctx.halted_reason is None:
        ctx.halted_reason = f"reconciliation: {report.summary()}"
        ctx.risk.halt(ctx.halted_reason)
    return report


def reconcile_and_check(ctx: DayContext) -> tuple[dict[str, Any], PositionReport]:
    """The start's fail-closed reconciliation and the three-way position check; a broker that does not answer
    either raises NetworkError (the caller suspends entries and probes)."""
    from tbot_bot.errors import NetworkError

    report = reconcile(ctx)
    positions = check_positions(ctx, outage_tolerated=True)
    if positions.broker_unreachable:
        raise NetworkError(f"broker did not answer the reconciliation: {positions.broker_error}")
    return report, positions


def reconcile_after_reconnect(ctx: DayContext, *, after: str) -> PositionReport:
    """After any reconnect (an outage, planned maintenance, or a reconnect the adapter made inside a call) and
    before the next entry: the start's fail-closed reconciliation; what the bot cannot account for blocks new
    entries for the day (alerted). A broker that does not answer raises NetworkError (the caller probes again)."""
    report, positions = reconcile_and_check(ctx)
    ctx.log.event("supervisor", "reconciled", after=after, **report)
    return positions


def refuse_or_block(ctx: DayContext, report: PositionReport) -> None:
    """At start: refuse the day when the bot cannot account for the broker; a flatten earlier today still blocks."""
    from tbot_bot.runtime.flatten import entries_blocked

    if report.blocks_trading:
        raise ReconciliationRefused(
            f"refusing to trade {ctx.day_key}: {report.summary()}. Nothing was sent. Look with `tbot positions "
            f"--home {ctx.home.root}`, resolve each difference (--adopt SYMBOL, --close SYMBOL, --ignore SYMBOL, or "
            "--rebuild-journal when the journal was lost), then start again"
        )
    blocked = entries_blocked(ctx)
    if blocked and ctx.halted_reason is None:
        ctx.halted_reason = f"{blocked} (no new entries for the rest of {ctx.day_key})"
        ctx.risk.halt(ctx.halted_reason)
