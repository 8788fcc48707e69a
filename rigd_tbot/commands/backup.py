"""`tbot backup create|list|restore`: encrypted, timestamped archives of output/ and the injected ledgers."""

from __future__ import annotations

import argparse
from pathlib import Path

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="create, list or restore encrypted backups", description=__doc__)
    actions = p.add_subparsers(dest="backup_action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="archive output/ and the ledgers into backups/")
    add_home_argument(create)
    create.add_argument("--keep", type=int, default=None, help="then keep only the newest N archives")
    listing = actions.add_parser("list", help="list archives in backups/, oldest first")
    add_home_argument(listing)
    restore = actions.add_parser("restore", help="restore an archive into this home (never overwrites files)")
    add_home_argument(restore)
    restore.add_argument("--archive", required=True, help="the .tar.gz.enc archive to restore")
    restore.add_argument(
        "--key-file", default=None, help="backup key (default: storage/keys/backup.key in this home)"
    )
    for parser in (create, listing, restore):
        parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.reporting.auto_backup import create_backup, list_backups, restore_backup
    from tbot_bot.support.utils_bot import utc_now

    home = BotHome.resolve(args.home)
    if args.backup_action == "list":
        existing_home(args.home)
        for archive in list_backups(home):
            print(f"{archive.name}\t{archive.stat().st_size} bytes")
        return 0
    if args.backup_action == "restore":
        key = Path(args.key_file).expanduser().resolve() if args.key_file else None
        restored = restore_backup(Path(args.archive).expanduser().resolve(), home, key_path=key)
        print(f"restored {len(restored)} file(s) into {home.root}; ledgers verify")
        return 0
    from tbot_bot.accounting.accounting_config import load_binding

    binding = load_binding(home, check_files=False)
    ledgers = [p for p in (binding.ledger_path, binding.float_ledger_path, binding.coa_path) if p.exists()]
    archive = create_backup(home, ledgers, now=utc_now(), keep=args.keep)
    print(f"wrote {archive}")
    return 0
