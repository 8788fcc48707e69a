"""`tbot data import`: bar files checked once, as a backtest reads them, then written into the bar store.

Kept apart from bar_store.py because it reads files through `load_bars`, which itself reads stores.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

import pandas as pd

from tbot_bot.backtest.load_historical_data import (
    bar_files,
    load_bars,
    load_vix,
    refuse_one_name_for_many,
    refuse_other_conventions,
    without_repeats,
)
from tbot_bot.data.bar_store import ImportResult, is_store, write_bars
from tbot_bot.errors import DataError
from tbot_bot.screeners.fundamentals import read_fundamentals_file


class _Tee(io.TextIOBase):
    """stderr as it was, plus a copy of every line: the checks' warnings are shown and recorded."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.text = io.StringIO()

    def write(self, s: str) -> int:
        self.target.write(s)
        return self.text.write(s)

    def flush(self) -> None:
        self.target.flush()

    def lines(self) -> tuple[str, ...]:
        return tuple(line for line in self.text.getvalue().splitlines() if line.strip())


@contextmanager
def recorded_warnings() -> Iterator[_Tee]:
    """The bar checks' warnings (repeats dropped, ranges widened) shown on stderr as ever, and kept for the
    manifest's record of the import."""
    tee = _Tee(sys.stderr)
    with redirect_stderr(tee):
        yield tee


def import_bars(source: Path, store: Path, *, ninjatrader_symbol: str | None = None) -> ImportResult:
    """Check every bar file of `source` (a file or a folder, as load_bars reads them) and merge its bars into
    the store: a bar already held at the same minute is replaced (the newer import wins, as the last of
    several files does for load_bars). Nothing is written before every file passed its checks."""
    frames: list[pd.DataFrame] = []
    with recorded_warnings() as tee:
        if is_store(source):  # another store (its bars were checked at its own import; a read verifies them)
            if source.resolve() == store.resolve():
                raise DataError(f"{source} is the store being imported into; name the bar files to import")
            frames.append(load_bars(source, by_symbol=True))
        files = [] if is_store(source) else bar_files(source)
        refuse_one_name_for_many(files, ninjatrader_symbol, source)
        for path in files:
            # each file on its own: a finding names it, as a folder load does
            frames.append(load_bars(path, ninjatrader_symbol=ninjatrader_symbol, by_symbol=True))
    findings = tee.lines()
    frames = [f for f in frames if len(f)]
    if not frames:
        raise DataError(f"no bars in {source}")
    bars = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    # two files of one import disagreeing on a bar are refused (a later import replacing bars is said: replaced)
    bars = without_repeats(bars, files) if len(frames) > 1 else bars
    refuse_other_conventions(bars, source, "XNYS")  # the calendar the store marks regular sessions with
    folder = source if source.is_dir() else source.parent
    sides, notes = side_inputs(folder, store)
    return write_bars(
        bars, store, origin=str(source.resolve()), findings=findings, side_files=sides, notes=notes
    )


def side_inputs(folder: Path, store: Path) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """The VIX closes and fundamentals beside imported bars, checked as a backtest reads them (a bad file is
    refused by name before anything is written) and merged into what the store holds, as bars are: a date's
    close or a symbol's metrics from this import win, and the others are kept. What the store held and cannot
    be read any more is replaced, and a note says so. Returns (name -> content to write, notes)."""
    out: dict[str, bytes] = {}
    notes: list[str] = []
    closes = _merged(folder, store, "vix.csv", load_vix, "close(s)", notes)
    if closes is not None:
        out["vix.csv"] = (
            "date,close\n" + "".join(f"{d.isoformat()},{closes[d]!r}\n" for d in sorted(closes))
        ).encode()
    metrics = _merged(folder, store, "fundamentals.json", read_fundamentals_file, "symbol(s)' metrics", notes)
    if metrics is not None:
        out["fundamentals.json"] = (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()
    return out, tuple(notes)


def _merged(
    folder: Path, store: Path, name: str, read: Any, what: str, notes: list[str]
) -> dict[Any, Any] | None:
    """The side file `name` beside the bars (None: there is none) read and checked by `read`, merged over the
    store's: its keys win, and how many held values changed is noted."""
    given = folder / name
    if not given.exists():
        return None
    new = read(given)
    held = _held(store / name, read, notes)
    changed = sum(1 for k, v in new.items() if k in held and held[k] != v)
    if changed:
        notes.append(f"{name}: {changed} {what} the store held replaced by {given}'s")
    return {**held, **new}


def _held(path: Path, read: Any, notes: list[str]) -> Any:
    """What the store's side file holds; empty when it has none, and when it cannot be read (noted)."""
    if not path.exists():
        return {}
    try:
        return read(path)
    except DataError as exc:
        notes.append(f"{path.name} in the store could not be read ({exc}): replaced by this import's")
        return {}
