"""`tbot version`: the version tag from VERSION.md."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument
from tbot_bot.config.version import read_version_tag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="print the version tag (from VERSION.md)")
    # taken like every command's (scripts pass it to all), though the version is the installed code's, not the home's
    add_home_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(read_version_tag())
    return 0
