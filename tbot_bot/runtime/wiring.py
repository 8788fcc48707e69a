"""The composition root: what boot built once (`Services`), and each trading day's services built from it
(`wire_day`), typed, each component given only what it uses.

Boot (`runtime/boot.py`) decides readiness and loads; the supervisor (`runtime/main.py`) keeps the process
lifecycle and the day's agenda; everything the daemon claims to run is constructed here, so a feature that
is not wired here does not run (see support/architecture.md, "Wiring").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.acct_client import AccountingClient
from tbot_bot.accounting.float_bot import SessionFloat, session_float
from tbot_bot.broker.broker_api import Broker
from tbot_bot.checks import CheckResult
from tbot_bot.config.env_bot import BotSettings
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.domain.clock import Clock
from tbot_bot.enhancements.black_scholes_filter import BlackScholesFilter
from tbot_bot.enhancements.imbalance_scanner_ibkr import ImbalanceScanner, ImbalanceSource
from tbot_bot.enhancements.ticker_blocklist import TickerBlocklist
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix
from tbot_bot.inputs.vix import reading_for
from tbot_bot.inputs.warmup import WarmUp
from tbot_bot.reporting.rebalance_notifier import RebalanceMonitor
from tbot_bot.runtime.bot_log import BotLog
from tbot_bot.runtime.day_context import DayContext
from tbot_bot.runtime.defense import DefenseMonitor
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.runtime.preflight import Preflight
from tbot_bot.runtime.run_mode import RunMode
from tbot_bot.runtime.status_bot import StatusBoard
from tbot_bot.screeners.finnhub_screener import Screener
from tbot_bot.screeners.fundamentals import FundamentalsProvider, build_fundamentals_provider
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.trading.kill_switch import KillSwitch
from tbot_bot.trading.notifier_bot import Alert, AlertEvent, AlertLevel, Notifier
from tbot_bot.trading.risk_bot import RiskManager

DEFAULT_OPTION_VOLATILITY = 0.25


def option_volatility(vix_closes: dict[date, float], day: date) -> float:
    """The volatility puts are priced (sim) and checked (BSM filter) with: the VIX known before the session
    (previous close, as the CLOSE window sees it) as a fraction, else a fixed 25% when no VIX is known."""
    vix = previous_close_vix(vix_closes, day) if vix_closes else None
    return vix / 100.0 if vix else DEFAULT_OPTION_VOLATILITY


def report_float(floats: SessionFloat, log: BotLog, notifier: Notifier | None, clock: Clock) -> None:
    for notice in floats.notices:
        log.event("supervisor", notice.event, reason=notice.message, **notice.fields)
        if notice.level != "info" and notifier is not None:
            level = AlertLevel.CRITICAL if notice.level == "critical" else AlertLevel.ROUTINE
            notifier.notify(
                Alert(level, AlertEvent.FAILURE, clock.now(), None, None, None, notice.event, notice.message)
            )


@dataclass
class Services:
    """What boot built once for the whole run."""

    home: BotHome
    settings: BotSettings
    binding: LedgerBinding
    broker_current_float: Decimal
    mode: RunMode
    broker: Broker
    journal: OrderJournal
    log: BotLog
    errors: ErrorHandler
    notifier: Notifier
    status: StatusBoard
    universe: list[str]
    tradable: set[str]
    vix_closes: dict[date, float]
    closers: list[Callable[[], None]] = field(default_factory=list)
    acct: AccountingClient | None = None  # None: acct_api_credentials not provisioned
    float_source: str = "float_ledger"
    warmup: WarmUp | None = None  # live: the previous session's volume/close and lookback bars
    fundamentals: FundamentalsProvider | None = None
    preflight: Preflight | None = None  # what `tbot check` summarises
    float_day: date | None = None  # the session the float was last resolved for
    replay_day: date | None = None  # the recorded day a replay (or a replay check) runs
    # live: the universe as listed, before the warm-up left out symbols without a previous session (each new
    # session's warm-up judges all of it again)
    listed: list[str] | None = None
    _blocklist: TickerBlocklist | None = None  # opened once for the process (it keys its rows by day)

    def blocklist(self) -> TickerBlocklist:
        """The ticker blocklist, one connection for every day this process wires (one per day, closed only at
        exit, ran a stopped supervisor out of file descriptors while it retried a flatten each poll)."""
        if self._blocklist is None:
            self._blocklist = TickerBlocklist.for_home(self.home, self.clock)
            self.closers.append(self._blocklist.close)
        return self._blocklist

    @property
    def clock(self) -> Clock:
        return self.mode.clock

    @property
    def live(self) -> bool:
        """Trading (or checking) against the wall clock and a real broker session, not a recorded day."""
        return self.replay_day is None

    def vix_lookup(self, day: date) -> float | None:
        """Live: the close of exactly the previous session (else none: stale). Replay: the last close before."""
        if self.live:
            return reading_for(self.vix_closes, day, self.settings.MARKET_CALENDAR).value
        return previous_close_vix(self.vix_closes, day) if self.vix_closes else None

    def refresh_float(self, day: date) -> None:
        """A new live session: ask the accounting API for the float again (boot resolved the first one)."""
        if self.acct is not None and self.float_day is not None and day != self.float_day:
            floats = session_float(
                self.home,
                self.binding,
                self.acct,
                now=self.clock.now(),
                backup_keep=self.settings.LEDGER_BACKUP_KEEP,
            )
            report_float(floats, self.log, self.notifier, self.clock)
            self.broker_current_float, self.float_source = floats.amount, floats.source
        self.float_day = day

    def warm_volumes(self, day: date) -> dict[str, int] | None:
        """The warm-up's previous-session volumes, only when they are those of the session before `day`."""
        from tbot_bot.market_time import previous_session_date

        # MARKET_CALENDAR: the warm-up serves only the day whose previous session it read
        if self.warmup is None or self.warmup.session != previous_session_date(
            day, self.settings.MARKET_CALENDAR
        ):
            return None
        return self.warmup.prev_volumes()

    def close(self) -> None:
        close_all(self.closers)
        self.closers.clear()


def close_all(closers: list[Callable[[], None]]) -> None:
    for fn in reversed(closers):
        try:
            fn()
        except Exception:  # closing is best effort; the process is ending or refusing anyway
            pass


def wire_day(s: Services, day: date) -> DayContext:
    """One trading day's services: risk, kill switch, defense mode, filters, screener, orders, books."""
    s.refresh_float(day)
    settings = s.settings
    kill = KillSwitch(settings, s.broker_current_float)
    defense = DefenseMonitor(s.journal, settings.MARKET_CALENDAR, day)
    risk = RiskManager(
        settings,
        s.broker_current_float,
        s.broker.capabilities,
        kill_switch=kill,
        # a DEFENSE_MODE_TRIGGER_* that fired this session (before a restart) or the last keeps defense mode on
        defense_reason=defense.carried_reason(),
    )
    blocklist = s.blocklist()
    fundamentals = s.fundamentals or build_fundamentals_provider(settings, s.home)
    screener = Screener(settings, s.broker, fundamentals, s.clock, prev_volumes=s.warm_volumes(day))
    ctx = DayContext(
        settings=settings, home=s.home, binding=s.binding, mode=s.mode, broker=s.broker, journal=s.journal,
        errors=s.errors, risk=risk, kill=kill, defense=defense, blocklist=blocklist, screener=screener,
        status=s.status, log=s.log, notifier=s.notifier, session_date=day, universe=s.universe,
        tradable=s.tradable, bsm=BlackScholesFilter(settings, s.binding.identity.JURISDICTION_CODE),
        imbalance=imbalance_gate(settings, s.broker, s.clock), vix_lookup=s.vix_lookup,
        option_volatility=option_volatility(s.vix_closes, day), acct=s.acct,
    )  # fmt: skip
    ctx.rebalance = rebalance_monitor(s, ctx)
    s.status.start_day(day.isoformat())
    ctx.follow_rebalance()  # a breach still open from before this start keeps entries paused, shown in status
    # a restart mid-day: the day's fills and realised PnL come back from the journal (and count toward
    # DAILY_LOSS_LIMIT) without re-sending alerts
    ctx.restore_from_journal()
    tripped = ctx.kill_switch_state()
    if tripped["tripped"]:
        # tripped today before this start: halted for the rest of the day, whatever the float read now
        ctx.halted_reason = f"kill switch: {tripped['reason']}"
        risk.halt(ctx.halted_reason)
        s.status.publish(kill_switch=tripped)
    ctx.publish_defense()
    return ctx


def imbalance_gate(settings: BotSettings, broker: Broker, clock: Clock) -> ImbalanceScanner | None:
    """The auction-imbalance gate CLOSE consults; only IBKR publishes imbalance data (DESIGN §9)."""
    source = broker if isinstance(broker, ImbalanceSource) else None
    # BROKER_NAME=IBKR with an adapter that publishes imbalances: CLOSE entries against the auction are denied
    if settings.BROKER_NAME != "IBKR" or source is None:
        return None
    return ImbalanceScanner(settings, source, clock)


def rebalance_monitor(s: Services, ctx: DayContext) -> RebalanceMonitor | None:
    # REBALANCE_ENABLED=false: no float checks, no requests, entries never paused for rebalancing
    if not s.settings.REBALANCE_ENABLED:
        return None
    broker = s.broker
    monitor = RebalanceMonitor(
        s.settings,
        s.home,
        s.binding,
        session_float=s.broker_current_float,
        equity=lambda: broker.get_account().equity,
        client=s.acct,
        log_dir=s.home.logs_dir(s.binding.scope),
        now=s.clock.now,
        on_breach=ctx.on_rebalance,
    )
    return monitor


def enhancement_checks(s: Services) -> list[tuple[str, CheckResult]]:
    """The self_check() of every filter and enhancement this bot runs (boot refuses on any failure)."""
    from tbot_bot.enhancements import adx_filter, bollinger_confluence, vix_gatekeeper
    from tbot_bot.enhancements.finnhub_fundamental_guard import FundamentalGuard
    from tbot_bot.strategy.strategy_router import route

    settings, runs = s.settings, set(route(s.settings).run)
    checks: list[tuple[str, CheckResult]] = []
    # MID's entries pass the ADX and Bollinger gates; CLOSE's the VIX gate
    if "mid" in runs:
        checks += [("adx_filter", adx_filter.self_check(settings))]
        checks += [("bollinger_confluence", bollinger_confluence.self_check(settings))]
    if "close" in runs:
        checks.append(("vix_gatekeeper", vix_gatekeeper.self_check(settings)))
    # ENABLE_BSM_FILTER: puts priced beyond MAX_BSM_DEVIATION are refused, so the pricer must be right
    if settings.ENABLE_BSM_FILTER:
        bsm = BlackScholesFilter(settings, s.binding.identity.JURISDICTION_CODE)
        checks.append(("black_scholes_filter", bsm.self_check()))
    # ENABLE_FUNNHUB_FUNDAMENTALS_FILTER: the guard's limits must be usable
    if settings.ENABLE_FUNNHUB_FUNDAMENTALS_FILTER:
        checks.append(("fundamentals_guard", FundamentalGuard(settings).self_check()))
    blocklist = TickerBlocklist.for_home(s.home, s.clock)
    try:
        checks.append(("ticker_blocklist", blocklist.self_check()))
    finally:
        blocklist.close()
    gate = imbalance_gate(settings, s.broker, s.clock)
    if gate is not None:
        checks.append(("imbalance_scanner", gate.self_check()))
    return checks
