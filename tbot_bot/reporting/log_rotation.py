"""Daily log rotation with LOG_RETENTION_DAYS: `open.log` last written on an earlier UTC day becomes
`open.2026-11-24.log`; dated files older than the retention window are deleted. Ledgers are never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

_DATED_RE = re.compile(r"^(?P<stem>.+)\.(?P<day>\d{4}-\d{2}-\d{2})(?:-\d+)?\.log$")


@dataclass(slots=True)
class RotationResult:
    rotated: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)


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
        target = logs_dir / f"{active.stem}.{written_on.isoformat()}.log"
        n = 0
        while target.exists():
            n += 1
            target = logs_dir / f"{active.stem}.{written_on.isoformat()}-{n}.log"
        active.rename(target)
        result.rotated.append(target)
    # LOG_RETENTION_DAYS: dated logs from before this many days ago are removed.
    cutoff = today - timedelta(days=retention_days)
    for dated in sorted(logs_dir.glob("*.log")):
        m = _DATED_RE.match(dated.name)
        if m and date.fromisoformat(m["day"]) < cutoff:
            dated.unlink()
            result.deleted.append(dated)
    return result
