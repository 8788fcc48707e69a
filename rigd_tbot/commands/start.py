"""`tbot start`: run the supervisor — live on the wall clock, or `--replay DATE` against the sim exchange."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rigd_tbot.cli import add_home_argument, cli_actor
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import iso_date

MIN_SPEED, MAX_SPEED = 0.01, 1_000_000.0  # 0.01: a replay day in under a month; above 1e6 use max


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    allowed = f"use max or a number from {MIN_SPEED:g} to {MAX_SPEED:,.0f} (times real time)"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed {text!r}: {allowed}") from None
    # nan and inf parse as floats; 0, negatives and 1e-300 would never finish
    if not math.isfinite(value) or not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"--speed {text!r}: {allowed}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "start",
        help="run the trading supervisor (live, or --replay a recorded day)",
        description=(
            "Boot (decrypt, validate, self-checks), reconcile with the broker, then run the strategy windows. "
            "Live: APScheduler triggers the windows on TRADING_DAYS at START_TIME_* in WINDOW_TIMEZONE. With --replay the "
            "same supervisor runs one recorded day against the simulated exchange. Stop with `tbot stop` or SIGTERM."
        ),
    )
    add_home_argument(p)
    p.add_argument(
        "--replay",
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="replay this day from recorded bars (sim broker)",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="max|N",
        help="replay speed: max (default) or N x real time",
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
    from tbot_bot.runtime.main import Supervisor

    if args.replay is None and (args.speed is not None or args.data_source is not None):
        raise ConfigError("--speed and --data-source only apply with --replay")
    home = BotHome.resolve(args.home)
    from rigd_tbot.display import home_zone
    from tbot_bot.runtime.control import request_start, running_trader, start_answer

    holder = running_trader(home)
    # a supervisor already up (DESIGN §8; with --replay D, a replay of D): stopped, Start resumes it; trading, there
    # is nothing to start (a second process would be refused by the run lock, whose advice ends the first). Another
    # holder of the lock (a restore, `tbot check`, a flatten) is met by the lock's own refusal below
    if holder is not None and (args.replay is None or holder.get("mode") == f"replay {args.replay}"):
        ok, message = start_answer(home, home_zone(home))
        if ok:
            request_start(home, cli_actor())
        print(message)
        return 0
    code = Supervisor(home, replay_day=args.replay, speed=args.speed, data_source=args.data_source).run()
    if args.replay is not None:
        from rigd_tbot.commands.demo import render_demo_table

        # a replay says what happened, with the same table as `tbot demo`
        print(render_demo_table(home, args.replay, home_label="bot home"))
    return code
