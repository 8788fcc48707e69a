"""The bars a replay runs on: the replayed session's 1-minute bars plus the previous session condensed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from tbot_bot.errors import ConfigError
from tbot_bot.market_time import closed_reason, outside_calendar


def load_replay_bars(data_source: Path, day: date, calendar: str, *, by_symbol: bool = False) -> pd.DataFrame:
    """The replay day's bars plus the previous session's (for previous-day volume), from CSV/Parquet/folder;
    sorted by (timestamp, symbol), or by (symbol, timestamp) with `by_symbol` (what the sim exchange shares)."""
    from tbot_bot.backtest.load_historical_data import load_bars, no_bars
    from tbot_bot.market_time import calendar_range, previous_session_date, session_on_or_after

    first, last = calendar_range(calendar)
    if not first < day <= last:
        raise outside_calendar(day, calendar)
    # MARKET_CALENDAR: a weekend or holiday has nothing to replay; say which day it is
    why_closed = closed_reason(day, calendar)
    if why_closed is not None:
        raise ConfigError(
            f"{day} is not a {calendar} trading session ({why_closed}): nothing to replay; "
            f"the next session is {session_on_or_after(day, calendar)}"
        )
    prev = previous_session_date(day, calendar)
    # the previous session is one bar per symbol (its close and volume are what a replayed day reads)
    # MARKET_CALENDAR: regular-session bars only (a pre-market bar is not the day's open)
    bars = load_bars(
        data_source, start=prev, end=day, by_symbol=by_symbol, condense_before=day, regular_session=calendar
    )
    # a session day without bars cannot be replayed
    if bars.empty or not _holds(bars, day):
        raise ConfigError(
            f"{no_bars(data_source, f'for {day}', '--replay')}\n(a replay needs the day's 1-minute bars)"
        )
    return bars


def _holds(bars: pd.DataFrame, day: date) -> bool:
    """Whether `bars` hold a bar on the UTC date `day` (day numbers: a date object per bar costs 100s of MB)."""
    from tbot_bot.backtest.bar_checks import NS_PER_DAY

    return bool((bars["timestamp"].array.asi8 // NS_PER_DAY == (day - date(1970, 1, 1)).days).any())


def previous_session_missing(bars: pd.DataFrame, day: date, calendar: str) -> date | None:
    """The session before `day` when the replay's bars hold none of it (None when they do)."""
    from tbot_bot.market_time import previous_session_date

    prev = previous_session_date(day, calendar)
    return None if _holds(bars, prev) else prev
