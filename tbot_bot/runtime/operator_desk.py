"""The operator's hands outside a running supervisor: positions, adopt / close / ignore, rebuild the journal, flatten.

`open_desk` builds the same day services a start builds (`wire_day`: journal, broker, order router, position
keeping, books), without the trading preparations (universe, warm-up, strategy self-checks): an emergency must not
depend on a VIX file. Commands that change anything take the run lock (`SupervisorLock`), so they never race a
supervisor. A simulated (SIM) home has no broker outside a replay: the desk opens the replay's exchange on the
replay's day, its clock where a restart would resume (`boot._replay_start`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.broker.broker_api import AssetClass, Broker, OptionContract
from tbot_bot.domain.clock import ReplayClock, WallClock
from tbot_bot.domain.intents import Intent, IntentStatus, client_order_id
from tbot_bot.domain.vocab import (
    ADOPTED_MARK,
    ExitReason,
    InstrumentType,
    OrderSide,
    PositionSide,
    Purpose,
    StrategyName,
)
from tbot_bot.errors import ConfigError, UsageError
from tbot_bot.market_time import session_bounds
from tbot_bot.runtime.day_context import DayContext
from tbot_bot.runtime.flatten import FlattenResult, flatten, settle
from tbot_bot.runtime.position_check import (
    IGNORED_ORDER_PREFIX,
    IGNORED_PREFIX,
    PositionReport,
    compare_positions,
)
from tbot_bot.runtime.run_mode import market_closed
from tbot_bot.support.path_resolver import BotHome


@dataclass
class Desk:
    ctx: DayContext
    since: datetime  # the session's start: the broker's orders of the day
    closers: list[Any] = field(default_factory=list)

    def report(self) -> PositionReport:
        return compare_positions(
            self.ctx.broker, self.ctx.journal, self.ctx.binding.ledger_path, self.ctx.session_date,
            self.ctx.clock.now(), since=self.since, bot_id=self.ctx.bot_id,
        )  # fmt: skip


def _replay_day(home: BotHome, explicit: date | None) -> date:
    if explicit is not None:
        return explicit
    from tbot_bot.runtime.status_bot import read_status

    raw = ((read_status(home.status_json) or {}).get("bot") or {}).get("replay_day")
    if raw:
        return date.fromisoformat(str(raw))
    raise UsageError(
        f"{home.root} uses the simulated exchange (BROKER_NAME=SIM), which only exists on a replayed day, and "
        "status.json names none: pass --replay YYYY-MM-DD"
    )


@contextmanager
def open_desk(
    home: BotHome, *, lock: bool, replay_day: date | None = None, data_source: Path | None = None
) -> Iterator[Desk]:
    """The day's services for an operator command; lock=True holds the run lock (refused while a supervisor runs)."""
    from tbot_bot.config.error_handler import ErrorHandler
    from tbot_bot.config.retry import RetryPolicy
    from tbot_bot.runtime.boot import _replay_start
    from tbot_bot.runtime.bot_log import BotLog
    from tbot_bot.runtime.control import SupervisorLock
    from tbot_bot.runtime.order_journal import OrderJournal
    from tbot_bot.runtime.preflight import preflight
    from tbot_bot.runtime.run_mode import LiveMode, ReplayMode, RunMode
    from tbot_bot.runtime.status_bot import StatusBoard
    from tbot_bot.runtime.wiring import Services, close_all, wire_day
    from tbot_bot.trading.notifier_bot import build_notifier

    pre = preflight(home)
    settings = pre.settings
    closers: list[Any] = []
    try:
        if lock:
            held = SupervisorLock.acquire(home, mode="operator")
            closers.append(held.release)
        journal = OrderJournal(home.state_dir / "journal.db")
        closers.append(journal.close)
        mode: RunMode
        broker: Broker
        # BROKER_NAME=SIM: the replay's exchange on its day, at the minute a restart would resume from
        if settings.BROKER_NAME == "SIM":
            from tbot_bot.broker.brokers.sim import SimBroker
            from tbot_bot.inputs.replay_bars import load_replay_bars
            from tbot_bot.runtime.boot import SAMPLE_DATA

            day = _replay_day(home, replay_day)
            bars = load_replay_bars(data_source or SAMPLE_DATA, day, settings.MARKET_CALENDAR, by_symbol=True)
            clock = ReplayClock(_replay_start(journal, settings, day))
            broker = SimBroker.from_settings(settings, home, clock=clock, bars=bars)
            closers.append(broker.close)
            latest = [t for o in broker.list_orders() for t in (o.submitted_at, o.filled_at) if t is not None]
            if latest and max(latest) > clock.now():
                clock.advance_to(max(latest))  # nothing the exchange already did lies in the desk's future
            mode = ReplayMode(clock)
        else:
            from tbot_bot.broker.factory import build_broker
            from tbot_bot.market_time import session_date_at

            wall = WallClock()
            broker = build_broker(settings, home)
            closers.append(getattr(broker, "close", lambda: None))
            day = session_date_at(wall.now(), settings.MARKET_CALENDAR)
            mode = LiveMode(wall, settings.SLEEP_TIME)
        log = BotLog(
            home.logs_dir(pre.binding.scope),
            settings.LOG_FORMAT,
            broker=settings.BROKER_NAME,
            now=mode.clock.now,
        )
        from tbot_bot.support.trading_mode import trading_mode

        # every alert says whether real money is at stake (paper, live or replay), the desk's as the supervisor's
        notifier = build_notifier(
            settings, home, mode=str(trading_mode(home, settings.BROKER_NAME)), now=mode.clock.now
        )
        closers.append(notifier.close)
        scratch = tempfile.TemporaryDirectory(prefix="tbot-desk-")
        closers.append(scratch.cleanup)
        # the desk's status board is its own: status.json stays the supervisor's
        status = StatusBoard(Path(scratch.name) / "status.json", mode.clock, settings.VERSION_TAG, {})
        errors = ErrorHandler(RetryPolicy.from_settings(settings, sleep=mode.clock.sleep), log)
        # BROKER_NAME=SIM: the simulated exchange serves the desk from the day's replay bars
        services = Services(
            home=home, settings=settings, binding=pre.binding, broker_current_float=pre.broker_current_float,
            mode=mode, broker=broker, journal=journal, log=log, errors=errors, notifier=notifier, status=status,
            universe=[], tradable=set(), vix_closes={}, closers=closers, replay_day=day if settings.BROKER_NAME == "SIM" else None,
        )  # fmt: skip
        ctx = wire_day(services, day)
        bounds = session_bounds(day, settings.MARKET_CALENDAR)
        since = bounds[0] if bounds else datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        yield Desk(ctx, since - timedelta(hours=6), closers)
    finally:
        close_all(closers)


# ------------------------------------------------------------------ adopt / close / ignore
def _unaccounted(desk: Desk, symbol: str) -> Decimal:
    report = desk.report()
    line = next((ln for ln in report.lines if ln.symbol == symbol), None)
    if report.broker_error:
        raise ConfigError(f"the broker cannot be asked ({report.broker_error}); nothing was changed")
    if line is None or line.broker_qty is None:
        raise UsageError(f"{symbol}: the broker holds nothing the journal does not already account for")
    # a fill of the bot's own order that the journal has not recorded yet (a supervisor killed mid-order) is the
    # bot's: adopted, it would be booked twice; the next start (or the running supervisor's poll) books it
    qty = line.broker_qty - line.ignored_qty - line.journal_qty - line.in_flight_qty
    if qty == 0:
        own = (
            f" ({line.in_flight_qty} of it is a fill of the bot's own order the journal has not recorded yet: the "
            "next `tbot start` records and books it; nothing was changed)"
            if line.in_flight_qty
            else ""
        )
        raise UsageError(f"{symbol}: the broker holds nothing the journal does not already account for{own}")
    return qty


def adopt(desk: Desk, symbol: str, strategy: StrategyName, who: str) -> Intent:
    """Take a position the bot did not open into its journal and ledger, flagged as adopted (external)."""
    ctx = desk.ctx
    qty = _unaccounted(desk, symbol)
    held = {p.symbol: p for p in ctx.broker.get_positions()}[symbol]
    contract = OptionContract.from_occ(symbol) if held.asset_class is AssetClass.OPTION else None
    from tbot_bot.trading.orders_bot import option_to_json

    now = ctx.clock.now().isoformat()
    seq = ctx.journal.next_seq(ctx.day_key, strategy, contract.underlying if contract else symbol)
    underlying = contract.underlying if contract else symbol
    entry = Intent(
        client_order_id=client_order_id(ctx.bot_id, ctx.day_key, strategy, underlying, seq) + ADOPTED_MARK,
        session_date=ctx.day_key, strategy=strategy, purpose=Purpose.ENTRY, symbol=underlying,
        signal_ticker=underlying, direction=PositionSide.LONG if qty > 0 else PositionSide.SHORT,
        order_side=OrderSide.BUY if qty > 0 else OrderSide.SELL,
        instrument=InstrumentType.OPTION if contract else InstrumentType.EQUITY, qty=abs(qty),
        status=IntentStatus.FILLED, created_at=now, option_json=option_to_json(contract) if contract else None,
        signal_time=now, sent_at=now, filled_qty=abs(qty), filled_price=held.avg_entry_price, filled_at=now,
        fee=Decimal(0), note=f"adopted from the broker by {who}",
    )  # fmt: skip
    ctx.journal.record_intent(entry)
    ctx.journal.delete_value(f"{IGNORED_PREFIX}{symbol}")  # an adoption ends an earlier --ignore
    ctx.book_day()
    ctx.log.event(
        "supervisor",
        "position_adopted",
        ticker=symbol,
        size=str(qty),
        by=who,
        client_order_id=entry.client_order_id,
    )
    return entry


def publish(desk: Desk) -> None:
    """What a desk did (positions, the account, the day's figures of its session) into status.json, so `tbot
    status` and the dashboard show it with no supervisor running. Call only with the run lock held."""
    from tbot_bot.runtime.status_bot import carry_into_status

    desk.ctx.publish_positions(None)
    carry_into_status(desk.ctx.home.status_json, desk.ctx.status)


def held_symbols(desk: Desk) -> set[str]:
    """What the broker holds now (the journal may not have recorded a fill yet: the broker is what was closed)."""
    return {p.symbol for p in desk.ctx.errors.call(desk.ctx.broker.get_positions) if p.qty != 0}


def close(desk: Desk, symbol: str, strategy: StrategyName, who: str) -> Intent | None:
    """Close a position the bot did not open: adopted first (so every fill is booked), then sold at market. While
    the exchange is closed nothing is done (a market order would wait for the open and be cancelled unfilled)."""
    ctx = desk.ctx
    if market_closed(ctx):
        raise UsageError(
            f"the market is closed: no order for {symbol} is sent now (it would wait for the open and be cancelled "
            f"unfilled); run `tbot positions --close {symbol}` once it opens, or `--adopt {symbol}` now to have the "
            "next session's first window close it"
        )
    entry = adopt(desk, symbol, strategy, who)
    placed = ctx.place_exit(entry, ExitReason.FORCED_EXIT, ctx.clock.now())
    settle(ctx)
    ctx.book_day()
    return ctx.journal.get(placed.client_order_id) if placed else None


def ignore(desk: Desk, symbol: str, who: str) -> Decimal:
    """Leave a broker position alone: not the bot's, excluded from the comparison (and from sizing)."""
    qty = _unaccounted(desk, symbol)
    ctx = desk.ctx
    previous = next((ln.ignored_qty for ln in desk.report().lines if ln.symbol == symbol), Decimal(0))
    record = {"qty": str(previous + qty), "by": who, "at": ctx.clock.now().isoformat()}
    ctx.journal.set_value(f"{IGNORED_PREFIX}{symbol}", json.dumps(record))
    ctx.log.event("supervisor", "position_ignored", ticker=symbol, size=str(previous + qty), by=who)
    return previous + qty


def ignore_order(desk: Desk, client_order_id: str, who: str) -> None:
    """Leave an open order someone placed at the broker alone: not the bot's, no longer a difference."""
    report = desk.report()
    if client_order_id not in report.unexplained_orders:
        raise UsageError(
            f"{client_order_id}: not an open order the journal does not know (open orders: "
            f"{', '.join(o.client_order_id for o in report.open_orders) or 'none'})"
        )
    ctx = desk.ctx
    record = {"by": who, "at": ctx.clock.now().isoformat()}
    ctx.journal.set_value(f"{IGNORED_ORDER_PREFIX}{client_order_id}", json.dumps(record))
    ctx.log.event("supervisor", "order_ignored", client_order_id=client_order_id, by=who)


def position_report(home: BotHome, *, replay_day: date | None = None) -> dict[str, Any]:
    """The three-way report as JSON (the dashboard's Positions page; `tbot positions` prints the same)."""
    with open_desk(home, lock=False, replay_day=replay_day) as desk:
        return desk.report().to_json()


def flatten_here(
    home: BotHome,
    who: str,
    *,
    symbol: str | None = None,
    strategy: str | None = None,
    replay_day: date | None = None,
    data_source: Path | None = None,
) -> FlattenResult:
    """Flatten with no supervisor running: this process does it, holding the run lock, and brings status.json's
    positions and figures along (it would go on showing what was closed)."""
    with open_desk(home, lock=True, replay_day=replay_day, data_source=data_source) as desk:
        result = flatten(desk.ctx, who, symbol=symbol, strategy=strategy)
        publish(desk)
        return result
