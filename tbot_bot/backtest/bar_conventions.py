"""Bars read with the wrong conventions, refused by what they look like (a data review: each loaded without a word
and backtested wrong). A file's values can all be valid while its stamps mean something else than this loader
reads: the bar's END instead of its start, another time zone than UTC (a NinjaTrader export made in New York
time), or bars of another length than a minute (5-minute bars, 30-second bars). Each leaves a mark on every
session of a traded symbol, which is what is checked here: one thin session says nothing, most liquid ones do."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from tbot_bot.errors import UsageError
from tbot_bot.market_time import exchange_zone, session_bounds

JUDGED_BARS = (
    60  # a symbol's session with at least this many regular-session bars is judged (a thin one is not)
)
JUDGED_SHARE = 0.8  # a convention is refused when this share of its judged sessions shows it ...
JUDGED_SESSIONS = 3  # ... and it has at least this many
GRID_BARS = 100  # a symbol with at least this many bars, all on one k-minute grid, holds k-minute bars


def convention_problems(bars: pd.DataFrame, calendar: str, outside: pd.DataFrame | None = None) -> list[str]:
    """What the bars' stamps say of their conventions that this loader does not read (empty: nothing). Integer
    arithmetic on the stamps (a few hundred milliseconds for millions of bars, once per load or import)."""
    if not len(bars):
        return []
    ns = np.asarray(pd.DatetimeIndex(bars["timestamp"]).as_unit("ns").asi8, dtype=np.int64)  # UTC nanoseconds
    codes, names = pd.factorize(bars["symbol"], sort=False)
    volume = bars["volume"].to_numpy(dtype=np.float64)
    return [
        *_length_problems(ns, codes, names),
        *_session_problems(ns, codes, volume, names, calendar, outside),
    ]


_MINUTE = 60_000_000_000
_DAY = 86_400_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _length_problems(ns: np.ndarray, codes: np.ndarray, names: Any) -> list[str]:
    problems = []
    minute = ns // _MINUTE
    # stamps all on whole minutes hold at most one bar a minute (checked as repeats); others may be shorter bars
    if (ns % _MINUTE).any():
        order = np.lexsort((ns, minute, codes))
        same = (codes[order][1:] == codes[order][:-1]) & (minute[order][1:] == minute[order][:-1])
        if same.any():
            i = order[int(np.flatnonzero(same)[0])]
            held = ns[(codes == codes[i]) & (minute == minute[i])]
            at = pd.Timestamp(int(minute[i] * _MINUTE), tz="UTC")
            shown = ", ".join(f"{pd.Timestamp(int(x), tz='UTC'):%H:%M:%S}" for x in held[:3])
            problems.append(
                f"{names[codes[i]]} has {len(held)} bars in the minute {at:%Y-%m-%d %H:%M} UTC ({shown}): bars "
                "shorter than a minute; aggregate them to 1-minute bars (the loader reads each row as one minute)"
            )
    # which minutes of the hour each symbol's bars start at: all on one k-minute grid, k > 1, is k-minute bars
    seen = np.bincount(codes * 60 + minute % 60, minlength=len(names) * 60).reshape(len(names), 60)
    for code in np.flatnonzero(seen.sum(axis=1) >= GRID_BARS):
        step = int(np.gcd.reduce(np.flatnonzero(seen[code])))
        if step > 1:
            problems.append(
                f"{names[code]}: all {int(seen[code].sum())} bars start on a {step}-minute grid (minutes :00, "
                f":{step:02d}, ...): {step}-minute bars; the loader reads 1-minute bars (each row one minute)"
            )
            break
    return problems


def _session_problems(
    ns: np.ndarray,
    codes: np.ndarray,
    volume: np.ndarray,
    names: Any,
    calendar: str,
    outside: pd.DataFrame | None,
) -> list[str]:
    """`outside`: (symbol, day = UTC days since 1970, volume) of bars a regular-session read left out of `ns`."""
    zone = exchange_zone(calendar)
    day = ns // _DAY  # the UTC date: a session of the calendars served lies within one
    first_day = int(day.min())
    span = int(day.max()) - first_day + 1
    opens, closes = np.zeros(span, dtype=np.int64), np.zeros(span, dtype=np.int64)
    for k in np.unique(day - first_day):
        try:
            held = session_bounds(date.fromordinal(_EPOCH_ORDINAL + first_day + int(k)), calendar)
        except UsageError:
            continue  # a date the calendar does not know: not judged (the loader says so where it matters)
        if held is not None:
            opens[k], closes[k] = (int(pd.Timestamp(b).value) for b in held)
    at = day - first_day
    inside = (ns >= opens[at]) & (ns < closes[at])
    if not inside.any():
        return []
    cell = codes.astype(np.int64) * span + at  # (symbol, date)
    cells = len(names) * span
    n = np.bincount(cell[inside], minlength=cells)
    first = np.full(cells, np.iinfo(np.int64).max)
    np.minimum.at(first, cell[inside], ns[inside])
    # the volume traded inside the regular session and outside it, the same date: a file in another zone shows
    # the day's trading (the open, the morning) outside the hours it is read at, and less inside
    traded_in = np.bincount(cell[inside], weights=volume[inside], minlength=cells)
    traded_out = np.bincount(cell[~inside], weights=volume[~inside], minlength=cells)
    if outside is not None and len(outside):
        code = pd.Index(names).get_indexer(outside["symbol"])
        offset = outside["day"].to_numpy(dtype=np.int64) - first_day
        known = (code >= 0) & (offset >= 0) & (offset < span)
        np.add.at(
            traded_out, code[known] * span + offset[known], outside["volume"].to_numpy(np.float64)[known]
        )
    problems = []
    for code in range(len(names)):
        judged = code * span + np.flatnonzero(n[code * span : (code + 1) * span] >= JUDGED_BARS)
        if len(judged) < JUDGED_SESSIONS:
            continue
        k = judged - code * span
        one_late = (first[judged] - opens[k]) // _MINUTE == 1
        elsewhere = traded_out[judged] > traded_in[judged]
        start = pd.Timestamp(int(first[judged[0]]), tz="UTC").tz_convert(zone)
        on = f"{start:%Y-%m-%d}"
        if one_late.mean() >= JUDGED_SHARE:
            problems.append(
                f"{names[code]}: on {int(one_late.sum())} of {len(judged)} sessions its first bar of the regular "
                f"session is one minute after the open ({start:%H:%M} {zone} on {on}), none at the open: the "
                "stamps look like bar ENDS. A CSV's timestamp is the bar's START (subtract a minute); a "
                "NinjaTrader export's is its end in UTC"
            )
        elif elsewhere.mean() >= JUDGED_SHARE:
            share = traded_out[judged].sum() / max(traded_out[judged].sum() + traded_in[judged].sum(), 1)
            problems.append(
                f"{names[code]}: on {int(elsewhere.sum())} of {len(judged)} sessions more of its volume is traded "
                f"outside the regular session ({zone} hours) than in it ({share:.0%} outside): are the stamps in "
                "UTC? A CSV needs an offset (Z, -05:00); a NinjaTrader export must be made in UTC"
            )
        if len(problems) >= 3:
            break
    return problems
