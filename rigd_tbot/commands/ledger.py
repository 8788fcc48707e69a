"""`tbot ledger verify|float`: check the injected bot ledger (exit 0 ok, 1 naming each failing row)."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ledger", help="verify the bot ledger or show the float", description=__doc__)
    actions = p.add_subparsers(dest="ledger_action", metavar="ACTION")
    actions.required = True
    verify = actions.add_parser(
        "verify",
        help="schema version, balance of every transaction, audit hash chain, FITID uniqueness, COA",
    )
    add_home_argument(verify)
    verify.set_defaults(func=run)
    show_float = actions.add_parser("float", help="print broker_current_float (the float-ledger balance)")
    add_home_argument(show_float)
    show_float.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.coa import coa_matches
    from tbot_bot.accounting.float_ledger import broker_current_float
    from tbot_bot.accounting.ledger_verify import verify_ledger

    binding = load_binding(BotHome.resolve(args.home), check_files=False)
    if args.ledger_action == "float":
        print(f"{broker_current_float(binding.float_ledger_path)} {binding.currency_code}")
        return 0
    problems = [f"{binding.ledger_path.name}: {p}" for p in verify_ledger(binding.ledger_path)]
    problems += [f"{binding.float_ledger_path.name}: {p}" for p in verify_ledger(binding.float_ledger_path)]
    problems += [f"{binding.coa_path.name}: {p}" for p in coa_matches(binding.coa_path)]
    if problems:
        for problem in problems:
            print(problem)
        print(f"FAILED: {len(problems)} problem(s)")
        return 1
    print(f"OK: {binding.ledger_path.name}, {binding.float_ledger_path.name} and the COA verify")
    return 0
