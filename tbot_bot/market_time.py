"""Market time in one neutral place (DESIGN §7, §8): the exchange calendar (`MARKET_CALENDAR`, from
exchange_calendars), session bounds with early closes, and the window clock.

`START_TIME_*` are wall-clock times in `WINDOW_TIMEZONE`; `exchange` (the default) is the calendar's own time
zone, so the windows follow the market across daylight saving. Everything this module returns is UTC; the
zone only turns a configured HH:MM on a session date into an instant. Strategies, runtime, brokers, backtest
and optimizer import this module; it imports nothing of theirs (only the error types).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tbot_bot.errors import MachineFault, TbotError, UsageError

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

MINUTE = timedelta(minutes=1)
# how far past today a live process looks (a broker clock's next sessions, the next CLOSE window): a day that near
# beyond the calendar means the calendar aged, not that a person typed a far date
AGED_CALENDAR_MARGIN = timedelta(days=31)
EXCHANGE = "exchange"  # WINDOW_TIMEZONE value: the time zone of MARKET_CALENDAR
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# ---------------------------------------------------------------------------------------------- calendar


@lru_cache(maxsize=8)
def market_calendar(name: str = "XNYS") -> Any:
    """The exchange calendar (cached; loading one takes a moment)."""
    import exchange_calendars as xc

    with warnings.catch_warnings():
        # exchange_calendars 4.13 trips pandas 3.1's Series.values deprecation while building sessions
        warnings.simplefilter("ignore", category=Warning)
        return xc.get_calendar(name, start="2005-01-03")


def _calendar_class(name: str) -> Any:
    """The exchange_calendars class of `name` (its class attributes are read without building sessions)."""
    from exchange_calendars.calendar_utils import _default_calendar_factories as factories
    from exchange_calendars.calendar_utils import global_calendar_dispatcher

    try:
        factory = factories.get(global_calendar_dispatcher.resolve_alias(name))
    except Exception:  # exchange_calendars raises its own error types for unknown names
        factory = None
    if factory is None:
        raise ValueError(f"unknown exchange calendar {name!r} (exchange_calendars codes such as XNYS, XLON)")
    return factory


@lru_cache(maxsize=32)
def calendar_timezone(name: str = "XNYS") -> str:
    """The IANA name of the calendar's time zone (America/New_York for XNYS), without building sessions."""
    return str(_calendar_class(name).tz)


@lru_cache(maxsize=32)
def calendar_weekdays(name: str = "XNYS") -> tuple[str, ...]:
    """The weekdays the calendar has regular sessions on (mon..fri for XNYS), without building sessions."""
    cls = _calendar_class(name)
    held = cls.weekmask  # a property of the class (a constant per exchange): read it without an instance
    mask = str(held.fget(cls) if isinstance(held, property) and held.fget else held)
    return tuple(d for d, bit in zip(WEEKDAYS, mask, strict=True) if bit == "1")


def zone_named(name: str, calendar_name: str = "XNYS") -> ZoneInfo:
    """WINDOW_TIMEZONE -> a zone: `exchange` = the calendar's zone, `UTC`, or any IANA name."""
    # WINDOW_TIMEZONE=exchange: START_TIME_* follow MARKET_CALENDAR's own zone (and its daylight saving)
    if name == EXCHANGE:
        return ZoneInfo(calendar_timezone(calendar_name))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"{name!r} is not an IANA time zone (e.g. America/New_York, Europe/London, UTC)"
        ) from exc


def window_zone(settings: BotSettings) -> ZoneInfo:
    """The zone START_TIME_* are read in (WINDOW_TIMEZONE, resolved against MARKET_CALENDAR)."""
    return zone_named(settings.WINDOW_TIMEZONE, settings.MARKET_CALENDAR)


def exchange_zone(calendar_name: str = "XNYS") -> ZoneInfo:
    return ZoneInfo(calendar_timezone(calendar_name))


def session_date_at(now: datetime, calendar_name: str = "XNYS") -> date:
    """The exchange's calendar date at `now` (the date a live supervisor trades), not the UTC date."""
    return now.astimezone(exchange_zone(calendar_name)).date()


def outside_calendar(day: date, calendar_name: str = "XNYS") -> TbotError:
    """Why `day` has no answer: a date a person gave beyond the calendar (UsageError, exit 2), or, for a day near
    today, a calendar that aged with its process (exchange_calendars builds it to one year after the process
    started, so a daemon up for ~a year reaches its end): a restart builds a new one (transient, exit 75)."""
    first, last = calendar_range(calendar_name)
    if last < day <= datetime.now(UTC).date() + AGED_CALENDAR_MARGIN:
        return MachineFault(
            f"the {calendar_name} calendar of this process ends at {last} and {day} is past it: the process has run "
            "for about a year; restart it (systemd does) to build the calendar anew",
            transient=True,
        )
    return UsageError(
        f"{day} is outside the {calendar_name} calendar this build knows ({first} to {last}); "
        "choose a date inside it (MARKET_CALENDAR)"
    )


@lru_cache(maxsize=4096)
def session_bounds(day: date, calendar_name: str = "XNYS") -> tuple[datetime, datetime] | None:
    """(open, close) in UTC of the session on `day` (early closes included), or None when closed. A day
    beyond the calendar is `outside_calendar`'s error (never exchange_calendars' DateOutOfBounds)."""
    from exchange_calendars.errors import DateOutOfBounds

    cal = market_calendar(calendar_name)
    key = day.isoformat()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        try:
            if not cal.is_session(key):
                return None
        except DateOutOfBounds:
            raise outside_calendar(day, calendar_name) from None
        return (
            cal.session_open(key).to_pydatetime().astimezone(UTC),
            cal.session_close(key).to_pydatetime().astimezone(UTC),
        )


@dataclass(frozen=True, slots=True)
class Session:
    day: date
    open: datetime
    close: datetime


def session_for(day: date, calendar_name: str = "XNYS") -> Session | None:
    """The exchange session on `day`, or None on a holiday or weekend."""
    bounds = session_bounds(day, calendar_name)
    return Session(day, bounds[0], bounds[1]) if bounds else None


@lru_cache(maxsize=4096)
def previous_session_date(day: date, calendar_name: str = "XNYS") -> date:
    """The exchange session before `day` (whether or not `day` itself is a session): 'yesterday's' VIX/volume."""
    from exchange_calendars.errors import DateOutOfBounds

    cal = market_calendar(calendar_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        try:
            if cal.is_session(day.isoformat()):
                return cal.previous_session(day.isoformat()).date()
            return cal.date_to_session(day.isoformat(), direction="previous").date()
        except DateOutOfBounds:
            raise outside_calendar(day, calendar_name) from None


@lru_cache(maxsize=1024)
def is_early_close(day: date, calendar_name: str = "XNYS") -> bool:
    """True on a session that closes before the calendar's regular close (e.g. the day after Thanksgiving)."""
    import pandas as pd

    cal = market_calendar(calendar_name)
    first, last = calendar_range(calendar_name)
    if not first <= day <= last:  # the calendar cannot say: never a silent "no"
        raise outside_calendar(day, calendar_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        return bool(pd.Timestamp(day) in cal.early_closes)


def next_session_date(now: datetime, calendar_name: str = "XNYS") -> date:
    """Today's exchange date when it is a session, else the next session's date."""
    return session_on_or_after(session_date_at(now, calendar_name), calendar_name)


def sessions_between(start: date, end: date, calendar_name: str = "XNYS") -> list[date]:
    """The calendar's sessions from start to end inclusive (within the dates it knows)."""
    cal = market_calendar(calendar_name)
    first, last = max(start, cal.first_session.date()), min(end, cal.last_session.date())
    if first > last:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        return [d.date() for d in cal.sessions_in_range(first.isoformat(), last.isoformat())]


def session_ahead(now: datetime, calendar_name: str = "XNYS") -> date:
    """The next session not yet closed: today's until its close, then the next one (what `tbot check` plans:
    after 16:00 today's windows are over)."""
    day = next_session_date(now, calendar_name)
    bounds = session_bounds(day, calendar_name)
    if bounds is not None and now >= bounds[1]:
        return session_on_or_after(day + timedelta(days=1), calendar_name)
    return day


def session_on_or_after(day: date, calendar_name: str = "XNYS") -> date:
    """`day` when it is a session, else the next session's date."""
    cal = market_calendar(calendar_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        if day > cal.last_session.date():  # no next session this calendar knows: never a day that is none
            raise outside_calendar(day, calendar_name)
        return cal.date_to_session(day.isoformat(), direction="next").date()


def calendar_range(calendar_name: str = "XNYS") -> tuple[date, date]:
    """First and last session this build's calendar knows."""
    cal = market_calendar(calendar_name)
    return cal.first_session.date(), cal.last_session.date()


def closed_reason(day: date, calendar_name: str = "XNYS") -> str | None:
    """Why the exchange is closed on `day` ('Saturday', 'a holiday: Good Friday'), or None on a session."""
    if session_bounds(day, calendar_name) is not None:
        return None
    if day.weekday() >= 5:
        return f"a {day:%A}"
    return f"a holiday: {holiday_name(day, calendar_name) or 'exchange closed'}"


@lru_cache(maxsize=256)
def holiday_name(day: date, calendar_name: str = "XNYS") -> str | None:
    """The calendar's name for a weekday holiday (regular or ad hoc), None when unnamed or a session."""
    import pandas as pd

    cal = market_calendar(calendar_name)
    ts = pd.Timestamp(day)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        regular = cal.regular_holidays
        if regular is not None:
            names = regular.holidays(ts, ts, return_name=True)
            if len(names):
                return str(names.iloc[0])
        if any(pd.Timestamp(d).normalize() == ts for d in cal.adhoc_holidays):
            return "special closure"
    return None


# ---------------------------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The .env_bot timing of one strategy: START_TIME_X (wall clock in `timezone`) and the A, B, M minutes."""

    strategy: str
    start: time
    analysis: int
    breakout: int
    monitoring: int
    timezone: str = "UTC"  # an IANA name, already resolved (never `exchange`)
    # TRADING_DAYS: the weekdays the window may run on (None: every session); the backtest reads it from here
    trading_days: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, strategy: str, settings: BotSettings) -> WindowSpec:
        up = strategy.upper()
        return cls(
            strategy,
            getattr(settings, f"START_TIME_{up}"),
            getattr(settings, f"{up}_ANALYSIS_TIME"),
            getattr(settings, f"{up}_BREAKOUT_TIME"),
            getattr(settings, f"{up}_MONITORING_TIME"),
            str(window_zone(settings)),
            tuple(settings.TRADING_DAYS),
        )

    def start_on(self, day: date, exchange: ZoneInfo | None = None) -> datetime:
        """S of the session dated `day` as a UTC instant: the wall-clock time read in the window time zone, on the
        date there that falls on `day` at the exchange (`exchange`; None: the same date). A zone a day ahead of
        the exchange (01:30 Sydney is 09:30 New York the day before) reads its time on the next date."""
        zone = ZoneInfo(self.timezone)
        s = datetime.combine(day, self.start, tzinfo=zone)
        if exchange is not None and (shift := (s.astimezone(exchange).date() - day).days):
            s = datetime.combine(day - timedelta(days=shift), self.start, tzinfo=zone)
        return s.astimezone(UTC)

    def date_shift(self, day: date, exchange: ZoneInfo) -> int:
        """Days from the session date `day` to the date in the window zone its start falls on (0 for a zone on
        the exchange's date; 1 for one a day ahead, e.g. Sydney for New York)."""
        return (self.start_on(day, exchange).astimezone(ZoneInfo(self.timezone)).date() - day).days


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


def both_times(ts: datetime, zone: ZoneInfo) -> str:
    """'09:30 America/New_York = 13:30 UTC': what people are shown (exchange time and UTC)."""
    return f"{ts.astimezone(zone):%H:%M} {zone.key} = {ts.astimezone(UTC):%H:%M} UTC"


def compute_window(
    spec: WindowSpec, day: date, calendar_name: str = "XNYS", trading_days: tuple[str, ...] | None = None
) -> Window:
    """The window of `spec` on session date `day`. Early closes: a window whose analysis or breakout would
    pass the close is skipped (it could not trade as configured); one whose monitoring alone passes it runs,
    its positions leaving at the session's last bar (DESIGN §7: never past the exchange close)."""
    zone = exchange_zone(calendar_name)
    s = spec.start_on(day, zone)
    b0 = s + timedelta(minutes=spec.analysis)
    b1 = b0 + timedelta(minutes=spec.breakout)
    m = timedelta(minutes=spec.monitoring)

    def make(fits: bool, cut: bool, reason: str, bounds: tuple[datetime, datetime] | None) -> Window:
        o, c = bounds if bounds else (None, None)
        return Window(spec.strategy, day, s, b0, b1, m, o, c, fits, cut, reason)

    # TRADING_DAYS: weekdays (of the session date) on which windows may run at all (the spec's when not given)
    trading_days = spec.trading_days if trading_days is None else trading_days
    if trading_days is not None and WEEKDAYS[day.weekday()] not in trading_days:
        return make(False, False, f"{day:%a} is not in TRADING_DAYS", None)
    bounds = session_bounds(day, calendar_name)
    if bounds is None:
        why = closed_reason(day, calendar_name)
        return make(False, False, f"{day} is not a {calendar_name} session ({why})", None)
    opens, closes = bounds
    if s < opens:
        return make(
            False,
            False,
            f"window starts {both_times(s, zone)}, before the session opens {both_times(opens, zone)}",
            bounds,
        )
    if b1 > closes:
        early = " (early close)" if is_early_close(day, calendar_name) else ""
        return make(
            False,
            False,
            f"breakout window ends {both_times(b1, zone)}, after the session closes {both_times(closes, zone)}{early}",
            bounds,
        )
    if b1 + m > closes:
        return make(True, True, f"monitoring cut at the session close {both_times(closes, zone)}", bounds)
    return make(True, False, "fits", bounds)


def window_for(strategy: str, day: date, settings: BotSettings) -> Window:
    """The window of `strategy` on `day` from .env_bot timing and the MARKET_CALENDAR sessions."""
    return compute_window(
        WindowSpec.from_settings(strategy, settings), day, settings.MARKET_CALENDAR, settings.TRADING_DAYS
    )


# a winter and a summer session: a window's date shift (WindowSpec.date_shift) may differ with daylight saving
SHIFT_SEASONS = (date(2025, 1, 15), date(2025, 7, 16))


def window_date_shift(settings: BotSettings, strategy: str, day: date = SHIFT_SEASONS[0]) -> int:
    """Days from a session's date to the date in WINDOW_TIMEZONE its window starts on (0 unless that zone is a
    day ahead of or behind the exchange at START_TIME)."""
    spec = WindowSpec.from_settings(strategy, settings)
    return spec.date_shift(day, exchange_zone(settings.MARKET_CALENDAR))


def to_minutes(ts: datetime) -> int:
    """UTC datetime -> int minutes since the epoch (the time unit of signals.py)."""
    return int(ts.timestamp()) // 60
