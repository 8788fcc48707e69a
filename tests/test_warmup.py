"""Boot warm-up against the fake Alpaca data API: batches paced by the rate limit, previous-session volume and
close, the indicator lookback, symbols without history excluded with a reason, the per-session cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_market import synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from helpers import make_settings

from tbot_bot.domain.clock import ReplayClock
from tbot_bot.inputs.warmup import NO_HISTORY, lookback_minutes, warm_up
from tbot_bot.screeners.rate_limit import TokenBucket

PREV_OPEN = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)  # Friday after Thanksgiving (closes 18:00 UTC)
PREV_CLOSE = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # Monday before the open
SYMBOLS = [f"S{i:03d}" for i in range(230)]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAlpacaServer]:
    bars = synthetic_bars({s: 20.0 + i % 50 for i, s in enumerate(SYMBOLS[:-5])}, PREV_OPEN, 60, seed=3)
    clock = ReplayClock(NOW)
    with FakeAlpacaServer(FakeAlpacaExchange(bars=bars, now=clock.now), page_size=100_000) as srv:
        srv.expected = bars  # type: ignore[attr-defined]
        yield srv


class FakeTime:
    """Monotonic time that only the bucket's sleep moves: waits are recorded, never spent."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_warm_up_is_batched_within_the_rate_limit(server: FakeAlpacaServer, tmp_path: Path) -> None:
    ft = FakeTime()
    bucket = TokenBucket(30, capacity=1, monotonic=ft.monotonic, sleep=ft.sleep)  # 30 requests a minute
    sent: list[float] = []
    broker = broker_for(server)
    orig = broker.get_bars

    def timed(*a, **k):  # type: ignore[no-untyped-def]
        sent.append(ft.now)
        return orig(*a, **k)

    broker.get_bars = timed  # type: ignore[method-assign]
    progress: list[tuple[int, int]] = []
    before = server.count("GET", "/v2/stocks/bars")
    warm = warm_up(
        broker, SYMBOLS, PREV_OPEN, PREV_CLOSE, lookback=29, cache=tmp_path / "w.npz", bucket=bucket,
        progress=lambda d, n: progress.append((d, n)),
    )  # fmt: skip
    assert (
        warm.calls == 3 and server.count("GET", "/v2/stocks/bars") - before == 3
    )  # 230 symbols, 100 a batch
    assert np.diff(sent).min() >= 2.0 - 1e-9  # 30 a minute: one request every two seconds at most
    assert ft.sleeps and sum(ft.sleeps) == pytest.approx(4.0)
    assert progress == [(100, 230), (200, 230), (230, 230)]
    expected = server.expected  # type: ignore[attr-defined]
    s = expected[expected["symbol"] == "S007"]
    i = warm.symbols.index("S007")
    assert warm.volume[i] == s["volume"].sum() and warm.close[i] == pytest.approx(s["close"].iloc[-1])
    assert warm.t.shape == (225, 29) and warm.ohlcv[3, i, -1] == pytest.approx(s["close"].iloc[-1])
    assert warm.ohlcv[3, i, 0] == pytest.approx(s["close"].iloc[-29])
    assert set(warm.excluded) == set(SYMBOLS[-5:]) and set(warm.excluded.values()) == {NO_HISTORY}


def test_the_session_cache_serves_a_restart_without_requests(
    server: FakeAlpacaServer, tmp_path: Path
) -> None:
    broker = broker_for(server)
    first = warm_up(broker, SYMBOLS[:50], PREV_OPEN, PREV_CLOSE, lookback=10, cache=tmp_path / "w.npz")
    before = server.count("GET", "/v2/stocks/bars")
    again = warm_up(broker, SYMBOLS[:50], PREV_OPEN, PREV_CLOSE, lookback=10, cache=tmp_path / "w.npz")
    assert server.count("GET", "/v2/stocks/bars") == before and again.from_cache and again.calls == 0
    assert again.prev_volumes() == first.prev_volumes() and np.array_equal(again.t, first.t)
    more = warm_up(broker, SYMBOLS[:60], PREV_OPEN, PREV_CLOSE, lookback=10, cache=tmp_path / "w.npz")
    assert not more.from_cache and len(more.symbols) == 60  # a wider universe is fetched again
    (tmp_path / "w.npz").write_bytes(b"garbage")
    assert (
        len(
            warm_up(broker, SYMBOLS[:5], PREV_OPEN, PREV_CLOSE, lookback=10, cache=tmp_path / "w.npz").symbols
        )
        == 5
    )


def test_lookback_covers_adx_and_bollinger() -> None:
    assert lookback_minutes(make_settings(ADX_PERIOD=14, BOLLINGER_PERIOD=20)) == 29
    assert lookback_minutes(make_settings(ADX_PERIOD=5, BOLLINGER_PERIOD=40)) == 41


def test_screener_takes_the_warm_up_volume_when_a_snapshot_has_none() -> None:
    from decimal import Decimal

    from tbot_bot.broker.broker_api import Quote, Snapshot
    from tbot_bot.screeners.finnhub_screener import Screener

    settings = make_settings()
    snap = Snapshot(
        "ABC",
        Decimal("50"),
        Decimal("50"),
        Decimal("49"),
        None,
        Quote("ABC", Decimal("49.99"), Decimal("50.01"), NOW),
    )
    plain = Screener(settings, None, None, ReplayClock(NOW))  # type: ignore[arg-type]
    warmed = Screener(settings, None, None, ReplayClock(NOW), prev_volumes={"ABC": 9_000_000})  # type: ignore[arg-type]
    assert plain._market_filters("open", snap, False)[0].reason == "previous session volume unknown"  # type: ignore[union-attr]
    rejection, candidate = warmed._market_filters("open", snap, False)
    assert rejection is None and candidate is not None and candidate.prev_volume == 9_000_000


def test_the_cache_keeps_the_latest_sessions_only(server: FakeAlpacaServer, tmp_path: Path) -> None:
    """One file a session (~15 MB at 5,000 symbols) serves that session's boots only: the folder keeps the
    KEEP_SESSIONS latest, and a replay of an older day keeps the file it just wrote."""
    from tbot_bot.inputs import warmup

    folder = tmp_path / "warmup" / "alpaca"
    folder.mkdir(parents=True)
    for day in range(1, 9):
        (folder / f"2026-11-{day:02d}.npz").write_bytes(b"an older session's")
    (folder / "notes.npz").write_bytes(b"not a session's")
    killed, writing = folder / ".2026-11-02.npz.tmp.npz", folder / ".2026-11-10.npz.tmp.npz"
    killed.write_bytes(b"a killed writer's")
    writing.write_bytes(b"another process writing now")
    os.utime(killed, (1_000_000, 1_000_000))
    newest = folder / "2026-11-09.npz"
    warm_up(broker_for(server), SYMBOLS[:5], PREV_OPEN, PREV_CLOSE, lookback=10, cache=newest)
    kept = sorted(p.name for p in folder.glob("*.npz") if not p.name.startswith("."))
    assert kept == [*(f"2026-11-{d:02d}.npz" for d in range(5, 10)), "notes.npz"]
    assert not killed.exists() and writing.exists()
    assert warmup.KEEP_SESSIONS == 5
    older = folder / "2026-10-30.npz"
    warm_up(broker_for(server), SYMBOLS[:5], PREV_OPEN, PREV_CLOSE, lookback=10, cache=older)
    assert older.exists() and len([p for p in folder.glob("2026-*.npz")]) == 6
