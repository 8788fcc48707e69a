"""Small shared helpers: UTC time, atomic file writes, money conversion."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

# an address the bot may fetch from or send to: http(s) only (never file://), with a host
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+\S*$"
MINOR_UNITS_PER_UNIT = 10_000  # ledger money is stored as integer ten-thousandths of the currency unit


def utc_now() -> datetime:
    """The current time, timezone-aware UTC. Logic should take a Clock instead; this is for the edges."""
    return datetime.now(UTC)


def to_minor(amount: Decimal | int | str) -> int:
    """Decimal amount -> integer ten-thousandths, rounded half-even. Refuses binary floats."""
    if isinstance(amount, float):
        raise TypeError("money must not be a binary float; pass Decimal or str")
    q = (Decimal(amount) * MINOR_UNITS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(q)


def from_minor(minor: int) -> Decimal:
    """Integer ten-thousandths -> Decimal with four places."""
    return (Decimal(minor) / MINOR_UNITS_PER_UNIT).quantize(Decimal("0.0001"))


def atomic_write_bytes(
    path: Path,
    data: bytes | list[bytes | memoryview],
    mode: int = 0o600,
    *,
    durable: bool = True,
    exclusive: bool = False,
) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target. `data` may be a list of
    chunks (written one after another, never joined). `durable=False` skips the fsync: for a cache that is
    checked when read (a file torn by a crash is rebuilt), where waiting for the disk costs more than rebuilding.
    `exclusive=True`: never replace a file; FileExistsError when `path` exists (a hard link, atomic like rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                fh.writelines(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if exclusive:
            _place_new(tmp, path, mode)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# added to the nice value of a research command's helper processes (the chart worker, a cache's background writer):
# what they do can wait for a core the numbers leave idle (a process may lower its own priority, never raise it)
BACKGROUND_NICENESS = 10

# a file under a writer's temporary name (atomic_write_bytes': a leading dot) this old was left by a killed writer:
# a live one renames its file within seconds
STALE_TEMPORARY_S = 3600


def stale_temporary(path: Path, mtime: float, now: float) -> bool:
    """Whether `path` (modified at `mtime`) is a temporary file a killed writer left, as seen at `now`."""
    return path.name.startswith(".") and now - mtime > STALE_TEMPORARY_S


def _place_new(tmp: str, path: Path, mode: int) -> None:
    """Move the written temp file to `path` only if nothing is there: a hard link (atomic); on a file system
    without hard links (FAT, some network and FUSE mounts) the name is reserved (O_EXCL), then replaced."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        os.replace(tmp, path)
    else:
        Path(tmp).unlink()


def claim_numbered(path_for: Callable[[str], Path], claim: Callable[[Path], None]) -> Path:
    """The first of path_for(""), path_for("-1"), path_for("-2"), ... that `claim` takes (it raises FileExistsError
    when another run of the same second has the name): a name two runs can never share."""
    for n in itertools.count():
        path = path_for(f"-{n}" if n else "")
        try:
            claim(path)
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


def atomic_write_text(path: Path, text: str, mode: int = 0o600, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode, durable=durable)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o600, *, durable: bool = True) -> None:
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", mode, durable=durable
    )


# what an interrupted atomic write leaves behind: mkstemp's `.<target>.<8 random chars>` or a `.<target>.tmp`
_ATOMIC_TEMP = re.compile(r"^\..+\.(?:[a-z0-9_]{8}|tmp)$")


def is_atomic_temp(path: Path) -> bool:
    """A temporary file of an atomic write (never a finished file, never worth backing up)."""
    return bool(_ATOMIC_TEMP.match(path.name))


def remove_stale_temp_files(root: Path, *, older_than: float = 0.0, now: float | None = None) -> list[Path]:
    """Delete atomic-write temp files under root whose last change is at least older_than seconds ago."""
    if not root.is_dir():
        return []
    limit = (time.time() if now is None else now) - older_than
    removed = []
    for path in root.rglob(".*"):
        try:
            if is_atomic_temp(path) and path.is_file() and path.stat().st_mtime <= limit:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already (its writer finished or another cleaner got it)
    return removed


def parse_json(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for the parser raised as the ValueError any other malformed JSON is (it
    is a RecursionError otherwise, which no reader of a damaged file expects)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to be read") from None


def readonly_uri(path: Path, *, immutable: bool = False) -> str:
    """The SQLite URI that opens `path` read-only (`sqlite3.connect(..., uri=True)`): percent-encoded, so a home
    whose path holds `?`, `#` or `%` opens its own file (spliced in raw, `?` began the query and `#` a fragment).
    `immutable`: SQLite takes no lock and reads no journal (a file nothing writes, such as a copy)."""
    return f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}"


def sha256_file(path: Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# the dates a person may name: every market, ledger and bar date falls in it, and date arithmetic on its ends
# (the next day, a month's end, nanosecond timestamps) stays valid (9999-12-31 + 1 day did not)
FIRST_DATE, LAST_DATE = date(1900, 1, 1), date(2200, 12, 31)


def date_problem(day: date) -> str | None:
    """Why `day` is no date a person may name (outside FIRST_DATE..LAST_DATE), or None."""
    if FIRST_DATE <= day <= LAST_DATE:
        return None
    return f"{day.isoformat()} is outside the dates allowed ({FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()})"


def time_bound(text: str, *, end: bool) -> datetime:
    """A span's bound a person gives (`--start/--end`, `--since/--until`): a date YYYY-MM-DD (as an end, that whole
    day is included: the next midnight) or an ISO time (naive: UTC), in UTC; its date from FIRST_DATE to LAST_DATE.
    ValueError naming what is allowed."""
    from datetime import time as clock_time

    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, clock_time(0), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO time (2026-11-16T14:30:00Z)"
        ) from None
    problem = date_problem(moment.date())
    if problem:
        raise ValueError(problem)
    return moment + timedelta(days=1) if end and len(text) == 10 else moment


def counted(n: int, noun: str) -> str:
    """`n` and its noun for a person: "1 session", "3 sessions" (nouns that take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def decimal_key(value: Decimal) -> str:
    """One text for an amount however it was written (25000, 25000.00 and the home's 25000.0000 give '25000'):
    what fingerprints and cache keys hash, so an equal value never makes another study or cache entry."""
    return format(value.normalize(), "f")


def iso_date(text: str) -> date:
    """An argparse type: a calendar date YYYY-MM-DD from FIRST_DATE to LAST_DATE, else a usage error saying so
    (2011-02-30 is no date)."""
    import argparse

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None
    problem = date_problem(day)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return day
