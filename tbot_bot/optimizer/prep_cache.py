"""The optimizer's study preparation cached on disk (issue 25): the bars as a signal grid, the execution's
MarketView, VIX and fundamentals, built once per data range and reused by every later study over the same data.

A cache file is keyed by a SHA-256 over everything the preparation depends on: the bytes of the bar files (for a
bar store every partition's name and SHA-256, as its manifest records them), the VIX and fundamentals files, the date range,
the settings that shape it (MARKET_CALENDAR), and the source of the modules that build it (so an upgrade that
changes how bars become arrays never reads an older preparation). Changed data or settings give another key: the
old file is simply not read. The file is written whole under a temporary name and renamed, and holds the CRC-32
of every 8 MB after its header (checked on all cores at once): a truncated or altered file is rebuilt (with a
note on stderr), never trusted.

The payload is a pickle (protocol 5) whose arrays are stored apart, each aligned, after it: a load maps the file
(copy-on-write) and the arrays are views of the mapping, so nothing is read twice or copied (the payload is a
hundred megabytes for a few months of a hundred symbols, and reading, hashing and unpickling it whole took a
quarter of a second, a tenth of a short study). Pickle is acceptable here: the cache folder is the bot home's
own (data/cache/prepared), written only by this module, and the checksum is checked before anything is
unpickled. CRC-32 rather than SHA-256: it guards against a torn or damaged file, which is all a cache needs,
at a third of the cost.

A file is written by a forked process while the study goes on (writing a hundred megabytes took 0.4 s, a third
of a short study's fixed costs): the child holds the parent's arrays copy-on-write, so nothing is copied to hand
them over. A read of the same file in this process first waits for its writer; `wait_for_writes` waits for them
all (the runner does, after the results are on disk); at exit Python's multiprocessing joins them too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import mmap
import multiprocessing
import os
import pickle
import re
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tbot_bot.backtest import execution
from tbot_bot.backtest import load_historical_data as loader
from tbot_bot.data import bar_store
from tbot_bot.strategy import grid as grid_mod
from tbot_bot.support.utils_bot import BACKGROUND_NICENESS, atomic_write_bytes, stale_temporary

MAGIC = b"TBOTPREP3\n"
_ALIGN = 64  # each array starts on a 64-byte boundary of the file (and so of the mapping)
_CHUNK = 1 << 20
# the body's CRC-32 is kept per span of this many bytes, so a read checks the spans on every core at once (zlib
# releases the GIL): a hundred-megabyte preparation is checked in 27 ms on two cores instead of 51 ms
_CRC_SPAN = 8 << 20


@dataclass(frozen=True, slots=True)
class Preparation:
    """What a study prepares once, whatever the trial: the cacheable part of PreparedData."""

    grid: grid_mod.SessionGrid
    market: execution.MarketView
    vix_closes: dict[date, float]
    fundamentals: dict[str, Any]
    # from a bar store: each partition read, its size and modification time then (bar_store.partition_stats); a hit
    # re-reads only a partition changed since, and refuses it when its bytes are no longer the manifest's
    store_stats: dict[str, tuple[int, int]] | None = None


def _file_digest(path: Path, h: Any) -> None:
    h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


# the other sources a preparation's content depends on (read as files: importing them here would be circular)
_ALSO_BUILT_BY = (
    "optimizer/prepared.py", "strategy/strategy_meta.py", "backtest/backtest_engine.py",
    # the session indicators cached beside the preparation (IndicatorCache) are computed by these
    "strategy/signals.py", "enhancements/adx_filter.py", "enhancements/bollinger_confluence.py",
)  # fmt: skip


@functools.cache
def package_digest() -> str:
    """A SHA-256 over the source of every module of tbot_bot (~14 ms, once per process): the key part of a cached
    *result* (BaseResults), which any module of the evaluation may change."""
    h = hashlib.sha256()
    package = Path(str(grid_mod.__file__)).resolve().parents[1]  # tbot_bot/
    for path in sorted(package.rglob("*.py")):
        h.update(f"{path.relative_to(package)}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class BaseResults:
    """What the base settings give over a study's data, kept beside the preparation: the evidence floor's count
    (their trades over the whole range) and the choosing step's metrics on out-of-sample blocks. Each is a pure
    function of the data, the trading settings, the float, the seed, the code and (for blocks) the sessions, so a
    later study over the same data and settings reads it instead of evaluating the base settings again (0.06-0.09 s
    and ~0.02 s of a warm study). Any change of those is another file; a damaged file is evaluated again. Written
    here and now (small), in the format of the preparation (CRC-checked before it is unpickled)."""

    cache_dir: Path
    key: str  # the preparation's

    def _path(self, kind: str, identity: Any) -> Path:
        digest = hashlib.sha256(json.dumps([identity, package_digest()], sort_keys=True).encode()).hexdigest()
        return self.cache_dir / f"{self.key}.{kind}-{digest[:32]}"

    def load(self, kind: str, identity: Any) -> Any:
        path = self._path(kind, identity)
        _wait(path)
        held = _read(path, f"base settings' {kind}")
        # the identity is stored with the value: a digest collision or a stray file is never taken for it
        return held[1] if isinstance(held, tuple) and len(held) == 2 and held[0] == identity else None

    def store(self, kind: str, identity: Any, value: Any) -> None:
        _write(self._path(kind, identity), (identity, value), f"base settings' {kind}")


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
    files: list[Path] = []
    if bar_store.is_store(source):
        # what the store holds, by content: every partition's name and SHA-256 (a read verifies each file against
        # it; a hit checks the range's files are there whole, PreparedData). Not the manifest's bytes: its record
        # of imports (paths, times) would make a re-import of the same bars another key
        held = bar_store.load_manifest(source)["partitions"]
        h.update(json.dumps(sorted((rel, e["sha256"]) for rel, e in held.items())).encode())
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


def _padding(n: int) -> bytes:
    return b"\0" * (-n % _ALIGN)


def _span_crcs(body: memoryview) -> list[int]:
    """The CRC-32 of each _CRC_SPAN of `body`, computed on every core (one span: here)."""
    spans = [body[i : i + _CRC_SPAN] for i in range(0, len(body), _CRC_SPAN)]
    workers = min(len(spans), os.cpu_count() or 1)
    if workers < 2:
        return [zlib.crc32(span) for span in spans]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(zlib.crc32, spans))


# Linux's MADV_POPULATE_READ (5.14+; Python 3.11 has no name for it): map every page of a file at once
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)


def _populate(mapped: mmap.mmap) -> None:
    """Map every page of a cached file into this process in one call, instead of a fault per 4 kB page as the
    checksum and the trials touch them (28,000 faults, ~75 ms, for a hundred megabytes on the 2-core machine;
    the call takes ~3 ms). A kernel without it leaves the pages to fault in as before."""
    try:
        mapped.madvise(_POPULATE_READ)
    except (OSError, ValueError):
        pass


def populate_after_fork(array: Any) -> None:
    """In a forked worker: the pages of the cached file `array` is a view of, if it is one (a fork does not carry
    a file mapping's page tables over, so each worker would fault them in one by one again)."""
    held = array
    for _ in range(8):  # ndarray -> memoryview (a pickle buffer) -> the mapping
        if isinstance(held, mmap.mmap):
            _populate(held)
            return
        held = held.obj if isinstance(held, memoryview) else getattr(held, "base", None)
        if held is None:
            return


def _read(path: Path, what: str) -> Any:
    """The object a file written by _write holds, or None when there is none or it is damaged (noted)."""
    try:
        with path.open("rb") as fh:
            # copy-on-write: the arrays are writable views; pages are read as they are touched
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: an empty file cannot be mapped
        print(f"note: {what} cache {path} unreadable ({exc}); preparing again", file=sys.stderr)
        return None
    _populate(mapped)
    view = memoryview(mapped)
    try:
        head = len(MAGIC) + 8
        size = int.from_bytes(view[len(MAGIC) : head], "little") if len(view) >= head else -1
        header = (
            json.loads(bytes(view[head : head + size])) if view[: len(MAGIC)] == MAGIC and size > 0 else {}
        )
        start = head + size + len(_padding(head + size))
        lengths = [int(header["meta"]), *map(int, header["buffers"])]
        # the lengths the header gives must tile the rest of the file exactly, and the rest match its CRC
        whole = start + sum(n + len(_padding(n)) for n in lengths) == len(view)
        intact = whole and _span_crcs(view[start:]) == header["crcs"]
    except (ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        print(f"note: {what} cache {path} is damaged (checksum); preparing again", file=sys.stderr)
        return None
    spans, at = [], start
    for n in lengths:
        spans.append(view[at : at + n])
        at += n + len(_padding(n))
    try:
        held = pickle.loads(spans[0], buffers=spans[1:])
    except Exception as exc:  # a payload of an older layout: its checksum was right, its classes changed
        print(f"note: {what} cache {path} unusable ({exc}); preparing again", file=sys.stderr)
        return None
    return held


def _write(path: Path, obj: Any, what: str) -> Path | None:
    """Write `obj` (whole, then renamed); a cache that cannot be written only costs the next run time."""
    arrays: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(obj, protocol=5, buffer_callback=arrays.append)
    raws: list[bytes | memoryview] = [meta, *(a.raw() for a in arrays)]
    body: list[bytes | memoryview] = []
    crcs: list[int] = []  # the CRC of each _CRC_SPAN of the body, as _span_crcs reads them back
    crc, filled = 0, 0
    for raw in raws:
        for chunk in (raw, _padding(len(raw))):
            body.append(chunk)
            piece = memoryview(chunk).cast("B")
            while len(piece):
                take = min(len(piece), _CRC_SPAN - filled)
                crc, filled, piece = zlib.crc32(piece[:take], crc), filled + take, piece[take:]
                if filled == _CRC_SPAN:
                    crcs, crc, filled = [*crcs, crc], 0, 0
    if filled:
        crcs.append(crc)
    header = json.dumps({"meta": len(meta), "buffers": [len(r) for r in raws[1:]], "crcs": crcs}).encode()
    head = MAGIC + len(header).to_bytes(8, "little") + header
    try:
        # the arrays written from where they are (never joined into one copy); no fsync: a file torn by a crash
        # fails its checksum and is rebuilt, and waiting for a hundred megabytes to reach the disk costs more
        # than a short study's trials
        atomic_write_bytes(path, [head + _padding(len(head)), *body], durable=False)
    except OSError as exc:
        print(f"note: {what} not cached in {path.parent} ({exc})", file=sys.stderr)
        return None
    return path


# the writers forked by _write_later and not yet joined, by the file each writes (with what it holds); a forked
# process (a study's worker, a writer) starts with none: they are its parent's children, not its own
_writers: dict[Path, tuple[Any, str]] = {}
os.register_at_fork(after_in_child=_writers.clear)
# at most this many writers at once: a study that meets many new indicators waits for the oldest first
_MAX_WRITERS = 4


def _write_in_child(path: Path, obj: Any, what: str) -> None:
    # the study's trials come first: on two cores with two workers, a hundred megabytes pickled, checked and
    # written at the same priority slowed them by its whole CPU time
    os.nice(BACKGROUND_NICENESS)
    try:
        _write(path, obj, what)
    # Ctrl-C reaches the whole process group: the command reports it, not each writer
    except KeyboardInterrupt:
        sys.exit(130)


def _write_later(path: Path, obj: Any, what: str) -> None:
    """_write in a forked child while this process goes on; here and now where no child can be forked."""
    _wait(path)  # one writer per file
    while len(_writers) >= _MAX_WRITERS:
        _wait(next(iter(_writers)))
    if "fork" not in multiprocessing.get_all_start_methods():
        _write(path, obj, what)
        return
    proc = multiprocessing.get_context("fork").Process(
        target=_write_in_child, args=(path, obj, what), name="tbot-prep-cache"
    )
    try:
        proc.start()
    except (AssertionError, OSError):  # inside a daemonic process, or no process left: write here
        _write(path, obj, what)
        return
    _writers[path] = (proc, what)


def _wait(path: Path) -> None:
    held = _writers.pop(path, None)
    if held is None:
        return
    proc, what = held
    proc.join()
    if proc.exitcode not in (0, 130):
        # the writer failed in a way _write does not catch (its error is above): the file is simply not there
        print(
            f"note: {what} not cached in {path.parent} (its writer exited with {proc.exitcode})",
            file=sys.stderr,
        )


def wait_for_writes() -> None:
    """Wait until every cache file this process handed to a writer is on disk."""
    for path in list(_writers):
        _wait(path)


def load(cache_dir: Path, key: str) -> Preparation | None:
    """The cached preparation, or None when there is none or it is damaged (then it is rebuilt). A hit marks it
    used now (its modification time), which decides what the retention keeps."""
    path = cache_dir / f"{key}.prep"
    _wait(path)
    prep = _read(path, "study preparation")
    if not isinstance(prep, Preparation):
        return None
    try:
        os.utime(path)
    except OSError:
        pass  # another process pruned it meanwhile: this process holds its mapping all the same
    return prep


def store(cache_dir: Path, key: str, prep: Preparation) -> None:
    """Write the preparation in the background (see the module's docstring), after making room for it."""
    prune(cache_dir, keep=key)
    _write_later(cache_dir / f"{key}.prep", prep, "study preparation")


# the preparations kept (each with its indicators and base results beside it), the most recently used first: a
# preparation is a hundred megabytes or more and every new data range makes one (the scheduled optimizer, after
# each session), so an unbounded cache fills a small droplet's disk within weeks
KEEP_PREPARATIONS = 3
_KEY = re.compile(r"[0-9a-f]{64}")


def prune(cache_dir: Path, *, keep: str) -> list[Path]:
    """Delete the cached preparations beyond the KEEP_PREPARATIONS - 1 most recently used ones other than `keep`
    (the one about to be written), with everything cached beside them, and temporary files left by killed writers;
    returns what was deleted. A study still reading a deleted preparation keeps its mapping (the file is gone
    from the folder only); one whose writer is still running writes a file the next prune deletes."""
    try:
        files = [p for p in cache_dir.iterdir() if p.is_file()]
    except OSError:  # no folder yet, or not one: nothing to prune (the write reports what it meets)
        return []
    last_used: dict[str, float] = {}
    by_key: dict[str, list[Path]] = {}
    now, orphans = time.time(), []
    for path in files:
        name = path.name.removeprefix(".")
        key = name.split(".", 1)[0]
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue  # another process's prune or writer came first
        if not _KEY.fullmatch(key):
            continue  # not this module's
        if stale_temporary(path, mtime, now):
            orphans.append(path)
            continue
        if path.name.startswith("."):
            # being written now (a study's background writer): its preparation is the newest in use
            last_used[key] = max(last_used.get(key, 0.0), mtime)
            continue
        by_key.setdefault(key, []).append(path)
        if path.suffix == ".prep":
            last_used[key] = max(last_used.get(key, 0.0), mtime)
    ranked = sorted((k for k in by_key if k != keep), key=lambda k: last_used.get(k, 0.0), reverse=True)
    doomed = orphans + [p for k in ranked[KEEP_PREPARATIONS - 1 :] for p in by_key[k]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


@dataclass(frozen=True, slots=True)
class IndicatorCache:
    """A preparation's session indicators (VWAP, ADX, Bollinger bands over the whole grid) on disk beside it:
    trial-independent, a function of the grid and the indicator's own parameters only, so a later study over
    the same data reads them instead of computing them again (MID's took ~0.5 s of a short study)."""

    cache_dir: Path
    key: str  # the preparation's

    def _path(self, name: Any) -> Path:
        digest = hashlib.sha256(repr(name).encode()).hexdigest()[:16]
        return self.cache_dir / f"{self.key}.ind-{digest}"

    def load(self, name: Any) -> Any:
        path = self._path(name)
        _wait(path)
        held = _read(path, "session indicator")
        return held[1] if isinstance(held, tuple) and len(held) == 2 and held[0] == name else None

    def store(self, name: Any, value: Any) -> None:
        _write_later(self._path(name), (name, value), "session indicator")
