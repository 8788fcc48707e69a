"""The signal grid (strategy/grid.py): one row per (session, symbol), that symbol's regular-session bars of that
day in time order, whatever order the bars come in; checked against a plain pandas grouping of the same bars."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tbot_bot.backtest.load_historical_data import load_bars
from tbot_bot.market_time import session_bounds
from tbot_bot.strategy.grid import SessionGrid, build_grid
from tbot_bot.strategy.signals import TIME_PAD
from tbot_bot.support.path_resolver import package_file


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Four sample days of SPY with a second symbol (SPY's bars moved by 1%), pre-market bars included."""
    spy = load_bars(
        package_file("data", "sample"), start=date(2011, 1, 3), end=date(2011, 1, 6), symbols=["SPY"]
    )
    other = spy.assign(symbol="AAA", close=spy["close"] * 1.01)
    return pd.concat([spy, other], ignore_index=True)


def reference_rows(frame: pd.DataFrame) -> list[tuple[date, str, np.ndarray, np.ndarray]]:
    """(day, symbol, minute stamps, closes) per grid row, by pandas: each bar in its UTC date's session."""
    rows = []
    for (day, symbol), g in frame.groupby([frame["timestamp"].dt.date, "symbol"], sort=True):
        bounds = session_bounds(day)
        if bounds is None:
            continue
        g = g[(g["timestamp"] >= bounds[0]) & (g["timestamp"] < bounds[1])]
        g = g.sort_values("timestamp", kind="stable")
        if len(g):
            minutes = g["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) // 60_000_000_000
            rows.append((day, symbol, minutes, g["close"].to_numpy()))
    return rows


def grid_rows(grid: SessionGrid) -> list[tuple[date, str, np.ndarray, np.ndarray]]:
    out = []
    for r in range(grid.rows):
        n = int(grid.nbars[r])
        assert (grid.t[r, n:] == TIME_PAD).all() and np.isnan(
            grid.close[r, n:]
        ).all()  # padded after the bars
        out.append((grid.days[grid.day[r]], str(grid.symbol[r]), grid.t[r, :n], grid.close[r, :n]))
    return out


def assert_same_rows(grid: SessionGrid, frame: pd.DataFrame) -> None:
    got, want = grid_rows(grid), reference_rows(frame)
    assert [(d, s) for d, s, *_ in got] == [(d, s) for d, s, *_ in want]
    for (_, _, t, c), (_, _, rt, rc) in zip(got, want, strict=True):
        assert np.array_equal(t, rt) and np.array_equal(c, rc)


def test_grid_rows_are_each_symbols_session_bars_in_time_order(bars: pd.DataFrame) -> None:
    grid = build_grid(bars)
    assert grid.days == tuple(date(2011, 1, d) for d in (3, 4, 5, 6))
    assert grid.rows == 8 and list(grid.symbol[:2]) == ["AAA", "SPY"]  # by day, then symbol name
    assert_same_rows(grid, bars)


def test_grid_does_not_depend_on_the_order_of_the_bars(bars: pd.DataFrame) -> None:
    shuffled = bars.iloc[np.random.default_rng(7).permutation(len(bars))]
    # bars out of time order within a row take the full sort (the fast path needs each row's bars in order)
    assert_same_rows(build_grid(shuffled), bars)
    ordered = build_grid(bars)
    mixed = build_grid(shuffled)
    for name in ("t", "open", "high", "low", "close", "volume", "nbars", "day"):
        assert np.array_equal(getattr(mixed, name), getattr(ordered, name), equal_nan=True), name


def test_grid_keeps_only_the_symbols_asked_for(bars: pd.DataFrame) -> None:
    grid = build_grid(bars, symbols=["SPY", "NOT_THERE"])
    assert set(grid.symbol) == {"SPY"}
    assert_same_rows(grid, bars[bars["symbol"] == "SPY"])
    assert build_grid(bars.iloc[:0]).rows == 0
