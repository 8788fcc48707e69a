"""Checks on one file of 1-minute bars before a backtest or a replay uses it.

A bad file is a DataError naming the file, the first offending row (as a person counts it: the CSV line, or
the Parquet row from 1) and the problem, plus how many rows share it. Refused: unreadable or empty files,
missing columns, stamps that are not dates or carry no time zone, prices that are missing, not finite or not
positive, volumes that are missing, negative or infinite, prices above 10**9 or volumes of 2**53 or more, a high
below the low, a symbol's stamps going backwards, and the same (timestamp, symbol) twice with different values.
The same bar repeated with identical values is dropped, and a bar whose open or close lies outside its high..low
gets its range widened to hold them, each with a warning on stderr.
"""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from tbot_bot.errors import DataError, LogicError
from tbot_bot.support.memory import give_back_freed_memory

COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
PRICES = ("open", "high", "low", "close")
# an explicit UTC offset or Z at the end of a stamp; a stamp without one is ambiguous
_HAS_ZONE = r"(?:Z|[+-]\d\d:?\d\d)$"
T = TypeVar("T")
_CHUNK_ROWS = 200_000  # rows read, checked and typed per step


def read_guarded(path: Path, reader: Callable[[], T]) -> T:
    """Run `reader` on `path`, turning every way a data file can be unreadable into a DataError naming it.
    A permission problem stays a PermissionError (the command line names the path)."""
    try:
        return reader()
    except PermissionError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty (need a header line {','.join(COLUMNS)} and bars)"
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8 CSV"
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc or 'truncated'})") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV: {str(exc).strip()[:200]}") from None
    except (ValueError, OSError, TypeError) as exc:
        # pyarrow's ArrowInvalid is a ValueError: a random or empty .parquet lands here
        raise DataError(f"{path}: cannot be read as bars ({type(exc).__name__}: {str(exc)[:200]})") from None


def _refuse(path: Path, rows: np.ndarray, first_row: int, problem: Callable[[int], str]) -> None:
    """DataError for the first row in `rows` (positions), counting the others."""
    if len(rows) == 0:
        return
    first = int(rows[0])
    raise _refusal(path, first + first_row, len(rows), problem(first))


def _refusal(path: Path, row: int, count: int, problem: str) -> DataError:
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    return DataError(f"{path}, row {row}: {problem}{more}")


# The per-row checks, in the order a file is judged: the first of these that any row fails refuses the file.
_SYMBOL_EMPTY, _STAMP_EMPTY, _STAMP_NO_ZONE, _STAMP_INVALID = 0, 1, 2, 3
_NUMBER_CHECKS = 10  # then four per number column (empty, not a number, not finite, sign), in column order
# then the bar as a whole (each number alone passed): sizes no market trades, and a high below its low
_TOO_LARGE, _HIGH_BELOW_LOW = 100, 101
# a price above this is no share price (the dearest US share trades under 10**6); a minute's volume above this is
# no market's; 2**53 - 1 is also the largest whole number below which every float is exact (2**53 + 1 reads as
# 2**53, so that is refused too: the store keeps volume as int64, never a rounded one)
MAX_PRICE = 10**9
MAX_VOLUME = 2**53 - 1


class _Findings:
    """Each per-row check's first failing row and count over a whole file read a slice at a time; the file is
    refused for the earliest check (in check order) that failed, naming the same row and count that checking
    the whole file at once would."""

    def __init__(self, path: Path, first_row: int) -> None:
        self.path, self.first_row = path, first_row
        self._found: dict[int, list[Any]] = {}  # check -> [row, count, problem]

    def add(self, check: int, rows: np.ndarray, offset: int, problem: Callable[[int], str]) -> None:
        if len(rows) == 0:
            return
        held = self._found.get(check)
        if held is None:
            # slices arrive in file order: the first row found is the file's first; the problem text is built
            # now, while the slice that holds the row's raw value is alive
            self._found[check] = [offset + int(rows[0]), len(rows), problem(int(rows[0]))]
        else:
            held[1] += len(rows)

    def refuse(self) -> None:
        if not self._found:
            return
        row, count, problem = self._found[min(self._found)]
        raise _refusal(self.path, row + self.first_row, count, problem)


class _Typed:
    """The checked, typed columns of every slice so far. Keys (stamps, symbol codes) are kept for every row, as
    the whole-file checks need them; values only for rows kept as minutes: rows `days` condenses are folded
    into per-(symbol, date) partial sums as they arrive, rows outside its dates are not kept at all."""

    def __init__(self, days: Days) -> None:
        self.days = days
        self.stamps: list[np.ndarray] = []  # int64 ns UTC
        self.codes: list[np.ndarray] = []  # symbol codes into `symbols`, in order of first appearance
        self.symbols: dict[str, int] = {}
        self.values: dict[str, list[np.ndarray]] = {}
        self.minutes: list[np.ndarray] = []  # per slice: rows kept as minutes
        self.dropped = False  # whether any row's values were left out or condensed
        self.groups = _Groups()
        # (codes, UTC days, volume) of rows inside the dates that the regular-session filter left out
        self.outside: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add_symbols(self, symbol: pd.Series) -> None:
        codes, uniques = pd.factorize(symbol)
        lookup = np.array(
            [self.symbols.setdefault(str(u), len(self.symbols)) for u in uniques], dtype=np.int32
        )
        # an empty symbol (code -1) refuses the file; its placeholder code is never used
        self.codes.append(lookup[codes] if len(lookup) else np.zeros(len(codes), dtype=np.int32))

    def add_values(self, values: dict[str, np.ndarray]) -> None:
        """One slice's value columns (after its keys): only what `days` keeps is held."""
        stamps = self.stamps[-1]
        masks = self.days.masks(stamps)
        self.minutes.append(np.ones(len(stamps), dtype=bool) if masks is None else masks[0])
        self.dropped |= masks is not None
        outside = self.days.outside_session(stamps, masks[0] | masks[1]) if masks is not None else None
        if outside is not None and outside.any() and "volume" in values:
            self.outside.append(
                (self.codes[-1][outside], stamps[outside] // NS_PER_DAY, values["volume"][outside])
            )
        for name, column in values.items():
            self.values.setdefault(name, []).append(column if masks is None else column[masks[0]])
        if masks is not None and masks[1].any():
            condensed = masks[1]
            self.groups.add(
                self.codes[-1][condensed], stamps[condensed], {n: v[condensed] for n, v in values.items()}
            )

    def bars(
        self, path: Path, first_row: int, order: Order, reread: Callable[[], pd.DataFrame] | None
    ) -> pd.DataFrame:
        """The whole-file checks on integer keys (no hashing of millions of strings), then the frame of the rows
        `days` keeps, in `order`, built one column at a time (the slices are freed as each column is made)."""
        keys = [_joined(self.stamps, np.int64), _joined(self.codes, np.int32)]
        give_back_freed_memory()
        stamps, codes = keys
        names = list(self.symbols)
        if _has_repeats(stamps, codes):
            # rare: the same (timestamp, symbol) twice is judged on the frame as the file had it, every row
            # with its values (read again when `days` left some out)
            if self.dropped:
                if reread is None:
                    raise LogicError("a file with repeated bars needs a second read to be limited by date")
                return select_bars(reread(), self.days, order)
            bars = _assemble(keys, names, self.values, self.minutes, self.groups, order="file")
            bars = _drop_identical_repeats(bars, path, first_row).reset_index(drop=True)
            stamps, codes = bars["timestamp"].array.asi8, pd.factorize(bars["symbol"])[0]
            _check_order(stamps, codes, path, first_row, lambda i: str(bars["symbol"].iloc[i]))
            return select_bars(bars, EVERY_DAY, order)
        _check_order(stamps, codes, path, first_row, lambda i: names[keys[1][i]])
        del stamps, codes
        give_back_freed_memory()  # the checks' sorted copies of the keys
        return _assemble(keys, names, self.values, self.minutes, self.groups, order)


Order = Literal["file", "time", "symbol"]
NS_PER_DAY = 86_400 * 10**9
_EPOCH = date(1970, 1, 1)


def _midnight(day: date) -> int:
    """UTC midnight starting `day`, in ns."""
    return (day - _EPOCH).days * NS_PER_DAY


@dataclass(frozen=True)
class Days:
    """Which UTC dates of a file are kept (start..end inclusive; None = unbounded), and before which date each
    symbol's minutes come back condensed into one bar per date: stamped at that date's last minute, with the
    first open, highest high, lowest low, last close, summed volume and volume-weighted vwap. A replay holds
    the previous session this way: its close and volume are all the day needs from it."""

    start: date | None = None
    end: date | None = None
    condense_before: date | None = None
    # a calendar name: only bars starting inside their date's regular session are kept (pre- and post-market
    # bars would be taken for the day's open and counted in its volume)
    regular: str | None = None

    def masks(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(kept as minutes, condensed) per row; None when every row is kept as it is."""
        if self.start is None and self.end is None and self.condense_before is None and self.regular is None:
            return None

        keep = self._dated(stamps)
        if self.regular is not None:
            from tbot_bot.strategy.grid import in_regular_session

            # only the rows the dates kept: a bar years outside the range costs nothing and fails nothing
            kept = np.flatnonzero(keep)
            keep[kept] = in_regular_session(stamps[kept], self.regular)
        condensed = np.zeros(len(stamps), dtype=bool)
        if self.condense_before is not None:
            condensed = keep & (stamps < _midnight(self.condense_before))
        if keep.all() and not condensed.any():
            return None
        return keep & ~condensed, condensed

    def _dated(self, stamps: np.ndarray) -> np.ndarray:
        """Rows of the dates start..end, compared on the stamps themselves (no per-row day array: millions)."""
        keep = np.ones(len(stamps), dtype=bool)
        if self.start is not None:
            keep &= stamps >= _midnight(self.start)
        if self.end is not None:
            keep &= stamps < _midnight(self.end) + NS_PER_DAY
        return keep

    def outside_session(self, stamps: np.ndarray, kept: np.ndarray) -> np.ndarray | None:
        """Rows of the dates (and not condensed) that the regular-session filter left out (None: no such filter)."""
        if self.regular is None:
            return None
        dated = self._dated(stamps)
        if self.condense_before is not None:
            dated &= stamps >= _midnight(self.condense_before)
        return dated & ~kept


EVERY_DAY = Days()


@dataclass(frozen=True)
class Reading:
    """What a read of one file returns: rows in `order`, limited and condensed by `days`; `rows_read`, when
    given, collects the file's row count before `days` chose among them; `outside`, when given, the volume of
    each (symbol, UTC day) that the regular-session filter left out (the stamp-convention check weighs it)."""

    order: Order = "file"
    days: Days = EVERY_DAY
    rows_read: list[int] | None = None
    outside: list[pd.DataFrame] | None = None


AS_READ = Reading()


class _Groups:
    """Condensed rows folded into one bar per (symbol, date): partial sums per slice, merged at the end. Within
    a symbol the file's rows are in time order (the order check refuses the file otherwise), so a group's first
    row in the file is its first minute and its last row its last minute."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, codes: np.ndarray, stamps: np.ndarray, values: dict[str, np.ndarray]) -> None:
        order = np.lexsort((stamps, stamps // NS_PER_DAY, codes))
        self.parts.append(_fold(codes[order], stamps[order], {n: v[order] for n, v in values.items()}))

    def merged(self) -> dict[str, np.ndarray]:
        """One row per (symbol, date): code, stamp (its last minute) and each value column."""
        if not self.parts:
            return {}
        joined = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        self.parts.clear()
        order = np.lexsort((joined["first"], joined["last"] // NS_PER_DAY, joined["code"]))
        joined = {k: v[order] for k, v in joined.items()}
        day = joined["last"] // NS_PER_DAY
        starts = _group_starts(joined["code"], day)
        ends = np.r_[starts[1:], len(day)] - 1
        out = {"code": joined["code"][starts], "stamp": joined["last"][ends]}
        for name in [k for k in joined if k not in ("code", "first", "last")]:
            how = _CONDENSE.get(name.split(":")[0], "last")
            out[name] = _reduce(joined[name], starts, ends, "sum" if name.startswith("vwap:") else how)
        if "vwap:pv" in out:
            with np.errstate(invalid="ignore", divide="ignore"):
                out["vwap"] = np.where(out["vwap:w"] > 0, out["vwap:pv"] / out["vwap:w"], out["vwap"])
        return out


def _group_starts(codes: np.ndarray, day: np.ndarray) -> np.ndarray:
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (day[1:] != day[:-1])])


def _reduce(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, how: str) -> np.ndarray:
    if how == "first":
        return values[starts]
    if how == "max":
        return np.maximum.reduceat(values, starts)
    if how == "min":
        return np.minimum.reduceat(values, starts)
    if how == "sum":
        return np.add.reduceat(values, starts)
    return values[ends]  # "last" (and a vwap column's fallback: the group's last vwap)


def _fold(codes: np.ndarray, stamps: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Partial sums of rows sorted by (symbol, date, time): first and last stamp, first open, highest high,
    lowest low, last close, summed volume; vwap as volume-weighted sums (a group without volume keeps its
    last vwap)."""
    starts = _group_starts(codes, stamps // NS_PER_DAY)
    ends = np.r_[starts[1:], len(codes)] - 1
    out = {"code": codes[starts], "first": stamps[starts], "last": stamps[ends]}
    for name, column in values.items():
        out[name] = _reduce(column, starts, ends, _CONDENSE.get(name, "last"))
    if "vwap" in values:
        # only minutes with a vwap weigh in: a date without any keeps no vwap (NaN), not 0
        weights = np.where(np.isnan(values["vwap"]), 0.0, values["volume"])
        out["vwap:pv"] = np.add.reduceat(np.nan_to_num(values["vwap"]) * weights, starts)
        out["vwap:w"] = np.add.reduceat(weights, starts)
    return out


_CONDENSE = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def _assemble(
    keys: list[np.ndarray],
    names: list[str],
    values: dict[str, list[np.ndarray]],
    minutes: list[np.ndarray],
    groups: _Groups,
    order: Order,
) -> pd.DataFrame:
    """The frame from the keys of every row [stamps, codes] (taken from the list), the value pieces of the
    rows kept as minutes and the condensed groups, in `order`: each column is written piece by piece straight
    to its output row (no joined copy of a column, no sorted copy of the frame)."""
    index: Any = np.int32 if len(keys[0]) < 2**31 else np.int64  # positions fit 4 bytes below 2**31 rows
    stamps, codes = keys.pop(0), keys.pop(0)
    kept = _joined(minutes, bool)
    if not kept.all():
        rows = np.flatnonzero(kept).astype(index)
        stamps, codes = stamps[rows], codes[rows]
        del rows
    del kept
    condensed = groups.merged()
    if condensed:
        stamps = np.concatenate([stamps, condensed["stamp"]])
        codes = np.concatenate([codes, condensed["code"]])
    ranks = np.empty(len(names), dtype=np.int32)
    ranks[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names), dtype=np.int32)
    perm = _sort_order(stamps, ranks[codes], order)
    place = None
    if perm is not None:
        # where each output row goes: pieces are written into place and freed one by one
        place = np.empty(len(perm), dtype=index)
        place[perm] = np.arange(len(perm), dtype=index)
        del perm
    give_back_freed_memory()
    n_out = len(stamps)

    def put(pieces: list[np.ndarray]) -> np.ndarray:
        out = np.empty(n_out, dtype=pieces[0].dtype if pieces else float)
        lo = 0
        while pieces:
            part = pieces.pop(0)
            hi = lo + len(part)
            out[slice(lo, hi) if place is None else place[lo:hi]] = part
            lo = hi
            del part
        give_back_freed_memory()  # the column's slices, freed into the heap, are not kept mapped
        return out

    def column(name: str) -> list[np.ndarray]:
        return values[name] + ([condensed[name]] if condensed else [])

    columns: dict[str, Any] = {"timestamp": _utc(put([stamps]))}
    del stamps
    columns["symbol"] = pd.Series(pd.array(names, dtype="str").take(put([codes])), copy=False)
    del codes
    for name in list(values):
        columns[name] = put(column(name))
    return pd.DataFrame(columns, copy=False)


def select_bars(df: pd.DataFrame, days: Days, order: Order) -> pd.DataFrame:
    """A checked frame limited and condensed by `days`, in `order` (several files joined, or the rare file with
    repeats: a single file does this as its slices arrive)."""
    typed = _Typed(days)
    codes, uniques = pd.factorize(df["symbol"])
    typed.symbols = {str(u): i for i, u in enumerate(uniques)}
    typed.stamps.append(df["timestamp"].array.asi8)
    typed.codes.append(codes.astype(np.int32))
    typed.add_values({c: df[c].to_numpy(dtype=float) for c in df.columns if c not in ("timestamp", "symbol")})
    keys = [typed.stamps.pop(), typed.codes.pop()]
    return _assemble(keys, list(typed.symbols), typed.values, typed.minutes, typed.groups, order)


_SLICE_ROWS = 250_000  # a store read's slice: large enough to amortise, small next to the whole


def bars_from_runs(
    runs: Iterable[tuple[str, dict[str, np.ndarray]]], days: Days, order: Order
) -> pd.DataFrame:
    """Bars checked before (the bar store's partitions, checked at import), given as runs of one symbol each in
    time order (`timestamp` int64 ns UTC and float columns; a symbol's runs consecutive): limited and condensed
    by `days`, in `order`, as a read of files returns them. Each run is let go once its kept rows are copied,
    so a store read never holds every partition and a joined copy at once."""
    typed = _Typed(days)
    held: list[dict[str, np.ndarray]] = []
    codes: list[int] = []

    def add_slice() -> None:
        # runs joined into one slice: the date masks and the condensing cost a few numpy calls per slice, not
        # per partition (thousands of symbols)
        sizes = [len(r["timestamp"]) for r in held]
        typed.stamps.append(np.concatenate([r.pop("timestamp") for r in held]))
        typed.codes.append(np.repeat(np.array(codes, dtype=np.int32), sizes))
        typed.add_values({c: np.concatenate([r[c] for r in held]) for c in held[0]})
        held.clear()
        codes.clear()

    rows = 0
    for symbol, run in runs:
        held.append(run)
        codes.append(typed.symbols.setdefault(symbol, len(typed.symbols)))
        rows += len(run["timestamp"])
        if rows >= _SLICE_ROWS:
            add_slice()
            rows = 0
    if held:
        add_slice()
    if not typed.stamps:
        columns: dict[str, Any] = {"timestamp": _utc(np.empty(0, dtype=np.int64))}
        columns["symbol"] = pd.Series(pd.array([], dtype="str"))
        return pd.DataFrame(
            {**columns, **{c: np.empty(0) for c in ("open", "high", "low", "close", "volume")}}
        )
    keys = [_joined(typed.stamps, np.int64), _joined(typed.codes, np.int32)]
    return _assemble(keys, list(typed.symbols), typed.values, typed.minutes, typed.groups, order)


def _utc(stamps: np.ndarray) -> pd.Series:
    naive = pd.Series(stamps.view("datetime64[ns]"), copy=False)
    return naive.dt.tz_localize("UTC")  # one copy: pandas has no public zero-copy way


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    out = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    parts.clear()  # the slices are freed as soon as the column is whole
    return out


def _sort_order(stamps: np.ndarray, ranks: np.ndarray, order: Order) -> np.ndarray | None:
    """The permutation to (timestamp, symbol) or (symbol, timestamp) order; None when none is needed."""
    if order == "file":
        return None
    perm = np.lexsort((ranks, stamps) if order == "time" else (stamps, ranks))
    # a permutation that only ever increases is the identity (no position array to compare with)
    return None if (perm[1:] > perm[:-1]).all() else perm


def _timestamps(raw: pd.Series, offset: int, found: _Findings, stamps_are_utc: bool) -> np.ndarray:
    """One slice's stamps as int64 ns UTC (NaT where refused; the findings say why)."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").array.asi8
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        if stamps_are_utc:
            return raw.dt.tz_localize("UTC").astype("datetime64[ns, UTC]").array.asi8
        # a typed column without a zone (Parquet) is refused from its first row, once for the whole file
        found.add(
            _STAMP_NO_ZONE,
            np.arange(len(raw)),
            offset,
            lambda i: "timestamps carry no time zone; store them in UTC",
        )
        return np.full(len(raw), np.iinfo(np.int64).min, dtype=np.int64)
    text = raw.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)

    def stamp(i: int) -> str:
        return repr(text.iloc[i])

    found.add(_STAMP_EMPTY, np.flatnonzero(missing), offset, lambda i: "the timestamp is empty")
    refused = missing
    if not stamps_are_utc:
        zoneless = ~text.str.contains(_HAS_ZONE, regex=True).fillna(False).astype(bool).to_numpy()
        # every zoneless stamp is refused; the message says "no time zone" of what reads as a date and "not a
        # date" of other text ("notatime"; "now" and "today", which the parser would take as this moment)
        datelike = text.str.match(r"\d{4}").fillna(False).astype(bool).to_numpy()
        found.add(
            _STAMP_NO_ZONE,
            np.flatnonzero(zoneless & datelike),
            offset,
            lambda i: f"timestamp {stamp(i)} has no time zone; write UTC as 2024-01-02T14:30:00Z",
        )
        found.add(
            _STAMP_INVALID,
            np.flatnonzero(zoneless & ~datelike & ~missing),
            offset,
            lambda i: f"timestamp {stamp(i)} is not a valid date and time",
        )
        refused = missing | zoneless
    # only stamps that passed the checks above are parsed (the file is refused for the others anyway)
    parsed = pd.to_datetime(text.where(~refused), utc=True, errors="coerce", format="ISO8601")
    if parsed.dt.unit != "ns":
        # the parser chose a coarser unit because a stamp lies outside what nanoseconds hold (1677-2262):
        # not a valid bar time
        inside = (parsed >= pd.Timestamp.min.tz_localize("UTC")) & (
            parsed <= pd.Timestamp.max.tz_localize("UTC")
        )
        parsed = parsed.where(inside)
    ns = parsed.astype("datetime64[ns, UTC]").array.asi8  # NaT is the smallest int64
    found.add(
        _STAMP_INVALID,
        np.flatnonzero(parsed.isna().to_numpy()),
        offset,
        lambda i: f"timestamp {stamp(i)} is not a valid date and time",
    )
    return ns


def _numbers(
    raw: pd.Series,
    name: str,
    check: int,
    offset: int,
    found: _Findings,
    *,
    price: bool,
    optional: bool = False,
) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        # the common case: the reader already parsed every cell as a number (empty cells are NaN)
        values = raw.to_numpy(dtype=float, na_value=np.nan)
        blank = np.isnan(values)
    else:
        values = pd.to_numeric(raw, errors="coerce").astype(float).to_numpy()
        blank = (raw.isna() | (raw.astype("string").str.strip() == "").fillna(True).astype(bool)).to_numpy()
    if not optional:
        found.add(check, np.flatnonzero(blank), offset, lambda i: f"{name} is empty")
    found.add(
        check + 1,
        np.flatnonzero(np.isnan(values) & ~blank),
        offset,
        lambda i: f"{name}={str(raw.iloc[i])!r} is not a number",
    )
    found.add(
        check + 2, np.flatnonzero(np.isinf(values)), offset, lambda i: f"{name}={values[i]} is not finite"
    )
    if price:
        found.add(
            check + 3,
            np.flatnonzero(values <= 0),
            offset,
            lambda i: f"{name}={values[i]} is not a positive price",
        )
    else:
        found.add(check + 3, np.flatnonzero(values < 0), offset, lambda i: f"{name}={values[i]} is negative")
    return values


def _whole_bars(values: dict[str, np.ndarray], offset: int, found: _Findings) -> None:
    """What no real bar is, though each number alone is one: a price or volume beyond any market's, a high
    below the low (NaN compares false: the number checks name it). An open or close outside [low, high] is real
    data (feeds build each field from different trade conditions: Alpaca's docs say so): `_widened` makes the
    range hold it once the file has passed."""
    o, h, low, c, v = (values[k] for k in ("open", "high", "low", "close", "volume"))
    too_large = np.flatnonzero((np.fmax(np.fmax(o, h), np.fmax(low, c)) > MAX_PRICE) | (v > MAX_VOLUME))

    def beyond(i: int) -> str:
        if v[i] > MAX_VOLUME:
            return f"volume={v[i]:g} is beyond any minute's volume (at most {MAX_VOLUME:,})"
        price = max(x[i] for x in (o, h, low, c))
        return f"a price of {price:g} is beyond any share's (at most {MAX_PRICE:,})"

    found.add(_TOO_LARGE, too_large, offset, beyond)
    found.add(
        _HIGH_BELOW_LOW, np.flatnonzero(h < low), offset, lambda i: f"high={h[i]} is below low={low[i]}"
    )


def _widened(bars: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The checked bars with each bar's high..low widened to hold its open and close, said once per file. Run on
    the file's final bars: repeats were judged on the values as written, and a refused file says nothing of it."""
    if bars.empty:
        return bars
    o, h, low, c = (bars[k].to_numpy(dtype=float) for k in PRICES)
    outside = (np.fmax(o, c) > h) | (np.fmin(o, c) < low)
    n = int(outside.sum())
    if not n:
        return bars
    print(
        f"warning: {path}: {n} bar(s) with the open or close outside high..low; their high and low were widened "
        "to hold them",
        file=sys.stderr,
    )
    return bars.assign(high=np.fmax(h, np.fmax(o, c)), low=np.fmin(low, np.fmin(o, c)))


def _normalised(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={c: str(c).strip().lower() for c in df.columns})


def check_slices(
    slices: Iterable[pd.DataFrame],
    path: Path,
    *,
    first_row: int,
    stamps_are_utc: bool = False,
    reading: Reading = AS_READ,
    reread: Callable[[], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The bars of one file given as consecutive slices of its rows (a CSV read in chunks, or one frame cut up):
    typed columns as `reading` asks (order, dates, condensing; applied after every row was checked), identical
    repeats removed; DataError otherwise. Only the typed columns of the
    slices seen so far are held: a file of millions of rows never sits in memory as text."""
    found = _Findings(path, first_row)
    typed = _Typed(reading.days)
    offset = 0
    numbers: list[str] = []
    for n, raw in enumerate(slices):
        raw = _normalised(raw)
        if n == 0:
            missing = [c for c in COLUMNS if c not in raw.columns]
            if missing:
                raise DataError(
                    f"{path}: missing columns {', '.join(missing)} (need {', '.join(COLUMNS)}[, vwap])"
                )
            numbers = [*PRICES, "volume"] + (["vwap"] if "vwap" in raw.columns else [])
            typed.values = {c: [] for c in numbers}  # the column order of the frame
        # tickers as exchanges and brokers write them: a vendor's lower-case `spy` is SPY (the inverse-ETF map, the
        # universe, fundamentals and the blocklist all name upper-case tickers; a lower-case one matched none)
        symbol = raw["symbol"].astype("string").str.strip().str.upper()
        empty = (symbol.isna() | (symbol == "")).fillna(True).to_numpy(dtype=bool)
        found.add(_SYMBOL_EMPTY, np.flatnonzero(empty), offset, lambda i: "the symbol is empty")
        typed.add_symbols(symbol)
        del symbol
        typed.stamps.append(_timestamps(raw["timestamp"], offset, found, stamps_are_utc))
        values = {
            col: _numbers(
                raw[col],
                col,
                _NUMBER_CHECKS + 4 * k,
                offset,
                found,
                price=col != "volume",
                optional=col == "vwap",
            )
            for k, col in enumerate(numbers)
        }
        _whole_bars(values, offset, found)
        typed.add_values(values)
        offset += len(raw)
        del raw
    found.refuse()
    if reading.rows_read is not None:
        reading.rows_read.append(offset)  # the file's bars before `days` chose among them
    if reading.outside is not None and typed.outside:
        names = np.array(list(typed.symbols), dtype=object)
        codes, days, volume = (np.concatenate(x) for x in zip(*typed.outside, strict=True))
        reading.outside.append(pd.DataFrame({"symbol": names[codes], "day": days, "volume": volume}))
    give_back_freed_memory()  # the text the reader made for every slice is garbage now
    # after every check (a repeat is judged on the values as written): on stderr like the repeats dropped
    return _widened(typed.bars(path, first_row, reading.order, reread), path)


def check_bars(
    df: pd.DataFrame,
    path: Path,
    *,
    first_row: int,
    stamps_are_utc: bool = False,
    reading: Reading = AS_READ,
) -> pd.DataFrame:
    """The file's bars (a whole frame as read) with typed columns as `reading` asks, identical repeats removed;
    DataError otherwise. Checked a slice at a time, exactly as a CSV read in chunks."""
    df = df.reset_index(drop=True)
    step = _CHUNK_ROWS
    parts = [df] if len(df) == 0 else (df.iloc[lo : lo + step] for lo in range(0, len(df), step))
    return check_slices(
        parts,
        path,
        first_row=first_row,
        stamps_are_utc=stamps_are_utc,
        reading=reading,
        # every row again, in file order, if repeats must be judged on rows `days` left out
        reread=lambda: check_bars(df, path, first_row=first_row, stamps_are_utc=stamps_are_utc),
    )


def check_csv(
    path: Path,
    *,
    first_row: int = 2,
    reading: Reading = AS_READ,
) -> pd.DataFrame:
    """A CSV (or .csv.gz) of bars read, checked and typed `_CHUNK_ROWS` rows at a time (header on line 1)."""
    header = read_guarded(path, lambda: pd.read_csv(path, nrows=0))
    # stamps and symbols stay text as written (a chunk of digit-only symbols is not turned into numbers)
    as_text = {c: "str" for c in header.columns if str(c).strip().lower() in ("timestamp", "symbol")}
    reader = read_guarded(path, lambda: pd.read_csv(path, chunksize=_CHUNK_ROWS, dtype=as_text))

    def chunks() -> Iterator[pd.DataFrame]:
        with reader:
            while (chunk := read_guarded(path, lambda: next(reader, None))) is not None:
                yield chunk

    return check_slices(
        chunks(),
        path,
        first_row=first_row,
        reading=reading,
        reread=lambda: check_csv(path, first_row=first_row),
    )


def _has_repeats(stamps: np.ndarray, codes: np.ndarray) -> bool:
    """Whether any (timestamp, symbol) occurs twice, decided on integer keys."""
    by_key = np.lexsort((stamps, codes))
    c, t = codes[by_key], stamps[by_key]
    del by_key
    return bool(((c[1:] == c[:-1]) & (t[1:] == t[:-1])).any())


def _check_order(
    stamps: np.ndarray, codes: np.ndarray, path: Path, first_row: int, symbol: Callable[[int], str]
) -> None:
    order = np.argsort(codes, kind="stable")  # each symbol's bars together, in file order
    c = codes[order]
    same = c[1:] == c[:-1]
    del c
    t = stamps[order]
    # consecutive bars of one symbol in file order: a later one with an earlier stamp goes backwards
    step_back = same & (t[1:] < t[:-1])
    del t, same
    backwards = np.zeros(len(stamps), dtype=bool)
    backwards[order[1:][step_back]] = True
    _refuse(
        path,
        np.flatnonzero(backwards),
        first_row,
        lambda i: (
            f"{symbol(i)} bar at {pd.Timestamp(int(stamps[i]), tz='UTC')} comes after a later bar; "
            "sort each symbol's bars by time"
        ),
    )


def _drop_identical_repeats(bars: pd.DataFrame, path: Path, first_row: int) -> pd.DataFrame:
    repeated = bars.duplicated(subset=["timestamp", "symbol"], keep="first")
    identical = bars.duplicated(keep="first")
    conflicting = repeated & ~identical
    if conflicting.any():
        i = int(np.flatnonzero(conflicting.to_numpy())[0])
        key = bars.iloc[i][["timestamp", "symbol"]]
        same = (bars["timestamp"] == key["timestamp"]) & (bars["symbol"] == key["symbol"])
        earlier = int(np.flatnonzero(same.to_numpy())[0])
        raise DataError(
            f"{path}, row {i + first_row}: {key['symbol']} at {key['timestamp']} appears again with different "
            f"values (first at row {earlier + first_row}); keep one of them"
        )
    print(
        f"warning: {path}: dropped {int(repeated.sum())} repeated bar(s) with identical values "
        f"(first at row {int(np.flatnonzero(repeated.to_numpy())[0]) + first_row})",
        file=sys.stderr,
    )
    return bars[~repeated]
