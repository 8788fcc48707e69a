#!/usr/bin/env python3
"""Thin wrapper (spec name): `support/sync_to_accounting.py [--home DIR] [--batch-size N]` = `tbot accounting sync`."""

from __future__ import annotations

import sys

from _project_python import tbot_command

if __name__ == "__main__":
    sys.exit(tbot_command("accounting", "sync"))
