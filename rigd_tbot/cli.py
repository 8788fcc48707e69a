"""The `tbot` command line. Each sub-command lives in its own module under `rigd_tbot/commands/`.

A command module exposes `register(subparsers)`; it adds its parser and sets `func=handler` where
`handler(args) -> int`. Every command takes `--home DIR` (else $TBOT_HOME, else the current directory).
Our own errors become a readable message and an exit code, never a traceback: ConfigError exits 2,
any other TbotError exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from tbot_bot.errors import ConfigError, TbotError

from . import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tbot",
        description="RIGD TradeBot: headless intraday trading daemon, its books, backtests and tools.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def add_home_argument(parser: argparse.ArgumentParser) -> None:
    """The shared --home option; commands call this so every one of them takes it."""
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=None,
        help="bot home directory (default: $TBOT_HOME, else the current directory)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except TbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`tbot config show | head`): stop quietly, as Unix tools do
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe until exit
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
