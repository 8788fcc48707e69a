"""Encrypt a plaintext .env_bot into .env_bot.enc (validated first; the plaintext is removed).

Usage: python tools/encrypt_env_bot.py --home DIR [--keep-plaintext]
"""

import argparse
import sys

from tbot_bot.config.settings_bot import encrypt_plaintext_file
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", default=None, help="bot home (default: $TBOT_HOME, else the current directory)"
    )
    parser.add_argument("--keep-plaintext", action="store_true", help="do not delete the plaintext .env_bot")
    args = parser.parse_args()
    home = BotHome.resolve(args.home)
    try:
        encrypt_plaintext_file(
            home, home.env_bot_plain, actor="encrypt_env_bot", remove_plaintext=not args.keep_plaintext
        )
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    print(f"encrypted {home.env_bot_plain} -> {home.env_bot_enc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
