"""Strategy window arithmetic (DESIGN §7): analysis [S, S+A), breakout [S+A, S+A+B), each position held at
most M minutes after entry and never past the exchange close; sessions come from exchange_calendars."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

MINUTE = timedelta(minutes=1)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@lru_cache(maxsize=8)
def market_calendar(name: str = "XNYS") -> Any:
    """The exchange calendar (cached; loading one takes a moment)."""
    import exchange_calendars as xc

    with warnings.catch_warnings():
        # exchange_calendars 4.13 trips pandas 3.1's Series.values deprecation while building sessions
        warnings.simplefilter("ignore", category=Warning)
        return xc.get_calendar(name, start="2005-01-03")


@lru_cache(maxsize=4096)
def session_bounds(day: date, calendar_name: str = "XNYS") -> tuple[datetime, datetime] | None:
    """(open, close) in UTC of the session on `day`, or None when the exchange is closed."""
    cal = market_calendar(calendar_name)
    key = day.isoformat()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        if not cal.is_session(key):
            return None
        return (
            cal.session_open(key).to_pydatetime().astimezone(UTC),
            cal.session_close(key).to_pydatetime().astimezone(UTC),
        )


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The .env_bot timing of one strategy: START_TIME_X (UTC) and the A, B, M minutes."""

    strategy: str
    start: time
    analysis: int
    breakout: int
    monitoring: int

    @classmethod
    def from_settings(cls, strategy: str, settings: BotSettings) -> WindowSpec:
        up = strategy.upper()
        return cls(
            strategy,
            getattr(settings, f"START_TIME_{up}"),
            getattr(settings, f"{up}_ANALYSIS_TIME"),
            getattr(settings, f"{up}_BREAKOUT_TIME"),
            getattr(settings, f"{up}_MONITORING_TIME"),
        )


@dataclass(frozen=True, slots=True)
class Window:
    """One strategy window on one date, all UTC. `fits` False = do not run (reason says why); `cut` True =
    the monitoring time is shortened by the session close (positions leave at the session's last bar)."""

    strategy: str
    session_date: date
    start: datetime  # S: analysis starts
    breakout_start: datetime  # S + A
    breakout_end: datetime  # S + A + B (exclusive)
    monitoring: timedelta  # M, per position from its entry
    session_open: datetime | None
    session_close: datetime | None
    fits: bool
    cut: bool
    reason: str

    @property
    def last_bar_start(self) -> datetime:
        """Start of the session's last 1-minute bar; positions still open exit at its open."""
        close = self.session_close or (self.breakout_end + self.monitoring)
        return close - MINUTE

    @property
    def monitoring_end(self) -> datetime:
        """Latest moment a position of this window can still be open."""
        end = self.breakout_end + self.monitoring
        return min(end, self.session_close) if self.session_close else end

    def position_deadline(self, entry_time: datetime) -> datetime:
        """When a position entered at `entry_time` must exit: entry + M or the last bar, whichever is first."""
        return min(entry_time + self.monitoring, self.last_bar_start)

    def in_breakout(self, bar_start: datetime) -> bool:
        return self.breakout_start <= bar_start < self.breakout_end


def compute_window(
    spec: WindowSpec, day: date, calendar_name: str = "XNYS", trading_days: tuple[str, ...] | None = None
) -> Window:
    s = datetime.combine(day, spec.start, tzinfo=UTC)
    b0 = s + timedelta(minutes=spec.analysis)
    b1 = b0 + timedelta(minutes=spec.breakout)
    m = timedelta(minutes=spec.monitoring)

    def make(fits: bool, cut: bool, reason: str, bounds: tuple[datetime, datetime] | None) -> Window:
        o, c = bounds if bounds else (None, None)
        return Window(spec.strategy, day, s, b0, b1, m, o, c, fits, cut, reason)

    # TRADING_DAYS: weekdays (UTC) on which windows may run at all
    if trading_days is not None and _WEEKDAYS[day.weekday()] not in trading_days:
        return make(False, False, f"{day:%a} is not in TRADING_DAYS", None)
    bounds = session_bounds(day, calendar_name)
    if bounds is None:
        return make(False, False, f"{day} is not a {calendar_name} session (weekend or holiday)", None)
    opens, closes = bounds
    if s < opens:
        return make(
            False, False, f"window starts {s:%H:%M} UTC, before the session opens {opens:%H:%M} UTC", bounds
        )
    if b1 > closes:
        return make(
            False,
            False,
            f"breakout window ends {b1:%H:%M} UTC, after the session closes {closes:%H:%M} UTC",
            bounds,
        )
    if b1 + m > closes:
        return make(True, True, f"monitoring cut at the session close {closes:%H:%M} UTC", bounds)
    return make(True, False, "fits", bounds)


def window_for(strategy: str, day: date, settings: BotSettings) -> Window:
    """The window of `strategy` on `day` from .env_bot timing and the MARKET_CALENDAR sessions."""
    return compute_window(
        WindowSpec.from_settings(strategy, settings), day, settings.MARKET_CALENDAR, settings.TRADING_DAYS
    )


def to_minutes(ts: datetime) -> int:
    """UTC datetime -> int minutes since the epoch (the time unit of signals.py)."""
    return int(ts.timestamp()) // 60


@lru_cache(maxsize=4096)
def previous_session_date(day: date, calendar_name: str = "XNYS") -> date:
    """The exchange session before `day` (whether or not `day` itself is a session)."""
    cal = market_calendar(calendar_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        if cal.is_session(day.isoformat()):
            return cal.previous_session(day.isoformat()).date()
        return cal.date_to_session(day.isoformat(), direction="previous").date()
