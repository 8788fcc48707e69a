"""The bar store: checked 1-minute bars as Parquet, one file per symbol and UTC month (issue 25).

Layout under the store folder (the home's `data/bars/`, or any folder given with --store):
`SYMBOL/YYYY-MM.parquet` (columns timestamp as UTC nanoseconds, open/high/low/close float64, volume int64,
optional vwap float64; sorted by time; the symbol is the folder, not a column) and `manifest.json` (each
partition's rows, dates held, SHA-256 and the file it was imported from; every import with the bar checks'
findings). Bars are checked once, at import, with the same checks and messages as a CSV read
(backtest/bar_checks.py); a read trusts them and only verifies each partition's checksum, so a truncated or
altered file is refused by name with the command that re-imports it. The VIX closes and fundamentals beside
imported bars are written in (checked and merged by bar_import.side_inputs), so a backtest from the store sees
the same side inputs as one from the folder.
Importing files (their checks) is bar_import.py's; this module only reads and writes checked bars.

`iter_parts` is what `load_bars` reads a store with, and `read_columns` (its parts copied into whole columns by the
threads that read them) what `load_columns` does: only the partitions of the wanted symbols and months are
opened, only the needed columns read, row groups outside the dates skipped, one partition at a time (a caller
keeps what it needs of each and lets the rest go).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tbot_bot.errors import DataError, LogicError
from tbot_bot.support.utils_bot import atomic_write_bytes, atomic_write_json, parse_json, sha256_file

MANIFEST = "manifest.json"
# an import's new partition records, written before its files are renamed in
PENDING = "manifest.pending.json"
IMPORTING = ".importing"  # the suffix of a partition written but not yet renamed into place
FORMAT = "tbot-bar-store"
VERSION = 1
PRICES = ("open", "high", "low", "close")
# a symbol is a folder name: letters, digits and the class/suffix marks brokers use (BRK.B, BF-B)
SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-^]*")
NS_PER_DAY = 86_400 * 10**9
PARTITION_NAME = re.compile(rf"{SYMBOL_PATTERN.pattern}/\d{{4}}-\d\d\.parquet")


def is_store(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


@dataclass(frozen=True, slots=True)
class ImportResult:
    store: Path
    rows: int
    symbols: tuple[str, ...]
    partitions: tuple[str, ...]
    findings: tuple[str, ...]
    side_files: tuple[str, ...]
    replaced: int = 0  # bars already held at the same minute that this import replaced with different values
    # what else it did that a person must know (a damaged partition replaced, ...)
    notes: tuple[str, ...] = ()


def _empty_manifest() -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "partitions": {}, "imports": []}


def load_manifest(store: Path) -> dict[str, Any]:
    path = store / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{store} is not a bar store (no {MANIFEST}); create one with: tbot data import FILE|DIR"
        )
    try:
        manifest = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"{path} is unreadable ({exc}); move the store aside and import the bars again with "
            f"tbot data import SOURCE --store {store}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DataError(
            f"{path}: store version {manifest.get('version')!r}; this build reads version {VERSION}"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise _damaged_manifest(store, problem)
    _adopt_pending(store, manifest)
    return manifest


def _adopt_pending(store: Path, manifest: dict[str, Any]) -> None:
    """An import cut off after renaming its partitions in and before writing the manifest: each partition its
    pending record lists whose file on disk is the one recorded takes that record (in `manifest`, in memory:
    reads see the import's bars, and the next import writes it down); the others keep the manifest's (their file
    was never replaced)."""
    pending = store / PENDING
    if not pending.exists():
        return
    try:
        held = parse_json(pending.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return  # written atomically: only a damaged disk leaves it unreadable, and then nothing is adopted
    entries = held.get("partitions") if isinstance(held, dict) else None
    if not isinstance(entries, dict) or _manifest_problem({"partitions": entries, "imports": []}):
        return
    for rel, entry in entries.items():
        path = store / rel
        if PARTITION_NAME.fullmatch(rel) and path.is_file() and path.stat().st_size == entry["bytes"]:
            if sha256_file(path) == entry["sha256"]:
                manifest["partitions"][rel] = entry


def _damaged_manifest(store: Path, problem: str) -> DataError:
    return DataError(
        f"{store / MANIFEST} is damaged ({problem}); move the store aside and import the bars again with "
        f"tbot data import SOURCE --store {store}"
    )


_ENTRY_TYPES: dict[str, type | tuple[type, ...]] = {
    "symbol": str, "month": str, "rows": int, "bytes": int, "sha256": str, "days": list,
}  # fmt: skip


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What makes a manifest unusable (its shape, as this module writes it), or None. Each partition's first and
    last day are parsed (what a read uses); the days between are checked as text only."""
    partitions, imports = manifest.get("partitions"), manifest.get("imports")
    if not isinstance(partitions, dict) or not isinstance(imports, list):
        return "'partitions' must be an object and 'imports' a list"
    for rel, entry in partitions.items():
        if not isinstance(entry, dict):
            return f"partition {rel!r} is not an object"
        for key, kind in _ENTRY_TYPES.items():
            value = entry.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                return f"partition {rel!r}: {key!r} is {value!r}, not {getattr(kind, '__name__', kind)}"
        days = entry["days"]
        if not days or not all(isinstance(d, str) for d in days):
            return f"partition {rel!r}: 'days' must list its dates (YYYY-MM-DD)"
        try:
            date.fromisoformat(days[0]), date.fromisoformat(days[-1])
        except ValueError:
            return f"partition {rel!r}: 'days' holds {days[0]!r} .. {days[-1]!r}, not dates (YYYY-MM-DD)"
        # a read sizes its columns from it: a bar a minute is the most its days can hold
        if not 0 <= entry["rows"] <= _MINUTES_PER_DAY * len(days):
            most = _MINUTES_PER_DAY * len(days)
            return f"partition {rel!r}: 'rows' is {entry['rows']}, not 0 to {most} (a bar a minute over {len(days)} days)"
    return None


_MINUTES_PER_DAY = 1440


def _write_manifest(store: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(store / MANIFEST, manifest)


def _roll_forward(store: Path, manifest: dict[str, Any]) -> None:
    """Before an import writes: what an import cut off had renamed in is written into the manifest (load_manifest
    adopted it), and the temporary files of one cut off earlier are removed (nothing points at them)."""
    for leftover in store.glob(f"*/.*{IMPORTING}"):
        leftover.unlink(missing_ok=True)
    if (store / PENDING).exists():
        _write_manifest(store, manifest)
        (store / PENDING).unlink()


def write_bars(
    bars: pd.DataFrame,
    store: Path,
    *,
    origin: str,
    findings: tuple[str, ...] = (),
    side_files: dict[str, bytes] | None = None,
    notes: tuple[str, ...] = (),
    calendar: str = "XNYS",
) -> ImportResult:
    """Checked bars (load_bars' or check_bars' output) merged into the store, one partition per symbol and
    month, and `side_files` (name -> content: the VIX closes and fundamentals, checked and merged by the caller)
    written beside them. Every partition is read and merged before any file is written, then written under a
    temporary name, then all renamed into place, then the manifest: a refused import changes nothing, and a
    crash among the renames leaves partitions listed with their old checksum (refused by name on the next read,
    never silently mixed). A partition the manifest lists but that is missing or damaged cannot be merged: it
    is replaced by this import's bars of its month, and a note says what it held (its re-import is the way out
    that a read's refusal names)."""

    bad = sorted(s for s in bars["symbol"].astype(str).unique() if not SYMBOL_PATTERN.fullmatch(s))
    if bad:
        raise DataError(
            f"symbol(s) {', '.join(map(repr, bad[:5]))} cannot name a store folder; "
            "allowed: letters, digits and . _ - ^ (e.g. BRK.B)"
        )
    manifest = load_manifest(store) if (store / MANIFEST).exists() else _empty_manifest()
    store.mkdir(parents=True, exist_ok=True)
    _roll_forward(store, manifest)
    stamps = np.asarray(bars["timestamp"].array.asi8)
    codes, names = pd.factorize(bars["symbol"].astype(str))
    month_of = stamps.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    # rows grouped by (symbol, month), in time order within each group
    order = np.lexsort((stamps, month_of, codes))
    cols = {"timestamp": stamps[order]}
    for c in (*PRICES, "volume", *(["vwap"] if "vwap" in bars.columns else [])):
        cols[c] = bars[c].to_numpy(dtype=np.float64)[order]
    key = codes[order].astype(np.int64) * 1_000_000 + month_of[order]
    cuts = [0, *(np.flatnonzero(np.diff(key)) + 1).tolist(), len(key)]
    replaced = 0
    notes_ = list(notes)
    written: list[str] = []
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []  # symbol folders this import created (removed again if it is refused)
    entries: dict[str, dict[str, Any]] = {}
    try:
        # each partition merged and written under a temporary name in turn (one month in memory at a time);
        # nothing is in place until every one is written
        for lo, hi in itertools.pairwise(cuts):
            symbol = str(names[codes[order[lo]]])
            month = str(np.datetime64(int(month_of[order[lo]]), "M"))
            rel = f"{symbol}/{month}.parquet"
            part = {c: v[lo:hi] for c, v in cols.items()}
            entry = manifest["partitions"].get(rel)
            sources = [origin]  # the imports this partition's bars came from (a repair needs all of them)
            if entry is not None:
                try:
                    held = _read_partition(store, rel, entry, None, None, None)
                except DataError as exc:  # missing, corrupted or unreadable: nothing of it can be kept
                    problem = str(exc).split(f"partition {rel} is ", 1)[-1].split("; re-import it", 1)[0]
                    notes_.append(
                        f"partition {rel} was {problem}: replaced by this import's {len(part['timestamp'])} bars "
                        f"of that month (it had held {entry.get('rows', '?')} bars on "
                        f"{len(entry.get('days') or [])} days)"
                    )
                else:
                    part, changed = _merged(held, part)
                    replaced += changed
                    sources = list(dict.fromkeys([*partition_sources(entry), origin]))
            path = store / rel
            if not path.parent.exists():
                made.append(path.parent)
            temp = path.with_name(f".{path.name}{IMPORTING}")
            _write_partition(temp, part, rel)
            staged.append((temp, path))
            day_numbers = part["timestamp"] // NS_PER_DAY
            days = np.unique(day_numbers).astype("datetime64[D]").astype(str).tolist()
            # the dates with regular-session bars (pre- and post-market ones aside): what the store holds for
            # research (holdings, gaps, its last date), as the loaders read it
            from tbot_bot.strategy.grid import in_regular_session

            # a date the calendar does not know (a long history) cannot be told a session or not: it is held
            in_session = in_regular_session(part["timestamp"], calendar, unknown=True)
            sessions = np.unique(day_numbers[in_session]).astype("datetime64[D]").astype(str).tolist()
            entries[rel] = {
                "symbol": symbol,
                "month": month,
                "rows": len(part["timestamp"]),
                "bytes": temp.stat().st_size,
                "sha256": sha256_file(temp),
                "days": days,
                "sessions": sessions,
                # every bar inside a regular session: a regular-session read takes the partition as it is
                "regular_only": bool(in_session.all()),
                "calendar": calendar,
                "source": origin,
                "sources": sources,
                # whether the file has a vwap column: a read streaming partitions pads the others unopened
                "vwap": "vwap" in part and not bool(np.isnan(part["vwap"]).all()),
            }
            written.append(rel)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)  # only this import's files were in it
        raise
    # the commit: the new entries are recorded before any file is renamed, so an import cut off between the
    # renames and the manifest is completed by the next one (_roll_forward), never taken for damage
    atomic_write_json(store / PENDING, {"partitions": entries})
    for temp, path in staged:
        temp.replace(path)
    manifest["partitions"].update(entries)
    copied: list[str] = []
    for name, content in (side_files or {}).items():
        atomic_write_bytes(store / name, content)
        copied.append(name)
    manifest["partitions"] = dict(sorted(manifest["partitions"].items()))
    manifest["imports"].append(
        {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": origin,
            "rows": len(bars),
            "partitions": written,
            # the bar checks ran on this import; their warnings (e.g. repeated bars dropped) are kept here
            "checks": "passed",
            "findings": list(findings),
            "side_files": copied,
            "replaced": replaced,
            "notes": notes_,
        }
    )
    _write_manifest(store, manifest)
    (store / PENDING).unlink(missing_ok=True)
    return ImportResult(
        store,
        len(bars),
        tuple(sorted({p.split("/")[0] for p in written})),
        tuple(written),
        findings,
        tuple(copied),
        replaced,
        tuple(notes_),
    )


def _merged(held: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """A partition's bars and newly imported ones, in time order; at the same minute the new bar wins. Also how
    many held bars it replaced with different values (the same bar imported again replaces nothing)."""

    def column(part: dict[str, np.ndarray], c: str) -> np.ndarray:
        return part[c] if c in part else np.full(len(part["timestamp"]), np.nan)

    both = {c: np.concatenate([column(held, c), column(new, c)]) for c in {*held, *new}}
    # stable sort: of equal stamps the new row (later in the array) comes last, and is the one kept
    order = np.argsort(both["timestamp"], kind="stable")
    stamps = both["timestamp"][order]
    last = np.append(stamps[1:] != stamps[:-1], True)
    dropped = np.flatnonzero(~last)  # a held bar, followed by the new one at its minute
    differs = np.zeros(len(dropped), dtype=bool)
    for c in both:
        if c != "timestamp":
            a, b = both[c][order][dropped], both[c][order][dropped + 1]
            differs |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return {c: v[order][last] for c, v in both.items()}, int(differs.sum())


def _write_partition(path: Path, part: dict[str, np.ndarray], rel: str) -> None:
    """Typed columns (UTC ns stamps, float64 prices, int64 volume), one row group per UTC day, written under a
    temporary name and renamed into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    volume = part["volume"]
    whole = bool(np.all(volume == np.floor(volume)))
    columns: dict[str, Any] = {
        "timestamp": pa.array(part["timestamp"], type=pa.timestamp("ns", tz="UTC")),
        **{c: pa.array(part[c]) for c in PRICES},
        # int64 as the issue asks; a feed with fractional volume keeps float64 rather than lose it
        "volume": pa.array(volume.astype(np.int64) if whole else volume),
    }
    if "vwap" in part and not np.isnan(part["vwap"]).all():
        columns["vwap"] = pa.array(part["vwap"])
    # the partition it is (SYMBOL/MONTH.parquet) written into the file: a file copied under another partition's
    # name passes the manifest's checksum once the manifest is edited to match, never this
    table = pa.table(columns).replace_schema_metadata({PARTITION_KEY: rel.encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # one row group per week (Monday to Sunday, UTC): a read of a few days (a replay) skips the rest of the
    # month unread, while a month read whole decodes 4-5 groups per column, not one per day (a third of the
    # time). Uncompressed: decoding is twice as fast for 8% more bytes (dictionary encoding already packs
    # the prices). The stamps (a minute apart) and a whole volume are stored as deltas: a month of a symbol
    # in less than half the bytes (hashed and read at every load) and decoded a tenth faster than plain
    deltas = {"timestamp": "DELTA_BINARY_PACKED", **({"volume": "DELTA_BINARY_PACKED"} if whole else {})}
    week_of = (part["timestamp"] // NS_PER_DAY + 3) // 7  # 1970-01-01 was a Thursday
    cuts = [0, *(np.flatnonzero(np.diff(week_of)) + 1).tolist(), len(week_of)]
    try:
        with pq.ParquetWriter(
            tmp, table.schema, compression="none", column_encoding=deltas,
            use_dictionary=[c for c in table.column_names if c not in deltas],
        ) as writer:  # fmt: skip
            for a, b in itertools.pairwise(cuts):
                writer.write_table(table.slice(a, b - a))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves the store as it was, no temporary file in it
        raise


PARTITION_KEY = b"tbot.partition"


def _day_ns(day: date | str) -> int:
    """A UTC date (or a manifest's YYYY-MM-DD) as the nanoseconds of its midnight."""
    return ((day if isinstance(day, date) else date.fromisoformat(day)) - date(1970, 1, 1)).days * NS_PER_DAY


def partition_sources(entry: dict[str, Any]) -> list[str]:
    """The imports a partition's bars came from, oldest first (a store written before `sources`: the last one)."""
    held = entry.get("sources")
    if isinstance(held, list) and held:
        return [str(x) for x in held]
    return [str(entry.get("source") or "SOURCE")]


def _refuse_partition(store: Path, rel: str, entry: dict[str, Any], problem: str) -> DataError:
    sources = partition_sources(entry)
    commands = "; then ".join(f"tbot data import {src} --store {store}" for src in sources)
    whole = (
        f" (its bars came from {len(sources)} imports: run them all, in this order)"
        if len(sources) > 1
        else ""
    )
    return DataError(f"bar store {store}: partition {rel} is {problem}; re-import it: {commands}{whole}")


def _read_partition(
    store: Path,
    rel: str,
    entry: dict[str, Any],
    lo: int | None,
    hi: int | None,
    columns: list[str] | None,
) -> dict[str, np.ndarray]:
    """One verified partition's columns, rows with lo <= timestamp (UTC ns) < hi. Row groups wholly outside
    are not read (their min/max statistics); the parquet reader alone is used (no dataset layer to import)."""
    import pyarrow as pa

    path = store / rel
    try:
        # read once: the bytes are checked against the manifest, then parsed from memory
        data = path.read_bytes()
    except FileNotFoundError:
        raise _refuse_partition(store, rel, entry, "missing") from None
    if not _intact(data, entry):
        raise _refuse_partition(store, rel, entry, "corrupted (its SHA-256 differs from the manifest's)")
    whole = _wanted_whole(entry, lo, hi)
    try:
        reader = _parquet_reader(data)
        written_as = (reader.schema_arrow.metadata or {}).get(PARTITION_KEY)
        if written_as is not None and written_as != rel.encode():
            raise _refuse_partition(store, rel, entry, f"the file written as {written_as.decode()}")
        names = reader.schema_arrow.names
        # the columns by index: a flat schema's column i is its field i
        wanted = [names.index(c) for c in (columns or names) if c in names]
        if whole:  # every day held is wanted: no row group to skip
            table = reader.read_all(column_indices=wanted, use_threads=False)
        else:
            at = names.index("timestamp")
            groups = []
            for i in range(reader.metadata.num_row_groups):
                stats = reader.metadata.row_group(i).column(at).statistics
                if stats is not None and stats.has_min_max:
                    first, last = pd.Timestamp(stats.min).value, pd.Timestamp(stats.max).value
                    if (lo is not None and last < lo) or (hi is not None and first >= hi):
                        continue
                groups.append(i)
            table = reader.read_row_groups(groups, column_indices=wanted, use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise _refuse_partition(store, rel, entry, f"unreadable ({exc})") from None
    out = {
        name: _nanoseconds(col) if name == "timestamp" else col.to_numpy().astype(np.float64, copy=False)
        for name, col in zip(table.column_names, table.columns, strict=True)
    }
    stamps = out["timestamp"]
    if len(stamps) and ((lo is not None and stamps[0] < lo) or (hi is not None and stamps[-1] >= hi)):
        keep = np.ones(len(stamps), dtype=bool)  # a partition is in time order: trim its ends
        if lo is not None:
            keep &= stamps >= lo
        if hi is not None:
            keep &= stamps < hi
        out = {k: v[keep] for k, v in out.items()}
    return out


def _nanoseconds(column: Any) -> np.ndarray:
    """A UTC timestamp column's int64 nanoseconds, taken from its buffers: pyarrow's own conversions of a zoned
    column (to_numpy, cast) look its zone up first, a millisecond per partition spent holding the GIL (half of a
    month's load, and what kept two reading threads from reading at once). Stamps are never null (the import
    refuses a bar without one); a column with nulls takes pyarrow's conversion."""
    if column.null_count:
        return np.asarray(column.to_numpy(), dtype="datetime64[ns]").view(np.int64)
    pieces = [
        np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=len(chunk), offset=8 * chunk.offset)
        for chunk in column.chunks
    ]
    return (
        pieces[0] if len(pieces) == 1 else np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)
    )


def _parquet_reader(data: bytes) -> Any:
    """A Parquet reader over a partition's bytes: the class pyarrow.parquet.ParquetFile wraps, used directly.
    Importing pyarrow.parquet imports pyarrow.fs, and with it the S3, GCS, Azure and HDFS filesystems: 6 ms of a
    process's first read of the store (a sixth of a month's backtest load) for files this module reads from
    memory. The class is pyarrow's own (pinned in requirements.txt); every store test reads through it."""
    import pyarrow as pa
    from pyarrow._parquet import ParquetReader

    reader = ParquetReader()
    reader.open(pa.BufferReader(data), pre_buffer=False)
    return reader


def iter_parts(
    store: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    symbols: list[str] | None = None,
    columns: tuple[str, ...] = ("timestamp", *PRICES, "volume", "vwap"),
    regular: str | None = None,
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """The verified partitions of `symbols` (all when None) on UTC dates start..end, one at a time as plain arrays
    (UTC ns stamps, float64 values; each in time order) with their symbol, symbol after symbol and each symbol's
    months in order. When `columns` asks for vwap and some partitions hold it, the others come with NaN there.
    `regular` (a calendar name): regular-session bars only; a partition the import found wholly regular for that
    calendar is taken as it is (no mask to compute)."""
    manifest = load_manifest(store)
    lo, hi = _bounds(start, end)
    chosen = _chosen(manifest, start, end, symbols)
    vwap = "vwap" in columns and any(e.get("vwap", True) for *_, e in chosen)
    if vwap and any("vwap" not in e for *_, e in chosen):
        # a store written before partitions recorded their vwap column: which hold one is known only once read
        held = [(s, _read_partition(store, rel, e, lo, hi, list(columns))) for s, _, rel, e in chosen]
        vwap = any("vwap" in part for _, part in held)
        for (symbol, part), (*_, entry) in zip(held, chosen, strict=True):
            part = _only_regular(part, entry, regular)
            if len(part["timestamp"]):
                yield symbol, _with_vwap(part) if vwap else part
        return
    reads = _read_ahead(store, [(rel, entry) for _, _, rel, entry in chosen], lo, hi, list(columns))
    for (symbol, _, _, entry), read in zip(chosen, reads, strict=True):
        part = _only_regular(read, entry, regular)
        if len(part["timestamp"]):
            yield symbol, _with_vwap(part) if vwap else part


def _chosen(
    manifest: dict[str, Any], start: date | None, end: date | None, symbols: list[str] | None
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The partitions (symbol, month, path, entry) of `symbols` (all when None) and the months of start..end, symbol
    after symbol and each symbol's months in order."""
    first_month = f"{start:%Y-%m}" if start else None
    last_month = f"{end:%Y-%m}" if end else None
    wanted = set(symbols) if symbols else None
    return sorted(
        (
            (entry["symbol"], entry["month"], rel, entry)
            for rel, entry in manifest["partitions"].items()
            if (wanted is None or entry["symbol"] in wanted)
            and not (first_month and entry["month"] < first_month)
            and not (last_month and entry["month"] > last_month)
        ),
        key=lambda x: (x[0], x[1]),
    )


def _read_ahead(
    store: Path, wanted: list[tuple[str, dict[str, Any]]], lo: int | None, hi: int | None, columns: list[str]
) -> Iterator[dict[str, np.ndarray]]:
    """The partitions read in order, each by one of a few threads a little ahead of the consumer: hashing
    and parsing release the GIL, so two cores read 300 partitions in two thirds of the time; only a few
    partitions beyond the one consumed are ever held (a replay of thousands of symbols never holds them all).
    pyarrow's own threads stay off: a partition is small."""
    workers = min(len(wanted), os.cpu_count() or 1, 4)
    if workers <= 1:
        for rel, entry in wanted:
            yield _read_partition(store, rel, entry, lo, hi, columns)
        return
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: collections.deque[Future[dict[str, np.ndarray]]] = collections.deque()
    todo = iter(wanted)
    with ThreadPoolExecutor(workers, thread_name_prefix="bar-store-read") as pool:
        try:
            for rel, entry in itertools.islice(todo, 2 * workers):
                pending.append(pool.submit(_read_partition, store, rel, entry, lo, hi, columns))
            while pending:
                part = pending.popleft().result()  # a damaged partition is refused here, in its turn
                for rel, entry in itertools.islice(todo, 1):
                    pending.append(pool.submit(_read_partition, store, rel, entry, lo, hi, columns))
                yield part
        finally:
            for future in pending:
                future.cancel()  # a refusal (or a consumer that stopped) reads nothing more


def _only_regular(
    part: dict[str, np.ndarray], entry: dict[str, Any], calendar: str | None
) -> dict[str, np.ndarray]:
    """A partition's regular-session bars of `calendar` (None: all); one the import found wholly regular for that
    calendar is returned as it is."""
    if calendar is None or _wholly_regular(entry, calendar):
        return part
    from tbot_bot.strategy.grid import in_regular_session

    keep = in_regular_session(part["timestamp"], calendar)
    return part if keep.all() else {name: values[keep] for name, values in part.items()}


def _wholly_regular(entry: dict[str, Any], calendar: str | None) -> bool:
    """Whether a partition needs no regular-session mask: none is asked (None), or its import found every bar of
    it inside `calendar`'s regular sessions."""
    return calendar is None or (entry.get("regular_only") is True and entry.get("calendar") == calendar)


def _bounds(start: date | None, end: date | None) -> tuple[int | None, int | None]:
    """UTC dates start..end as the stamps lo <= t < hi (ns; None: unbounded)."""
    return (_day_ns(start) if start else None), (_day_ns(end) + NS_PER_DAY if end else None)


def _wanted_whole(entry: dict[str, Any], lo: int | None, hi: int | None) -> bool:
    """Whether every day a partition holds lies within lo <= t < hi (no row group to skip, no row to trim)."""
    days = entry.get("days") or []
    return bool(days) and (lo is None or _day_ns(days[0]) >= lo) and (hi is None or _day_ns(days[-1]) < hi)


def _with_vwap(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if "vwap" not in part:
        part["vwap"] = np.full(len(part["timestamp"]), np.nan)
    return part


def read_columns(
    store: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    columns: tuple[str, ...] = ("timestamp", *PRICES, "volume"),
    regular: str | None = None,
) -> tuple[list[str], list[int], dict[str, np.ndarray]]:
    """iter_parts joined (every symbol; not vwap, which only frames carry): the symbol and number of rows of each
    part, symbol after symbol and each symbol's months in order, and each column whole (stamps int64, values
    float64). The columns are allocated once, at their exact size, and each partition is copied into its place
    by the thread that read it, so no column is joined again on the caller's thread. The rows of a partition
    wanted whole and wholly regular are the manifest's; the others (cut by the dates: the range's first and last
    months; or masked to the regular session) are read first and held until their places are known."""
    if "vwap" in columns:
        raise LogicError(
            "read_columns reads prices, volume and stamps; a frame with vwap comes from iter_parts"
        )
    lo, hi = _bounds(start, end)
    chosen = _chosen(load_manifest(store), start, end, None)
    known = [_wanted_whole(e, lo, hi) and _wholly_regular(e, regular) for *_, e in chosen]
    held: dict[int, dict[str, np.ndarray]] = {}

    def read(i: int) -> dict[str, np.ndarray]:
        _, _, rel, entry = chosen[i]
        part = _only_regular(_read_partition(store, rel, entry, lo, hi, list(columns)), entry, regular)
        if known[i] and len(part["timestamp"]) != entry["rows"]:
            raise _refuse_partition(
                store, rel, entry, f"{len(part['timestamp'])} rows where the manifest records {entry['rows']}"
            )
        return part

    def hold(i: int) -> None:
        held[i] = read(i)

    _each_in_threads(hold, [i for i in range(len(chosen)) if not known[i]])
    sizes = [chosen[i][3]["rows"] if known[i] else len(held[i]["timestamp"]) for i in range(len(chosen))]
    at = np.r_[0, np.cumsum(sizes, dtype=np.int64)].tolist()
    out = {c: np.empty(at[-1], dtype=np.int64 if c == "timestamp" else np.float64) for c in columns}

    def place(i: int, part: dict[str, np.ndarray]) -> None:
        for c in columns:
            out[c][at[i] : at[i + 1]] = part[c]  # numpy releases the GIL for the copy: threads copy at once

    for i in list(held):
        place(i, held.pop(i))  # each let go once in place
    _each_in_threads(lambda i: place(i, read(i)), [i for i in range(len(chosen)) if known[i]])
    kept = [i for i, n in enumerate(sizes) if n]
    return [chosen[i][0] for i in kept], [sizes[i] for i in kept], out


def _each_in_threads(task: Callable[[int], object], items: list[int]) -> None:
    """task(i) for each item on a few threads (hashing, parsing and copying release the GIL). The first failure in
    the items' order is raised (a damaged partition is refused in its turn) and nothing after it is started."""
    workers = min(len(items), os.cpu_count() or 1, 4)
    if workers <= 1:
        for i in items:
            task(i)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="bar-store-read") as pool:
        futures = [pool.submit(task, i) for i in items]
        try:
            for future in futures:
                future.result()
        finally:
            for future in futures:
                future.cancel()


def held_sessions(entry: dict[str, Any]) -> list[str]:
    """A partition's dates with regular-session bars (a store written before they were recorded: its dates)."""
    sessions = entry.get("sessions")
    return sessions if isinstance(sessions, list) else entry["days"]


def last_date(store: Path) -> date:
    """The last session date the store holds regular-session bars on (from the manifest): an evening's
    post-market bars, stamped the next UTC date, are no session of it."""
    days = [d for entry in load_manifest(store)["partitions"].values() for d in held_sessions(entry)[-1:]]
    if not days:
        raise DataError(f"no bars in the bar store {store}; add some with: tbot data import FILE|DIR")
    return date.fromisoformat(max(days))


@dataclass(frozen=True, slots=True)
class Holding:
    symbol: str
    first: date
    last: date
    days: int
    rows: int
    gaps: tuple[tuple[date, date, int], ...]  # first and last missing session of each run, and how many


def damaged_partitions(store: Path, *, start: date | None = None, end: date | None = None) -> list[str]:
    """Partitions the manifest lists (of the months of start..end, when given) whose file is missing or not the
    size it recorded (a stat each: what `tbot data list` can say without reading every file; a read checks the
    SHA-256 as well)."""
    return [
        str(_refuse_partition(store, rel, entry, problem))
        for rel, entry, problem in _damaged(store, start, end)
    ]


def _of_months(store: Path, start: date | None, end: date | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The manifest's partitions (path, entry) of the months of start..end (all when not given)."""
    first, last = (f"{start:%Y-%m}" if start else ""), (f"{end:%Y-%m}" if end else "9999-99")
    for rel, entry in load_manifest(store)["partitions"].items():
        if first <= entry["month"] <= last:
            yield rel, entry


def _intact(data: bytes, entry: dict[str, Any]) -> bool:
    """Whether a partition's bytes are the ones its manifest entry records (size and SHA-256)."""
    return len(data) == entry.get("bytes") and hashlib.sha256(data).hexdigest() == entry.get("sha256")


def partition_stats(store: Path, *, start: date, end: date) -> dict[str, tuple[int, int]]:
    """The size and modification time (ns) of each partition of the months of start..end, as read now: what a
    later user of bars read from them (a study's cached preparation) compares to find a file changed since."""
    # a missing file is left out: a read refuses it by name
    return {
        rel: (st.st_size, st.st_mtime_ns) for rel, _, st, _ in _stated(store, start, end) if st is not None
    }


def refused_partitions(
    store: Path, *, start: date, end: date, known: dict[str, tuple[int, int]]
) -> list[str]:
    """What a read of the months of start..end would refuse, told from one stat per partition (what a study whose
    bars come from its cache checks): a partition missing or not the size the manifest records, and one whose
    size or time changed since `known` (partition_stats, taken when its bars were read) whose bytes are no longer
    the SHA-256 the manifest records (only such a file is read again: an unchanged stat is the bytes that were
    read and checked)."""
    problems = []
    for rel, entry, st, problem in _stated(store, start, end):
        if (
            problem is None
            and st is not None
            and rel in known
            and (st.st_size, st.st_mtime_ns) != tuple(known[rel])
        ):
            if not _intact((store / rel).read_bytes(), entry):
                problem = "corrupted (its SHA-256 differs from the manifest's)"
        if problem is not None:
            problems.append(str(_refuse_partition(store, rel, entry, problem)))
    return problems


def damaged_months(store: Path) -> dict[str, list[str]]:
    """Per symbol, the months (YYYY-MM) whose partition is missing or cut (damaged_partitions' findings)."""
    out: dict[str, list[str]] = {}
    for _, entry, _ in _damaged(store, None, None):
        out.setdefault(entry["symbol"], []).append(entry["month"])
    return out


def _damaged(store: Path, start: date | None, end: date | None) -> list[tuple[str, dict[str, Any], str]]:
    return [
        (rel, entry, problem) for rel, entry, _, problem in _stated(store, start, end) if problem is not None
    ]


def _stated(
    store: Path, start: date | None, end: date | None
) -> Iterator[tuple[str, dict[str, Any], os.stat_result | None, str | None]]:
    """Each partition of the months of start..end with its file's stat (one call) and what is wrong with the file
    at a glance: missing, or not the size the manifest records (None: nothing)."""
    for rel, entry in _of_months(store, start, end):
        try:
            st = (store / rel).stat()
        except FileNotFoundError:
            yield rel, entry, None, "missing"
            continue
        yield rel, entry, st, None if st.st_size == entry["bytes"] else "not the size the manifest records"


def holdings(store: Path, calendar: str = "XNYS") -> list[Holding]:
    """Per symbol: the dates held, rows, and the runs of `calendar` sessions between its first and last date
    that hold no bar (counted over the dates the calendar knows: bars beyond it are listed, not gap-checked)."""
    from tbot_bot.market_time import calendar_range, session_bounds

    known_first, known_last = calendar_range(calendar)

    manifest = load_manifest(store)
    by_symbol: dict[str, tuple[set[date], int]] = {}
    for rel, entry in manifest["partitions"].items():
        held, rows = by_symbol.get(entry["symbol"], (set(), 0))
        try:
            held |= {date.fromisoformat(d) for d in held_sessions(entry)}
        except ValueError:
            raise _damaged_manifest(store, f"partition {rel!r} lists a day that is no date") from None
        by_symbol[entry["symbol"]] = (held, rows + int(entry["rows"]))
    out: list[Holding] = []
    for symbol, (held, rows) in sorted(by_symbol.items()):
        if not held:  # only pre- or post-market bars: no session held at all (its dates, no gap to count)
            dates = sorted(
                date.fromisoformat(d)
                for e in manifest["partitions"].values()
                if e["symbol"] == symbol
                for d in e["days"]
            )
            out.append(Holding(symbol, dates[0], dates[-1], 0, rows, ()))
            continue
        first, last = min(held), max(held)
        gaps: list[tuple[date, date, int]] = []
        run: list[date] = []
        day = max(first, known_first)
        while day <= min(last, known_last):
            if session_bounds(day, calendar) is not None:
                if day in held:
                    if run:
                        gaps.append((run[0], run[-1], len(run)))
                        run = []
                else:
                    run.append(day)
            day += timedelta(days=1)
        if run:  # the sessions up to the calendar's end, when the last bar lies beyond it
            gaps.append((run[0], run[-1], len(run)))
        out.append(Holding(symbol, first, last, len(held), rows, tuple(gaps)))
    return out
