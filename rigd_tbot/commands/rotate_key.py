"""`tbot rotate-key env`: re-encrypt the configuration with a new key, with no window where neither works."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rotate-key",
        help="replace a Fernet key and re-encrypt what it protects",
        description=(
            "Rotate a key: the old key is kept as <key>.prev until every file it protects has been "
            "re-encrypted with the new key, so some key always decrypts each file."
        ),
    )
    add_home_argument(p)
    p.add_argument("purpose", choices=["env", "broker", "identity"], help="which key to rotate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.config.security_bot import rotate_key
    from tbot_bot.support.decrypt_secrets import SECRET_KEY_PURPOSE

    home = BotHome.resolve(args.home)
    if args.purpose == "env":
        files = [home.env_bot_enc]
    else:
        files = [
            home.secret_file(name) for name, purpose in SECRET_KEY_PURPOSE.items() if purpose == args.purpose
        ]
    fingerprint = rotate_key(home.key_file(args.purpose), files)
    done = ", ".join(p.name for p in files if p.exists())
    print(f"rotated {args.purpose}.key (new fingerprint {fingerprint}); re-encrypted: {done}")
    return 0
