"""Hand-built 1-minute bars for the strategy tests: a close path per minute from a start time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd


def bars(
    start: datetime,
    closes: Sequence[float],
    symbol: str = "AAA",
    *,
    spread: float = 0.01,
    volume: float = 10_000.0,
    opens: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Bars starting at `start`, one per minute: open = previous close (or `opens`), high/low = max/min of
    open and close -+ spread."""
    c = np.asarray(closes, float)
    o = np.asarray(opens, float) if opens is not None else np.r_[c[0], c[:-1]]
    ts = pd.date_range(start, periods=len(c), freq="min", tz=UTC)
    return pd.DataFrame(
        {
            "timestamp": ts.astype("datetime64[ns, UTC]"),
            "symbol": symbol,
            "open": o,
            "high": np.round(np.maximum(o, c) + spread, 6),
            "low": np.round(np.minimum(o, c) - spread, 6),
            "close": c,
            "volume": volume,
        }
    )


def at(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00+00:00")


def minutes_between(a: datetime, b: datetime) -> int:
    return int((b - a) / timedelta(minutes=1))


def session_path(
    day: str, segments: Sequence[tuple[str, float]], open_at: str = "14:30", close_at: str = "21:00"
) -> list[float]:
    """A close path over the whole session: piecewise constant levels starting at the given UTC times."""
    start = at(day, open_at)
    n = minutes_between(start, at(day, close_at))
    out = np.empty(n)
    marks = [(minutes_between(start, at(day, t)), level) for t, level in segments]
    for i, (m, level) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n
        out[m:end] = level
    return out.tolist()


def replay_live(strategy, settings, frame: pd.DataFrame, day, *, vix_at_start=None) -> pd.DataFrame:  # noqa: ANN001
    """Drive the LiveEvaluator minute by minute over `frame` (one session); every decision fills at the open
    of the first bar starting at or after the decision time (what the sim exchange does). No risk limits."""
    from tbot_bot.strategy.decisions import OpenPosition

    ev = strategy.live_for(day, settings, vix_at_start=vix_at_start)
    w = ev.window
    by_symbol = {s: g.sort_values("timestamp").reset_index(drop=True) for s, g in frame.groupby("symbol")}

    def fill(symbol: str, when: datetime) -> tuple[datetime, float] | None:
        g = by_symbol[symbol]
        later = g[g["timestamp"] >= pd.Timestamp(when)]
        if later.empty:
            return None
        r = later.iloc[0]
        return r["timestamp"].to_pydatetime(), float(r["open"])

    positions: dict[str, tuple[OpenPosition, object]] = {}
    done: set[str] = set()
    rows = []
    now = w.start + timedelta(minutes=1)
    while w.session_close is not None and now <= w.session_close:
        open_pos = [p for p, _ in positions.values()]
        decisions = ev.evaluate(now, frame, open_pos)
        for x in decisions.exits:
            pos, entry = positions.pop(x.symbol)
            f = fill(x.symbol, now)
            assert f is not None
            rows.append(
                {**entry, "exit_time": pd.Timestamp(f[0]), "exit_price": f[1], "exit_reason": x.reason.value}
            )
        for e in decisions.entries:
            if e.symbol in done:
                continue
            f = fill(e.symbol, now)
            if f is None:
                continue
            done.add(e.symbol)
            pos = OpenPosition(e.symbol, e.direction, f[0])
            positions[e.symbol] = (
                pos,
                {"symbol": e.symbol, "direction": e.direction.value, "signal_time": pd.Timestamp(e.signal_time),
                 "entry_time": pd.Timestamp(f[0]), "entry_price": f[1]},
            )  # fmt: skip
        if not positions and now >= w.breakout_end + timedelta(minutes=1):
            break
        now += timedelta(minutes=1)
    cols = [
        "symbol",
        "direction",
        "signal_time",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "exit_reason",
    ]
    return pd.DataFrame(rows, columns=cols).sort_values(["symbol"]).reset_index(drop=True)


TRADE_KEY = [
    "symbol",
    "direction",
    "signal_time",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
]


def comparable(trades: pd.DataFrame) -> list[tuple]:
    t = trades[TRADE_KEY].copy()
    for c in ("entry_price", "exit_price"):
        t[c] = t[c].astype(float).round(4)
    for c in ("signal_time", "entry_time", "exit_time"):
        t[c] = pd.to_datetime(t[c], utc=True)
    return sorted(t.itertuples(index=False, name=None))
