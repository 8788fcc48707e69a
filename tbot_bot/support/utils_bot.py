"""Small shared helpers: UTC time, atomic file writes, money conversion."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

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


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o644) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", mode)
