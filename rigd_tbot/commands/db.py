"""`tbot db init|verify`: create and check the core system databases under storage/databases/."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.core import init_all_core_databases, verify_all_core_databases


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="core system databases (users, system logs, activity, reset tokens, ...)")
    actions = p.add_subparsers(dest="db_action", metavar="ACTION")
    actions.required = True
    init = actions.add_parser("init", help="create or complete every core database (safe to repeat)")
    add_home_argument(init)
    init.set_defaults(func=run)
    verify = actions.add_parser("verify", help="open each core database and list its tables")
    add_home_argument(verify)
    verify.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    home = existing_home(args.home)  # db init also prepares a folder before provisioning; it must exist
    if args.db_action == "init":
        for path in init_all_core_databases(home):
            print(f"ok {home.relative(path)}")
        return 0
    for name, tables in verify_all_core_databases(home).items():
        print(f"{name}: {', '.join(tables)}")
    return 0
