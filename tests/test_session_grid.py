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


def test_bars_in_store_order_build_the_grid_of_any_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar store gives each symbol's months in time order: each (day, symbol) row is then one run of bars and
    the grid is built without sorting them. Any other order (a file's, shuffled, a row split in two runs, bars out
    of time order) is sorted first; every order gives the same grid, pre-market bars and a symbol subset included."""
    from tbot_bot.strategy.grid import BarColumns

    frame = load_bars(package_file("data", "sample"), start=date(2011, 1, 3), end=date(2011, 1, 7))
    early = frame.head(60).assign(timestamp=frame["timestamp"].head(60) - pd.Timedelta(hours=2))  # pre-market
    frame = pd.concat([frame, early], ignore_index=True)
    cols = BarColumns.of(frame)
    by_symbol = np.lexsort((cols.ts_ns, cols.code))  # the store's order
    rng = np.random.default_rng(7)
    split = by_symbol.copy()
    split[:40], split[40:80] = by_symbol[40:80], by_symbol[:40]  # one row's bars in two runs, out of order
    orders = {
        "file": np.arange(len(cols)),
        "store": by_symbol,
        "shuffled": rng.permutation(len(cols)),
        "split": split,
    }

    def taken(order: np.ndarray) -> BarColumns:
        return BarColumns(
            cols.ts_ns[order],
            cols.code[order],
            cols.names,
            *(getattr(cols, c)[order] for c in ("open", "high", "low", "close", "volume")),
        )

    def fields(g: SessionGrid) -> list[object]:
        return [g.t, g.open, g.high, g.low, g.close, g.volume, g.nbars, g.day, list(g.symbol), g.days]

    from tbot_bot.strategy import grid as grid_mod

    sorts: list[int] = []
    real = grid_mod.by_key_then_time
    monkeypatch.setattr(grid_mod, "by_key_then_time", lambda k, t: sorts.append(len(k)) or real(k, t))
    subset = list(cols.names[::2])
    for symbols in (None, subset):
        want = fields(build_grid(taken(orders["file"]), "XNYS", symbols=symbols))
        for name, order in orders.items():
            sorts.clear()
            got = fields(build_grid(taken(order), "XNYS", symbols=symbols))
            assert bool(sorts) is (name != "store"), name  # only the store's order is built without a sort
            for a, b in zip(got, want, strict=True):
                assert np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)), name
    assert (frame["timestamp"].dt.hour < 14).any()  # pre-market bars, left out by every path
