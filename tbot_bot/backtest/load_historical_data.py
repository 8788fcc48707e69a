"""Load 1-minute bars for backtests, the sim exchange and the supervisor's replay (DESIGN §11).

Input: a CSV (optionally .gz) or Parquet file, or a folder of them, with columns timestamp (UTC, bar START,
with an explicit offset such as Z or +00:00), symbol, open, high, low, close, volume[, vwap]; or a NinjaTrader
minute export (`YYYYMMDD HHMMSS;o;h;l;c;v`, timestamp = bar END in UTC). Output: one DataFrame, timestamp as
datetime64[ns, UTC], sorted by (timestamp, symbol).

Every file is checked before it is used (bar_checks.py): an unreadable, empty or inconsistent file is a
DataError naming the file, the row and the problem. Bars repeated with identical values are dropped with a
warning; a repeated (timestamp, symbol) with different values is refused.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from tbot_bot.backtest.bar_checks import (
    AS_READ,
    Days,
    Order,
    Reading,
    bars_from_runs,
    check_bars,
    check_csv,
    read_guarded,
    select_bars,
)
from tbot_bot.backtest.bar_conventions import convention_problems
from tbot_bot.data.bar_store import PRICES, is_store, iter_parts, read_columns
from tbot_bot.enhancements.vix_gatekeeper import VIX_MAX
from tbot_bot.errors import DataError
from tbot_bot.strategy.grid import BarColumns
from tbot_bot.support.memory import give_back_freed_memory

COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".txt", ".txt.gz")
# what NinjaTrader appends to an instrument's name in its export files (`SPY.Last.txt`, `ES 03-24.Bid.txt.gz`)
_NINJATRADER_TAILS = (".last", ".bid", ".ask")


def _is_ninjatrader(path: Path) -> bool:
    def first_line() -> str:
        opener = __import__("gzip").open if path.name.endswith(".gz") else open
        # utf-8-sig: a byte-order mark before the first stamp sent the file down the CSV path ("missing columns")
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            return str(fh.readline().strip())

    head = read_guarded(path, first_line).split(";")
    return len(head) == 6 and len(head[0]) == 15 and head[0][:8].isdigit()


def read_ninjatrader(
    path: str | os.PathLike[str],
    symbol: str,
    reading: Reading = AS_READ,
) -> pd.DataFrame:
    """A NinjaTrader minute export: the stamp is the bar END in UTC, so one minute is subtracted."""
    source = Path(path)
    raw = read_guarded(
        source,
        lambda: pd.read_csv(
            path,
            sep=";",
            header=None,
            names=["stamp", "open", "high", "low", "close", "volume"],
            dtype=str,
            encoding="utf-8-sig",
        ),  # fmt: skip
    )
    stamps = raw["stamp"].astype(str).str.strip()
    ts = pd.to_datetime(stamps, format="%Y%m%d %H%M%S", utc=True, errors="coerce")
    bad = ts.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(f"{source}, row {row + 1}: {stamps.iloc[row]!r} is not a YYYYMMDD HHMMSS time stamp")
    out = raw.drop(columns="stamp").assign(timestamp=ts - pd.Timedelta(minutes=1), symbol=symbol)
    return check_bars(out, source, first_row=1, stamps_are_utc=True, reading=reading)


def _read_file(path: Path, symbol: str | None, reading: Reading) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith(".parquet"):
        frame = read_guarded(path, lambda: pd.read_parquet(path))
        return check_bars(frame, path, first_row=1, reading=reading)
    if _is_ninjatrader(path):
        return read_ninjatrader(path, symbol or ninjatrader_symbol_of(path), reading)
    # header on line 1: the first bar is line 2 of the file; read in chunks, so only typed columns are held
    return check_csv(path, first_row=2, reading=reading)


def ninjatrader_symbol_of(path: Path) -> str:
    """The instrument a NinjaTrader export names in its file name: the name without its bar-file suffix and NinjaTrader's
    `.Last`/`.Bid`/`.Ask`, upper-case; a class share keeps its dot (`BRK.B.Last.txt` is BRK.B: cut at the first dot,
    BRK.A and BRK.B were one symbol BRK, the second file's bars replacing the first's)."""
    name = path.name
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):  # a renamed export: SPY.csv, QQQ.Last.csv.gz
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    for tail in _NINJATRADER_TAILS:
        if name.lower().endswith(tail):
            name = name[: -len(tail)]
            break
    return name.strip().upper()


def refuse_one_name_for_many(files: list[Path], ninjatrader_symbol: str | None, source: Path) -> None:
    """One --ninjatrader-symbol for several exports made them one symbol, each file's bars replacing another's."""
    exports = sum(1 for f in files if _is_ninjatrader(f)) if ninjatrader_symbol is not None else 0
    if exports > 1:
        raise DataError(
            f"--ninjatrader-symbol {ninjatrader_symbol} names one instrument, and {source} holds {exports} "
            "NinjaTrader exports: name one file, or leave the symbols to the file names"
        )


def bar_files(path: Path) -> list[Path]:
    """The bar files `load_bars` reads at `path`: the file itself, or a folder's *.csv, *.csv.gz, *.parquet and
    *.txt files (non-recursive) other than the VIX closes and fundamentals kept beside them."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"no market data at {path}: no such file or folder")
    # a data folder also holds the VIX closes and fundamentals: those are not bars
    return [p for p in files if not p.name.lower().startswith(("vix", "fundamentals"))]


def load_bars(
    source: str | os.PathLike[str],
    *,
    start: date | None = None,
    end: date | None = None,
    symbols: list[str] | None = None,
    ninjatrader_symbol: str | None = None,
    by_symbol: bool = False,
    condense_before: date | None = None,
    regular_session: str | None = None,
) -> pd.DataFrame:
    """Bars from a file, a folder (non-recursive; files named *.csv, *.csv.gz, *.parquet, *.txt) or a bar store
    (tbot_bot/data/bar_store.py; its partitions pruned by `symbols` and the dates), limited to
    UTC dates start..end inclusive and to `symbols` when given. Sorted by (timestamp, symbol), or by
    (symbol, timestamp) with `by_symbol` (the sim exchange's order: its index then shares the arrays).
    With `condense_before`, each symbol's bars on earlier dates come back as one bar per date (see `Days`); with
    `regular_session` (a calendar name), only bars of the regular sessions (pre- and post-market ones left out)."""
    path = Path(source)
    wanted: Order = "symbol" if by_symbol else "time"
    days = Days(start, end, condense_before, regular_session)
    if is_store(path):
        # a bar store (tbot data import): checked at import; only the symbols' and dates' partitions are read
        # the store masks a partition only when its import found bars outside the regular session
        runs = iter_parts(path, start=start, end=end, symbols=symbols, regular=regular_session)
        df = bars_from_runs(runs, Days(start, end, condense_before), wanted)
        give_back_freed_memory()
        return df
    files = bar_files(path)
    refuse_one_name_for_many(files, ninjatrader_symbol, path)
    rows_read: list[int] = []
    # what a regular-session read leaves out, for the stamp-convention check (a file in another zone trades its
    # day outside the hours it is read at)
    outside: list[pd.DataFrame] | None = [] if regular_session is not None else None
    if len(files) == 1:
        # one file is limited, condensed and sorted while its columns are assembled: no copy of the frame
        df = _read_file(files[0], ninjatrader_symbol, Reading(wanted, days, rows_read, outside))
    else:
        # several: each limited to the dates, then joined; the same bar in two files (overlapping downloads)
        # is kept once (identical copies within a file were already dropped by its checks)
        each = Reading("file", Days(start, end, regular=regular_session), rows_read, outside)
        frames = [_read_file(p, ninjatrader_symbol, each) for p in files]
        held = [f for f in frames if len(f)]
        df = pd.concat(held, ignore_index=True) if held else (frames[0] if frames else pd.DataFrame())
        del frames, held
        if len(df):
            df = without_repeats(df, files)
            df = select_bars(df, Days(condense_before=condense_before), wanted)
    if not sum(rows_read):
        raise DataError(f"no bars in {path} (need *.csv, *.csv.gz, *.parquet or *.txt files with rows)")
    dropped = pd.concat(outside, ignore_index=True) if outside else None
    refuse_other_conventions(df, path, regular_session or "XNYS", condense_before, dropped)
    if symbols:
        df = df[df["symbol"].isin(symbols)].reset_index(drop=True)
    give_back_freed_memory()  # the temporaries of reading and filtering are not kept mapped
    return df


def refuse_other_conventions(
    df: pd.DataFrame,
    source: Path,
    calendar: str,
    condense_before: date | None = None,
    outside: pd.DataFrame | None = None,
) -> None:
    """Bars whose stamps follow another convention than this loader reads (bar ends, another zone than UTC, bars
    of another length than a minute) refused by name: each loaded without a word and backtested wrong."""
    if condense_before is not None and len(df):
        # the days before it came back one bar per day: only the minutes after are judged
        df = df[df["timestamp"] >= pd.Timestamp(condense_before, tz="UTC")]
    problems = convention_problems(df, calendar, outside)
    if problems:
        raise DataError(f"{source}: " + "; ".join(problems))


def without_repeats(df: pd.DataFrame, sources: list[Path] | str) -> pd.DataFrame:
    """Bars of several files (or imports) joined: the same bar in two of them (overlapping downloads) kept once; the
    same minute of a symbol with other values refused, as within a file (the last file's bars replaced the other's
    without a word: unadjusted and split-adjusted copies, two vendors)."""
    keys = ["timestamp", "symbol"]
    repeated = df.duplicated(subset=keys, keep=False)
    if repeated.any():
        values = [c for c in ("open", "high", "low", "close", "volume") if c in df.columns]
        twice = df[repeated]
        differing = twice.groupby(keys, sort=True)[values].nunique().gt(1).any(axis=1)
        if differing.any():
            stamp, symbol = differing[differing].index[0]
            where = (
                sources
                if isinstance(sources, str)
                else ", ".join(str(p) for p in sources if _holds(p, symbol, stamp)) or "the files read"
            )
            raise DataError(
                f"{symbol} at {stamp} has other values in {where} (and {int(differing.sum()) - 1} more such "
                "minute(s)): the same bar from two sources disagrees (unadjusted and split-adjusted copies, two "
                "vendors); keep one source"
            )
    return df.drop_duplicates(subset=keys, keep="last")


def _holds(path: Path, symbol: str, stamp: pd.Timestamp) -> bool:
    try:
        bars = _read_file(path, None, AS_READ)
    except DataError:
        return False
    return bool(((bars["symbol"] == symbol) & (bars["timestamp"] == stamp)).any())


def load_columns(source: str | os.PathLike[str], *, start: date, end: date, calendar: str) -> BarColumns:
    """The bars of UTC dates start..end as the arrays the backtest and the optimizer simulate on. From a bar
    store, straight from its partitions (no frame, no ordering, no symbol string per bar: the grid and the
    MarketView order the arrays themselves); from files, load_bars' checked frame converted once."""
    path = Path(source)
    if is_store(path):
        names, sizes, columns = read_columns(
            path, start=start, end=end, columns=("timestamp", *PRICES, "volume"), regular=calendar
        )
        return BarColumns.of_runs(names, sizes, columns)
    return BarColumns.of(load_bars(path, start=start, end=end, regular_session=calendar))


def held_days(source: str | os.PathLike[str]) -> list[date] | None:
    """The dates a bar store (its manifest) or the bundled sample holds sessions of; None for other files (what they
    hold is known only by reading them whole)."""
    from tbot_bot.data.bar_store import held_sessions, load_manifest
    from tbot_bot.support.path_resolver import package_file

    path = Path(source)
    if is_store(path):
        held = {d for entry in load_manifest(path)["partitions"].values() for d in held_sessions(entry)}
        return sorted(date.fromisoformat(d) for d in held)
    if path.resolve() == Path(package_file("data", "sample")).resolve():
        from tbot_bot.data.sample import sample_days

        return list(sample_days())
    return None


def days_text(days: list[date] | tuple[date, ...], option: str = "") -> str:
    """Dates as a person scans them: one line per month with its days (`option`: the flag that takes one)."""
    by_month: dict[str, list[str]] = {}
    for d in days:
        by_month.setdefault(f"{d:%Y-%m}", []).append(f"{d:%d}")
    head = f"days it holds{f' ({option} YYYY-MM-DD)' if option else ''}:"
    return "\n".join([head, *(f"  {month}: {' '.join(ds)}" for month, ds in by_month.items())])


def no_bars(source: str | os.PathLike[str], what: str, option: str = "") -> str:
    """`{source}: no bars {what}`, with the days the data does hold when that is known without reading it whole."""
    days = held_days(source)
    return f"{source}: no bars {what}" + (f"; {days_text(days, option)}" if days else "")


def load_vix(path: str | os.PathLike[str]) -> dict[date, float]:
    """Daily VIX closes, from `date,close` (our sample) or Cboe's `DATE,OPEN,HIGH,LOW,CLOSE` (MM/DD/YYYY).
    Read with the csv module: a file of a few hundred lines does not need pandas' parser, whose first use in a
    process cost ~12 ms, a third of loading a month of bars from the store."""
    source = Path(path)
    if source.is_dir():
        raise DataError(f"{source} is a folder; the VIX closes must be a file of date,close rows")

    def read() -> list[list[str]]:
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rt", encoding="utf-8", newline="") as fh:
            return [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]

    try:
        rows = read_guarded(source, read)
    except csv.Error as exc:
        raise DataError(f"{source}: malformed CSV: {exc}") from None
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if "date" not in header or "close" not in header or len(rows) < 2:
        raise DataError(f"{source}: need columns date and close with at least one row")
    at_date, at_close = header.index("date"), header.index("close")

    def cell(row: list[str], at: int) -> str:
        return row[at].strip() if at < len(row) else ""

    fmt = "%m/%d/%Y" if "/" in cell(rows[1], at_date) else "%Y-%m-%d"
    closes: dict[date, float] = {}
    for number, row in enumerate(rows[1:], start=2):
        day, close = cell(row, at_date), cell(row, at_close)
        try:
            when, value = datetime.strptime(day, fmt).date(), float(close)  # noqa: DTZ007 - a date, no time
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= VIX_MAX):
            raise DataError(
                f"{source}, row {number}: date {day!r} / close {close!r} is not a valid date ({fmt}) with a "
                f"VIX close above 0, at most {VIX_MAX:g}"
            )
        if when in closes and closes[when] != value:
            # as `tbot data vix` refuses it: which of two closes of one day is right is not the loader's guess
            raise DataError(
                f"{source}, row {number}: {day} appears twice with different closes ({closes[when]:g} and "
                f"{value:g}); keep one"
            )
        closes[when] = value
    return closes
