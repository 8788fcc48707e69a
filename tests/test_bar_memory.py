"""Issue 16 (scale): the replay's bars are loaded and indexed without extra full copies, with the same result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tbot_bot.backtest import bar_checks
from tbot_bot.backtest.load_historical_data import load_bars
from tbot_bot.broker.brokers.sim_market import BarIndex
from tbot_bot.errors import DataError


def _write(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{ts},{sym},{px},{px + 1},{px - 1},{px},{1000 + i}" for i, (ts, sym, px) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows() -> list[tuple[str, str, float]]:
    # day-major, then symbol, then minute: neither (timestamp, symbol) nor (symbol, timestamp) order
    return [
        (f"2024-01-0{d}T14:3{m}:00Z", sym, 10.0 + d + m)
        for d in (2, 3)
        for sym in ("ZZ", "AA", "MM")
        for m in range(3)
    ]


def test_both_orders_hold_the_same_bars(tmp_path: Path) -> None:
    src = _write(tmp_path / "bars.csv", _rows())
    by_time = load_bars(src)
    by_symbol = load_bars(src, by_symbol=True)
    assert list(by_time.columns) == list(by_symbol.columns)
    expected = by_time.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(by_symbol, expected)
    assert by_time["timestamp"].is_monotonic_increasing
    assert list(by_symbol["symbol"].iloc[[0, 6, 12]]) == ["AA", "MM", "ZZ"]


def test_index_shares_a_by_symbol_frame_and_copies_another(tmp_path: Path) -> None:
    src = _write(tmp_path / "bars.csv", _rows())
    shared = load_bars(src, by_symbol=True)
    index = BarIndex(shared)
    assert np.shares_memory(index._by_symbol["AA"].close, shared["close"].to_numpy())
    other = BarIndex(load_bars(src))
    for sym in ("AA", "MM", "ZZ"):
        a, b = index._by_symbol[sym], other._by_symbol[sym]
        assert np.array_equal(a.ts, b.ts) and np.array_equal(a.close, b.close)
        assert np.all(np.diff(a.ts) > 0) and not a.close.flags.writeable
    now = int(pd.Timestamp("2024-01-03T14:32:00Z").value)
    assert index.daily_view("MM", now) == other.daily_view("MM", now) == (13.0, 14.0, 1006 + 1007 + 1008)


def test_sliced_stamp_checks_name_the_first_bad_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bar_checks, "_PARSE_SLICE", 2)  # the problems sit in different slices
    rows = _rows()
    rows[3] = ("2024-01-02T14:30:00", "AA", 5.0)
    rows[7] = ("not a time", "MM", 5.0)
    with pytest.raises(DataError, match=r"row 5: timestamp '2024-01-02T14:30:00' has no time zone"):
        load_bars(_write(tmp_path / "a.csv", rows))
    rows[3] = ("2024-01-02T14:30:00Z", "AA", 5.0)
    rows[7] = ("2024-13-02T14:31:00Z", "MM", 5.0)
    with pytest.raises(DataError, match=r"row 9: timestamp '2024-13-02T14:31:00Z' is not a valid date"):
        load_bars(_write(tmp_path / "b.csv", rows))
    rows[7] = ("2024-01-02T14:29:00Z", "ZZ", 5.0)
    with pytest.raises(DataError, match=r"row 9: ZZ bar at .* comes after a later bar"):
        load_bars(_write(tmp_path / "c.csv", rows))
