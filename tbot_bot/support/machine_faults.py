"""Faults of the machine named as such, with the exit code of the one table (README, "Exit codes").

An OSError or a SQLite error says what failed in the library's words ("disk I/O error", "file is not a
database", Errno 30); `os_fault` and `database_fault` say it in the operator's: which file, whether the disk is
full, the file system read-only, the permission missing or the file not what it should be, and what to do.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tbot_bot.errors import ConfigError, MachineFault, TbotError
from tbot_bot.support.utils_bot import readonly_uri

EXIT_OK = 0
EXIT_BUG = 1  # also: a check that found a problem (`tbot ledger verify`, `tbot check`)
EXIT_REFUSED = 2  # configuration, input, tampering, a read-only home: systemd must not restart
EXIT_TRANSIENT = 75  # EX_TEMPFAIL: disk full, broker unreachable at boot; a restart may succeed

LOW_SPACE_BYTES = 1 << 20  # below this much free space a failed write is blamed on a full disk


def os_fault(exc: OSError, path: str | Path | None = None) -> tuple[str, int] | None:
    """(message, exit code) of an OSError about a file; None when it names no file and no known machine fault."""
    # a rename or link names two files: the second (the target) is the one in the way
    target = (
        exc.filename2 if isinstance(exc, IsADirectoryError | FileExistsError | NotADirectoryError) else None
    )
    where = str(path or target or exc.filename or "") or None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"Disk full: cannot write {where or 'to the bot home'} (no space left on device); free space on "
            "that file system, then run it again",
            EXIT_TRANSIENT,
        )
    if exc.errno == errno.EROFS:
        return (
            f"Read-only file system: cannot write {where or 'the bot home'}; the bot home must be writable "
            "(remount it, or list it in the systemd unit's ReadWritePaths)",
            EXIT_REFUSED,
        )
    if isinstance(exc, PermissionError):
        return (
            f"Permission error: cannot access {where or 'a file of the bot home'} (permission denied); run as "
            "the bot's user or fix the owner and mode of the bot home",
            EXIT_REFUSED,
        )
    if where is None:
        return None
    if isinstance(exc, IsADirectoryError):
        return f"File error: {where} is a directory where a file is expected; move it away", EXIT_REFUSED
    if isinstance(exc, NotADirectoryError):
        return f"File error: part of {where} is a file where a directory is expected", EXIT_REFUSED
    if isinstance(exc, FileExistsError) and Path(where).is_file() and exc.filename2 is None:
        # mkdir of a folder whose name a file holds (an --out or --home through a file)
        return f"File error: {where} is a file where a directory is expected; move it away", EXIT_REFUSED
    return f"File error: {where}: {exc.strerror or type(exc).__name__}", EXIT_REFUSED


def _writable_problem(path: Path) -> OSError | None:
    """Why the folder of `path` cannot be written (read-only file system, permission), if it cannot."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    except OSError:
        return None
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return None


def unreadable(path: Path) -> OSError | None:
    """Why the file at `path` cannot be read (a permission), if it exists and cannot."""
    try:
        with path.open("rb"):
            return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc


# free space below which the operator is warned (`tbot check`, and an alert each session): 5% of the file system,
# at least 1 GiB and at most 10 GiB (a 2 TB disk is not alerted about daily with 100 GB free); the bot writes tens
# of megabytes a session, so the warning comes weeks before a write fails
LOW_DISK_WARN_SHARE = 0.05
LOW_DISK_WARN_MIN_BYTES = 1 << 30
LOW_DISK_WARN_MAX_BYTES = 10 << 30


def disk_space_warning(home: Path) -> str | None:
    """What to tell the operator when the file system holding `home` is nearly full (None: enough room). A full
    disk stops the bot at its next write (the journal, the ledger), possibly with positions open."""
    try:
        usage = shutil.disk_usage(home)
    except OSError:
        return None  # no home yet: nothing written there to run out of room for
    floor = min(LOW_DISK_WARN_MAX_BYTES, max(LOW_DISK_WARN_MIN_BYTES, int(usage.total * LOW_DISK_WARN_SHARE)))
    if usage.free >= floor:
        return None
    return (
        f"the file system of {home} has {usage.free / 2**30:.2f} GiB free of {usage.total / 2**30:.1f} GiB (warned "
        f"under {floor / 2**30:.2f} GiB): the bot stops at its first write that finds it full (a session writes tens "
        "of MB); free space, e.g. old backups or data/cache/bars"
    )


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < LOW_SPACE_BYTES
    except OSError:
        return False


def source_side_fault(path: Path) -> bool:
    """The folder of `path` cannot be written (read-only, permission) or its disk is full."""
    return _writable_problem(path) is not None or _disk_full(path)


_FILE_FAULTS = ("disk is full", "disk i/o error", "readonly", "unable to open", "not a database", "malformed",
                "file is encrypted", "database is locked")  # fmt: skip


def is_file_fault(exc: sqlite3.Error) -> bool:
    """A fault of the database file or its disk, or a lock another process held past the busy timeout (not a
    constraint or a query)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(f in str(exc).lower() for f in _FILE_FAULTS)


def is_damage(exc: sqlite3.Error) -> bool:
    """A database file that is not (or no longer) SQLite: overwritten, truncated, damaged."""
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "file is encrypted" in text


def damaged_text(exc: sqlite3.Error, path: Path) -> str:
    """What a damaged database file is, named, and what to do."""
    return (
        f"{path} is not a readable SQLite database ({exc}): it was overwritten or damaged; restore it from a "
        "backup (`tbot backup restore`) or move it away"
    )


def database_fault(exc: sqlite3.Error, path: Path) -> TbotError:
    """The error to raise instead of a SQLite file fault (`is_file_fault`) on the database file `path`."""
    text = str(exc).lower()
    if "database is locked" in text:
        return MachineFault(
            f"{path} is locked by another process ({exc}): a `sqlite3` shell or a copy tool holding it open; "
            "close it, then start again",
            transient=True,
        )
    if "disk is full" in text or ("disk i/o error" in text and _disk_full(path)):
        message, _ = os_fault(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path) or ("", 0)
        return MachineFault(message, transient=True)
    if "readonly" in text or "unable to open" in text or "disk i/o error" in text:
        # a file that cannot even be read (its mode, its owner) is named as that, before the folder's writability
        cause = (unreadable(path) if "unable to open" in text else None) or _writable_problem(path)
        if cause is not None:
            message, code = os_fault(cause) or ("", 0)
            return MachineFault(message, transient=code == EXIT_TRANSIENT)
    if is_damage(exc):
        return ConfigError(damaged_text(exc, path))
    return MachineFault(f"Database error on {path}: {exc}", transient=False)


@contextmanager
def named_database_faults(path: Path) -> Iterator[None]:
    """Inside the block, a SQLite fault of the file or its disk (`is_file_fault`) leaves as `database_fault(exc,
    path)`: named with the file; any other error passes as it is."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if not is_file_fault(exc):
            raise
        raise database_fault(exc, path) from exc


def readable_database(path: Path) -> None:
    """Refuse a SQLite file that cannot be read (damaged) as its writer would, named; nothing is written. A missing
    file is fine (its writer creates it). Read as immutable (no lock, no -wal): only for a file no process writes
    now (`tbot check` holds the run lock)."""
    if not path.exists():
        return
    # immutable: a read that leaves no -wal/-shm beside the file (the check writes nothing)
    conn = sqlite3.connect(readonly_uri(path, immutable=True), uri=True)
    try:
        with named_database_faults(path):
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()
