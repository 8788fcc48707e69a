"""Pre-flight of a bot home: keys, config, identity, ledger binding, float, secrets, trading universe.

The static half of boot's readiness decision (`runtime/boot.py`); `tbot check` and `tbot start` both reach it
through `boot()`, so they refuse the same home with the same message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tbot_bot.accounting.accounting_config import LedgerBinding, config_binding_problems, load_binding
from tbot_bot.config.env_bot import STRATEGIES, BotSettings
from tbot_bot.config.security_bot import check_key_permissions
from tbot_bot.config.settings_bot import config_source, load_settings
from tbot_bot.errors import ConfigError
from tbot_bot.market_time import both_times, exchange_zone, session_ahead, window_for
from tbot_bot.support.machine_faults import disk_space_warning
from tbot_bot.support.path_resolver import BotHome


@dataclass(frozen=True, slots=True)
class Preflight:
    home: BotHome
    settings: BotSettings
    binding: LedgerBinding
    broker_current_float: Decimal
    inputs: tuple[str, ...] = ()  # VIX and universe lines (issue 16 live inputs)

    @property
    def enabled_strategies(self) -> list[str]:
        # STRATEGY_OVERRIDE set: only that strategy runs; else STRATEGY_SEQUENCE, filtered by STRAT_*_ENABLED
        order = (
            [self.settings.STRATEGY_OVERRIDE]
            if self.settings.STRATEGY_OVERRIDE
            else list(self.settings.STRATEGY_SEQUENCE)
        )
        return [s for s in order if self.settings.strategy_enabled(s)]

    def render(
        self,
        now: datetime | None = None,
        replay_day: date | None = None,
        carried_defense: Callable[[date], str | None] | None = None,
    ) -> str:
        """The one-screen summary; windows are shown for the replay day, else for the next session, with the limits
        that session starts with (`carried_defense`: a defense mode carried over to a day, DefenseMonitor's)."""
        from tbot_bot.broker.capabilities import capabilities_for
        from tbot_bot.runtime.bot_log import console_log_level
        from tbot_bot.trading.risk_bot import RiskLimits, defense_in_effect

        s, b, ident = self.settings, self.binding, self.binding.identity
        day = replay_day or session_ahead(now or datetime.now(UTC), s.MARKET_CALENDAR)
        defense = defense_in_effect(s, carried_defense(day) if carried_defense else None)
        # the limits the risk manager starts the session with (defense mode's when it is on)
        limits = RiskLimits.from_settings(
            s, capabilities_for(s.BROKER_NAME), defense_mode=defense is not None
        )
        cap = self.broker_current_float * limits.total_allocation
        # the console level the run uses, in DEBUG_LOG_LEVEL's words (BUILD_MODE=debug overrides it)
        console = {logging.WARNING: "quiet", logging.INFO: "info", logging.DEBUG: "verbose"}[
            console_log_level(s)
        ]
        zone = exchange_zone(s.MARKET_CALENDAR)
        which = "replay day" if replay_day else "next session"
        windows = [f"windows    {which} {day} (START_TIME_* read in WINDOW_TIMEZONE={s.WINDOW_TIMEZONE})"]
        for strat in STRATEGIES:
            up = strat.upper()
            # STRAT_*_ENABLED: shown on or off (an off window is listed with its times all the same)
            on = "on " if s.strategy_enabled(strat) else "off"
            w = window_for(strat, day, s)
            a, br, m = (getattr(s, f"{up}_{k}_TIME") for k in ("ANALYSIS", "BREAKOUT", "MONITORING"))
            fit = "" if w.fits and not w.cut else f"  [{w.reason}]"
            windows.append(
                f"  {strat:<5} {on} {both_times(w.start, zone)}  analysis {a}m, breakout {br}m, hold <= {m}m, "
                f"bearish: {s.short_type(strat)}{fit}"
            )
        # DISABLE_ALL_TRADES and STRATEGY_OVERRIDE are named on their lines only when they change the day
        lines = [
            f"RIGD TradeBot {s.VERSION_TAG} — home {self.home.root}",
            f"identity   {ident.ENTITY_CODE} / {ident.JURISDICTION_CODE} / account {ident.account_name} / bot {ident.BOT_ID}",
            f"broker     {s.BROKER_NAME}{'  (DISABLE_ALL_TRADES=true: no order will leave)' if s.DISABLE_ALL_TRADES else ''}",
            f"config     {config_source(self.home)}",
            f"ledger     {b.ledger_path}",
            f"float      {self.broker_current_float:,.2f} {b.currency_code}  (session cap {cap:,.2f} per window)",
            f"strategies {', '.join(self.enabled_strategies) or 'none enabled'}  (sequence {','.join(s.STRATEGY_SEQUENCE)}{', override ' + s.STRATEGY_OVERRIDE if s.STRATEGY_OVERRIDE else ''})",
            *windows,
            *self.gate_lines(day),
            *self.fee_lines(),
            *self.security_lines(),
            f"risk       max {limits.max_trades} trades/window, weights {','.join(str(w) for w in s.WEIGHTS)}, max {s.MAX_OPEN_POSITIONS} open, daily loss limit {s.DAILY_LOSS_LIMIT:%}",
            *(
                [
                    f"defense    ON from the start of {day} ({defense}): DEFENSE_MODE_TOTAL_ALLOCATION and "
                    "DEFENSE_MODE_TRADE_LIMIT_PCT apply (`tbot defense clear` ends a triggered one)"
                ]
                if defense
                else []
            ),  # fmt: skip
            *self.inputs,
            # ENABLE_LOGGING (required true) and LOG_FORMAT: where the audit logs go; BUILD_MODE/DEBUG_LOG_LEVEL: console
            f"logging    {s.LOG_FORMAT} strategy logs and trade history (ENABLE_LOGGING={str(s.ENABLE_LOGGING).lower()}), "
            f"console {console} (DEBUG_LOG_LEVEL={s.DEBUG_LOG_LEVEL}, BUILD_MODE={s.BUILD_MODE})",
            # REBALANCE_ENABLED / REBALANCE_TRIGGER_PCT: the band beyond which the accounting system is asked to rebalance
            f"rebalance  {'on' if s.REBALANCE_ENABLED else 'off'}: beyond {s.REBALANCE_TRIGGER_PCT:g}% of the float, "
            f"checked every {s.REBALANCE_CHECK_INTERVAL}s",
            "status     OK: ready to start",
        ]
        return "\n".join(lines)

    def gate_lines(self, day: date) -> list[str]:
        """A gate this bot runs that cannot act with its window times (said, not refused: the times are a choice)."""
        from tbot_bot.enhancements.imbalance_scanner_ibkr import inactive_reason

        reason = inactive_reason(self.settings, day)
        return [f"warning    {reason}"] if reason else []

    def security_lines(self) -> list[str]:
        """What weakens the home's protection without stopping it: a key rotation left unfinished (the old key
        still decrypts: a rotation after a leak is not done until it is finished), a nearly full disk (the next
        write stops the bot), a home other users can open."""
        lines = []
        keys = self.home.keys_dir
        for prev in sorted(keys.glob("*.key.prev")) if keys.is_dir() else []:
            name = prev.name.removesuffix(".key.prev")
            lines.append(
                f"warning    the rotation of the {name} key was interrupted: the old key still decrypts until "
                f"`tbot rotate-key {name} --home {self.home.root}` finishes it"
            )
        space = disk_space_warning(self.home.root)
        if space:
            lines.append(f"warning    {space}")
        mode = self.home.root.stat().st_mode & 0o777
        if mode & 0o077:
            lines.append(
                f"warning    the home {self.home.root} is open to other local users (mode {mode:04o}): "
                f"chmod 700 {self.home.root}"
            )
        return lines

    def fee_lines(self) -> list[str]:
        """The fee profile the sim, backtests and the optimizer charge, and a warning when its fees eat the
        smallest order the sizing makes."""
        from tbot_bot.broker.capabilities import capabilities_for
        from tbot_bot.trading.fees import describe_profile, fee_warning

        s = self.settings
        # FRACTIONAL (when the broker allows it) decides whether the smallest order is whole shares
        fractional = s.FRACTIONAL and capabilities_for(s.BROKER_NAME).fractional
        warning = fee_warning(s, self.broker_current_float, fractional=fractional)
        return [f"fees       {describe_profile(s)}", *([f"warning    {warning}"] if warning else [])]


def check_keys(home: BotHome) -> list[str]:
    problems = []
    if home.keys_dir.exists():
        for key in sorted(home.keys_dir.glob("*.key*")):
            try:
                check_key_permissions(key)
            except ConfigError as exc:
                problems.extend(exc.problems)
    return problems


def ledger_problems(home: BotHome, binding: LedgerBinding) -> list[str]:
    """Boot (so check) refuses a ledger that fails `tbot ledger verify`: every row, balance and hash link, the audit
    chain, and its anchored head (truncated, rolled back, rows deleted), and the head the accounting system
    acknowledged. One verification: what verify, export and boot refuse, they refuse alike."""
    from tbot_bot.accounting.ledger_ack import acknowledged_problems
    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.accounting.ledger_verify import verify_ledger

    anchors = AnchorStore.for_home(home)
    problems = [
        f"{path.name}: {p}"
        for path in (binding.ledger_path, binding.float_ledger_path)
        for p in verify_ledger(path, anchors=anchors, backup_dir=binding.backup_dir)
    ]
    if problems:
        problems[-1] += f"; the ledger fails verification: run `tbot ledger verify --home {home.root}`"
    return problems + [
        f"{binding.ledger_path.name}: {p}" for p in acknowledged_problems(home, binding, ask=True)[0]
    ]


def secret_problems_of_home(home: BotHome, broker_code: str) -> list[str]:
    """Required secrets present and valid for BROKER_NAME; optional ones valid when present."""
    from tbot_bot.support.decrypt_secrets import load_secret_json
    from tbot_bot.support.secret_schema import SPECS, required_secrets, secret_problems

    problems: list[str] = []
    required = required_secrets(broker_code)
    for name, spec in SPECS.items():
        path = home.secret_file(spec.file)
        if not path.exists():
            if name in required:
                problems.append(
                    f"{path} is missing ({spec.purpose}); add it with `tbot secrets set {name} --home {home.root}`"
                )
            continue
        try:
            values = load_secret_json(home, spec.file)
        except ConfigError as exc:
            problems += exc.problems
            continue
        problems += [
            f"{p}; fix it with `tbot secrets set {name} --home {home.root}`"
            for p in secret_problems(spec, values, broker_code)
        ]
    return problems


def live_mode_problems(home: BotHome, settings: BotSettings) -> list[str]:
    """What only a live start needs (a replay brings its own market)."""
    # BROKER_NAME=SIM: the simulated exchange has no live market, so it only runs replays
    if settings.BROKER_NAME == "SIM":
        return [
            "the simulated exchange only replays recorded days: use `tbot start --replay YYYY-MM-DD` "
            "(check it with `tbot check --replay YYYY-MM-DD`) or `tbot demo`"
        ]
    from tbot_bot.support.trading_mode import TradingMode, trading_mode
    from tbot_bot.trading.notifier_bot import home_channels, missing_channel_problem

    # a missing universe is built from the broker at boot (inputs/universe.py)
    # BROKER_NAME (with the broker's paper switch): only live money refuses a silent critical channel
    if trading_mode(home, settings.BROKER_NAME, replay=False) is not TradingMode.LIVE:
        return []  # paper money: a silent alert channel is reported by the notifier's self-check, not refused
    try:
        channels = home_channels(home)
    except ConfigError:
        return []  # an unreadable alert secret is already named by secret_problems_of_home
    # CRITICAL_ALERT_CHANNEL: real money never trades with its critical alerts going nowhere
    problem = missing_channel_problem(settings.CRITICAL_ALERT_CHANNEL, channels, home.root)
    return [problem] if problem else []


def preflight(home: BotHome, *, live: bool = False) -> Preflight:
    """Everything a boot needs before touching the network, checked; one ConfigError lists every problem.

    live=True adds what only a live start needs (a real broker).
    """
    if not home.root.exists():
        raise ConfigError(
            f"bot home {home.root} does not exist; create one with `tbot provision --home {home.root} ...`"
        )
    from tbot_bot.reporting.backup_restore import restore_problems

    problems = restore_problems(home) + check_keys(home)
    from tbot_bot.config.dotenv import read_dotenv

    try:  # the home's plain .env: what `ledger verify`, backups and the dashboard read refuses a start too
        read_dotenv(home)
    except ConfigError as exc:
        problems += [p if str(home.dotenv) in p else f"{home.dotenv}: {p}" for p in exc.problems]
    settings = binding = None
    config_values: dict[str, Any] = {}
    try:
        settings = load_settings(home)
        config_values = settings.model_dump()
    except ConfigError as exc:
        problems += [f"{exc.source}: {p}" if exc.source else p for p in exc.problems]
        config_values = exc.known_values
    try:
        binding = load_binding(home)
    except ConfigError as exc:
        problems += [f"{exc.source}: {p}" if exc.source else p for p in exc.problems]
    if binding is not None:
        # checked on whatever keys parsed, so a bad neighbour never hides a mismatch
        problems += config_binding_problems(config_values, binding)
    float_amount = Decimal(0)
    if binding is not None:
        from tbot_bot.accounting.float_ledger import broker_current_float

        float_amount = broker_current_float(binding.float_ledger_path)
        problems += ledger_problems(home, binding)
        if float_amount <= 0:
            problems.append(
                f"float ledger {binding.float_ledger_path.name} shows no float ({float_amount}); the accounting system must inject one"
            )
    inputs: tuple[str, ...] = ()
    if settings is not None:
        from tbot_bot.inputs.readiness import input_lines

        lines, input_problems = input_lines(home, settings, live=live)
        inputs = tuple(lines)
        problems += input_problems
        problems += secret_problems_of_home(home, settings.BROKER_NAME)
        if live:
            problems += live_mode_problems(home, settings)
    problems = list(dict.fromkeys(problems))  # a loose key is reported once, not per file it protects
    if problems or settings is None or binding is None:
        raise ConfigError(problems or ["cannot load the bot home"], source=str(home.root))
    return Preflight(home, settings, binding, float_amount, inputs)
