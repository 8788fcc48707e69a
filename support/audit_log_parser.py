#!/usr/bin/env python3
"""Thin wrapper (spec name): `support/audit_log_parser.py [--home DIR] [--since D] [--until D] [--strategy S]
[--level L] [--json]` = `tbot logs summary ...`."""

from __future__ import annotations

import sys

from _project_python import tbot_command

if __name__ == "__main__":
    sys.exit(tbot_command("logs", "summary"))
