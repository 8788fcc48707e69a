"""Small helpers shared by the commands that print for people: rich tables and times in exchange time and UTC."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from tbot_bot.support.path_resolver import BotHome


def both_times(moment: datetime | None, exchange_tz: str, *, with_date: bool = False) -> str:
    """`09:59 EST / 14:59Z` (people are shown exchange time and UTC, as on the dashboard); '-' for None."""
    from tbot_bot.domain.clock import both_zones

    return "-" if moment is None else both_zones(moment, ZoneInfo(exchange_tz), with_date=with_date)


def print_table(
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    footer: Sequence[str] | None = None,
    right: Sequence[int] = (),
    file: TextIO | None = None,
) -> None:
    """A rich table; the footer row (totals) is printed bold under a rule."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out: Any = file or sys.stdout
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_footer=footer is not None)
    for i, h in enumerate(headers):
        # numbers (right-aligned) are never cut: when space runs out the text columns shrink instead
        widest = max([len(h), len(footer[i]) if footer else 0, *(len(r[i]) for r in rows if i < len(r))])
        table.add_column(
            h,
            footer=footer[i] if footer else "",
            justify="right" if i in right else "left",
            no_wrap=i in right,
            min_width=widest if i in right else None,
        )
    for row in rows:
        table.add_row(*row)
    # a terminal gets its own width (text columns wrap); a file or pipe gets the whole table, never cut
    width = None if out.isatty() else Console(width=100_000).measure(table).maximum
    Console(file=out, width=width, highlight=False, soft_wrap=False).print(table)


def home_zone(home: BotHome) -> ZoneInfo:
    """The home's exchange time zone, for times shown to people beside UTC."""
    return ZoneInfo(exchange_tz_of(home, {}))


def exchange_tz_of(home: BotHome, data: dict) -> str:  # type: ignore[type-arg]
    """The exchange's time zone: the calendar named in the status, else the home's MARKET_CALENDAR, else XNYS."""
    from tbot_bot.market_time import market_calendar

    name = (data.get("bot") or {}).get("market_calendar")
    if not isinstance(name, str):
        try:
            from tbot_bot.config.settings_bot import load_settings

            name = load_settings(home).MARKET_CALENDAR
        except Exception:  # noqa: BLE001 - status must print even when the config cannot be read
            name = "XNYS"
    try:
        return str(market_calendar(name).tz)
    except Exception:  # noqa: BLE001 - an unknown calendar name: fall back to New York
        return "America/New_York"
