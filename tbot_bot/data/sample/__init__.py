"""Sample bars, VIX closes and fundamentals for the demo and tests; built by build_sample.py."""

from __future__ import annotations

import gzip
from datetime import date
from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def sample_days() -> tuple[date, ...]:
    """The sessions the bundled sample has bars for (SPY trades in every one), oldest first."""
    days: set[str] = set()
    with gzip.open(_HERE / "spy_1min.csv.gz", "rt", encoding="utf-8") as fh:
        next(fh, None)
        for line in fh:
            days.add(line[:10])
    return tuple(date.fromisoformat(d) for d in sorted(days))
