"""Small helpers shared by the commands that print for people: rich tables and times in exchange time and UTC."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo


def both_times(moment: datetime | None, exchange_tz: str, *, with_date: bool = False) -> str:
    """`09:59 EST / 14:59Z` (people are shown exchange time and UTC); '-' for None."""
    if moment is None:
        return "-"
    local = moment.astimezone(ZoneInfo(exchange_tz))
    utc = moment.astimezone(UTC)
    prefix = f"{local:%Y-%m-%d} " if with_date else ""
    return f"{prefix}{local:%H:%M} {local.tzname()} / {utc:%H:%M}Z"


def print_table(
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    footer: Sequence[str] | None = None,
    right: Sequence[int] = (),
    file: TextIO | None = None,
) -> None:
    """A rich table; the footer row (totals) is printed bold under a rule. Fixed width when not a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out: Any = file or sys.stdout
    console = Console(file=out, width=None if out.isatty() else 160, highlight=False, soft_wrap=False)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_footer=footer is not None)
    for i, h in enumerate(headers):
        table.add_column(
            h, footer=footer[i] if footer else "", justify="right" if i in right else "left", no_wrap=True
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
