"""`tbot backtest`: run one strategy, or all the day's windows together, over historical 1-minute bars (DESIGN §11); no ledger writes."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument


def register(sub: argparse._SubParsersAction) -> None:
    from tbot_bot.backtest.backtest_engine import add_arguments

    p = sub.add_parser(
        "backtest",
        help="backtest open, mid, close or all (the day's windows together) on historical 1-minute bars",
    )
    add_arguments(p, underscore=False)
    add_home_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.backtest.backtest_engine import run_cli

    return run_cli(args)
