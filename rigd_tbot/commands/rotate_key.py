"""`tbot rotate-key NAME`: replace one purpose key and re-encrypt (or re-sign) everything it protects.

The old key is kept as `<key>.prev` until every file it protects has been re-encrypted with the new key, so at
every instant some key on disk decrypts each file; if the rotation is killed, run it again: it finishes the
interrupted one first. `env` also re-encrypts every copy under env_bot.versioned/; `backup` re-encrypts the
local archives and keeps the old key (retired) for copies already off-site; `ledger` re-signs the ledgers'
chain-head anchors; `login` ends every dashboard session.
"""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.support.path_resolver import KEY_PURPOSES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rotate-key", help="replace a Fernet key and re-encrypt what it protects", description=__doc__
    )
    add_home_argument(p)
    p.add_argument(
        "purpose", choices=KEY_PURPOSES, metavar="NAME", help=f"which key: {', '.join(KEY_PURPOSES)}"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.config.key_rotation import rotate

    home = existing_home(args.home)
    report = rotate(home, args.purpose)
    done = ", ".join(home.relative(p) for p in report.reencrypted) or "no files"
    print(f"rotated {args.purpose}.key (new fingerprint {report.fingerprint}); re-encrypted: {done}")
    for note in report.notes:
        print(f"note: {note}")
    for skipped in report.skipped:
        print(f"warning: left unreadable {skipped}")
    return 0
