"""`tbot ofx export`: OFX 2.2 investment statement of the injected bot ledger (refused if it fails verify)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from rigd_tbot.cli import add_home_argument, existing_home, replaceable_output
from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import date_problem


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ofx", help="export the bot ledger as OFX", description=__doc__)
    actions = p.add_subparsers(dest="ofx_action", metavar="ACTION")
    actions.required = True
    export = actions.add_parser(
        "export", help="write an OFX investment statement for one UTC day or all of it"
    )
    add_home_argument(export)
    which = export.add_mutually_exclusive_group()
    which.add_argument("--date", metavar="YYYY-MM-DD", help="only transactions posted on this UTC day")
    which.add_argument("--all", action="store_true", help="every transaction (the default)")
    export.add_argument("--out", required=True, metavar="FILE", help="where to write the .ofx file")
    export.add_argument(
        "--account-id", default=None, help="OFX ACCTID (default: the bot scope, if at most 22 chars)"
    )
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.generate_ofx import export_ofx, statement_ids

    day = None
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise ConfigError(f"--date {args.date!r} must be YYYY-MM-DD") from None
        if problem := date_problem(day):
            raise ConfigError(f"--date {problem}")
    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.support.trading_mode import trading_mode

    home = existing_home(args.home)
    target = _output_path(Path(args.out))
    binding = load_binding(home, check_files=False)
    broker_id, account_id = statement_ids(binding)
    out = export_ofx(
        binding.ledger_path,
        target,
        day=day,
        broker_id=broker_id,
        account_id=args.account_id or account_id,
        anchors=AnchorStore.for_home(home),
        backup_dir=binding.backup_dir,
        mode=trading_mode(home, broker_id),
    )
    print(f"wrote {out}")
    return 0


def _output_path(path: Path) -> Path:
    """--out as a statement may be written there: into an existing folder, over nothing or over an earlier
    statement (a re-export), never over another file (a mistyped path would replace the accountant's CSV)."""
    return replaceable_output(
        path,
        "an OFX statement",
        lambda head: head.startswith(b"OFXHEADER") or (head.startswith(b"<?xml") and b"OFX" in head),
        "statement.ofx",
    )
