"""Boot (DESIGN §8): decrypt config -> validate -> identity/injection -> build services -> every self_check.

Any failed self_check aborts the launch; each failure is written to `error_tracebacks.log` with strategy,
reason, context and the UTC time.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tbot_bot.accounting.acct_client import AccountingClient
from tbot_bot.accounting.float_bot import session_float
from tbot_bot.broker.broker_api import Broker
from tbot_bot.broker.factory import build_broker
from tbot_bot.checks import BUG, REFUSED, CheckResult
from tbot_bot.config.env_bot import BotSettings
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.config.security_bot import self_check as security_self_check
from tbot_bot.domain.clock import Clock, ReplayClock, WallClock, stamp_for_people
from tbot_bot.enhancements import build_check
from tbot_bot.errors import ConfigError, LogicError, MachineFault
from tbot_bot.inputs.universe import build_for_home, read_universe
from tbot_bot.inputs.warmup import WarmUp, lookback_minutes, warm_up
from tbot_bot.inputs.warmup import cache_file as warmup_cache_file
from tbot_bot.market_time import calendar_timezone, exchange_zone, session_bounds, session_date_at
from tbot_bot.runtime import broker_pause, defense
from tbot_bot.runtime.bot_log import BotLog
from tbot_bot.runtime.control import ControlFiles, SupervisorLock
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.runtime.preflight import Preflight, preflight
from tbot_bot.runtime.run_mode import CheckMode, LiveMode, ReplayMode, RunMode
from tbot_bot.runtime.status_bot import StatusBoard
from tbot_bot.runtime.watchdog_bot import Watchdog
from tbot_bot.runtime.wiring import Services, close_all, enhancement_checks, option_volatility, report_float
from tbot_bot.screeners.fundamentals import build_fundamentals_provider, read_fundamentals_file
from tbot_bot.strategy import strategy_router
from tbot_bot.strategy.strategy_meta import signal_universe
from tbot_bot.support.machine_faults import os_fault, readable_database
from tbot_bot.support.path_resolver import BotHome, package_file
from tbot_bot.support.trading_mode import trading_mode
from tbot_bot.support.utils_bot import remove_stale_temp_files, utc_now
from tbot_bot.trading.kill_switch import KillSwitch
from tbot_bot.trading.notifier_bot import build_notifier
from tbot_bot.trading.risk_bot import RiskManager

_log = logging.getLogger(__name__)
SAMPLE_DATA = package_file("data", "sample")


class DayAlreadyBooked(ConfigError):
    """`--replay D` on a home whose session D is finished and booked (exit 2): a fresh home replays it."""


class BootAborted(LogicError):
    """A self-check failed on a result our own code cannot give (a bug); the launch is aborted (exit 1, details in
    error_tracebacks.log)."""


class BootRefused(ConfigError):
    """A self-check failed on what a person must fix (configuration, a file, the account): exit 2, not restarted."""

    label = "Launch refused"


def _replay_start(journal: OrderJournal, settings: BotSettings, day: date) -> datetime:
    """Where a replay clock starts: the session open, or just after the last minute processed before a crash."""
    from tbot_bot.market_time import session_for

    session = session_for(day, settings.MARKET_CALENDAR)
    start = (session.open if session else datetime.combine(day, datetime.min.time(), tzinfo=UTC)) - timedelta(
        minutes=1
    )
    for name in ("open", "mid", "close"):
        raw = journal.get_value(f"cursor:{day.isoformat()}:{name}")
        if raw:
            start = max(start, datetime.fromisoformat(raw))
        row = journal.window(day.isoformat(), name)
        if row is not None and row["status"] == "done" and row["actual_end"]:
            start = max(start, datetime.fromisoformat(row["actual_end"]))
    return start


def boot(
    home: BotHome,
    *,
    replay_day: date | None,
    speed: float | None,
    data_source: Path | None,
    broker: Broker | None,
    broker_wrapper: Callable[[Broker], Broker] | None,
    stop: Callable[[], bool] = lambda: False,
    beat: Callable[[], None] = lambda: None,
    live_clock: Clock | None = None,
    dry_run: bool = False,
) -> Services:
    """The one readiness decision: `tbot start` runs what this returns, `tbot check` (dry_run) closes it.

    dry_run publishes no status, consumes no control file and leaves no simulated-exchange state; every
    refusal is the same. Whatever was opened is closed again when boot refuses.
    """
    # a provisioned home: the lock is taken before the slow part (decrypting, checking every file), so a
    # `tbot stop` or a second start during those seconds finds this supervisor; a folder that may be no bot home
    # is checked first, so no lock file is made in it
    early = SupervisorLock.acquire(home, mode=_mode(replay_day, dry_run)) if home.state_dir.is_dir() else None
    try:
        pre = preflight(home, live=replay_day is None)
        _status_file_writable(home)
        lock = early or SupervisorLock.acquire(home, mode=_mode(replay_day, dry_run))
    except BaseException:
        if early is not None:
            early.release()
        raise
    closers: list[Callable[[], None]] = [lock.release]
    try:
        return _boot(
            home, pre, closers, run_started=lock.started_at, replay_day=replay_day, speed=speed, data_source=data_source, broker=broker,
            broker_wrapper=broker_wrapper, stop=stop, beat=beat, dry_run=dry_run, live_clock=live_clock,
        )  # fmt: skip
    except BaseException:
        close_all(closers)
        raise


def _refuse_a_closed_session(ledger: Path, day: date, *, replay: bool) -> None:
    """A session dated in a month the books have closed (`tbot ledger close`) is refused before it trades: the
    ledger refuses every posting dated there, so its fills would trade at the broker (the sim exchange of a
    replay included) and never be booked, and status would show a PnL the books do not hold."""
    from tbot_bot.accounting.ledger_period import closed_through
    from tbot_bot.accounting.ledger_schema import open_ledger

    with open_ledger(ledger, readonly=True) as conn:
        lock = closed_through(conn)
    if lock is not None and day.isoformat() <= lock[1][:10]:
        what = f"replay a day after {lock[1][:10]}" if replay else "its month was closed before it ended"
        raise ConfigError(
            f"the books are closed through {lock[0]} (`tbot ledger close`): a session on {day} would trade fills "
            f"the ledger refuses to book; {what}"
        )


def _status_file_writable(home: BotHome) -> None:
    """status.json as start will write it: a folder in its place is refused by check as by start, same words."""
    path = home.status_json
    if path.is_dir():
        named = os_fault(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path)))
        raise MachineFault(named[0] if named else f"{path} is a directory", transient=False)


def remove_write_debris(home: BotHome) -> list[Path]:
    """Temp files of atomic writes a killed process left behind (`.status.json.*`, `.trade_history.csv.*`, ...).

    Only this supervisor writes under output/ and storage/state/ (the run lock is held), so any temp file
    there is debris; elsewhere the web or a CLI command may be mid-write, so only old ones are removed.
    """
    removed = remove_stale_temp_files(home.output_dir) + remove_stale_temp_files(home.state_dir)
    return removed + remove_stale_temp_files(home.root, older_than=60.0)


def _mode(replay_day: date | None, dry_run: bool) -> str:
    run = f"replay {replay_day}" if replay_day else "live"
    return f"check ({run})" if dry_run else run


def _boot(
    home: BotHome,
    pre: Preflight,
    closers: list[Callable[[], None]],
    *,
    run_started: float,
    replay_day: date | None,
    speed: float | None,
    data_source: Path | None,
    broker: Broker | None,
    broker_wrapper: Callable[[Broker], Broker] | None,
    stop: Callable[[], bool],
    beat: Callable[[], None],
    dry_run: bool,
    live_clock: Clock | None,
) -> Services:
    settings, binding = pre.settings, pre.binding
    _refuse_a_closed_session(
        binding.ledger_path, replay_day or utc_now().date(), replay=replay_day is not None
    )
    acct = AccountingClient.from_home(home, binding.identity, retry=RetryPolicy.from_settings(settings))
    if acct is not None:
        closers.append(acct.close)
    # acct_api_credentials present: the session float comes from the accounting API (float_bot)
    # a check reads the assigned float but never writes the books: the start it precedes injects it
    # a replay books a float injection in the replayed session's time (the data's date), not the wall clock's
    float_now = (
        utc_now()
        if replay_day is None
        else (session_bounds(replay_day, settings.MARKET_CALENDAR) or (utc_now(),))[0]
    )
    floats = session_float(
        home, binding, acct, now=float_now, backup_keep=settings.LEDGER_BACKUP_KEEP, inject=not dry_run
    )
    debris = [] if dry_run else remove_write_debris(home)
    journal = OrderJournal(home.state_dir / "journal.db")
    closers.append(journal.close)
    vix_closes: dict[date, float] = {}
    replay_fundamentals: Path | None = None
    missing_previous: date | None = None  # a replay whose data lacks the session before it
    if replay_day is not None:
        from tbot_bot.backtest.load_historical_data import load_vix

        # a replay speed must be a positive finite multiple of real time (None = as fast as possible)
        if speed is not None and not (math.isfinite(speed) and speed >= 0.01):
            raise ConfigError(f"replay speed {speed!r}: use max or a number from 0.01 (times real time)")
        from tbot_bot.inputs.replay_bars import load_replay_bars, previous_session_missing

        source = data_source or SAMPLE_DATA
        # (symbol, timestamp) order: the sim exchange's bar index shares the frame's arrays instead of copying
        bars = load_replay_bars(source, replay_day, settings.MARKET_CALENDAR, by_symbol=True)
        missing_previous = previous_session_missing(bars, replay_day, settings.MARKET_CALENDAR)
        vix_file = (source if source.is_dir() else source.parent) / "vix.csv"
        vix_closes = load_vix(vix_file) if vix_file.exists() else {}
        # the side inputs a backtest of this source reads: its fundamentals too, never the bundled ones
        fund_file = vix_file.with_name("fundamentals.json")
        if fund_file.exists():
            read_fundamentals_file(fund_file)  # checked here, as the backtest checks it: refused by name
            replay_fundamentals = fund_file
        booked = journal.day_booked(replay_day.isoformat())
        if booked is not None:
            raise DayAlreadyBooked(
                f"{replay_day} was already replayed and booked in this home (finished at "
                f"{stamp_for_people(booked, exchange_zone(settings.MARKET_CALENDAR))}); a booked day "
                f"is not replayed twice (its ledger, trade history and summaries would be reprinted, not "
                f"re-run): replay it in a fresh home, e.g. `tbot demo --home NEW_HOME --day {replay_day}`"
            )
        rclock = ReplayClock(_replay_start(journal, settings, replay_day), speed)
        clock: Clock = rclock
        mode: RunMode = CheckMode(rclock) if dry_run else ReplayMode(rclock, stop=stop, beat=beat)
        symbols = sorted(bars["symbol"].unique())

        if broker is None:
            # BROKER_NAME must be SIM for a replay: real brokers cannot be driven by a replay clock
            if settings.BROKER_NAME != "SIM":
                raise ConfigError(
                    f"--replay runs against the simulated exchange; this home's BROKER_NAME is {settings.BROKER_NAME}"
                )
            from tbot_bot.broker.brokers.sim import SimBroker

            sim_options: dict[str, Any] = {}
            if dry_run:
                # a check must not leave state behind: the sim's exchange book lives in a throwaway file; the
                # home's own is opened read-only first, so a damaged one is refused as start refuses it
                readable_database(home.state_dir / "sim_exchange.db")
                scratch = tempfile.TemporaryDirectory(prefix="tbot-check-")
                closers.append(scratch.cleanup)
                sim_options["db_path"] = Path(scratch.name) / "sim_exchange.db"
            broker = SimBroker.from_settings(
                settings,
                home,
                clock=clock,
                bars=bars,
                starting_cash=floats.amount,
                option_volatility=option_volatility(vix_closes, replay_day),
                **sim_options,
            )
    else:
        clock = live_clock or WallClock()
        # SLEEP_TIME: a live run polls control files and feeds the watchdog at least this often
        mode = CheckMode(clock) if dry_run else LiveMode(clock, settings.SLEEP_TIME, stop=stop, beat=beat)
        symbols = read_universe(home) or []
        vix_closes = load_vix_closes(home)

        broker = broker or build_broker(settings, home)
    log = BotLog(
        home.logs_dir(binding.scope), settings.LOG_FORMAT, broker=settings.BROKER_NAME, now=clock.now
    )
    for path in debris:
        log.event(
            "supervisor", "temp_file_removed", file=home.relative(path), reason="interrupted atomic write"
        )
    if missing_previous is not None:
        # every symbol's previous-session volume and close come from that day: without it the screen refuses all
        why = (
            f"the data has no bars for {missing_previous}, the session before {replay_day}: no symbol has a "
            "previous-session volume or close, so the screener refuses every one and nothing trades"
        )
        log.event("supervisor", "previous_session_missing", session=missing_previous.isoformat(), reason=why)
        _log.warning("replay of %s: %s", replay_day, why)
    rotate_home_logs_logged(home, settings.LOG_RETENTION_DAYS, log)
    if broker_wrapper is not None:
        broker = broker_wrapper(broker)
    closers.append(getattr(broker, "close", lambda: None))
    tmode = trading_mode(home, settings.BROKER_NAME, replay=replay_day is not None)
    status = StatusBoard(
        home.status_json,
        clock,
        settings.VERSION_TAG,
        {
            "bot_id": binding.identity.BOT_ID,
            "entity": binding.identity.ENTITY_CODE,
            "broker": settings.BROKER_NAME,
            # people must see at a glance whether real money is at stake: paper, live or replay
            "mode": str(tmode),
            "replay_day": replay_day.isoformat() if replay_day is not None else "",
            "market_calendar": settings.MARKET_CALENDAR,
            "exchange_tz": calendar_timezone(settings.MARKET_CALENDAR),
        },
    )
    status.broker = {"name": broker.name, "healthy": True, "last_error": None}
    # retry back-offs wait on the run's clock: a replay never sleeps in real time for a missing quote
    errors = ErrorHandler(RetryPolicy.from_settings(settings, sleep=clock.sleep), log)
    notifier = build_notifier(settings, home, mode=str(tmode), now=clock.now)
    closers.append(notifier.close)
    # a check logs what it found but alerts nobody: the start it precedes will
    report_float(floats, log, None if dry_run else notifier, clock)
    warm: WarmUp | None = None
    listed: list[str] | None = None
    if replay_day is None:
        symbols = _live_universe(home, settings, broker, clock, log, symbols, write=not dry_run)
        listed = list(symbols)
        warm = warm_up_universe(home, settings, broker, clock, log, symbols, beat=beat)
        symbols = [s for s in symbols if s not in warm.excluded]
    fundamentals = build_fundamentals_provider(settings, home, replay_file=replay_fundamentals)
    result = Services(
        home=home, settings=settings, binding=binding, broker_current_float=floats.amount, mode=mode,
        broker=broker, journal=journal, log=log, errors=errors, notifier=notifier, status=status,
        universe=signal_universe(symbols), tradable=set(symbols), vix_closes=vix_closes, closers=closers,
        acct=acct, float_source=floats.source, warmup=warm, fundamentals=fundamentals, preflight=pre,
        listed=listed,
        float_day=clock.now().date(), replay_day=replay_day,
    )  # fmt: skip
    _self_checks(result, probe=result.universe[0] if result.universe else None)
    if not dry_run:
        # a stop file older than this run was meant for a run that is gone: it never stops this one
        stale = ControlFiles(home).discard_stale_stop(written_before=run_started)
        if stale is not None:
            log.event("supervisor", "stale_stop_ignored", file=stale.name)
        # likewise a start file left from before this run: it never resumes trading a Stop ended
        stale_start = ControlFiles(home).discard_stale_start(written_before=run_started)
        if stale_start is not None:
            log.event("supervisor", "stale_start_ignored", file=stale_start.name)
        status.publish(message="booted")
    return result


def rotate_home_logs_logged(home: BotHome, retention_days: int, log: BotLog) -> None:
    """LOG_RETENTION_DAYS: rotate and prune every log of the home (boot and the daily job); never fatal."""
    from tbot_bot.reporting.log_rotation import rotate_home_logs

    try:
        done = rotate_home_logs(home, retention_days, now=utc_now())  # file times are wall-clock times
    except OSError as exc:
        log.event("supervisor", "log_rotation_failed", reason=f"{type(exc).__name__}: {exc}")
        return
    if done.rotated or done.deleted:
        log.event("supervisor", "logs_rotated", rotated=len(done.rotated), deleted=len(done.deleted))


def _live_universe(
    home: BotHome,
    settings: BotSettings,
    broker: Broker,
    clock: Clock,
    log: BotLog,
    symbols: list[str],
    *,
    write: bool = True,
) -> list[str]:
    """The universe file's symbols; without one, a universe built now from the broker (and said so); a check
    (write=False) builds it the same way but leaves the file for `tbot start` to write."""
    if symbols:
        return symbols
    from tbot_bot.errors import BrokerError

    log.event(
        "supervisor", "universe_missing", path=str(home.universe_file), action="building it from the broker"
    )
    try:
        build = build_for_home(home, settings, broker, clock.now(), write=write)
    except BrokerError as exc:
        raise ConfigError(
            f"no trading universe at {home.universe_file} and the broker cannot list one ({exc}); "
            "run `tbot universe build --symbols-file FILE` or write the file (one symbol per line)"
        ) from exc
    log.event("supervisor", "universe_built", path=str(home.universe_file), summary=build.summary())
    return build.symbols


def warm_up_universe(
    home: BotHome, settings: BotSettings, broker: Broker, clock: Clock, log: BotLog, symbols: list[str],
    beat: Callable[[], None] = lambda: None,
) -> WarmUp:  # fmt: skip
    """The previous session's volume, close and lookback bars for the universe (cached per session), paced by
    the broker's data rate, one progress line per batch; symbols without history are logged and left out."""
    from tbot_bot.market_time import next_session_date, previous_session_date, session_for
    from tbot_bot.screeners.rate_limit import TokenBucket

    day = next_session_date(clock.now(), settings.MARKET_CALENDAR)
    prev = session_for(previous_session_date(day, settings.MARKET_CALENDAR), settings.MARKET_CALENDAR)
    assert prev is not None  # previous_session_date returns a session by construction
    rate = broker.capabilities.data_calls_per_minute
    bucket = TokenBucket(rate, sleep=clock.sleep) if rate else None

    def progress(done: int, total: int) -> None:
        log.event("supervisor", "warmup_progress", session=prev.day.isoformat(), done=done, total=total)
        beat()  # a batch done is progress: the keep-alive extends the start's timeout for the next

    warm = warm_up(
        broker,
        symbols,
        prev.open,
        prev.close,
        lookback=lookback_minutes(settings),
        cache=warmup_cache_file(home, broker.name, prev.day),
        bucket=bucket,
        progress=progress,
    )
    for sym, why in warm.excluded.items():
        log.event("supervisor", "warmup_excluded", ticker=sym, reason=why)
    log.event(
        "supervisor",
        "warmed_up",
        session=prev.day.isoformat(),
        symbols=len(warm.symbols),
        excluded=len(warm.excluded),
        calls=warm.calls,
        from_cache=warm.from_cache,
    )
    prime = getattr(broker, "prime_previous_volumes", None)
    if callable(prime):
        prime(warm.prev_volumes(), clock.now().date())
    return warm


def load_vix_closes(home: BotHome) -> dict[date, float]:
    """The cached VIX closes (empty when there is no cache yet; a damaged cache is reported, not ignored)."""
    from tbot_bot.inputs import vix

    return vix.closes(vix.load_cache(home))


def check_readiness(
    home: BotHome, *, replay_day: date | None = None, data_source: Path | None = None
) -> Services:
    """`tbot check`: boot exactly as `tbot start` would, without starting; the caller closes the result."""
    return boot(
        home,
        replay_day=replay_day,
        speed=None,
        data_source=data_source,
        broker=None,
        broker_wrapper=None,
        dry_run=True,
    )


def _self_checks(r: Services, probe: str | None) -> None:
    s, now = r.settings, r.clock.now()
    kill = KillSwitch(s, r.broker_current_float)
    results: list[tuple[str, bool, str, dict[str, Any]]] = []
    causes: dict[str, str] = {}

    def add(name: str, check: CheckResult | tuple[bool, str] | Any) -> None:
        if isinstance(check, tuple):
            results.append((name, check[0], check[1], {}))
            # the security check is about the key and config files, a person's to fix; the others are our own
            causes[name] = REFUSED if name == "security" else BUG
        else:
            results.append((name, check.ok, check.reason, dict(check.context)))
            causes[name] = check.cause

    if r.home.env_bot_enc.exists():
        add("security", security_self_check(r.home.key_file("env"), r.home.env_bot_enc))
    add("risk", RiskManager(s, r.broker_current_float, r.broker.capabilities, kill_switch=kill).self_check())
    add("kill_switch", kill.self_check())
    add("watchdog", Watchdog(r.broker, r.errors, r.clock).self_check(probe))
    add("error_handler", r.errors.self_check())
    add("broker_pause", broker_pause.self_check())
    add("defense", defense.self_check(r.journal, s.MARKET_CALENDAR, session_date_at(now, s.MARKET_CALENDAR)))
    add("router", strategy_router.self_check(s, now))
    add(
        "build_check",
        build_check.self_check(r.home, scope=r.binding.scope, ledger_backups=r.binding.backup_dir),
    )
    add("notifier", r.notifier.self_check())
    for enhancement, result in enhancement_checks(r):
        add(enhancement, result)
    for name in strategy_router.route(s).run:
        check = strategy_router.strategy_module(name).self_check(s, r.broker, r.broker_current_float, r.clock)
        if not check.ok and check.reason.startswith("window does not fit"):
            # not a failure: the window is skipped today (holiday, early close) with its reason logged
            r.log.event(
                name,
                "window_skipped_today",
                reason=check.reason,
                **{k: str(v) for k, v in check.context.items()},
            )
            continue
        results.append((name, check.ok, check.reason, dict(check.context)))
        causes[name] = check.cause
    failed = [x for x in results if not x[1]]
    for name, _ok, reason, context in failed:
        r.log.error(name, f"self_check failed: {reason}", {**context, "checked_at": now.isoformat()})
    if failed:
        names = ", ".join(f"{n} ({why})" for n, _, why, _ in failed)
        message = f"launch aborted, self_check failed: {names}; see {r.home.logs_dir(r.binding.scope) / 'error_tracebacks.log'}"
        # the exit code follows what the failures ask for: a person (2) before a bug (1) before a retry (75)
        found = {causes[n] for n, *_ in failed}
        if REFUSED in found:
            raise BootRefused(message)
        if BUG in found:
            raise BootAborted(message)
        raise MachineFault(message, transient=True)
