"""The Clock seam: logic asks a clock for the time, never `datetime.now()` (STYLE §5).

`WallClock` is live time. `ReplayClock` is advanced explicitly by the supervisor over recorded bars, so a
whole trading day runs in seconds through the same code. `both_zones` is how people are shown a moment.
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait (wall clock) or advance (replay clock)."""
        ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        _time.sleep(seconds)


class ReplayClock:
    """Time moves only when told; `sleep` advances it instantly (or in real time scaled by `speed`)."""

    def __init__(self, start: datetime, speed: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("ReplayClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._speed = speed  # None = as fast as possible; N = N replay seconds per wall second

    def now(self) -> datetime:
        return self._now

    @property
    def speed(self) -> float | None:
        """Replay seconds per wall second (None: as fast as possible)."""
        return self._speed

    def advance_to(self, when: datetime, *, paced: bool = True) -> None:
        """Move to `when`; with --speed, in real time scaled by it (`paced=False`: at once, whatever the speed)."""
        if when < self._now:
            raise ValueError(f"replay clock cannot go back from {self._now} to {when}")
        if self._speed and paced:
            _time.sleep((when - self._now).total_seconds() / self._speed)
        self._now = when

    def sleep(self, seconds: float) -> None:
        self.advance_to(self._now + timedelta(seconds=seconds))


def both_zones(
    moment: datetime, zone: ZoneInfo | None, *, with_date: bool = False, seconds: bool = False
) -> str:
    """A moment as people read it, exchange time then UTC: `09:30 EST / 14:30Z` (`14:30Z` without a zone). With
    `with_date` the exchange's date leads, and the UTC side carries its own date only when it is another day
    (`2011-01-18 19:30 EST / 2011-01-19 00:30Z`). The one format of the CLI and the dashboard."""
    utc = moment.astimezone(UTC)
    fmt = "%H:%M:%S" if seconds else "%H:%M"
    if zone is None:
        return f"{utc:%Y-%m-%d} {utc.strftime(fmt)}Z" if with_date else f"{utc.strftime(fmt)}Z"
    local = moment.astimezone(zone)
    day = f"{local:%Y-%m-%d} " if with_date else ""
    utc_day = f"{utc:%Y-%m-%d} " if with_date and utc.date() != local.date() else ""
    return f"{day}{local.strftime(fmt)} {local.tzname()} / {utc_day}{utc.strftime(fmt)}Z"


def stamp_for_people(stamp: str, zone: ZoneInfo | None) -> str:
    """A control stamp ('<UTC ISO time> <who>', or a bare ISO time) with its time as people read it (both_zones,
    with the date and seconds); text that does not start with a time is returned as it is."""
    head, _, rest = stamp.strip().partition(" ")
    try:
        moment = datetime.fromisoformat(head.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        return stamp
    shown = both_zones(moment, zone, with_date=True, seconds=True)
    return f"{shown} {rest}" if rest else shown
