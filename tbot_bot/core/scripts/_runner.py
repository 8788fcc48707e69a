"""Shared command-line wrapper for the init_*.py scripts (each may be run on its own)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome


def run_init(name: str, init: Callable[[BotHome], Path], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"create or complete the {name} core database")
    parser.add_argument(
        "--home", default=None, help="bot home (default: $TBOT_HOME, else the current directory)"
    )
    args = parser.parse_args(argv)
    try:
        path = init(BotHome.resolve(args.home))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    print(f"{name}: {path}")
    return 0
