"""MID's running indicators equal the vectorised ones bit for bit, and the live evaluator decides exactly what
the whole-grid path decides, minute by minute (primed at the window start or not, rows changing or not)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest
from helpers import make_settings

from tbot_bot.enhancements import adx_filter, bollinger_confluence
from tbot_bot.market_time import to_minutes, window_for
from tbot_bot.runtime.market_feed import FeedBars, StackedBars
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.running_indicators import RunningIndicators
from tbot_bot.strategy.strategy_router import strategy_module


def session(n: int, t_len: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 10 + np.cumsum(rng.normal(0, 0.03, (n, t_len)), axis=1)
    opn = np.c_[close[:, :1], close[:, :-1]]
    high = np.maximum(opn, close) + np.abs(rng.normal(0, 0.01, (n, t_len)))
    low = np.minimum(opn, close) - np.abs(rng.normal(0, 0.01, (n, t_len)))
    vol = rng.integers(0, 5000, (n, t_len)).astype(float)
    vol[:, :2] = 0.0  # no volume yet: VWAP falls back to the typical price
    high[3] = low[3] = close[3] = opn[3] = 10.0  # a flat symbol: DX 0, not NaN
    return opn, high, low, close, vol


def test_running_indicators_are_bit_identical_to_the_vectorised_ones() -> None:
    n, t_len = 30, 390
    _, high, low, close, vol = session(n, t_len, 3)
    t = np.arange(1000, 1000 + t_len)
    syms = tuple(f"S{i}" for i in range(n))
    ri = RunningIndicators(14, 20, 2.0)
    k = 0
    for step in [1, 1, 5, 60, 1, 1, 64, 2, 130, 1, 5] + [1] * 200:
        if k >= t_len:
            break
        k = min(t_len, k + step)
        j0 = ri.update(syms, t[:k], high[:, :k], low[:, :k], close[:, :k], vol[:, :k])
        assert j0 < k
        _, upper, lower = bollinger_confluence.bollinger_bands(close[:, :k], 20, 2.0)
        for mine, ref in (
            (ri.vwap[:, :k], sig.session_vwap(high[:, :k], low[:, :k], close[:, :k], vol[:, :k])),
            (ri.adx[:, :k], adx_filter.wilder_adx(high[:, :k], low[:, :k], close[:, :k], 14)),
            (ri.upper[:, :k], upper),
            (ri.lower[:, :k], lower),
        ):
            np.testing.assert_array_equal(mine, ref)
    assert ri.update(syms, t, high, low, close, vol) == t_len  # nothing new
    assert ri.update(syms[:-1], t, high[:-1], low[:-1], close[:-1], vol[:-1]) == 0  # other rows: start over


def feed_at(
    now: datetime, t: np.ndarray, arrays: tuple[np.ndarray, ...], symbols: tuple[str, ...]
) -> FeedBars:
    k = int((t <= to_minutes(now) - 1).sum())
    opn, high, low, close, vol = arrays
    fb = FeedBars()
    fb.stacked = StackedBars(symbols, t[:k], opn[:, :k], high[:, :k], low[:, :k], close[:, :k], vol[:, :k])
    return fb


def test_live_mid_decides_what_the_whole_grid_decides() -> None:
    settings = make_settings(STRAT_MID_VWAP_THRESHOLD="0.002", ADX_THRESHOLD="40")
    day = date(2011, 1, 18)
    w = window_for("mid", day, settings)
    mid = strategy_module("mid")
    params = mid.params_from_settings(settings)
    n = 400
    arrays = session(n, 390, 11)
    t0 = to_minutes(w.session_open)
    t = np.arange(t0, t0 + 390, dtype=np.int64)
    symbols = tuple(f"S{i:03d}" for i in range(n))
    running, primed, reference = mid.live(w, params), mid.live(w, params), mid.live(w, params)
    reference._running = None  # the whole-grid path
    primed.prime(w.start, feed_at(w.start, t, arrays, symbols))
    decided = 0
    now = w.start + timedelta(minutes=1)
    while now <= w.breakout_end:
        rows = symbols if now < w.breakout_start + timedelta(minutes=3) else symbols[:-7]  # a row set change
        idx = [symbols.index(s) for s in rows]
        part = tuple(a[idx] for a in arrays)
        want = reference.entries(now, feed_at(now, t, part, rows))
        for ev in (running, primed):
            got = ev.entries(now, feed_at(now, t, part, rows))
            assert got == want, now
        decided += len(want)
        now += timedelta(minutes=1)
    assert decided > 5  # the comparison covered real decisions


def test_feed_holds_many_symbols_in_order_and_builds_per_symbol_bars_only_when_read() -> None:
    from datetime import UTC

    from tbot_bot.broker.broker_api import Bar
    from tbot_bot.runtime.market_feed import MarketFeed

    t0 = datetime(2011, 1, 25, 14, 30, tzinfo=UTC)

    class Source:
        def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
            out = {}
            for s in symbols:
                m = int((start - t0).total_seconds() // 60)
                stop = int((end - t0).total_seconds() // 60)
                out[s] = [
                    Bar(s, t0 + timedelta(minutes=i), 1.0, 2.0, 0.5, 1.5 + i, 10.0) for i in range(m, stop)
                ]
            return out

    symbols = [f"S{i:03d}" for i in range(300, 0, -1)]  # asked for in reverse order
    feed = MarketFeed(Source(), t0)  # type: ignore[arg-type]
    feed.refresh(symbols, t0 + timedelta(minutes=5))
    bars = feed.bars(symbols)
    assert bars.stacked is not None and bars.stacked.symbols == tuple(sorted(symbols))
    assert np.shares_memory(bars.stacked.close, feed._v)  # a view of the buffers, not a copy
    assert dict.__len__(bars) == 0  # nothing built per symbol yet
    feed.refresh(symbols, t0 + timedelta(minutes=7))  # later bars do not leak into the earlier read
    assert len(bars) == 300 and list(bars["S001"][4]) == [1.5, 2.5, 3.5, 4.5, 5.5]
    assert [s for s, _ in bars.items()] == sorted(symbols)


@pytest.mark.parametrize("strategy", ["open", "close"])
def test_open_and_close_on_stacked_views_decide_what_per_symbol_bars_decide(strategy: str) -> None:
    settings = make_settings(STRAT_CLOSE_MOMENTUM_PCT="0.001", STRAT_CLOSE_SPIKE_PCT="0.002")
    day = date(2011, 1, 18)
    w = window_for(strategy, day, settings)
    mod = strategy_module(strategy)
    params = mod.params_from_settings(settings)
    n = 300
    arrays = session(n, 390, 17)
    t0 = to_minutes(w.session_open)
    t = np.arange(t0, t0 + 390, dtype=np.int64)
    symbols = tuple(f"S{i:03d}" for i in range(n))
    stacked_ev, plain_ev = mod.live(w, params, vix_at_start=30.0), mod.live(w, params, vix_at_start=30.0)
    decided = 0
    now = w.start + timedelta(minutes=1)
    while now <= w.breakout_end:
        feed = feed_at(now, t, arrays, symbols)
        st = feed.stacked
        assert st is not None
        plain = {
            s: (st.t, st.open[i], st.high[i], st.low[i], st.close[i], st.volume[i])
            for i, s in enumerate(symbols)
        }
        want = plain_ev.entries(now, plain)
        assert stacked_ev.entries(now, feed) == want, now
        decided += len(want)
        now += timedelta(minutes=1)
    assert decided > 3
