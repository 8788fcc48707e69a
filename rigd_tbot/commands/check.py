"""`tbot check`: decide whether `tbot start` would run this home, with the same function start uses."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from rigd_tbot.cli import add_home_argument
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import iso_date


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="boot the home as `tbot start` would (config, keys, secrets, universe, broker, self-checks); print a summary",
        description=(
            "Run tbot start's boot without starting: exit 0 with a summary when start would run, else the same "
            "message and exit code start would give (2 for something a human must fix). Pass --replay DATE to "
            "check a replay, as `tbot start --replay DATE` would run it."
        ),
    )
    add_home_argument(p)
    p.add_argument(
        "--replay", type=iso_date, metavar="YYYY-MM-DD", help="check a replay of this day (sim broker)"
    )
    p.add_argument(
        "--data-source",
        type=Path,
        default=None,
        metavar="PATH",
        help="bars for --replay (default: bundled sample)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import ConfigError
    from tbot_bot.runtime.boot import check_readiness
    from tbot_bot.runtime.control import describe, running_trader
    from tbot_bot.runtime.defense import DefenseMonitor

    if args.replay is None and args.data_source is not None:
        raise ConfigError("--data-source only applies with --replay")
    home = BotHome.resolve(args.home)
    # another holder of the lock (a restore, another check's boot) is met by the boot's own refusal, as start's
    if args.replay is None and (holder := running_trader(home)) is not None:
        # the upgrade check (README): the running service holds the run lock a boot takes, and stopping it
        # closes every position; what a new version may refuse is the configuration, checked without the lock
        load_settings(home)
        print(
            f"config     OK for this version; a supervisor runs in {home.root} ({describe(holder)}): only the "
            "configuration was checked (keys, secrets, broker and universe are checked when the service restarts)"
        )
        return 0
    result = check_readiness(home, replay_day=args.replay, data_source=args.data_source)
    try:
        if result.preflight is not None:  # boot always records it
            # the float the run would trade with (the accounting API's, when configured)
            settings, journal = result.settings, result.journal

            def carried(
                day: date,
            ) -> str | None:  # a defense mode the day starts in, as `tbot start` finds it
                return DefenseMonitor(journal, settings.MARKET_CALENDAR, day).carried_reason()

            print(
                replace(result.preflight, broker_current_float=result.broker_current_float).render(
                    replay_day=args.replay, carried_defense=carried
                )
            )
        from tbot_bot.support.trading_mode import trading_mode

        mode = trading_mode(result.home, result.settings.BROKER_NAME, replay=args.replay is not None)
        shown = f"{mode.upper()} of {args.replay}" if args.replay else mode.upper()
        print(f"mode       {shown}")
        print(f"boot       OK ({shown}): broker {result.broker.name} answered, every self-check passed")
    finally:
        result.close()
    return 0
