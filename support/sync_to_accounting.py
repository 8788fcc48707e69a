#!/usr/bin/env python3
"""Thin wrapper (spec name): `support/sync_to_accounting.py [--home DIR] [--batch-size N]` = `tbot accounting sync`."""

from __future__ import annotations

import sys

from rigd_tbot.cli import main

if __name__ == "__main__":
    sys.exit(main(["accounting", "sync", *sys.argv[1:]]))
