"""Warm-up at boot: the previous session's daily volume and close for every universe symbol, plus its last
minutes of 1-minute bars (the ADX/Bollinger lookback), from the broker's data API into a per-session cache.

Requests go out in batches of 100 symbols, each batch taking a token from a bucket sized by the broker's data
rate (`BrokerCapabilities.data_calls_per_minute`); a progress callback reports each batch. The result is kept in
`data/cache/warmup/<broker>/<session>.npz`, so a restart the same day (and the benchmark) loads it without any
request. A symbol the broker has no bars for in that session is excluded with a reason.
The live signals stay anchored at today's session open (DESIGN §7: VWAP is cumulative from the open, and the
parity test pins indicator seeds there); the cached lookback is what a window sees of the prior session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.market_time import to_minutes
from tbot_bot.support.utils_bot import stale_temporary

if TYPE_CHECKING:
    from tbot_bot.broker.broker_api import Broker
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.screeners.rate_limit import TokenBucket
    from tbot_bot.support.path_resolver import BotHome

BATCH = 100  # symbols per bars request
NO_HISTORY = "warm-up: no bars in the previous session"


def lookback_minutes(settings: BotSettings) -> int:
    """Bars an indicator needs before its first value: ADX seeds after 2*ADX_PERIOD, Bollinger after its period."""
    return max(2 * settings.ADX_PERIOD, settings.BOLLINGER_PERIOD) + 1


@dataclass(slots=True)
class WarmUp:
    session: date  # the previous session the figures are from
    symbols: list[str] = field(default_factory=list)
    volume: np.ndarray = field(default_factory=lambda: np.zeros(0))  # previous-session volume per symbol
    close: np.ndarray = field(default_factory=lambda: np.zeros(0))  # previous-session close per symbol
    t: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.int64)
    )  # (n, L) minutes, -1 = none
    ohlcv: np.ndarray = field(default_factory=lambda: np.zeros((5, 0, 0)))  # (5, n, L), NaN = none
    excluded: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    from_cache: bool = False

    def prev_volumes(self) -> dict[str, int]:
        return {s: int(v) for s, v in zip(self.symbols, self.volume, strict=True)}


def cache_file(home: BotHome, broker_name: str, session: date) -> Path:
    return home.cache_dir / "warmup" / broker_name.lower() / f"{session.isoformat()}.npz"


def _save(path: Path, w: WarmUp) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(
        tmp,
        symbols=np.array(w.symbols, dtype=str),
        volume=w.volume,
        close=w.close,
        t=w.t,
        ohlcv=w.ohlcv,
        excluded=np.array([f"{k}\t{v}" for k, v in w.excluded.items()], dtype=str),
    )
    tmp.replace(path)
    _prune(path)


# the sessions whose warm-up stays cached: a file serves its own session's boots only (a restart the same day),
# and one of 5,000 symbols is ~15 MB, so one a session unpruned was ~4 GB a year on a small droplet's disk
KEEP_SESSIONS = 5


def _prune(written: Path) -> list[Path]:
    """Delete the warm-up files of the folder beyond the KEEP_SESSIONS latest sessions, never `written` (a replay
    of an older day writes its own), and temporary files a killed writer left; returns them."""
    dated, doomed, now = [], [], time.time()
    for path in written.parent.glob("*.npz"):
        try:
            if stale_temporary(path, path.stat().st_mtime, now):
                doomed.append(path)
                continue
            dated.append((date.fromisoformat(path.stem), path))
        except (ValueError, FileNotFoundError):
            continue  # not a session's file, or gone meanwhile (a writer's temporary one is renamed in the call)
    doomed += [path for _, path in sorted(dated, reverse=True)[KEEP_SESSIONS:] if path != written]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _load(path: Path, session: date) -> WarmUp | None:
    try:
        with np.load(path) as z:
            excluded = dict(line.split("\t", 1) for line in z["excluded"].tolist())
            return WarmUp(
                session,
                list(z["symbols"].tolist()),
                z["volume"],
                z["close"],
                z["t"],
                z["ohlcv"],
                excluded,
                0,
                True,
            )
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache is simply fetched again


def warm_up(
    broker: Broker,
    symbols: Sequence[str],
    session_open: datetime,
    session_close: datetime,
    *,
    lookback: int,
    cache: Path | None = None,
    bucket: TokenBucket | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WarmUp:
    """The previous session [session_open, session_close) for `symbols`, from the cache when it covers them."""
    session = session_open.date()
    if cache is not None and cache.exists():
        held = _load(cache, session)
        if held is not None and set(symbols) <= set(held.symbols) | set(held.excluded):
            return held
    wanted = list(dict.fromkeys(symbols))
    n = len(wanted)
    t = np.full((n, lookback), -1, dtype=np.int64)
    ohlcv = np.full((5, n, lookback), np.nan)
    volume, close = np.zeros(n), np.full(n, np.nan)
    have = np.zeros(n, dtype=bool)
    out = WarmUp(session)
    for i in range(0, n, BATCH):
        chunk = wanted[i : i + BATCH]
        if bucket is not None:
            bucket.acquire()
        bars = broker.get_bars(chunk, session_open, session_close)
        out.calls += 1
        for j, sym in enumerate(chunk, start=i):
            rows = sorted(bars.get(sym) or [], key=lambda b: b.timestamp)
            if not rows:
                out.excluded[sym] = NO_HISTORY
                continue
            have[j] = True
            volume[j] = sum(b.volume for b in rows)
            close[j] = rows[-1].close
            tail = rows[-lookback:]
            k = lookback - len(tail)
            t[j, k:] = [to_minutes(b.timestamp) for b in tail]
            ohlcv[:, j, k:] = np.array([(b.open, b.high, b.low, b.close, b.volume) for b in tail]).T
        if progress is not None:
            progress(min(i + BATCH, n), n)
    out.symbols = [s for s, h in zip(wanted, have, strict=True) if h]
    out.volume, out.close, out.t, out.ohlcv = volume[have], close[have], t[have], ohlcv[:, have]
    if cache is not None:
        _save(cache, out)
    return out
