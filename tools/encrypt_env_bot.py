"""Encrypt a plaintext .env_bot into .env_bot.enc (validated first; the plaintext is removed).

Usage: python tools/encrypt_env_bot.py --home DIR [--keep-plaintext]
Same as `tbot config encrypt`.
"""

import sys

from rigd_tbot.cli import main

if __name__ == "__main__":
    sys.exit(main(["config", "encrypt", *sys.argv[1:]]))
