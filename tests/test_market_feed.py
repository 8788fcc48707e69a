"""The supervisor's bar cache: incremental fetches, duplicate bars ignored, stacked view only when aligned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tbot_bot.broker.broker_api import Bar
from tbot_bot.runtime import market_feed
from tbot_bot.runtime.market_feed import MarketFeed

T0 = datetime(2011, 1, 25, 14, 30, tzinfo=UTC)


class _Bars:
    """Serves bars with start in [start, end), like a broker's data API; remembers every request."""

    def __init__(self, series: dict[str, list[int]]) -> None:
        self.series = series
        self.calls: list[tuple[tuple[str, ...], datetime, datetime]] = []

    def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        self.calls.append((tuple(symbols), start, end))
        out = {}
        for s in symbols:
            ts = [T0 + timedelta(minutes=m) for m in self.series[s]]
            out[s] = [
                Bar(s, t, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 100.0)
                for i, t in enumerate(ts)
                if start <= t < end
            ]
        return out


def test_incremental_fetch_and_stacked_view() -> None:
    src = _Bars({"AAA": list(range(10)), "BBB": list(range(10))})
    feed = MarketFeed(src, T0)  # type: ignore[arg-type]
    feed.refresh(["AAA", "BBB"], T0 + timedelta(minutes=5))
    feed.refresh(["AAA", "BBB"], T0 + timedelta(minutes=8))
    assert src.calls[1][1] == T0 + timedelta(minutes=5)  # only the new minutes are asked for
    bars = feed.bars(["BBB", "AAA"])
    assert list(bars) == ["AAA", "BBB"]
    assert len(bars["AAA"][0]) == 8
    assert bars.stacked is not None and bars.stacked.symbols == ("AAA", "BBB")
    assert np.array_equal(bars.stacked.close[1], bars["BBB"][4])
    assert feed.last_close("AAA") == 1.5 + 7


def test_duplicate_bars_are_ignored_and_misaligned_symbols_are_not_stacked() -> None:
    src = _Bars({"AAA": [0, 1, 2, 3], "BBB": [0, 2, 3]})
    feed = MarketFeed(src, T0)  # type: ignore[arg-type]
    feed.refresh(["AAA", "BBB"], T0 + timedelta(minutes=4))
    feed._ingest(src.get_bars(["AAA"], T0, T0 + timedelta(minutes=4)))  # a repeated reply
    bars = feed.bars(["AAA", "BBB"])
    assert len(bars["AAA"][0]) == 4 and len(bars["BBB"][0]) == 3
    assert bars.stacked is None


def test_regression_a_bar_published_late_is_fetched_next_minute() -> None:
    src = _Bars({"AAA": [0, 1, 2, 3, 4, 5]})
    published = {"upto": 3}  # minute 3 exists but is not yet published at the first refresh
    real = src.get_bars

    def late(symbols, start, end):  # type: ignore[no-untyped-def]
        out = real(symbols, start, end)
        return {
            s: [b for b in bars if b.timestamp < T0 + timedelta(minutes=published["upto"])]
            for s, bars in out.items()
        }

    src.get_bars = late  # type: ignore[method-assign]
    feed = MarketFeed(src, T0)  # type: ignore[arg-type]
    feed.refresh(["AAA"], T0 + timedelta(minutes=2))
    feed.refresh(["AAA"], T0 + timedelta(minutes=4))  # bar 3 not published yet
    published["upto"] = 6
    feed.refresh(["AAA"], T0 + timedelta(minutes=5))
    assert list(feed.bars(["AAA"])["AAA"][0] - feed.bars(["AAA"])["AAA"][0][0]) == [0, 1, 2, 3, 4]


def test_a_window_reserves_its_minutes_and_grows_only_if_bars_run_past_them() -> None:
    src = _Bars({"AAA": list(range(12)), "BBB": list(range(12))})
    feed = MarketFeed(src, T0, until=T0 + timedelta(minutes=5))  # type: ignore[arg-type]
    assert feed._t.shape[1] == 7  # the window's minutes (+2), not a whole session for every symbol
    feed.refresh(["AAA", "BBB"], T0 + timedelta(minutes=12))  # bars past `until` still arrive
    bars = feed.bars(["AAA", "BBB"])
    assert len(bars["AAA"][0]) == 12 and bars.stacked is not None
    assert np.array_equal(bars.stacked.t, np.arange(12) + bars.stacked.t[0])
    assert feed.last_close("BBB") == 1.5 + 11


def test_a_late_windows_first_fetch_is_split_into_bounded_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(market_feed, "_BARS_PER_CALL", 100)
    symbols = [f"S{i:02d}" for i in range(30)]
    src = _Bars({s: list(range(150)) for s in symbols})
    feed = MarketFeed(src, T0)  # type: ignore[arg-type]
    feed.refresh(symbols, T0 + timedelta(minutes=150))
    # at most 100 bars asked for per call: one symbol x 60 minutes here, never 30 symbols x 150 minutes
    for called, start, end in src.calls:
        assert len(called) * (end - start).total_seconds() / 60 <= 100
    assert {s for called, _, _ in src.calls for s in called} == set(symbols)
    bars = feed.bars(symbols)
    assert bars.stacked is not None and bars.stacked.close.shape == (30, 150)
    assert bars.stacked.symbols == tuple(symbols)  # rows still in symbol order: the stacked view is a view
