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
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from tbot_bot.errors import DataError

COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
PRICES = ("open", "high", "low", "close")
# an explicit UTC offset or Z at the end of a stamp; a stamp without one is ambiguous
_HAS_ZONE = r"(?:Z|[+-]\d\d:?\d\d)$"
T = TypeVar("T")
_PARSE_SLICE = 200_000  # time stamps parsed per call


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


def _timestamps(raw: pd.Series, path: Path, first_row: int, stamps_are_utc: bool) -> pd.Series:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        if stamps_are_utc:
            return raw.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
        _refuse(
            path, np.arange(len(raw)), first_row, lambda i: "timestamps carry no time zone; store them in UTC"
        )
    # checked and parsed a slice at a time: every check is per stamp, and whole-column temporaries (stripped
    # copies, the parser's objects) for millions of stamps would cost several hundred MB
    missing = np.zeros(len(raw), dtype=bool)
    zoneless = np.zeros(len(raw), dtype=bool)
    ns = np.empty(len(raw), dtype=np.int64)  # NaT stays NaT: it is the smallest int64
    for lo in range(0, len(raw), _PARSE_SLICE):
        hi = lo + _PARSE_SLICE
        text = raw.iloc[lo:hi].astype("string").str.strip()
        missing[lo:hi] = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
        if not stamps_are_utc:
            zoneless[lo:hi] = ~text.str.contains(_HAS_ZONE, regex=True).fillna(False).astype(bool).to_numpy()
        del text

    def stamp(i: int) -> str:
        return repr(raw.iloc[i : i + 1].astype("string").str.strip().iloc[0])

    _refuse(path, np.flatnonzero(missing), first_row, lambda i: "the timestamp is empty")
    if not stamps_are_utc:
        _refuse(
            path,
            np.flatnonzero(zoneless),
            first_row,
            lambda i: f"timestamp {stamp(i)} has no time zone; write UTC as 2024-01-02T14:30:00Z",
        )
    # parsed only once every stamp is present and carries a zone (as the checks above promise)
    for lo in range(0, len(raw), _PARSE_SLICE):
        text = raw.iloc[lo : lo + _PARSE_SLICE].astype("string").str.strip()
        part = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        ns[lo : lo + _PARSE_SLICE] = (
            part.astype("datetime64[ns, UTC]").dt.tz_localize(None).to_numpy().view(np.int64)
        )
        del text, part
    parsed = pd.Series(ns.view("datetime64[ns]"), index=raw.index, name=raw.name).dt.tz_localize("UTC")
    _refuse(
        path,
        np.flatnonzero(parsed.isna().to_numpy()),
        first_row,
        lambda i: f"timestamp {stamp(i)} is not a valid date and time",
    )
    return parsed


def _numbers(
    raw: pd.Series, name: str, path: Path, first_row: int, *, price: bool, optional: bool = False
) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        # the common case: the reader already parsed every cell as a number (empty cells are NaN)
        values = raw.astype(float)
        blank = values.isna()
    else:
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        blank = raw.isna() | (raw.astype("string").str.strip() == "").fillna(True).astype(bool)
    if not optional:
        _refuse(path, np.flatnonzero(blank.to_numpy()), first_row, lambda i: f"{name} is empty")
    unparsed = values.isna() & ~blank
    _refuse(
        path,
        np.flatnonzero(unparsed.to_numpy()),
        first_row,
        lambda i: f"{name}={str(raw.iloc[i])!r} is not a number",
    )
    arr = values.to_numpy()
    _refuse(path, np.flatnonzero(np.isinf(arr)), first_row, lambda i: f"{name}={arr[i]} is not finite")
    if price:
        bad = np.flatnonzero(arr <= 0)
        _refuse(path, bad, first_row, lambda i: f"{name}={arr[i]} is not a positive price")
    else:
        bad = np.flatnonzero(arr < 0)
        _refuse(path, bad, first_row, lambda i: f"{name}={arr[i]} is negative")
    return values


def check_bars(df: pd.DataFrame, path: Path, *, first_row: int, stamps_are_utc: bool = False) -> pd.DataFrame:
    """The file's bars with typed columns, in file order, identical repeats removed; DataError otherwise."""
    df = df.rename(columns={c: str(c).strip().lower() for c in df.columns}).reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)} (need {', '.join(COLUMNS)}[, vwap])")
    symbol = df["symbol"].astype("string").str.strip()
    empty = symbol.isna() | (symbol == "")
    _refuse(path, np.flatnonzero(empty.fillna(True).to_numpy()), first_row, lambda i: "the symbol is empty")
    out = pd.DataFrame(
        {
            "timestamp": _timestamps(df["timestamp"], path, first_row, stamps_are_utc),
            "symbol": symbol.astype(str),
        }
    )
    # the text stamps and symbols as read are done with: millions of strings are freed before the rest
    df = df.drop(columns=["timestamp", "symbol"])
    del symbol, empty
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed strings cached otherwise
    for col in PRICES:
        out[col] = _numbers(df[col], col, path, first_row, price=True)
    out["volume"] = _numbers(df["volume"], "volume", path, first_row, price=False)
    if "vwap" in df.columns:
        out["vwap"] = _numbers(df["vwap"], "vwap", path, first_row, price=True, optional=True)
    del df  # the file as read: free before the whole-file checks below
    out = _drop_identical_repeats(out, path, first_row)
    _check_order(out, path, first_row)
    return out.reset_index(drop=True)


def _keys(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(stamps as int64 ns, symbol codes): integer keys instead of hashing millions of strings."""
    return bars["timestamp"].array.asi8, pd.factorize(bars["symbol"])[0]


def _check_order(bars: pd.DataFrame, path: Path, first_row: int) -> None:
    stamps, codes = _keys(bars)
    order = np.argsort(codes, kind="stable")  # each symbol's bars together, in file order
    c = codes[order]
    same = c[1:] == c[:-1]
    del c
    t = stamps[order]
    # consecutive bars of one symbol in file order: a later one with an earlier stamp goes backwards
    step_back = same & (t[1:] < t[:-1])
    del t, same
    backwards = np.zeros(len(bars), dtype=bool)
    backwards[order[1:][step_back]] = True
    _refuse(
        path,
        np.flatnonzero(backwards),
        first_row,
        lambda i: (
            f"{bars['symbol'].iloc[i]} bar at {bars['timestamp'].iloc[i]} comes after a later bar; "
            "sort each symbol's bars by time"
        ),
    )


def _drop_identical_repeats(bars: pd.DataFrame, path: Path, first_row: int) -> pd.DataFrame:
    stamps, codes = _keys(bars)
    by_key = np.lexsort((stamps, codes))
    c, t = codes[by_key], stamps[by_key]
    del by_key
    if not ((c[1:] == c[:-1]) & (t[1:] == t[:-1])).any():
        return bars  # no (timestamp, symbol) twice: the usual case, decided on integer keys
    del stamps, codes, c, t
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
