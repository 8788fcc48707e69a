"""Exchange-calendar scheduling (DESIGN §8): APScheduler 3 cron triggers in UTC on TRADING_DAYS, and the
session facts (holiday, open, close) from `exchange_calendars` that decide whether a window runs today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from apscheduler.triggers.cron import CronTrigger

from tbot_bot.config.env_bot import STRATEGIES, BotSettings
from tbot_bot.strategy.window import market_calendar, session_bounds

NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Session:
    day: date
    open: datetime
    close: datetime


def session_for(day: date, calendar_code: str) -> Session | None:
    """The exchange session on `day`, or None on a holiday or weekend."""
    bounds = session_bounds(day, calendar_code)
    return Session(day, bounds[0], bounds[1]) if bounds else None


def previous_session(day: date, calendar_code: str) -> date:
    """The last session strictly before `day` (the source of 'yesterday's' VIX and volume)."""
    cal = market_calendar(calendar_code)
    return cal.date_to_session(pd.Timestamp(day) - pd.Timedelta(days=1), direction="previous").date()


def cron_trigger(settings: BotSettings, strategy: str) -> CronTrigger:
    """The UTC cron trigger of a strategy window: START_TIME_X on TRADING_DAYS."""
    start = getattr(settings, f"START_TIME_{strategy.upper()}")
    return CronTrigger(
        day_of_week=",".join(settings.TRADING_DAYS), hour=start.hour, minute=start.minute, timezone="UTC"
    )


def morning_plan(settings: BotSettings, day: date) -> list[str]:
    """One log line per window: its UTC and New York times today (the ET time moves with DST)."""
    lines = []
    for strategy in STRATEGIES:
        start = getattr(settings, f"START_TIME_{strategy.upper()}")
        utc = datetime.combine(day, start, tzinfo=ZoneInfo("UTC"))
        lines.append(f"{strategy}: {utc:%H:%M} UTC = {utc.astimezone(NEW_YORK):%H:%M} New York")
    return lines


def next_fire_times(settings: BotSettings, strategy: str, after: datetime, count: int) -> list[datetime]:
    trigger = cron_trigger(settings, strategy)
    out: list[datetime] = []
    prev: datetime | None = None
    now = after
    for _ in range(count):
        nxt = trigger.get_next_fire_time(prev, now)
        if nxt is None:
            break
        out.append(nxt)
        prev, now = nxt, nxt + timedelta(seconds=1)
    return out
