"""Pre-ingestion ledger backups: a consistent copy via SQLite's online backup API, newest N kept.

Name: `{ledger stem}.{YYYYMMDDTHHMMSSffffff}Z.bak.db`, so names sort by time. A copy is written to a
hidden temporary name, fsynced, then renamed: a partial copy never looks like a backup.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import readonly_uri

SUFFIX = ".bak.db"


def backup_name(ledger_path: Path, moment: datetime) -> str:
    return f"{ledger_path.stem}.{moment.astimezone(UTC):%Y%m%dT%H%M%S%f}Z{SUFFIX}"


def list_ledger_backups(ledger_path: Path, backup_dir: Path) -> list[Path]:
    """This ledger's backups in backup_dir, oldest first."""
    if not backup_dir.is_dir():
        return []
    prefix = f"{ledger_path.stem}."
    return sorted(p for p in backup_dir.iterdir() if p.name.startswith(prefix) and p.name.endswith(SUFFIX))


def backup_ledger(ledger_path: Path, backup_dir: Path, keep: int, moment: datetime) -> Path:
    """Copy the ledger into backup_dir and prune to the newest `keep`; LedgerError if the copy fails.

    Called while the writer holds the write lock (BEGIN IMMEDIATE, nothing written yet): in WAL mode this
    separate read connection sees exactly the last committed state, i.e. the ledger before the batch.
    """
    if keep < 1:
        raise LedgerError(f"backup keep count must be at least 1, got {keep}")
    target = backup_dir / backup_name(ledger_path, moment)
    n = 0
    while target.exists():  # two batches within one microsecond: never overwrite an older copy
        n += 1
        target = backup_dir / backup_name(ledger_path, moment).replace(SUFFIX, f"-{n}{SUFFIX}")
    tmp = backup_dir / f".{target.name}.tmp"
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(readonly_uri(ledger_path), uri=True)
        dest = sqlite3.connect(tmp)
        try:
            source.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
            source.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except (OSError, sqlite3.Error) as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise LedgerError(f"ledger backup into {backup_dir} failed: {exc}") from exc
    for old in list_ledger_backups(ledger_path, backup_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return target
