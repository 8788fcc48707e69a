"""Small helpers shared by the commands that print for people: rich tables and times in exchange time and UTC."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo


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
