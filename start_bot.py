"""Root shim kept from the owner's layout: `python start_bot.py` is `tbot start`."""

import sys

from rigd_tbot.cli import main

sys.exit(main(["start", *sys.argv[1:]]))
