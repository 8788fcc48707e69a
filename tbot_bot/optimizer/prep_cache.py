"""The optimizer's study preparation cached on disk (issue 25): the bars as a signal grid, the execution's
MarketView, VIX and fundamentals, built once per data range and reused by every later study over the same data.

A cache file is keyed by a SHA-256 over everything the preparation depends on: the bytes of the bar files (for a
bar store its manifest, which holds every partition's SHA-256), the VIX and fundamentals files, the date range,
the settings that shape it (MARKET_CALENDAR), and the source of the modules that build it (so an upgrade that
changes how bars become arrays never reads an older preparation). Changed data or settings give another key: the
old file is simply not read. The file is written whole under a temporary name and renamed, and holds the SHA-256
of its payload: a truncated or altered file is rebuilt (with a note on stderr), never trusted.

The payload is a pickle: the cache folder is the bot home's own (data/cache/prepared), written only by this
module, and the checksum is checked before anything is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tbot_bot.backtest import execution
from tbot_bot.backtest import load_historical_data as loader
from tbot_bot.data import bar_store
from tbot_bot.strategy import grid as grid_mod
from tbot_bot.support.utils_bot import atomic_write_bytes

MAGIC = b"TBOTPREP1\n"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Preparation:
    """What a study prepares once, whatever the trial: the cacheable part of PreparedData."""

    grid: grid_mod.SessionGrid
    market: execution.MarketView
    vix_closes: dict[date, float]
    fundamentals: dict[str, Any]


def _file_digest(path: Path, h: Any) -> None:
    h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


# the other sources a preparation's content depends on (read as files: importing them here would be circular)
_ALSO_BUILT_BY = ("optimizer/prepared.py", "strategy/strategy_meta.py", "backtest/backtest_engine.py")


def _code_digest() -> str:
    h = hashlib.sha256()
    for module in (grid_mod, execution, loader, bar_store, sys.modules[__name__]):
        h.update(Path(str(module.__file__)).read_bytes())
    package = Path(str(grid_mod.__file__)).resolve().parents[1]  # tbot_bot/
    for name in _ALSO_BUILT_BY:
        h.update((package / name).read_bytes())
    return h.hexdigest()


def cache_key(
    source: Path, start: date, end: date, calendar: str, vix_path: Path | None, fundamentals_path: Path | None
) -> str:
    """The SHA-256 naming the preparation of `source` over start..end with these side inputs and settings."""
    h = hashlib.sha256()
    h.update(json.dumps([start.isoformat(), end.isoformat(), calendar, _code_digest()]).encode())
    folder = source if source.is_dir() else source.parent
    if bar_store.is_store(source):
        # the manifest records every partition's SHA-256; a read verifies each partition against it
        files = [source / bar_store.MANIFEST]
    else:
        files = loader.bar_files(source)
    side = [vix_path or folder / "vix.csv", fundamentals_path or folder / "fundamentals.json"]
    for path in [*files, *side]:
        h.update(b"\1" + str(path in side).encode())
        if path.is_file():
            _file_digest(path, h)
        else:
            h.update(b"absent")
    return h.hexdigest()


def load(cache_dir: Path, key: str) -> Preparation | None:
    """The cached preparation, or None when there is none or it is damaged (then it is rebuilt)."""
    path = cache_dir / f"{key}.prep"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        print(f"note: study preparation cache {path} unreadable ({exc}); preparing again", file=sys.stderr)
        return None
    # a view, not a copy: the payload is a hundred megabytes for a few months of a hundred symbols
    digest, payload = data[len(MAGIC) : len(MAGIC) + 64], memoryview(data)[len(MAGIC) + 64 :]
    if not data.startswith(MAGIC) or hashlib.sha256(payload).hexdigest().encode() != digest:
        print(f"note: study preparation cache {path} is damaged (checksum); preparing again", file=sys.stderr)
        return None
    try:
        prep = pickle.loads(payload)
    except Exception as exc:  # a payload of an older layout: its checksum was right, its classes changed
        print(f"note: study preparation cache {path} unusable ({exc}); preparing again", file=sys.stderr)
        return None
    return prep if isinstance(prep, Preparation) else None


def store(cache_dir: Path, key: str, prep: Preparation) -> Path | None:
    """Write the preparation (whole, then renamed); a cache that cannot be written only costs the next run time."""
    path = cache_dir / f"{key}.prep"
    payload = pickle.dumps(prep, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        atomic_write_bytes(path, MAGIC + hashlib.sha256(payload).hexdigest().encode() + payload)
    except OSError as exc:
        print(f"note: study preparation not cached in {cache_dir} ({exc})", file=sys.stderr)
        return None
    return path
