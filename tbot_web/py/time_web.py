"""Times for people on the dashboard: exchange time and UTC side by side (DESIGN: windows are exchange time).

The exchange's time zone comes from status.json (`bot.exchange_tz`, written by the supervisor from
MARKET_CALENDAR); a home whose bot has not run yet shows UTC only."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tbot_bot.domain.clock import both_zones


def exchange_zone(status: dict[str, Any]) -> ZoneInfo | None:
    name = (status.get("bot") or {}).get("exchange_tz") if isinstance(status.get("bot"), dict) else None
    windows = status.get("windows")
    if not name and isinstance(windows, list) and windows and isinstance(windows[0], dict):
        name = windows[0].get("exchange_timezone")  # each window also names its zone
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def both(value: Any, zone: ZoneInfo | None, *, with_date: bool = False, seconds: bool = False) -> str:
    """`09:30 EST / 14:30Z` (or `14:30Z` without a known exchange zone); '–' when absent or unreadable.

    `with_date`: the exchange's date leads (`2011-01-18 09:30 EST / 14:30Z`); the UTC side carries its own date
    only when it is another day (`2011-01-18 19:30 EST / 2011-01-19 00:30Z`)."""
    moment = parse_time(value)
    return "–" if moment is None else both_zones(moment, zone, with_date=with_date, seconds=seconds)


def span(start: Any, end: Any, zone: ZoneInfo | None) -> tuple[str, str]:
    """(exchange-time span, UTC span) of a window, e.g. ('09:30–10:30 EST', '14:30–15:30Z')."""
    a, b = parse_time(start), parse_time(end)
    if a is None:
        return "–", "–"

    def hm(x: datetime | None, tz: Any) -> str:
        return "…" if x is None else f"{x.astimezone(tz):%H:%M}"

    utc_text = f"{hm(a, UTC)}–{hm(b, UTC)}Z"
    if zone is None:
        return utc_text, ""
    return f"{hm(a, zone)}–{hm(b, zone)} {a.astimezone(zone).tzname()}", utc_text


def day_filter(raw: str | None) -> tuple[str | None, str | None]:
    """A `?day=` filter: (the day, None), (None, None) when absent, or (None, why it is ignored) for a value that
    is not a date YYYY-MM-DD (a filter dropped without a word showed every day as if it were the one asked for)."""
    if not raw:
        return None, None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return date.fromisoformat(raw).isoformat(), None
    except ValueError:
        pass
    return None, f"day {raw[:40]!r} is not a date: use YYYY-MM-DD (e.g. 2011-01-26); showing every day"
