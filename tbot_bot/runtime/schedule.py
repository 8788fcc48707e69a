"""Scheduling (DESIGN §8): APScheduler 3 cron triggers in WINDOW_TIMEZONE on TRADING_DAYS, and the morning
plan that shows each window in exchange time and UTC. Session facts come from `tbot_bot.market_time`.
"""

from __future__ import annotations

from datetime import date

from apscheduler.triggers.cron import CronTrigger

from tbot_bot.config.env_bot import STRATEGIES, BotSettings
from tbot_bot.market_time import WEEKDAYS, exchange_zone, window_date_shift, window_for, window_zone


def cron_trigger(settings: BotSettings, strategy: str) -> CronTrigger:
    """The cron trigger of a strategy window: START_TIME_X read in WINDOW_TIMEZONE, on the days there that fall on
    TRADING_DAYS at the exchange (a zone a day ahead, e.g. Sydney for New York, fires Tuesday to Saturday for
    Monday to Friday sessions; config validation keeps that shift one for every window and season)."""
    start = getattr(settings, f"START_TIME_{strategy.upper()}")
    shift = window_date_shift(settings, strategy)
    return CronTrigger(
        day_of_week=",".join(WEEKDAYS[(WEEKDAYS.index(d) + shift) % 7] for d in settings.TRADING_DAYS),
        hour=start.hour,
        minute=start.minute,
        timezone=window_zone(settings),
    )


def window_times(settings: BotSettings, strategy: str, day: date) -> dict[str, str]:
    """A window's start and end on `day` as ISO UTC and as exchange wall-clock time (status.json fields)."""
    w = window_for(strategy, day, settings)
    zone = exchange_zone(settings.MARKET_CALENDAR)
    # a window after an early close ends (clipped to the close) before it would start: shown ending at its start
    end = max(w.start, w.monitoring_end)
    return {
        "scheduled_start": w.start.isoformat(),
        "scheduled_end": end.isoformat(),
        "scheduled_start_exchange": w.start.astimezone(zone).isoformat(),
        "scheduled_end_exchange": end.astimezone(zone).isoformat(),
        "exchange_timezone": zone.key,
    }


def morning_plan(settings: BotSettings, day: date) -> list[str]:
    """One log line per window: its exchange and UTC times today (the UTC time moves with DST)."""
    zone = exchange_zone(settings.MARKET_CALENDAR)
    lines = []
    for strategy in STRATEGIES:
        w = window_for(strategy, day, settings)
        lines.append(
            f"{strategy}: {w.start.astimezone(zone):%H:%M} {zone.key} = {w.start:%H:%M} UTC"
            + ("" if w.fits else f" (skipped: {w.reason})")
        )
    return lines
