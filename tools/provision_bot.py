"""Provision a bot home as the accounting system would. Same as `tbot provision` (see its --help)."""

import sys

from rigd_tbot.cli import main

if __name__ == "__main__":
    sys.exit(main(["provision", *sys.argv[1:]]))
