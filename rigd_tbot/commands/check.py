"""`tbot check`: validate a bot home and print a one-screen summary."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="validate config, secrets, identity and ledger binding; print a summary",
        description="Exit 0 with a summary when the home can boot; exit 2 naming every problem otherwise.",
    )
    add_home_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.preflight import preflight

    report = preflight(BotHome.resolve(args.home))
    print(report.render())
    return 0
