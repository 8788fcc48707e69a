"""Daily log rotation with LOG_RETENTION_DAYS: `open.log` last written on an earlier UTC day becomes
`open.2026-11-24.log`; dated files older than the retention window are deleted. Ledgers are never touched.
Runs at boot, daily at 00:05 UTC in a live daemon, and by `tbot logs prune`, over every log directory of the
home (each bot's output logs, logs/web, logs/). A log whose LOG_FORMAT changed is archived the same way by the
writer (trading/logs_bot.py), so one file never mixes JSON and CSV.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tbot_bot.support.path_resolver import BotHome

_DATED_RE = re.compile(r"^(?P<stem>.+)\.(?P<day>\d{4}-\d{2}-\d{2})(?:-\d+)?\.log$")


@dataclass(slots=True)
class RotationResult:
    rotated: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)


def archive_log(active: Path, day: date) -> Path:
    """Rename `x.log` to `x.<day>.log` (or `x.<day>-N.log` when taken); returns the new path."""
    target = active.with_name(f"{active.stem}.{day.isoformat()}.log")
    n = 0
    while target.exists():
        n += 1
        target = active.with_name(f"{active.stem}.{day.isoformat()}-{n}.log")
    active.rename(target)
    return target


def home_log_dirs(home: BotHome) -> list[Path]:
    """Every directory of logs a home has: each bot scope's output logs, logs/web and logs/ itself."""
    dirs = sorted(p for p in home.output_dir.glob("*/logs") if p.is_dir()) if home.output_dir.is_dir() else []
    return dirs + [home.web_logs_dir, home.web_logs_dir.parent]


def rotate_home_logs(home: BotHome, retention_days: int, *, now: datetime) -> RotationResult:
    """rotate_logs over every log directory of the home (boot, the daily job and `tbot logs prune`)."""
    total = RotationResult()
    for logs_dir in home_log_dirs(home):
        one = rotate_logs(logs_dir, retention_days, now=now)
        total.rotated += one.rotated
        total.deleted += one.deleted
    return total


def rotate_logs(logs_dir: Path, retention_days: int, *, now: datetime) -> RotationResult:
    """Rotate the active *.log files of earlier days and delete dated logs older than retention_days."""
    if retention_days < 1:
        raise ValueError(f"LOG_RETENTION_DAYS must be at least 1, got {retention_days}")
    result = RotationResult()
    if not logs_dir.is_dir():
        return result
    today = now.astimezone(UTC).date()
    for active in sorted(logs_dir.glob("*.log")):
        if _DATED_RE.match(active.name) or not active.is_file() or active.stat().st_size == 0:
            continue
        written_on = datetime.fromtimestamp(active.stat().st_mtime, tz=UTC).date()
        if written_on >= today:
            continue
        result.rotated.append(archive_log(active, written_on))
    # LOG_RETENTION_DAYS: dated logs from before this many days ago are removed.
    cutoff = today - timedelta(days=retention_days)
    for dated in sorted(logs_dir.glob("*.log")):
        m = _DATED_RE.match(dated.name)
        if m and date.fromisoformat(m["day"]) < cutoff:
            dated.unlink()
            result.deleted.append(dated)
    return result
