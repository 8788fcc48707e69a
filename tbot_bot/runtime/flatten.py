"""Flatten on request (`tbot flatten`, the dashboard's "Flatten all") and rebuilding a lost journal.

Flatten: cancel the bot's working orders, close its positions at market through the journal (so every fill is booked
like any exit), book the day, write an audit row naming who asked, block new entries for the rest of the session.
The supervisor runs it when it finds a flatten request (`control/control_flatten.json`) at its next poll; without a
supervisor, `tbot flatten` runs it itself under the run lock. Either way the result lands next to the request.

Rebuild: the journal is re-created from the broker's own orders of the day, recognised by the bot's deterministic
client order ids (`<bot>-<yyyymmdd>-<strategy>-<ticker>-<seq>`), with the window cursors a restart resumes from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tbot_bot.broker.broker_api import AssetClass, OptionContract
from tbot_bot.domain.intents import Intent, IntentStatus
from tbot_bot.domain.vocab import (
    STRATEGY_NAMES,
    ExitReason,
    InstrumentType,
    OrderSide,
    PositionSide,
    Purpose,
    StrategyName,
    WindowStatus,
)
from tbot_bot.errors import TbotError
from tbot_bot.market_time import next_session_date, window_for
from tbot_bot.runtime.control import ControlFiles, blocked_text
from tbot_bot.runtime.day_context import DayContext
from tbot_bot.runtime.positions import open_trades, position_symbol
from tbot_bot.runtime.run_mode import market_closed
from tbot_bot.support.utils_bot import readonly_uri

ENTRIES_BLOCKED_PREFIX = (
    "entries_blocked:"  # journal kv: entries_blocked:<day> -> why (a flatten this session)
)


@dataclass
class FlattenResult:
    requested_by: str
    closed: list[str] = field(default_factory=list)  # symbols whose exits filled
    not_closed: dict[str, str] = field(default_factory=dict)  # symbol -> why it is still held
    cancelled: int = 0
    # the session whose new entries the flatten blocks (blocked_session: the exchange day's, or the next)
    blocked_session: str = ""
    # what the request asked for ("SYN6", "strategy open"; empty: everything) and what stays held outside it
    scope: str = ""
    others: list[str] = field(default_factory=list)
    # why nothing was done (a symbol nobody holds: a typo must not end the trading day)
    refused: str = ""

    @property
    def ok(self) -> bool:
        return not self.not_closed and not self.refused

    def to_json(self) -> dict[str, Any]:
        return {
            "requested_by": self.requested_by,
            "ok": self.ok,
            "closed": self.closed,
            "not_closed": self.not_closed,
            "cancelled": self.cancelled,
            "blocked_session": self.blocked_session,
            "scope": self.scope,
            "others": self.others,
            "refused": self.refused,
        }


def _wanted(intent: Intent, symbol: str | None, strategy: str | None) -> bool:
    return (symbol is None or symbol in (intent.symbol, position_symbol(intent))) and (
        strategy is None or intent.strategy == strategy
    )


def _left_at_broker(ctx: DayContext, symbol: str | None, result: FlattenResult) -> None:
    """What the broker still holds after the journal's positions were closed (a journal that was lost, a position
    opened by hand) is named as not closed: a flatten never says "nothing held" on the journal's word alone. A
    broker that cannot be asked is named too. Positions the operator chose to leave alone (`--ignore`) stay out."""
    from tbot_bot.runtime.position_check import ignored_positions

    try:
        held = ctx.errors.call(ctx.broker.get_positions)
    except TbotError as exc:
        result.not_closed.setdefault(
            symbol or "(broker)", f"the broker cannot be asked ({exc}): what it holds is unknown"
        )
        return
    ignored = ignored_positions(ctx.journal)
    ours = {position_symbol(tr.entry) for tr in open_trades(ctx.journal.intents())}
    for p in held:
        rest = p.qty - ignored.get(p.symbol, Decimal(0))
        if rest == 0 or p.symbol in ours or (symbol is not None and p.symbol != symbol):
            continue
        result.not_closed.setdefault(
            p.symbol,
            f"the broker holds {format(rest.normalize(), 'f')} the journal does not account for (opened by hand, or "
            "the journal was lost): see `tbot positions`; `--close` sells it, `--rebuild-journal` recovers lost "
            "orders",
        )


def flatten(
    ctx: DayContext, who: str, *, symbol: str | None = None, strategy: str | None = None
) -> FlattenResult:
    """Close what the bot holds (optionally one symbol or strategy) and block new entries for the session."""
    from tbot_bot.core.audit import log_done_event

    reason = f"flatten requested by {who}"
    scope = " ".join(x for x in (symbol, strategy and f"strategy {strategy}") if x)
    refusal = _unknown_symbol(ctx, symbol) if symbol is not None else None
    if refusal:
        # a mistyped symbol, or one only held by hand, would otherwise close nothing and still block the session
        return FlattenResult(
            who, scope=scope, refused=f"{refusal}: nothing was done and entries are not blocked"
        )
    result = FlattenResult(who, blocked_session=blocked_session(ctx), scope=scope)
    # no new entry for the rest of the session, also across a restart of that day
    ctx.journal.set_value(f"{ENTRIES_BLOCKED_PREFIX}{result.blocked_session}", reason)
    if result.blocked_session == ctx.day_key:
        ctx.risk.halt(reason)
        ctx.halted_reason = ctx.halted_reason or reason
    for intent in ctx.journal.open_intents():
        if intent.purpose == Purpose.ENTRY and _wanted(intent, symbol, strategy):
            ctx.orders.cancel(intent, reason)
            result.cancelled += 1
    targets = [tr for tr in open_trades(ctx.journal.intents()) if _wanted(tr.entry, symbol, strategy)]
    for tr in targets:
        if tr.exit is None:
            try:
                ctx.place_exit(tr.entry, ExitReason.FORCED_EXIT, ctx.clock.now())
            except TbotError as exc:
                result.not_closed[position_symbol(tr.entry)] = str(exc)
    settle(ctx)
    try:
        ctx.book_day()
    except TbotError as exc:
        ctx.errors.handle(exc, strategy="supervisor", context={"action": "flatten_booking"})
    still = {
        position_symbol(tr.entry): tr
        for tr in open_trades(ctx.journal.intents())
        if _wanted(tr.entry, symbol, strategy)
    }
    closed_market = market_closed(ctx)
    for tr in targets:
        sym = position_symbol(tr.entry)
        if sym in still:
            working = still[sym].exit
            why = (
                f"; exit {working.client_order_id} is {working.status}"
                if working
                else "; the market is closed: no order is sent until it opens, and the next session's first "
                "window closes it"
                if closed_market
                else "; no exit working"
            )
            result.not_closed.setdefault(sym, f"{still[sym].remaining} still held{why}")
        elif sym not in result.closed:
            result.closed.append(sym)
    # a strategy's flatten closes what the journal gives it; what else the broker holds is no strategy's
    if strategy is None:
        _left_at_broker(ctx, symbol, result)
    result.others = sorted(
        {
            position_symbol(tr.entry)
            for tr in open_trades(ctx.journal.intents())
            if not _wanted(tr.entry, symbol, strategy)
        }
    )
    ctx.log.event(
        "supervisor",
        "flattened",
        by=who,
        closed=",".join(result.closed),
        not_closed=",".join(result.not_closed),
    )
    # done: a system log that cannot take the row is said, never turned into a failed flatten
    unrecorded = log_done_event(
        ctx.home, source="flatten", event="flatten", actor=who, level="info" if result.ok else "error",
        detail=f"closed {','.join(result.closed) or 'nothing'}"
        + (f"; NOT closed: {result.not_closed}" if result.not_closed else "")
        + (f"; symbol={symbol}" if symbol else "") + (f"; strategy={strategy}" if strategy else ""),
        now=ctx.clock.now(),
    )  # fmt: skip
    if unrecorded:
        ctx.log.event("supervisor", "system_log_unwritten", reason=unrecorded)
    ctx.status.publish(message=f"flattened by {who}: {blocked_text(result.blocked_session)}")
    return result


def _unknown_symbol(ctx: DayContext, symbol: str) -> str | None:
    """Why `flatten --symbol` has nothing of the bot's to close (None when it has): a flatten closes what the
    journal holds or works on; a position only the broker holds (opened by hand) is closed with `tbot positions
    --close`, which books it first."""
    if any(_wanted(i, symbol, None) for i in ctx.journal.open_intents()):
        return None
    if any(_wanted(tr.entry, symbol, None) for tr in open_trades(ctx.journal.intents())):
        return None
    try:
        held = ctx.errors.call(ctx.broker.get_positions)
    except TbotError:
        return None  # the broker cannot be asked: the flatten goes ahead and names that
    if any(p.symbol == symbol for p in held):
        return (
            f"the bot holds nothing of {symbol}: the broker's position was not opened by the bot (by hand, or the "
            f"journal was lost); `tbot positions --close {symbol}` books and closes it, `--rebuild-journal` recovers "
            "lost orders"
        )
    return f"{symbol} is held neither by the broker nor in the bot's journal, and no order of the bot's works on it"


def blocked_session(ctx: DayContext) -> str:
    """The session a flatten blocks: today's (the exchange date's) when today is a session, before its open (an
    operator who flattens at 08:00 on bad news means that day) or after its close (a flatten of leftovers at
    16:05 means no more today, not Monday); on a day without a session (a weekend, a holiday), the next one."""
    return next_session_date(ctx.clock.now(), ctx.settings.MARKET_CALENDAR).isoformat()


def settle(ctx: DayContext) -> None:
    """Give the orders just sent a few bars (replay) or polls (live) to fill, as the supervisor does."""
    for _ in range(max(1, ctx.mode.settle_steps)):
        ctx.orders.sync()
        if not ctx.journal.open_intents():
            return
        ctx.wait(ctx.clock.now() + ctx.mode.settle_step)


def serve_flatten_request(ctx: DayContext, control: ControlFiles) -> FlattenResult | None:
    """The supervisor's side of `tbot flatten`: run a pending request once and leave its result for the asker."""
    request = control.flatten_request()
    if request is None:
        return None
    result = flatten(ctx, str(request["by"]), symbol=request.get("symbol"), strategy=request.get("strategy"))
    control.finish_flatten(request, result.to_json())
    return result


def entries_blocked(ctx: DayContext) -> str | None:
    """Why new entries are blocked for this session (a flatten earlier today), or None."""
    return ctx.journal.get_value(f"{ENTRIES_BLOCKED_PREFIX}{ctx.day_key}")


# ------------------------------------------------------------------ rebuild the journal
@dataclass
class RebuildResult:
    added: list[str] = field(default_factory=list)
    kept: int = 0  # orders already in the journal
    foreign: list[str] = field(default_factory=list)  # the day's orders that are not the bot's


def rebuild_journal(ctx: DayContext, *, since: datetime) -> RebuildResult:
    """Journal every order of the day the broker knows under this bot's client order ids, entries and exits
    paired per (strategy, ticker) in submission order; window cursors set so a restart resumes after them."""
    from tbot_bot.trading.orders_bot import OrderRouter, option_to_json

    pattern = re.compile(
        rf"^{re.escape(ctx.bot_id)}-{ctx.day_key.replace('-', '')}-({'|'.join(STRATEGY_NAMES)})-(.+)-(\d+)$"
    )
    orders = sorted(
        ctx.errors.call(ctx.broker.list_orders, since),
        key=lambda o: (o.submitted_at or since, o.client_order_id),
    )
    # a plain router: the fills found here are history, not news (no alerts, no position-keeping callbacks)
    router = OrderRouter(ctx.broker, ctx.journal, ctx.errors, ctx.clock, ctx.log)
    result = RebuildResult()
    # what the ledger already booked under these ids keeps its own words (exit reason, tag, signal ticker)
    ledger_rows = _booked_details(ctx, [o.client_order_id for o in orders])
    holding: dict[tuple[str, str], tuple[Decimal, Intent | None]] = {}
    last_seen: dict[str, datetime] = {}
    for o in orders:
        m = pattern.match(o.client_order_id)
        if m is None:
            result.foreign.append(o.client_order_id)
            continue
        strategy = StrategyName(m.group(1))
        when = o.submitted_at or since
        last_seen[strategy] = max(last_seen.get(strategy, when), when)
        contract = OptionContract.from_occ(o.symbol) if o.asset_class is AssetClass.OPTION else None
        underlying = contract.underlying if contract else o.symbol
        key = (strategy, o.symbol)
        held, entry = holding.get(key, (Decimal(0), None))
        signed = o.filled_qty if o.side is OrderSide.BUY else -o.filled_qty
        opening = held == 0 or (held > 0) == (o.side is OrderSide.BUY)
        existing = ctx.journal.get(o.client_order_id)
        if existing is not None:
            result.kept += 1
            holding[key] = (held + signed, existing if existing.purpose == Purpose.ENTRY else entry)
            continue
        side_of_entry = o.side if opening else (entry.order_side if entry else o.side)
        booked = ledger_rows.get(o.client_order_id, {})
        intent = Intent(
            client_order_id=o.client_order_id, session_date=ctx.day_key, strategy=strategy,
            purpose=Purpose.ENTRY if opening else Purpose.EXIT, symbol=underlying,
            signal_ticker=booked.get("signal_ticker") or (entry.signal_ticker if entry else underlying),
            direction=PositionSide(booked.get("side") or ("long" if side_of_entry is OrderSide.BUY else "short")),
            order_side=o.side, instrument=InstrumentType.OPTION if contract else InstrumentType.EQUITY,
            qty=o.qty, status=IntentStatus.SENT, created_at=when.isoformat(), sent_at=when.isoformat(),
            signal_time=when.isoformat(), option_json=option_to_json(contract) if contract else None,
            tag=booked.get("tag") or (entry.tag if entry else None),
            entry_client_order_id=None if opening or entry is None else entry.client_order_id,
            exit_reason=None if opening else ExitReason(booked.get("exit_reason") or ExitReason.RECOVERED_AFTER_WINDOW),
            note="rebuilt from the broker's order record",
        )  # fmt: skip
        ctx.journal.record_intent(intent)
        rebuilt = router.apply_broker_record(intent, o)
        result.added.append(o.client_order_id)
        holding[key] = (held + signed, rebuilt if opening else entry)
    _restore_cursors(ctx, last_seen)
    ctx.log.event(
        "supervisor",
        "journal_rebuilt",
        added=len(result.added),
        kept=result.kept,
        foreign=",".join(result.foreign),
    )
    return result


def _booked_details(ctx: DayContext, fitids: list[str]) -> dict[str, dict[str, Any]]:
    import sqlite3

    if not fitids:
        return {}
    marks = ",".join("?" * len(fitids))
    try:
        with sqlite3.connect(readonly_uri(ctx.binding.ledger_path), uri=True) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT fitid, signal_ticker, side, tag, exit_reason FROM transactions WHERE fitid IN "
                f"({marks}) AND is_correction = 0",
                fitids,
            ).fetchall()
    except sqlite3.Error:
        return {}  # no ledger details: the broker's record alone
    return {str(r["fitid"]): dict(r) for r in rows}


def _restore_cursors(ctx: DayContext, last_seen: dict[str, datetime]) -> None:
    """A restart resumes each window after its last order; a window that ended before the latest order is done."""
    if not last_seen:
        return
    latest = max(last_seen.values())
    for name in STRATEGY_NAMES:
        w = window_for(name, ctx.session_date, ctx.settings)
        key = f"cursor:{ctx.day_key}:{name}"
        if name in last_seen:
            minute = last_seen[name].replace(second=0, microsecond=0)
            current = ctx.journal.get_value(key)
            if current is None or datetime.fromisoformat(current) < minute:
                ctx.journal.set_value(key, minute.isoformat())
        if (
            w.fits
            and w.monitoring_end <= latest - timedelta(minutes=1)
            and ctx.journal.window(ctx.day_key, name) is None
        ):
            ctx.journal.set_window(
                ctx.day_key, name, WindowStatus.DONE, actual_start=w.start.isoformat(),
                actual_end=w.monitoring_end.isoformat(), note="rebuilt from the broker's orders",
            )  # fmt: skip
