"""The supervisor (DESIGN §8): boot -> reconcile -> strategy windows -> books -> shutdown.

Live mode: the wall clock and APScheduler cron triggers (WINDOW_TIMEZONE, TRADING_DAYS) start each window; the exchange
calendar decides holidays and early closes. Replay mode: a replay clock drives the SAME window code through one
recorded day against the simulated exchange. Both poll the control files every SLEEP_TIME and treat SIGTERM
like `tbot stop`: cancel open orders, close positions, ingest, summary, state `closed`.
"""

from __future__ import annotations

import gc
import queue
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tbot_bot.accounting.acct_client import AccountingClient
from tbot_bot.broker.broker_api import Broker
from tbot_bot.config.env_bot import BotSettings, ShortType
from tbot_bot.config.error_handler import Severity, classify
from tbot_bot.domain.clock import Clock
from tbot_bot.domain.vocab import STRATEGY_NAMES, Purpose, WindowStatus
from tbot_bot.errors import LogicError, MachineFault, NetworkError, PositionsStillHeld, TbotError
from tbot_bot.market_time import (
    both_times,
    closed_reason,
    exchange_zone,
    session_bounds,
    session_date_at,
    session_for,
    window_for,
)
from tbot_bot.runtime.boot import boot, rotate_home_logs_logged
from tbot_bot.runtime.bot_log import BotLog, configure_console_logging
from tbot_bot.runtime.broker_pause import maintenance_window
from tbot_bot.runtime.control import (
    ControlFiles,
    clear_trading_stopped,
    mark_trading_stopped,
    trading_stopped,
)
from tbot_bot.runtime.day_context import DayContext
from tbot_bot.runtime.flatten import serve_flatten_request
from tbot_bot.runtime.liveness import Liveness, Watched
from tbot_bot.runtime.positions import OpenTrade, open_trades
from tbot_bot.runtime.recovery import (
    ReconciliationRefused,
    check_positions,
    close_overdue,
    overdue_trades,
    reconcile_after_reconnect,
    reconcile_and_check,
    refuse_or_block,
)
from tbot_bot.runtime.run_mode import market_closed
from tbot_bot.runtime.schedule import cron_trigger, morning_plan, window_times
from tbot_bot.runtime.status_bot import BotState, StatusBoard
from tbot_bot.runtime.window_runner import WindowOutcome, WindowRunner
from tbot_bot.runtime.wiring import Services, option_volatility, wire_day
from tbot_bot.screeners.finnhub_screener import inverse_etf_whitelist
from tbot_bot.screeners.fundamentals import FundamentalsProvider
from tbot_bot.strategy.strategy_meta import signal_universe
from tbot_bot.strategy.strategy_router import Route, route
from tbot_bot.support.machine_faults import EXIT_TRANSIENT, disk_space_warning, is_file_fault, os_fault
from tbot_bot.support.memory import give_back_freed_memory
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.service_bot import ServiceNotifier, watchdog_seconds
from tbot_bot.trading.notifier_bot import AlertLevel

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
REPLAY_MARK = "(replay"  # in the stopped marker a replay writes: "<who> (replay <day>)"
# a broker that stopped answering (outage or maintenance): first probe after 15 s, then doubling up to every 2 min
OUTAGE_FIRST_PROBE, OUTAGE_MAX_PROBE = timedelta(seconds=15), timedelta(minutes=2)
# the daily log job: yesterday's logs are rotated and old ones pruned shortly after midnight UTC
LOG_ROTATION_TRIGGER = CronTrigger(hour=0, minute=5, timezone="UTC")


@dataclass
class BrokerDown:
    """A broker that stopped answering: since when, whether inside its maintenance window, the probe back-off."""

    since: datetime
    planned: bool
    next_probe: datetime
    delay: timedelta = OUTAGE_FIRST_PROBE


class Supervisor:
    def __init__(
        self,
        home: BotHome,
        *,
        replay_day: date | None = None,
        speed: float | None = None,
        data_source: Path | None = None,
        broker: Broker | None = None,
        broker_wrapper: Callable[[Broker], Broker] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.home = home
        self._live_clock = clock  # test seam: the live supervisor on an injected clock (never waits for real)
        self.replay_day = replay_day
        self.speed = speed
        self.data_source = data_source
        self._broker_override = broker
        self._broker_wrapper = broker_wrapper  # test seam: wraps the built broker (fault injection)
        self._stop_signal = False
        self._stopped_by: str | None = None  # who asked for the last stop ("signal" for SIGTERM/SIGINT)
        self.control = ControlFiles(home)
        self.service = ServiceNotifier()
        self.liveness = Liveness(stale_after=watchdog_seconds())
        self.outcomes: list[WindowOutcome] = []
        # the scheduled optimizer (ENABLE_STRATEGY_OPTIMIZER), never awaited
        self._optimizer_process: subprocess.Popen[bytes] | None = None
        self.ctx: DayContext | None = None
        self._flattening = False  # a flatten's own waits beat too: never serve a request inside itself
        self._flatten_waits: str | None = None  # why a stopped supervisor could not serve a flatten yet
        self._outage: BrokerDown | None = None  # the broker stopped answering: entries wait, it is probed
        # the reconciliation still owed before the next entry: "start" (the day's first could not ask the
        # broker) or "reconnect" (the broker answered again after an outage or maintenance)
        self._reconcile_due: str | None = None
        self._closed_noted: str | None = None  # the exchange-closed day last logged (a holiday's crons)
        self._swept: datetime | None = None  # when positions left after their window were last looked for
        # the session whose fundamentals are being asked before its open, and the symbols still to ask
        self._prefetch: tuple[date, list[str]] | None = None
        self.boot_seconds = 0.0

    # ------------------------------------------------------------------ control
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = True

    def _beat(self) -> None:
        self.liveness.beat()
        self.service.watchdog()
        self._serve_flatten()

    def _serve_flatten(self) -> None:
        """`tbot flatten` / the dashboard's Flatten all: served at the next poll (every wait beats)."""
        if self.ctx is None or self._flattening or not self.control.flatten_requested():
            return
        self._flattening = True
        try:
            serve_flatten_request(self.ctx, self.control)
        finally:
            self._flattening = False

    def _watched_broker(self, broker: Broker) -> Broker:
        inner = self._broker_wrapper(broker) if self._broker_wrapper is not None else broker
        return cast(Broker, Watched(inner, self.liveness, "broker"))

    def _watch_services(self, r: Services) -> None:
        """Slow outside calls keep the systemd watchdog fed (a hung main thread still starves it)."""
        # SLEEP_TIME: the main loop beats at least this often while idle
        self.liveness.stale_after = watchdog_seconds() + float(r.settings.SLEEP_TIME)
        r.errors.liveness = self.liveness
        if r.fundamentals is not None:
            r.fundamentals = cast(
                FundamentalsProvider, Watched(r.fundamentals, self.liveness, "fundamentals")
            )
        if r.acct is not None:
            r.acct = cast(AccountingClient, Watched(r.acct, self.liveness, "accounting_api"))

    def stop_requested(self) -> bool:
        return self._stop_signal or self.control.stop_requested()

    # ------------------------------------------------------------------ entry point
    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run()
        finally:
            self.service.close()
            for s, h in old.items():
                signal.signal(s, h)

    def _run(self) -> int:
        try:
            return self._run_guarded()
        except TbotError as exc:
            self._halted_by(str(exc))
            raise
        except OSError as exc:
            named = os_fault(exc)
            if named is None:
                raise LogicError(
                    f"unexpected {type(exc).__name__}: {exc} (details in error_tracebacks.log)"
                ) from exc
            # a fault of the machine (disk full, read-only home, permission): named with its file; the command line
            # exits 75 (worth a restart) or 2 (a person must act), and status.json says why trading stopped
            self._halted_by(named[0])
            raise MachineFault(named[0], transient=named[1] == EXIT_TRANSIENT) from exc
        except Exception as exc:
            if isinstance(exc, sqlite3.DatabaseError) and is_file_fault(exc):
                # a SQLite file's fault met where no caller named its file (a full disk, a lock, damage): the
                # machine's, not a bug; worth a restart when the disk or the lock may free up
                text = str(exc).lower()
                said = f"Database error in {self.home.root}: {exc} (details in error_tracebacks.log)"
                if self.ctx is not None:
                    self.ctx.log.error("supervisor", said, {"action": "run"}, exc)
                self._halted_by(said)
                raise MachineFault(said, transient=any(w in text for w in ("full", "locked", "i/o"))) from exc
            # a bug: classified, logged with its traceback, status says shutdown, exit 1 (systemd restarts)
            if self.ctx is not None:
                self.ctx.log.error(
                    "supervisor", f"unexpected {type(exc).__name__}: {exc}", {"action": "run"}, exc
                )
                self.ctx.status.publish(
                    state=BotState.SHUTDOWN, message=f"shutdown: unexpected {type(exc).__name__}: {exc}"
                )
            raise LogicError(
                f"unexpected {type(exc).__name__}: {exc} (details in error_tracebacks.log)"
            ) from exc

    def _halted_by(self, reason: str) -> None:
        """A fault ends the run: status.json says `halted` and why (best effort: the disk may be the fault)."""
        if self.ctx is None:
            return
        try:
            self.ctx.status.publish(state=BotState.HALTED, message=f"halted: {reason}")
        except (
            Exception
        ):  # the status file itself cannot be written (full or read-only disk): the exit code says it
            pass

    def _run_guarded(self) -> int:
        t0 = time.perf_counter()
        # from before the boot: its warm-up of a large universe may outlast TimeoutStartSec, extended while it
        # progresses (a boot that hangs is not)
        self.service.start_keepalive(self.liveness.alive)
        result = boot(
            self.home,
            replay_day=self.replay_day,
            speed=self.speed,
            data_source=self.data_source,
            broker=self._broker_override,
            broker_wrapper=self._watched_broker,
            stop=self.stop_requested,
            beat=self._beat,
            live_clock=self._live_clock,
        )
        self.boot_seconds = time.perf_counter() - t0
        configure_console_logging(result.settings)
        # everything boot loaded (replay bars, calendars, modules) lives for the whole run: keeping it out of the
        # cyclic collector's scans keeps its pauses out of the per-minute decisions
        gc.collect()
        gc.freeze()
        self.service.ready(f"booted in {self.boot_seconds:.2f}s")
        try:
            self._watch_services(result)
            if self.replay_day is not None:
                return self._run_replay(result)
            return self._run_live(result)
        finally:
            self.service.stop_keepalive()
            result.close()
            gc.unfreeze()  # a process that goes on (tests, an embedding caller) collects normally again

    # ------------------------------------------------------------------ replay
    def _run_replay(self, r: Services) -> int:
        assert self.replay_day is not None
        # loading the replay's bars left freed temporaries behind: the day runs without them
        give_back_freed_memory()
        ctx = wire_day(r, self.replay_day)
        self.ctx = ctx
        return self._run_day(r, ctx)

    def _run_day(self, r: Services, ctx: DayContext) -> int:
        """The replay day's agenda: plan, reconcile, each window in order, close the day. A Stop by request ends
        trading as live does (cancel, close, book) and the replay day goes on without entries until a Start,
        which resumes in the next window; a signal ends the run."""
        plan = self._open_day(ctx)
        try:
            self._reconcile(ctx)
        except ReconciliationRefused:
            raise
        except TbotError as exc:
            self._on_failure(ctx, "supervisor", exc)  # not an outage: shut down
            return EXIT_FAILURE
        self._note_if_not_a_session(ctx)
        stamp = trading_stopped(self.home)
        # stopped before this run (a live Stop, or a replay ended by a signal while stopped): no entries until Start
        if stamp is not None:
            ctx.log.event("supervisor", "trading_stopped", by=stamp)
            ctx.status.publish(trading_stopped=stamp, message=f"trading stopped ({stamp}); Start resumes it")
        for name in plan.run:
            if self._stop_signal:
                break
            window = window_for(name, ctx.session_date, ctx.settings)
            # only a window that will run is waited for here (a halted day, or a window already done, runs nothing)
            if (
                window.fits
                and trading_stopped(self.home) is None
                and not ctx.halted_reason
                and not self._ran(ctx, name)
            ):
                if ctx.clock.now() < window.start:
                    self._announce_next_window(ctx, plan.run)  # as live says it between windows
                self._until_window_start(ctx, window.start)
            if self.control.stop_requested() and not self._replay_stop(ctx):
                return EXIT_FAILURE
            if trading_stopped(self.home) is not None:
                start = window.start
                if not self._replay_stopped_until(ctx, start):
                    self._not_run_while_stopped(ctx, name)
                    continue
            outcome = self._run_window(ctx, name)
            if outcome is None:
                return EXIT_FAILURE
            if outcome.status is WindowStatus.STOPPED and not self._stop_signal:
                if not self._replay_stop(ctx):
                    return EXIT_FAILURE
            elif outcome.status is WindowStatus.STOPPED:
                break
        if trading_stopped(self.home) is not None and not self.stop_requested():
            return self._end_stopped_replay(ctx)
        return self._close_day(ctx, stopped=self.stop_requested())

    @staticmethod
    def _ran(ctx: DayContext, name: str) -> bool:
        """The journal has the window done or skipped (a replay of a day run before): nothing of it runs again."""
        row = ctx.journal.window(ctx.day_key, name)
        return row is not None and row["status"] in (WindowStatus.DONE, WindowStatus.SKIPPED)

    def _until_window_start(self, ctx: DayContext, start: datetime) -> None:
        """Wait for a window's start here, a minute at a time, ending early on a Stop: the window is then still
        ahead, and a Start before its start runs it. (The runner's own wait, on a Stop, advanced the replay clock
        to the window's start at once: a Stop between windows ended the replay, and a Start had nothing left.)"""
        while not self.stop_requested() and (now := ctx.clock.now()) < start:
            # a pause, a resume or a defense clear made now shows within a minute, as in ctx.wait_until
            if ctx.wait(min(start, now + timedelta(minutes=1))):
                ctx.check_operator_pause()
            self._close_left_behind(ctx)  # as live does between windows

    def _replay_stop(self, ctx: DayContext) -> bool:
        """A Stop by request in a replay: the graceful close (cancel, close, book), then the replay goes on stopped
        (the marker written as live writes it). False when the close failed."""
        if self._close_day(ctx, stopped=True) != EXIT_OK:
            return False
        who = f"{self._stopped_by or 'unknown'} {REPLAY_MARK} {ctx.day_key})"
        mark_trading_stopped(self.home, who)
        stamp = trading_stopped(self.home)
        ctx.log.event("supervisor", "trading_stopped", by=stamp)
        ctx.status.publish(
            trading_stopped=stamp,
            message=f"trading stopped ({stamp}); Start resumes it in the next window of this replay day",
        )
        return True

    def _replay_stopped_until(self, ctx: DayContext, until: datetime) -> bool:
        """Trading stopped in a replay: the replay clock runs on without entries until `until`, answering Start
        (True: trading resumes) and consuming Stops (already stopped)."""
        while True:
            if self._answered_start(ctx.log, ctx.status):
                return True
            now = ctx.clock.now()
            if self._stop_signal or now >= until:
                return False
            ctx.wait(min(until, now + timedelta(minutes=1)))

    def _not_run_while_stopped(self, ctx: DayContext, name: str) -> None:
        """A window whose start passed while trading was stopped: not run (status only; the journal keeps no
        row, so a later run of the day is not told it was done)."""
        ctx.log.event(name, "window_not_run", reason="trading stopped by request")
        if any(w["strategy"] == name and w["status"] == WindowStatus.PENDING for w in ctx.status.windows):
            ctx.status_window(name, WindowStatus.SKIPPED, note="not run: trading stopped by request")

    def _end_stopped_replay(self, ctx: DayContext) -> int:
        """The replay day ended while trading was stopped: what the stop could not close (a refused exit) is tried
        once more at the day's end; the day is booked as it stands, and a marker this replay wrote is removed (a
        one-shot run leaves no stopped state behind)."""
        stamp = trading_stopped(self.home) or ""
        held: PositionsStillHeld | None = None
        try:
            try:
                self._close_positions(ctx, "end of day")
            except PositionsStillHeld as exc:
                held = exc
        except TbotError as exc:
            ctx.errors.handle(exc, strategy="supervisor", context={"action": "close_day"})
            ctx.status.publish(state=BotState.SHUTDOWN, message=f"closing failed: {exc}")
            return EXIT_FAILURE
        if REPLAY_MARK in stamp:
            clear_trading_stopped(self.home)
        ctx.publish_positions(None)
        ctx.status.publish(
            state=BotState.HALTED if held else BotState.CLOSED,
            active_strategy=None,
            trading_stopped=trading_stopped(self.home),
            message=f"closing failed: {held} (stopped by request)" if held else "stopped by request",
        )
        self.service.stopping()
        return EXIT_OK

    def _open_day(self, ctx: DayContext) -> Route:
        """The morning plan in the log, the day's windows in status.json."""
        for line in morning_plan(ctx.settings, ctx.session_date):
            ctx.log.event("supervisor", "window_plan", plan=line, session_date=ctx.day_key)
        plan = route(ctx.settings)
        for name, why in plan.skipped.items():
            ctx.log.event(name, "strategy_skipped", reason=why)
        ctx.status.windows = [self._window_row(ctx, name) for name in plan.run]
        ctx.status.publish(state=BotState.IDLE, session_date=ctx.day_key)
        ctx.check_operator_pause()  # a pause survives a restart: in force before the first window
        return plan

    def _reconcile(self, ctx: DayContext) -> None:
        """Journal, broker orders and positions agree before anything else (fails closed: refuses what it cannot
        account for). A broker that does not answer is an outage: entries wait, it is probed before the first
        window, and this reconciliation runs when it answers. Anything else raises."""
        try:
            report, positions = reconcile_and_check(ctx)
        except TbotError as exc:
            if classify(exc).severity is not Severity.SUSPEND:
                raise
            self._broker_down(ctx, exc, "reconcile")
            self._reconcile_due = "start"
            return
        ctx.log.event("supervisor", "reconciled", **report)
        refuse_or_block(ctx, positions)
        # what is held and the money block from the start: a restart showed neither until the next window
        ctx.publish_positions(None)

    def _closed_today(self, ctx: DayContext, plan_run: tuple[str, ...]) -> None:
        """No window and no end of session on a day the exchange is closed: logged once, status says it."""
        if self._closed_noted != ctx.day_key:  # each window's cron fires: one log line a day
            self._closed_noted = ctx.day_key
            self._note_if_not_a_session(ctx)
        self._announce_next_window(ctx, plan_run)
        calendar = ctx.settings.MARKET_CALENDAR
        ctx.status.publish(
            message=f"market closed today ({closed_reason(ctx.session_date, calendar)}); {ctx.status.message}"
        )

    def _note_if_not_a_session(self, ctx: DayContext) -> None:
        calendar = ctx.settings.MARKET_CALENDAR
        # MARKET_CALENDAR: a day that is not a session (holiday, weekend) runs no window
        if session_for(ctx.session_date, calendar) is None:
            ctx.log.event(
                "supervisor",
                "holiday",
                reason=f"{ctx.day_key} is not a {calendar} session "
                f"({closed_reason(ctx.session_date, calendar)}): no window runs",
            )

    def _window_through_outages(self, ctx: DayContext, name: str) -> tuple[WindowRunner, WindowOutcome]:
        """Run a window; when the broker stops answering, new entries wait while it is probed with back-off, and
        once it answers the reconciliation runs and the window resumes where it stopped. An outage that outlasts
        the window raises its error (the caller halts, as before)."""
        window = window_for(name, ctx.session_date, ctx.settings)
        while True:
            runner = WindowRunner(ctx, name)
            try:
                if ctx.broker_reconnected():  # the adapter reconnected inside a call (IBKR's nightly restart)
                    self._reconcile_due = self._reconcile_due or "reconnect"
                if self._reconcile_due and not ctx.halted_reason:
                    self._reconcile_again(ctx)  # after any reconnect, before the next entry
                return runner, runner.run()
            except TbotError as exc:
                if classify(exc).severity is not Severity.SUSPEND or not self._ride_out_outage(
                    ctx, exc, name, until=window.monitoring_end
                ):
                    raise

    def _broker_down(self, ctx: DayContext, exc: TbotError, where: str) -> None:
        """The broker stopped answering: new entries are suspended until it answers and is reconciled. Announced
        once per suspension: an outage is logged, alerted and shown; a pause inside BROKER_MAINTENANCE_WINDOW is
        logged and shown as maintenance, without the outage alert."""
        self._reconcile_due = self._reconcile_due or "reconnect"
        if self._outage is not None:
            return
        now = ctx.clock.now()
        planned_window = maintenance_window(ctx.settings)
        # BROKER_MAINTENANCE_WINDOW: unavailability inside it is the broker's planned pause, not an outage alarm
        planned = planned_window is not None and planned_window.contains(now)
        self._outage = BrokerDown(since=now, planned=planned, next_probe=now + OUTAGE_FIRST_PROBE)
        kind = "maintenance" if planned else "outage"
        ctx.errors.handle(exc, strategy="supervisor", context={"window": where, "action": kind})
        ctx.status.broker = {
            "name": ctx.broker.name, "healthy": False, "last_error": str(exc), "maintenance": planned,
            "down_since": now.isoformat(), "resumed_at": None,
        }  # fmt: skip
        if planned_window is not None and planned:
            message = (
                f"broker maintenance ({planned_window.describe()}) since {now.isoformat()}: {exc}; new entries "
                "wait, probing the broker"
            )
            ctx.log.event(
                "supervisor", "broker_maintenance", window=where, reason=str(exc), since=now.isoformat(),
                maintenance_window=planned_window.describe(),
            )  # fmt: skip
            ctx.status.publish(message=message)
            return
        message = f"broker outage since {now.isoformat()}: {exc}; new entries suspended, probing the broker"
        ctx.log.event("supervisor", "broker_outage", window=where, reason=str(exc), since=now.isoformat())
        ctx.alert_operator(AlertLevel.CRITICAL, "broker_outage", message)
        ctx.status.publish(state=BotState.SUSPENDED, message=message)

    def _probe_broker(self, ctx: DayContext, where: str) -> bool:
        """One probe (the broker's clock) of a broker that stopped answering; True when it answers again."""
        down = self._outage
        if down is None:
            return True
        try:
            ctx.broker.get_clock()
        except TbotError as exc:
            now = ctx.clock.now()
            down.delay = min(down.delay * 2, OUTAGE_MAX_PROBE)
            down.next_probe = now + down.delay
            planned_window = maintenance_window(ctx.settings)
            # BROKER_MAINTENANCE_WINDOW: a pause that outlasts its window is an outage from the window's end on
            if down.planned and (planned_window is None or not planned_window.contains(now)):
                down.planned = False
                message = (
                    f"broker still away at {now.isoformat()}, after its maintenance window (down since "
                    f"{down.since.isoformat()}): {exc}; new entries suspended, probing the broker"
                )
                ctx.log.event("supervisor", "broker_outage", window=where, reason=str(exc), since=down.since.isoformat(),
                              after_maintenance=True)  # fmt: skip
                ctx.status.broker = {**ctx.status.broker, "maintenance": False, "last_error": str(exc)}
                ctx.alert_operator(AlertLevel.CRITICAL, "broker_outage", message)
                ctx.status.publish(state=BotState.SUSPENDED, message=message)
            return False
        back = ctx.clock.now()
        self._outage = None
        ctx.status.broker = {
            "name": ctx.broker.name, "healthy": True, "last_error": None, "maintenance": False,
            "down_since": down.since.isoformat(), "resumed_at": back.isoformat(),
        }  # fmt: skip
        ctx.log.event(
            "supervisor", "broker_resumed", window=where, since=down.since.isoformat(), at=back.isoformat(),
            maintenance=down.planned,
        )  # fmt: skip
        if not down.planned:
            ctx.alert_operator(
                AlertLevel.ROUTINE,
                "broker_resumed",
                f"broker answers again at {back.isoformat()}: entries resume after reconciliation",
            )
        ctx.status.publish(
            # the outage's "halted" ends with it (the day stays halted only when something else halted it)
            state=BotState.HALTED if ctx.halted_reason else BotState.IDLE,
            message=f"broker answers again at {back.isoformat()}; reconciling before the next entry",
        )
        return True

    def _ride_out_outage(self, ctx: DayContext, exc: TbotError, name: str, *, until: datetime) -> bool:
        """True when the broker answers again before `until` (the window's monitoring end); entries suspended
        meanwhile, the broker probed with back-off."""
        if ctx.clock.now() >= until:
            return False
        self._broker_down(ctx, exc, name)
        down = self._outage
        while down is not None and down.next_probe < until:
            if not ctx.wait(down.next_probe):
                return False  # a stop: the stop path closes what is held
            if not self._probe_broker(ctx, name):
                continue
            back = ctx.clock.now()
            window = window_for(name, ctx.session_date, ctx.settings)
            if back >= window.start:
                # the minutes of the outage are not traded after the fact: the window goes on from the next minute
                minute = back.replace(second=0, microsecond=0)
                ctx.journal.set_value(f"cursor:{ctx.day_key}:{name}", minute.isoformat())
            return True
        return down is None

    def _reconcile_again(self, ctx: DayContext) -> None:
        """The reconciliation owed after a reconnect, before the next entry (NetworkError: still unreachable)."""
        due = self._reconcile_due or "reconnect"
        positions = reconcile_after_reconnect(ctx, after=due)
        self._reconcile_due = None
        if due == "start" and not positions.blocks_trading:
            refuse_or_block(ctx, positions)  # a flatten earlier today still blocks entries

    def _check_after_window(self, ctx: DayContext, name: str) -> None:
        """A difference after a window alerts and blocks new entries; a broker that does not answer suspends
        entries until it answers and is reconciled."""
        report = check_positions(ctx, outage_tolerated=True)
        if report.broker_unreachable:
            self._broker_down(ctx, NetworkError(report.broker_error or "no answer"), name)

    def _close_left_behind(self, ctx: DayContext) -> None:
        """Between windows, once a minute while the exchange is open: a position whose window is over (its exit
        refused at the window's end: a halt, a restricted symbol) is sent its exit again, its fills booked, and the
        operator alerted once. It waited for the next window's cron, and on an early close (no CLOSE window) for
        the next session: held over a weekend without a stop."""
        now = ctx.clock.now()
        if self._swept is not None and now - self._swept < timedelta(minutes=1):
            return
        self._swept = now
        calendar = ctx.settings.MARKET_CALENDAR
        if (
            ctx.session_date != session_date_at(now, calendar)
            or market_closed(ctx)
            or self._outage is not None
        ):
            return
        working = {i.client_order_id for i in ctx.journal.open_intents() if i.purpose == Purpose.EXIT}
        if not working and not open_trades(ctx.journal.intents()):
            return
        ctx.orders.sync()
        sent = {i.client_order_id for i in ctx.journal.intents() if i.purpose == Purpose.EXIT}
        left = [tr for tr in overdue_trades(ctx) if tr.remaining > 0]
        if left:
            ctx.alert_once(
                AlertLevel.CRITICAL, "held_after_window",
                f"{_still_held(ctx, left)}: its window is over; the exit is sent again every minute until the "
                "close (`tbot flatten` closes it now)",
                key="held_after_window:" + ",".join(sorted(tr.entry.symbol for tr in left)),
            )  # fmt: skip
            close_overdue(ctx)
        # booked when an exit of an earlier look, or one sent now, filled: not each minute a refusal repeats
        # (a booking asks the broker about every order of the day)
        exits = [i for i in ctx.journal.intents() if i.purpose == Purpose.EXIT]
        if any(i.filled_qty for i in exits if i.client_order_id in working or i.client_order_id not in sent):
            ctx.book_day()
            ctx.publish_positions(None)  # status and the dashboard: no longer held, its PnL in the day's

    def _prefetch_fundamentals(self, r: Services) -> bool:
        """Live, in the PREFETCH_LEAD before a session's open: the universe's fundamentals asked a few symbols at a
        time between polls, so the first window's screen reads them from the day's cache. Asked at the window's
        start, the hundreds of symbols that passed its market filters held its screen for minutes of its breakout
        at Finnhub's 60 calls a minute. True while some are still to ask (the loop polls again at once)."""
        if r.fundamentals is None:
            return False
        now, calendar = r.clock.now(), r.settings.MARKET_CALENDAR
        day = session_date_at(now, calendar)
        bounds = session_bounds(day, calendar)
        if bounds is None or not bounds[0] - PREFETCH_LEAD <= now < bounds[0]:
            return False
        if self._prefetch is None or self._prefetch[0] != day:
            # today's universe (the warm-up of the session before today, judged now: the first window's start then
            # finds it done), not the one the last warm-up judged (yesterday's: a symbol listed since went unasked)
            self._rewarm(r, day)
            etfs = inverse_etf_whitelist()
            todo = [sym for sym in r.universe if sym not in etfs]
            self._prefetch = (day, todo)
            r.log.event(
                "supervisor", "fundamentals_prefetch", session_date=day.isoformat(), symbols=len(todo)
            )
        left = self._prefetch[1]
        if not left:
            return False
        part, self._prefetch = left[:PREFETCH_PART], (day, left[PREFETCH_PART:])
        # the provider caches what it gets for the day (an outage: it serves the cache and asks nothing for a while;
        # the window's screen asks again)
        try:
            r.fundamentals.get(part, day)
        except (TbotError, OSError) as exc:
            # only a head start: a refused key or a full disk is met again, and reported, by the window's screen
            self._prefetch = (day, [])
            r.log.event("supervisor", "fundamentals_prefetch_stopped", reason=str(exc))
            return False
        return bool(self._prefetch[1])

    def _last_window_today(self, ctx: DayContext, plan_run: tuple[str, ...]) -> str | None:
        """The plan's last window that fits today's session: the one whose end ends the day. On an early close
        CLOSE does not fit, and its cron fires after the close: the day ended there, 90 minutes too late to close
        what was still held."""
        fitting = [n for n in plan_run if window_for(n, ctx.session_date, ctx.settings).fits]
        return fitting[-1] if fitting else (plan_run[-1] if plan_run else None)

    def _probe_between_windows(self, ctx: DayContext) -> None:
        """Live, between windows: a suspended broker is probed on its back-off; when it answers, reconcile."""
        if self._outage is None or ctx.clock.now() < self._outage.next_probe:
            return
        if not self._probe_broker(ctx, "supervisor"):
            return
        try:
            self._reconcile_again(ctx)
        except TbotError as exc:
            if classify(exc).severity is not Severity.SUSPEND:
                raise
            self._broker_down(ctx, exc, "reconcile")

    def _run_window(self, ctx: DayContext, name: str) -> WindowOutcome | None:
        """One window; a broker outage it cannot outlast halts it (an outcome), anything worse shuts down (None)."""
        try:
            _, outcome = self._window_through_outages(ctx, name)
        except TbotError as exc:
            failed = self._on_failure(ctx, name, exc)
            if failed is None:
                return None
            outcome = failed
        self.outcomes.append(outcome)
        self._check_after_window(ctx, name)
        # the window's feed and indicators are gone: their memory goes back before the next window
        give_back_freed_memory()
        return outcome

    def _window_row(self, ctx: DayContext, name: str) -> dict[str, Any]:
        w = window_for(name, ctx.session_date, ctx.settings)
        row = {
            "strategy": name,
            **window_times(ctx.settings, name, ctx.session_date),
            "actual_start": None,
            "actual_end": None,
            "status": WindowStatus.PENDING if w.fits else WindowStatus.SKIPPED,
            "note": w.reason,
        }
        # after a crash or on a re-run of the day, what the journal recorded is the truth
        done = ctx.journal.window(ctx.day_key, name)
        if done is not None:
            row.update(
                status=WindowStatus.INTERRUPTED if done["status"] == WindowStatus.RUNNING else done["status"],
                actual_start=done["actual_start"],
                actual_end=done["actual_end"],
                note=done["note"] or row["note"],
            )
        return row

    def _on_failure(self, ctx: DayContext, name: str, exc: TbotError) -> WindowOutcome | None:
        """Broker outage: suspend trading for the day. Market data or a critical error: full shutdown."""
        c = ctx.errors.handle(exc, strategy=name, context={"window": name})
        suspend = c.severity is Severity.SUSPEND
        # alerted once: the day halts once, however many windows meet the outage; a shutdown is keyed by its failure,
        # so one already alerted (a failed booking) is not alerted again
        ctx.alert_once(AlertLevel.CRITICAL, "halted" if suspend else "shutdown",
                       f"trading {'halted for the day' if suspend else 'shut down'}: {c.message}",
                       key="halted" if suspend else str(exc))  # fmt: skip
        ctx.status.broker = {
            "name": ctx.broker.name,
            # an error of the broker's connection (an outage, market data that would not come) is an unhealthy
            # broker whatever it led to; a rejected order or a logic error is not the broker's health
            "healthy": not isinstance(exc, NetworkError),
            "last_error": c.message,
        }
        if c.severity is Severity.SUSPEND:
            try:
                ctx.orders.cancel_open(f"broker outage: {c.message}")
            except TbotError as cancel_exc:
                ctx.errors.handle(cancel_exc, strategy=name, context={"action": "cancel_open"})
            ctx.halted_reason = f"broker outage: {c.message}"
            ctx.risk.halt(ctx.halted_reason)
            if name in STRATEGY_NAMES:
                # the window the outage outlasted reads halted, with the time and the reason
                now = ctx.clock.now()
                ctx.journal.set_window(ctx.day_key, name, WindowStatus.HALTED, actual_end=now.isoformat(),
                                       note=ctx.halted_reason)  # fmt: skip
                ctx.status_window(name, WindowStatus.HALTED, actual_end=now, note=ctx.halted_reason)
            ctx.status.publish(state=BotState.HALTED, message=ctx.halted_reason)
            return WindowOutcome(name, WindowStatus.HALTED, ctx.halted_reason)
        # full shutdown: still try to leave nothing working and nothing held (each step on its own)
        for action in (
            lambda: ctx.orders.cancel_open(f"shutdown: {c.message}"),
            lambda: ctx.flatten(f"shutdown: {c.message}"),
        ):
            try:
                action()
            except Exception as cleanup_exc:  # best effort while shutting down; recorded, never raised
                ctx.log.error(
                    name, f"cleanup during shutdown failed: {cleanup_exc}", {"window": name}, cleanup_exc
                )
        ctx.status.publish(state=BotState.SHUTDOWN, message=f"shutdown: {c.message}")
        return None

    def _close_day(self, ctx: DayContext, *, stopped: bool) -> int:
        """Graceful end: flatten, settle, ingest, summary, state closed."""
        self._stopped_by = None
        if stopped:
            who = self.control.consume_stop() or "signal"
            self._stopped_by = who
            if self._stays_up() and self.replay_day is None:
                # in force from now, whatever the closing does: a closing that fails (the broker down, which is
                # when a person presses Stop) exits 1, and systemd's restart must come up stopped, not trading
                mark_trading_stopped(self.home, who)
            ctx.log.event("supervisor", "stop_requested", by=who)
            ctx.status.publish(state=BotState.SHUTDOWN, message=f"stopping: requested by {who}")
            self._stop_signal = False
        held: PositionsStillHeld | None = None
        try:
            try:
                self._close_positions(ctx, "manual stop" if stopped else "end of day")
            except PositionsStillHeld as exc:
                # said and alerted; the stop still stands (a failed exit exiting the process would restart it
                # trading, the stop forgotten)
                held = exc
            ctx.observe_defense()
            ctx.check_rebalance("after_session")
            ctx.sync_accounting()
        except TbotError as exc:
            ctx.errors.handle(exc, strategy="supervisor", context={"action": "close_day"})
            ctx.publish_positions(None)  # what is still held, not what was held before the closing began
            ctx.status.publish(state=BotState.SHUTDOWN, message=f"closing failed: {exc}")
            return EXIT_FAILURE
        if not stopped:
            ctx.journal.mark_day_booked(ctx.day_key, ctx.clock.now().isoformat())
        ctx.publish_positions(None)
        done = "stopped by request" if stopped else "session complete"
        ctx.status.publish(
            state=BotState.HALTED if held else BotState.CLOSED,
            active_strategy=None,
            message=f"closing failed: {held} ({done})" if held else done,
        )
        if not self._stays_up():
            self.service.stopping()
        return EXIT_OK

    def _stays_up(self) -> bool:
        """A Stop by request ends trading, not the process (DESIGN §8; a replay runs on to its day's end); a
        signal ends both."""
        return self._stopped_by not in (None, "signal")

    def _close_positions(self, ctx: DayContext, reason: str) -> None:
        """Close what is held and book the day; an exit that could not be sent is raised only after the others
        were settled and booked (what did close is in the books whatever failed). An exit the broker refused or
        cancelled leaves its position held: that is a failed closing too, alerted, never "session complete"."""
        failed: TbotError | None = None
        closed = market_closed(ctx)
        if closed:
            # live after the close (a restart, a late stop): an order now would wait for the open and be cancelled
            # unfilled; what is held stays so, said and alerted, and the next session's first window closes it
            ctx.orders.cancel_open(reason, purpose=Purpose.ENTRY)
            close_overdue(ctx)
        elif ctx.journal.open_intents() or open_trades(ctx.journal.intents()):
            try:
                ctx.flatten(reason)
            except TbotError as exc:
                failed = exc
            try:
                self._settle(ctx)
            except TbotError as exc:
                # the outage that failed an exit fails the fills' look-up too: book what is known anyway
                failed = failed or exc
        ctx.book_day()
        held = [tr for tr in open_trades(ctx.journal.intents()) if tr.remaining > 0]
        if closed:
            if held:  # never "session complete" with positions held (the held_until_open alert went out)
                raise PositionsStillHeld(
                    f"{_still_held(ctx, held)}; the market is closed: held until the next session's first window"
                )
            return
        if failed is None and held:
            failed = PositionsStillHeld(_still_held(ctx, held))
        if failed is not None:
            ctx.alert_once(AlertLevel.CRITICAL, "closing_failed", f"closing failed ({reason}): {failed}")
            raise failed

    def _settle(self, ctx: DayContext) -> None:
        """Give exit orders a few bars to fill (replay: minutes of replay time; live: wall-clock minutes). The waits
        wait even when a stop is pending (a wait returns at once on one), and the stop is kept for after: a
        SIGTERM that came as the last window ended was cleared here, and systemd killed the bot 180 s later."""
        step = ctx.mode.settle_step
        pending = self._stop_signal
        try:
            for _ in range(ctx.mode.settle_steps):
                ctx.orders.sync()
                if not ctx.journal.open_intents():
                    return
                pending = pending or self._stop_signal
                self._stop_signal = False
                ctx.wait(ctx.clock.now() + step)
        finally:
            self._stop_signal = pending or self._stop_signal

    # ------------------------------------------------------------------ live
    def _start_live_day(self, r: Services, plan_run: tuple[str, ...]) -> DayContext:
        """A new trading day (or a restart): fresh status, the morning plan, reconciliation before anything else."""
        today = session_date_at(r.clock.now(), r.settings.MARKET_CALENDAR)
        self._rewarm(r, today)
        self.outcomes = []  # the windows of the day being run (a process up for weeks kept every day's)
        ctx = wire_day(r, today)
        self.ctx = ctx
        ctx.status.windows = [self._window_row(ctx, n) for n in plan_run]
        ctx.status.publish(state=BotState.IDLE, session_date=ctx.day_key)
        for line in morning_plan(r.settings, today):
            ctx.log.event("supervisor", "window_plan", plan=line, session_date=ctx.day_key)
        self._reconcile(ctx)  # fails closed: refuses what it cannot account for
        self._finish_earlier_days(ctx)
        ctx.check_operator_pause()  # a pause survives a restart: in force before the first window
        space = disk_space_warning(r.home.root)
        if space:  # weeks of warning, once a session, before a full disk stops the bot mid-day
            ctx.alert_once(AlertLevel.ROUTINE, "disk_low", space, key="disk_low")
        # CLOSE's VIX gate, and the volatility puts are priced with (SHORT_TYPE_*=LongPut): today's closes
        if "close" in plan_run or any(r.settings.short_type(n) is ShortType.LONG_PUT for n in plan_run):
            self._refresh_vix(r, ctx)
            # the puts' volatility from the closes just fetched (wired before: the close of two sessions back)
            ctx.option_volatility = option_volatility(r.vix_closes, today)
        return ctx

    def _rewarm(self, r: Services, today: date) -> None:
        """A bot running for days warms up again for each new session (the boot's figures are a day old)."""
        from tbot_bot.market_time import next_session_date, previous_session_date
        from tbot_bot.runtime.boot import warm_up_universe

        if r.warmup is None:
            return
        wanted = previous_session_date(
            next_session_date(r.clock.now(), r.settings.MARKET_CALENDAR), r.settings.MARKET_CALENDAR
        )
        if r.warmup.session == wanted:
            return
        try:
            # the whole listed universe, judged again: a symbol without a session before the boot's trades once it
            # has one, and one without a session before today's is left out today
            listed = r.listed if r.listed is not None else sorted(r.tradable)
            r.warmup = warm_up_universe(r.home, r.settings, r.broker, r.clock, r.log, listed, beat=self._beat)
            kept = [sym for sym in listed if sym not in r.warmup.excluded]
            r.tradable, r.universe = set(kept), signal_universe(kept)
        except TbotError as exc:
            # the screener then relies on the broker's snapshots alone for previous-session volume
            r.log.event("supervisor", "warmup_failed", session=today.isoformat(), reason=str(exc))

    def _refresh_vix(self, r: Services, ctx: DayContext) -> bool:
        """Fetch the VIX history before the session (VIX_SOURCE); True when CLOSE has its previous-session close."""
        from tbot_bot.inputs import vix

        session = vix.next_close_session(r.settings, ctx.clock.now())
        try:
            done = vix.refresh(r.home, r.settings, session, broker=r.broker)
            ctx.log.event("supervisor", "vix_refreshed", source=done.source, added=done.added, held=done.held)
        except TbotError as exc:
            # a failed download keeps the cache as it was; the reading below says whether CLOSE can still run
            ctx.log.event("supervisor", "vix_refresh_failed", reason=str(exc))
        try:
            r.vix_closes = vix.closes(vix.load_cache(r.home))
        except TbotError as exc:
            ctx.log.event("supervisor", "vix_cache_damaged", reason=str(exc))
        reading = vix.reading_for(r.vix_closes, session, r.settings.MARKET_CALENDAR)
        ctx.log.event("supervisor", "vix_reading", reading=reading.describe(), fresh=reading.fresh)
        return reading.fresh

    def _windows_to_resume(self, ctx: DayContext, plan_run: tuple[str, ...]) -> list[str]:
        """After a restart: windows that were running, or whose time span contains now, run again (from their
        cursor). One whose time is over is not run after it: it reads missed, or interrupted when it had begun
        (its positions are closed by the end of the session)."""
        now = ctx.clock.now()
        out = []
        for name in plan_run:
            row = ctx.journal.window(ctx.day_key, name)
            w = window_for(name, ctx.session_date, ctx.settings)
            if w.fits and now >= w.monitoring_end:
                self._passed_while_down(ctx, name, row)
            elif (row is not None and row["status"] in (WindowStatus.RUNNING, WindowStatus.STOPPED)) or (
                row is None and w.fits and w.start <= now < w.monitoring_end
            ):
                out.append(name)
        return out

    def _finish_earlier_days(self, ctx: DayContext) -> None:
        """An earlier session a crash cut off (its windows still "running", the day never booked), met by a start
        on a later day: its windows read interrupted and the day booked (its fills are booked by the reconciliation
        just run, its leftovers closed at the open), so it does not read as running for ever."""
        zone = exchange_zone(ctx.settings.MARKET_CALENDAR)
        now = ctx.clock.now()
        days: set[str] = set()
        for day, name in ctx.journal.running_before(ctx.day_key):
            note = f"interrupted: the supervisor was down until {both_times(now, zone)} of a later session"
            ctx.journal.set_window(day, name, WindowStatus.HALTED, actual_end=now.isoformat(), note=note)
            ctx.log.event(name, "window_missed", session_date=day, reason=note)
            days.add(day)
        for day in sorted(days):
            if ctx.journal.day_booked(day) is None:
                ctx.journal.mark_day_booked(day, now.isoformat())

    def _passed_while_down(self, ctx: DayContext, name: str, row: sqlite3.Row | None) -> None:
        """A window whose whole time passed while no supervisor ran: said so in the journal and status (it read
        "pending" all night, or ran its minutes again after the close)."""
        if row is not None and row["status"] != WindowStatus.RUNNING:
            return  # it finished, was skipped or stopped: what the journal says stands
        zone = exchange_zone(ctx.settings.MARKET_CALENDAR)
        now = ctx.clock.now()
        status, note = (
            (
                WindowStatus.SKIPPED,
                f"missed: the supervisor started at {both_times(now, zone)}, after this window",
            )
            if row is None
            else (
                WindowStatus.HALTED,
                f"interrupted: the supervisor was down until {both_times(now, zone)}, after this window's end",
            )
        )
        ended = now.isoformat() if row is not None else None
        ctx.journal.set_window(ctx.day_key, name, status, actual_end=ended, note=note)
        ctx.status_window(name, status, actual_end=now if row else None, note=note)
        ctx.log.event(name, "window_missed", reason=note)

    def _day_is_over(self, ctx: DayContext, plan_run: tuple[str, ...]) -> bool:
        """Every window of the plan that fits today has passed its latest exit (a session day only)."""
        ends = [
            w.monitoring_end for n in plan_run if (w := window_for(n, ctx.session_date, ctx.settings)).fits
        ]
        return bool(ends) and ctx.clock.now() >= max(ends)

    def _resume_day(self, ctx: DayContext, plan_run: tuple[str, ...]) -> list[str]:
        """After a (re)start: the windows to run again; when none is and the day's last window finished, or the
        day's windows are all over (a restart after the close), but the day was never booked, the end of the
        session runs now: leftovers flattened, the day booked and synced, as it would have been."""
        resume = self._windows_to_resume(ctx, plan_run)
        final = self._last_window_today(ctx, plan_run)
        last = ctx.journal.window(ctx.day_key, final) if final else None
        finished = last is not None and last["status"] not in (WindowStatus.RUNNING, WindowStatus.STOPPED)
        if (
            not resume
            and (finished or self._day_is_over(ctx, plan_run))
            and ctx.journal.day_booked(ctx.day_key) is None
        ):
            ctx.log.event("supervisor", "end_of_session_resumed", session_date=ctx.day_key)
            self._end_of_session(ctx)
            self._start_optimizer(ctx, plan_run)
        return resume

    def _end_of_session(self, ctx: DayContext) -> None:
        """After the day's last window: nothing stays held overnight; book and report the day. A position its
        refused exit left held is said and alerted, not a shutdown (a restart would send the same refused order
        again, and again): the live loop sends its exit again each minute until the close
        (`_close_left_behind`), then the next session's first window closes it."""
        held: PositionsStillHeld | None = None
        try:
            self._close_positions(ctx, "end of day")
        except PositionsStillHeld as exc:
            held = exc
        ctx.journal.mark_day_booked(ctx.day_key, ctx.clock.now().isoformat())
        ctx.observe_defense()
        ctx.check_rebalance("after_session")
        ctx.sync_accounting()
        ctx.publish_positions(None)
        ctx.status.publish(
            state=BotState.HALTED if ctx.halted_reason or held else BotState.IDLE,
            active_strategy=None,
            message=f"closing failed: {held}" if held else "session complete",
        )

    def _record_bars(self, ctx: DayContext, runner: WindowRunner) -> None:
        """Keep the window's bars in the bars cache (the scheduled optimizer's data); never disturbs trading."""
        from tbot_bot.optimizer.scheduled import record_session_bars

        if runner.feed is None:
            return
        try:
            record_session_bars(self.home, ctx.session_date, runner.feed.bars(runner.feed.symbols()))
        except Exception as exc:  # a full disk or a bad cache file must not stop the trading day
            ctx.log.event("supervisor", "bars_not_recorded", reason=f"{type(exc).__name__}: {exc}")

    def _start_optimizer(self, ctx: DayContext, plan_run: tuple[str, ...]) -> None:
        """ENABLE_STRATEGY_OPTIMIZER=true: optimise over the recorded bars in a separate low-priority process
        (a proposal only); the supervisor does not wait for it."""
        from tbot_bot.optimizer.scheduled import launch_after_session

        previous = self._optimizer_process
        if previous is not None and previous.poll() is None:
            ctx.log.event(
                "supervisor", "optimizer_skipped", reason="the previous scheduled run is still going"
            )
            return
        try:
            self._optimizer_process = launch_after_session(
                self.home, ctx.settings, ctx.session_date, plan_run
            )
        except OSError as exc:
            ctx.log.event("supervisor", "optimizer_not_started", reason=str(exc))
            return
        if self._optimizer_process is not None:
            ctx.log.event(
                "supervisor",
                "optimizer_started",
                pid=self._optimizer_process.pid,
                strategies=",".join(plan_run),
            )

    def _announce_next_window(self, ctx: DayContext, plan_run: tuple[str, ...]) -> None:
        """Say when the next window starts (a weekend or holiday start waits for the next session)."""
        now = ctx.clock.now()
        settings = ctx.settings
        for offset in range(15):
            day = session_date_at(now, settings.MARKET_CALENDAR) + timedelta(days=offset)
            # TRADING_DAYS: windows only on these weekdays; MARKET_CALENDAR decides sessions and early closes
            if (
                day.strftime("%a").lower() not in settings.TRADING_DAYS
                or session_for(day, settings.MARKET_CALENDAR) is None
            ):
                continue
            for name in plan_run:
                w = window_for(name, day, settings)
                if w.fits and w.start > now:
                    zone = exchange_zone(settings.MARKET_CALENDAR)
                    message = (
                        f"waiting: next window {name} on {day:%a %Y-%m-%d} at {both_times(w.start, zone)}"
                    )
                    if ctx.halted_reason and day == ctx.session_date:
                        # a flatten, the kill switch or an outage ended today's trading: the window will not trade
                        message = f"no new entries today ({ctx.halted_reason}); {message}"
                    ctx.log.event(
                        "supervisor", "next_window", window=name, start=w.start.isoformat(), message=message
                    )
                    ctx.status.publish(message=message)
                    return
        ctx.log.event("supervisor", "next_window", message="no window in the next two weeks")

    def _rebalance_between_windows(self) -> None:
        """The interval check while no window runs (a window's own minute loop checks too; `maybe_check` skips
        when the last check is recent). Run by the supervisor's own thread, as every broker call is: the scheduler
        only queues it (ib_async serves one thread, its replies read by that thread's event loop)."""
        ctx = self.ctx
        if ctx is not None:
            ctx.check_rebalance()

    def _run_live(self, r: Services) -> int:
        """Trade until a stop. A Stop by request (`tbot stop`, the dashboard) ends trading and leaves the
        supervisor up and stopped, across days and restarts, until a Start; a signal ends the process."""
        while True:
            if not self._wait_for_start(r):
                return EXIT_OK
            code = self._trade_live(r)
            if code != EXIT_OK or not self._stays_up():
                return code
            mark_trading_stopped(self.home, self._stopped_by or "unknown")

    def _answered_start(self, log: BotLog, status: StatusBoard) -> bool:
        """While trading is stopped (live or replay): a Start resumes it (True); a Stop is already obeyed."""
        if self.control.start_requested():
            who = self.control.consume_start() or "unknown"
            clear_trading_stopped(self.home)
            log.event("supervisor", "trading_started", by=who)
            status.publish(trading_stopped=None, message=f"trading started ({who})")
            return True
        if self.control.stop_requested():
            self.control.consume_stop()  # already stopped: nothing more to end
        return False

    def _wait_for_start(self, r: Services) -> bool:
        """While trading is stopped: stay up, beat, answer Start; False when a signal ends the process."""
        stamp = trading_stopped(self.home)
        if stamp is None:
            return True
        r.log.event("supervisor", "trading_stopped", by=stamp)
        r.status.publish(
            state=BotState.CLOSED, active_strategy=None, trading_stopped=stamp,
            message=f"trading stopped ({stamp}); Start resumes it",
        )  # fmt: skip
        while not self._stop_signal:
            if self.ctx is None and self.control.flatten_requested():
                self._flatten_while_stopped(r)
            self._beat()
            if self._answered_start(r.log, r.status):
                return True
            # SLEEP_TIME: a stopped supervisor still answers Start and feeds the watchdog this often
            r.clock.sleep(float(r.settings.SLEEP_TIME))
        return False

    def _flatten_while_stopped(self, r: Services) -> None:
        """`tbot flatten` to a supervisor that came up stopped (no trading day wired): it holds the run lock, so
        the command cannot act itself; a day is wired for the request alone, served, and let go again."""
        try:
            self.ctx = wire_day(r, session_date_at(r.clock.now(), r.settings.MARKET_CALENDAR))
            self._serve_flatten()
        except TbotError as exc:
            # the broker down (wiring the day or flattening): said where the operator looks (once per reason); the
            # request stays for the next poll, and the stopped supervisor stays up (a crash here restarted into
            # the same request, crash after crash)
            if str(exc) != self._flatten_waits:
                self._flatten_waits = str(exc)
                r.log.event("supervisor", "flatten_not_served", reason=str(exc))
                r.status.publish(message=f"trading stopped; flatten waits: {exc}")
            return
        finally:
            self.ctx = None
        self._flatten_waits = None

    def _trade_live(self, r: Services) -> int:
        from apscheduler.schedulers.background import BackgroundScheduler

        settings = r.settings
        due: queue.Queue[str] = queue.Queue()
        scheduler = BackgroundScheduler(
            timezone="UTC", job_defaults={"misfire_grace_time": 30, "coalesce": True}
        )
        plan = route(settings)
        for name in plan.run:
            scheduler.add_job(due.put, cron_trigger(settings, name), args=[name], id=f"window-{name}")
        scheduler.add_job(
            rotate_home_logs_logged,
            LOG_ROTATION_TRIGGER,
            args=[r.home, settings.LOG_RETENTION_DAYS, r.log],
            id="log-rotation",
        )
        trigger = rebalance_trigger(settings)
        if trigger is not None:
            scheduler.add_job(due.put, trigger, args=[REBALANCE_DUE], id="rebalance-check")
        ctx: DayContext | None = None
        try:
            ctx = self._start_live_day(r, plan.run)
            for name in self._resume_day(ctx, plan.run):
                due.put(name)
        except TbotError as exc:
            if ctx is None or self._on_failure(ctx, "supervisor", exc) is None:
                raise
        scheduler.start()
        if ctx is not None:
            self._announce_next_window(ctx, plan.run)
        try:
            while not self.stop_requested():
                self._beat()
                if self.control.start_requested():
                    self.control.consume_start()  # already trading: nothing to start
                if ctx is not None:
                    ctx.check_operator_pause()  # shown in status between windows too
                    try:
                        self._probe_between_windows(ctx)
                        self._close_left_behind(ctx)
                    except TbotError as exc:
                        if self._on_failure(ctx, "supervisor", exc) is None:
                            return EXIT_FAILURE
                asking = self._prefetch_fundamentals(r)
                try:
                    # while the day's fundamentals are asked, a part at a time, a due window is still taken at once
                    name = due.get(timeout=0.01 if asking else settings.SLEEP_TIME)
                except queue.Empty:
                    continue
                if name == REBALANCE_DUE:
                    self._rebalance_between_windows()
                    continue
                try:
                    ctx = self._run_due_window(r, ctx, plan.run, name)
                except TbotError as exc:
                    if ctx is None or self._on_failure(ctx, name, exc) is None:
                        return EXIT_FAILURE
        finally:
            scheduler.shutdown(wait=False)
        if ctx is None:
            ctx = wire_day(r, session_date_at(r.clock.now(), settings.MARKET_CALENDAR))
        return self._close_day(ctx, stopped=True)

    def _run_due_window(
        self, r: Services, ctx: DayContext | None, plan_run: tuple[str, ...], name: str
    ) -> DayContext:
        """A window whose cron fired: on a new exchange date a new trading day first; on a day the exchange is
        closed (a holiday on a TRADING_DAYS weekday) nothing runs, not even the end of the session."""
        calendar = r.settings.MARKET_CALENDAR
        # a new exchange date (MARKET_CALENDAR's zone) starts a new trading day
        if ctx is None or ctx.session_date != session_date_at(r.clock.now(), calendar):
            ctx = self._start_live_day(r, plan_run)
        if session_for(ctx.session_date, calendar) is None:
            self._closed_today(ctx, plan_run)
            return ctx
        # positions held while the market was closed leave now, whatever this window then does (halted, skipped)
        close_overdue(ctx)
        if name == "close" and r.vix_lookup(ctx.session_date) is None:
            self._refresh_vix(r, ctx)  # a close published overnight may be there by now
            ctx.option_volatility = option_volatility(r.vix_closes, ctx.session_date)
        runner, outcome = self._window_through_outages(ctx, name)
        self.outcomes.append(outcome)
        self._check_after_window(ctx, name)
        self._record_bars(ctx, runner)
        # the last window ends the day once (a restart after an early close already finished it); a stop taken
        # during it ends the day through the stop's own closing instead (the main loop's next look at it)
        last = self._last_window_today(ctx, plan_run)
        if name == last and ctx.journal.day_booked(ctx.day_key) is None and not self.stop_requested():
            self._end_of_session(ctx)
            self._start_optimizer(ctx, plan_run)
        # between windows too: the message said "open window running ..." until the next one began
        self._announce_next_window(ctx, plan_run)
        return ctx


def _still_held(ctx: DayContext, held: list[OpenTrade]) -> str:
    """What a closing left held, with why each exit did not close it (the broker's refusal, a cancel)."""
    # each entry's last exit (the journal read once, in time order: a later exit replaces an earlier one)
    last_exit = {i.entry_client_order_id: i for i in ctx.journal.intents() if i.purpose == Purpose.EXIT}
    parts = []
    for tr in held:
        last = last_exit.get(tr.entry.client_order_id)
        why = (
            f"exit {last.client_order_id} {last.status}" + (f": {last.note}" if last.note else "")
            if last
            else "no exit"
        )
        parts.append(f"{tr.remaining.normalize():f} {tr.entry.symbol} still held ({why})")
    return "; ".join(parts)


# how long before a session's open its fundamentals start to be asked, and how many symbols per poll (a part takes
# ten seconds at Finnhub's free 60 calls a minute: the loop still beats and takes a due window between parts)
PREFETCH_LEAD = timedelta(minutes=90)
PREFETCH_PART = 10

REBALANCE_DUE = "rebalance-check"  # what the scheduler queues for the supervisor's thread (no window's name)


def rebalance_trigger(settings: BotSettings) -> IntervalTrigger | None:
    """Live: every REBALANCE_CHECK_INTERVAL seconds; None when REBALANCE_ENABLED=false (no checks at all)."""
    # REBALANCE_ENABLED=false: no scheduled checks between windows
    if not settings.REBALANCE_ENABLED:
        return None
    return IntervalTrigger(seconds=int(settings.REBALANCE_CHECK_INTERVAL), timezone="UTC")
