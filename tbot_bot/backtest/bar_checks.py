"""Checks on one file of 1-minute bars before a backtest or a replay uses it.

A bad file is a DataError naming the file, the first offending row (as a person counts it: the CSV line, or
the Parquet row from 1) and the problem, plus how many rows share it. Refused: unreadable or empty files,
missing columns, stamps that are not dates or carry no time zone, prices that are missing, not finite or not
positive, volumes that are missing, negative or infinite, a symbol's stamps going backwards, and the same
(timestamp, symbol) twice with different values. The same bar repeated with identical values is dropped with
a warning on stderr.
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

from tbot_bot.errors import DataError
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
    more = f" ({len(rows) - 1} more rows like it)" if len(rows) > 1 else ""
    raise DataError(f"{path}, row {first + first_row}: {problem(first)}{more}")


# The per-row checks, in the order a file is judged: the first of these that any row fails refuses the file.
_SYMBOL_EMPTY, _STAMP_EMPTY, _STAMP_NO_ZONE, _STAMP_INVALID = 0, 1, 2, 3
_NUMBER_CHECKS = 10  # then four per number column (empty, not a number, not finite, sign), in column order


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
        more = f" ({count - 1} more rows like it)" if count > 1 else ""
        raise DataError(f"{self.path}, row {row + self.first_row}: {problem}{more}")


class _Typed:
    """The checked, typed columns of every slice so far, joined once at the end (one column at a time)."""

    def __init__(self) -> None:
        self.stamps: list[np.ndarray] = []  # int64 ns UTC
        self.codes: list[np.ndarray] = []  # symbol codes into `symbols`, in order of first appearance
        self.symbols: dict[str, int] = {}
        self.values: dict[str, list[np.ndarray]] = {}

    def add_symbols(self, symbol: pd.Series) -> None:
        codes, uniques = pd.factorize(symbol)
        lookup = np.array(
            [self.symbols.setdefault(str(u), len(self.symbols)) for u in uniques], dtype=np.int32
        )
        # an empty symbol (code -1) refuses the file; its placeholder code is never used
        self.codes.append(lookup[codes] if len(lookup) else np.zeros(len(codes), dtype=np.int32))

    def bars(self, path: Path, first_row: int, order: Order, days: Days) -> pd.DataFrame:
        """The whole-file checks on integer keys (no hashing of millions of strings), then the frame of the rows
        `days` keeps, in `order`, built one column at a time (the slices are freed as each column is made)."""
        keys = [_joined(self.stamps, np.int64), _joined(self.codes, np.int32)]
        give_back_freed_memory()
        stamps, codes = keys
        names = list(self.symbols)
        if _has_repeats(stamps, codes):
            # rare: the same (timestamp, symbol) twice is judged on the frame as the file had it
            bars = self._frame(keys, names, None)
            bars = _drop_identical_repeats(bars, path, first_row).reset_index(drop=True)
            stamps, codes = bars["timestamp"].array.asi8, pd.factorize(bars["symbol"])[0]
            _check_order(stamps, codes, path, first_row, lambda i: str(bars["symbol"].iloc[i]))
            return select_bars(bars, days, order)
        _check_order(stamps, codes, path, first_row, lambda i: names[keys[1][i]])
        give_back_freed_memory()  # the checks' sorted copies of the keys
        ranks = np.empty(len(names), dtype=np.int32)
        ranks[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(
            len(names), dtype=np.int32
        )
        selection = _Selection.of(stamps, ranks[codes], days, order)
        del stamps, codes
        if selection is not None:
            return selection.frame(
                pd.array(names, dtype="str"),
                keys,
                lambda name: self.values[name],
                self.values,
            )
        perm = _sort_order(keys[0], ranks[keys[1]], order)
        if perm is None:
            return self._frame(keys, names, None)
        # where each row of the file goes: slices are written into place and freed one by one
        target = np.empty(len(perm), dtype=np.int32 if len(perm) < 2**31 else np.int64)
        target[perm] = np.arange(len(perm), dtype=target.dtype)
        del perm
        return self._frame(keys, names, target)

    def _frame(self, keys: list[np.ndarray], names: list[str], target: np.ndarray | None) -> pd.DataFrame:
        """The frame from [stamps, codes] (taken from the list as used) and the value slices; rows moved to
        `target` positions when given."""

        def placed(parts: list[np.ndarray]) -> np.ndarray:
            if target is None:
                return _joined(parts, float)
            out = np.empty(len(target), dtype=parts[0].dtype if parts else float)
            lo = 0
            while parts:
                part = parts.pop(0)
                out[target[lo : lo + len(part)]] = part
                lo += len(part)
                del part
            give_back_freed_memory()  # the column's slices, freed into the heap, are not kept mapped
            return out

        stamps = placed([keys.pop(0)])
        columns: dict[str, Any] = {"timestamp": _utc(stamps)}
        del stamps
        columns["symbol"] = pd.Series(pd.array(names, dtype="str").take(placed([keys.pop(0)])), copy=False)
        for name, parts in self.values.items():
            columns[name] = placed(parts)
        return pd.DataFrame(columns, copy=False)


Order = Literal["file", "time", "symbol"]
NS_PER_DAY = 86_400 * 10**9
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Days:
    """Which UTC dates of a file are kept (start..end inclusive; None = unbounded), and before which date each
    symbol's minutes come back condensed into one bar per date: stamped at that date's last minute, with the
    first open, highest high, lowest low, last close, summed volume and volume-weighted vwap. A replay holds
    the previous session this way: its close and volume are all the day needs from it."""

    start: date | None = None
    end: date | None = None
    condense_before: date | None = None

    def masks(self, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(kept as minutes, condensed) per row; None when every row is kept as it is."""
        if self.start is None and self.end is None and self.condense_before is None:
            return None

        def midnight(day: date) -> int:  # UTC midnight starting `day`, in ns
            return (day - _EPOCH).days * NS_PER_DAY

        # compared on the stamps themselves: no per-row day array (millions of rows)
        keep = np.ones(len(stamps), dtype=bool)
        if self.start is not None:
            keep &= stamps >= midnight(self.start)
        if self.end is not None:
            keep &= stamps < midnight(self.end) + NS_PER_DAY
        condensed = np.zeros(len(stamps), dtype=bool)
        if self.condense_before is not None:
            condensed = keep & (stamps < midnight(self.condense_before))
        if keep.all() and not condensed.any():
            return None
        return keep & ~condensed, condensed


EVERY_DAY = Days()


class _Selection:
    """Where each row of a file goes: kept minutes to their place in the output order, condensed rows into
    their (symbol, date) group, each group to one output row. Columns are then written piece by piece straight
    into place (no joined copy of the file's column, no sorted copy of the output)."""

    def __init__(
        self, stamps: np.ndarray, ranks: np.ndarray, minutes: np.ndarray, condensed: np.ndarray, order: Order
    ) -> None:
        index: Any = np.int32 if len(stamps) < 2**31 else np.int64  # positions fit 4 bytes below 2**31 rows
        rows = np.flatnonzero(minutes).astype(index)
        crow = np.flatnonzero(condensed).astype(index)
        crow = crow[np.lexsort((stamps[crow], ranks[crow]))]  # each (symbol, date) group together, in time
        if len(crow):
            day, rank = stamps[crow] // NS_PER_DAY, ranks[crow]
            self.starts = np.flatnonzero(np.r_[True, (rank[1:] != rank[:-1]) | (day[1:] != day[:-1])])
            del day, rank
            self.ends = np.r_[self.starts[1:], len(crow)] - 1
        else:
            self.starts = self.ends = np.zeros(0, dtype=np.int64)
        self.groups = len(crow)
        n_out = len(rows) + len(self.starts)
        # output rows before ordering: the minutes, then one per group (stamped at its last minute)
        perm = _sort_order(
            np.concatenate([stamps[rows], stamps[crow[self.ends]]]),
            np.concatenate([ranks[rows], ranks[crow[self.starts]]]),
            order,
        )
        place = np.arange(n_out, dtype=index)
        if perm is not None:
            place[perm] = np.arange(n_out, dtype=index)
        del perm
        self.n_out = n_out
        self.dest = np.full(len(stamps), -1, dtype=index)  # file row -> output position (-1: not a minute)
        self.dest[rows] = place[: len(rows)]
        self.group_at = place[len(rows) :]  # output position of each group
        del place, rows
        self.in_group = np.full(len(stamps), -1, dtype=index)  # file row -> position among grouped rows
        self.in_group[crow] = np.arange(len(crow), dtype=index)
        del crow
        self._volume: np.ndarray | None = None

    @classmethod
    def of(cls, stamps: np.ndarray, ranks: np.ndarray, days: Days, order: Order) -> _Selection | None:
        masks = days.masks(stamps)
        if masks is None:
            return None
        selection = cls(stamps, ranks, *masks, order)
        del masks
        give_back_freed_memory()  # the grouping's temporaries
        return selection

    def placed(self, parts: list[np.ndarray], how: str) -> np.ndarray:
        """One column in output order from its pieces (file order; each freed once written); a group's value
        is its first, last, max, min, sum or volume-weighted mean ("vwap")."""
        dtype = parts[0].dtype if parts else np.dtype(float)
        out = np.empty(self.n_out, dtype=dtype)
        group = np.empty(self.groups, dtype=dtype)
        lo = 0
        while parts:
            part = parts.pop(0)
            hi = lo + len(part)
            dest = self.dest[lo:hi]
            kept = dest >= 0
            out[dest[kept]] = part[kept]
            if self.groups:
                at = self.in_group[lo:hi]
                grouped = at >= 0
                group[at[grouped]] = part[grouped]
            lo = hi
            del part
        if self.groups:
            out[self.group_at] = self._condensed(group, how)
        return out

    def _condensed(self, group: np.ndarray, how: str) -> np.ndarray:
        if how == "first":
            return group[self.starts]
        if how == "last":
            return group[self.ends]
        if how == "max":
            return np.maximum.reduceat(group, self.starts)
        if how == "min":
            return np.minimum.reduceat(group, self.starts)
        if how == "sum":
            self._volume = group  # kept for a vwap column, which comes after volume
            return np.add.reduceat(group, self.starts)
        # vwap: weighted by each minute's volume; a group without volume keeps its last vwap
        weights = self._volume if self._volume is not None else np.ones(len(group))
        total = np.add.reduceat(weights, self.starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            weighted = np.add.reduceat(np.nan_to_num(group) * weights, self.starts) / total
        return np.where(total > 0, weighted, group[self.ends])

    def frame(
        self,
        names: Any,
        keys: list[np.ndarray],
        column: Callable[[str], list[np.ndarray]],
        value_names: Iterable[str],
    ) -> pd.DataFrame:
        """The frame: timestamp, symbol (`names` taken by code), then each value column, made one at a time."""
        columns: dict[str, Any] = {"timestamp": _utc(self.placed([keys.pop(0)], "last"))}
        columns["symbol"] = pd.Series(names.take(self.placed([keys.pop(0)], "first")), copy=False)
        give_back_freed_memory()
        for name in list(value_names):
            columns[name] = self.placed(column(name), _CONDENSE.get(name, "last"))
            give_back_freed_memory()
        self._volume = None
        return pd.DataFrame(columns, copy=False)


_CONDENSE = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "vwap": "vwap"}


def select_bars(df: pd.DataFrame, days: Days, order: Order) -> pd.DataFrame:
    """A checked frame limited and condensed by `days`, in `order` (several files joined, or the rare file with
    identical repeats: the single-file path does this while assembling its columns)."""
    stamps = df["timestamp"].array.asi8
    ranks = pd.factorize(df["symbol"], sort=True)[0]  # ranks in the symbols' sort order
    selection = _Selection.of(stamps, ranks, days, order)
    if selection is not None:
        values = [c for c in df.columns if c not in ("timestamp", "symbol")]
        return selection.frame(
            df["symbol"].array,
            [stamps, np.arange(len(df))],
            lambda name: [df[name].to_numpy(dtype=float)],
            values,
        )
    return df.reset_index(drop=True) if order == "file" else sort_bars(df, by_symbol=order == "symbol")


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


def sort_bars(df: pd.DataFrame, *, by_symbol: bool) -> pd.DataFrame:
    """`df` sorted (stable) by (timestamp, symbol) or (symbol, timestamp), one column at a time: a whole sorted
    copy next to the unsorted frame would double the peak memory."""
    stamps = df["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    ranks = pd.factorize(df["symbol"], sort=True)[0]  # ranks in the symbols' sort order
    perm = _sort_order(stamps, ranks, "symbol" if by_symbol else "time")
    del stamps, ranks
    if perm is None:
        return df.reset_index(drop=True)
    columns = {}
    for name in list(df.columns):
        column = df.pop(name)
        columns[name] = pd.Series(column.array.take(perm), name=name)
        del column
    return pd.DataFrame(columns, copy=False)


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
        found.add(
            _STAMP_NO_ZONE,
            np.flatnonzero(zoneless),
            offset,
            lambda i: f"timestamp {stamp(i)} has no time zone; write UTC as 2024-01-02T14:30:00Z",
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


def _normalised(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={c: str(c).strip().lower() for c in df.columns})


def check_slices(
    slices: Iterable[pd.DataFrame],
    path: Path,
    *,
    first_row: int,
    stamps_are_utc: bool = False,
    order: Order = "file",
    days: Days = EVERY_DAY,
    rows_read: list[int] | None = None,
) -> pd.DataFrame:
    """The bars of one file given as consecutive slices of its rows (a CSV read in chunks, or one frame cut up):
    typed columns in file order (or `order`), identical repeats removed, limited and condensed by `days` after
    every row was checked; DataError otherwise. Only the typed columns of the
    slices seen so far are held: a file of millions of rows never sits in memory as text."""
    found = _Findings(path, first_row)
    typed = _Typed()
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
            typed.values = {c: [] for c in numbers}
        symbol = raw["symbol"].astype("string").str.strip()
        empty = (symbol.isna() | (symbol == "")).fillna(True).to_numpy(dtype=bool)
        found.add(_SYMBOL_EMPTY, np.flatnonzero(empty), offset, lambda i: "the symbol is empty")
        typed.add_symbols(symbol)
        del symbol
        typed.stamps.append(_timestamps(raw["timestamp"], offset, found, stamps_are_utc))
        for k, col in enumerate(numbers):
            check = _NUMBER_CHECKS + 4 * k
            is_vwap = col == "vwap"
            typed.values[col].append(
                _numbers(raw[col], col, check, offset, found, price=col != "volume", optional=is_vwap)
            )
        offset += len(raw)
        del raw
    found.refuse()
    if rows_read is not None:
        rows_read.append(offset)  # the file's bars before `days` chose among them
    give_back_freed_memory()  # the text the reader made for every slice is garbage now
    return typed.bars(path, first_row, order, days)


def check_bars(
    df: pd.DataFrame,
    path: Path,
    *,
    first_row: int,
    stamps_are_utc: bool = False,
    order: Order = "file",
    days: Days = EVERY_DAY,
    rows_read: list[int] | None = None,
) -> pd.DataFrame:
    """The file's bars (a whole frame as read) with typed columns, in file order (or `order`), identical repeats
    removed; DataError otherwise. Checked a slice at a time, exactly as a CSV read in chunks."""
    df = df.reset_index(drop=True)
    step = _CHUNK_ROWS
    parts = [df] if len(df) == 0 else (df.iloc[lo : lo + step] for lo in range(0, len(df), step))
    return check_slices(
        parts,
        path,
        first_row=first_row,
        stamps_are_utc=stamps_are_utc,
        order=order,
        days=days,
        rows_read=rows_read,
    )


def check_csv(
    path: Path,
    *,
    first_row: int = 2,
    order: Order = "file",
    days: Days = EVERY_DAY,
    rows_read: list[int] | None = None,
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

    return check_slices(chunks(), path, first_row=first_row, order=order, days=days, rows_read=rows_read)


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
