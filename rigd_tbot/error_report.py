"""The command line's one top-level error handler: every exception becomes one readable line and an exit code.

Exit codes follow the one table of the README ("Exit codes"): 2 = refused, a person must fix something
(ConfigError, UsageError, DataError, a read-only file system, permission denied, a file that is not what it
should be, each naming the file); 75 (EX_TEMPFAIL) = a transient fault worth a restart (disk full, a
NetworkError); 1 = a check failed or a service refused (LedgerError, BrokerError; `tbot ledger verify` exits 1 on
a tampered ledger) or a bug. Anything else is a bug: exit 1 with one line, the traceback appended to `logs/cli_errors.log` in the home (or a
per-user file when the home is not writable); `--debug` (or TBOT_DEBUG=1) prints it too.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import traceback
from pathlib import Path

from tbot_bot.errors import (
    BrokerError,
    ConfigError,
    DamagedLedger,
    DataError,
    LedgerError,
    LogicError,
    MachineFault,
    NetworkError,
    TbotError,
)
from tbot_bot.support.machine_faults import EXIT_BUG, EXIT_REFUSED, EXIT_TRANSIENT, os_fault
from tbot_bot.support.utils_bot import utc_now

EXIT_FAILED = EXIT_BUG
EXIT_USER_MUST_ACT = EXIT_REFUSED
ERROR_LOG = "cli_errors.log"


def describe(exc: BaseException) -> tuple[str, int]:
    """(message for stderr, exit code) of a known error category; ("", 0) when the category is unknown."""
    if isinstance(exc, ConfigError):
        return exc.render(), EXIT_USER_MUST_ACT
    if isinstance(exc, DataError):
        return f"{DataError.label}: {exc}", EXIT_USER_MUST_ACT
    if isinstance(exc, MachineFault):
        return str(exc), EXIT_TRANSIENT if exc.transient else EXIT_USER_MUST_ACT
    if isinstance(exc, OSError) and (named := os_fault(exc)) is not None:
        return named
    if isinstance(exc, sqlite3.DatabaseError):
        # no path in SQLite's own message: the code that opens a database names it (machine_faults)
        return (
            f"Database error: a SQLite database of the bot home failed ({exc}); `tbot check` names the file",
            EXIT_USER_MUST_ACT,
        )
    if isinstance(exc, DamagedLedger):  # a person restores or moves the file: a restart would meet it again
        return f"Ledger error: {exc}", EXIT_USER_MUST_ACT
    if isinstance(exc, NetworkError) and exc.transient:
        return f"Network error: {exc} (a transient fault: retry later)", EXIT_TRANSIENT
    if isinstance(exc, NetworkError):
        return f"Refused by the service: {exc} (check the credentials and the account)", EXIT_USER_MUST_ACT
    labels: tuple[tuple[type[TbotError], str], ...] = (
        (LedgerError, "Ledger error"),
        (BrokerError, "Broker error"),
        (LogicError, "Internal error"),
        (TbotError, "Error"),
    )
    for cls, label in labels:
        if isinstance(exc, cls):
            return f"{label}: {exc}", EXIT_FAILED
    return "", 0


def _log_candidates(args: argparse.Namespace | None) -> list[Path]:
    home = getattr(args, "home", None) or os.environ.get("TBOT_HOME") or os.getcwd()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return [
        Path(home).expanduser() / "logs" / ERROR_LOG,
        Path(state) / "rigd_tbot" / ERROR_LOG,
        Path(tempfile.gettempdir()) / f"rigd_tbot-{os.getuid()}-{ERROR_LOG}",
    ]


def write_traceback(exc: BaseException, args: argparse.Namespace | None) -> Path | None:
    """Append the traceback to the first writable error log (created 0600); None when none is writable."""
    text = "".join(traceback.format_exception(exc))
    argv = " ".join(sys.argv[1:])
    for path in _log_candidates(args):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(f"--- {utc_now().isoformat()} tbot {argv}\n{text}")
            return path
        except OSError:
            continue
    return None


def report(exc: BaseException, args: argparse.Namespace | None, *, debug: bool) -> int:
    """Print one line (or the multi-line problem list of a ConfigError) and return the exit code."""
    message, code = describe(exc)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if code:
        print(message, file=sys.stderr)
        return code
    log = write_traceback(exc, args)
    where = f"traceback in {log}" if log else "no log file was writable"
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    print(
        f"Unexpected error: {type(exc).__name__}{': ' + first if first else ''} ({where}; rerun with --debug "
        "to see it)",
        file=sys.stderr,
    )
    return EXIT_FAILED
