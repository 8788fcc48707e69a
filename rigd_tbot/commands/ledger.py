"""`tbot ledger verify|float|close`: check the injected bot ledger (exit 0 ok, 1 naming each failing row), show the
float, or close a month into 3040 Accumulated Profit."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ledger", help="verify the bot ledger, show the float, close a period", description=__doc__
    )
    actions = p.add_subparsers(dest="ledger_action", metavar="ACTION")
    actions.required = True
    verify = actions.add_parser(
        "verify",
        help="schema version, balance of every transaction, audit hash chain, one audit row per transaction, "
        "chain head against its anchor (LEDGER_STATUS.db and backup sidecar), FITID uniqueness, COA",
    )
    add_home_argument(verify)
    verify.set_defaults(func=run)
    show_float = actions.add_parser("float", help="print broker_current_float (the float-ledger balance)")
    add_home_argument(show_float)
    show_float.set_defaults(func=run)
    close = actions.add_parser(
        "close",
        help="close a month: income and expense into 3040 Accumulated Profit; later postings dated in it are refused",
    )
    close.add_argument("--period", required=True, metavar="YYYY-MM", help="the month to close, e.g. 2011-01")
    add_home_argument(close)
    close.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.coa import coa_matches
    from tbot_bot.accounting.float_ledger import broker_current_float
    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.accounting.ledger_verify import verify_ledger

    home = BotHome.resolve(args.home)
    binding = load_binding(home, check_files=False)
    if args.ledger_action == "float":
        print(f"{broker_current_float(binding.float_ledger_path)} {binding.currency_code}")
        return 0
    if args.ledger_action == "close":
        return _close(home, binding, args.period)
    anchors = AnchorStore.for_home(home)
    problems = []
    for path in (binding.ledger_path, binding.float_ledger_path):
        problems += [
            f"{path.name}: {p}" for p in verify_ledger(path, anchors=anchors, backup_dir=binding.backup_dir)
        ]
    problems += [f"{binding.coa_path.name}: {p}" for p in coa_matches(binding.coa_path)]
    if problems:
        for problem in problems:
            print(problem)
        print(f"FAILED: {len(problems)} problem(s)")
        return 1
    print(f"OK: {binding.ledger_path.name}, {binding.float_ledger_path.name} and the COA verify")
    return 0


def _close(home: BotHome, binding, period: str) -> int:  # type: ignore[no-untyped-def]
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.accounting.ledger_period import period_bounds
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import ConfigError, LedgerError

    try:
        period_bounds(period)
        keep = load_settings(home).LEDGER_BACKUP_KEEP
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    except LedgerError as exc:
        print(f"error: {exc}")
        return 2
    try:
        result, entry = LedgerWriter.for_home(home, binding.ledger_path, binding, keep).close_period(
            period, actor="tbot ledger close"
        )
    except LedgerError as exc:
        print(f"refused: {exc}")
        return 1
    if entry is None:
        print(f"closed {period}: no income or expense to close; postings dated in {period} are now refused")
    else:
        print(
            f"closed {period}: {entry.fitid} moved {entry.pnl} {binding.currency_code} of profit into 3040 "
            f"Accumulated Profit; postings dated in {period} or earlier are now refused"
        )
    return 0
