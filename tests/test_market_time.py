"""Market time (tbot_bot/market_time.py) against the XNYS calendar: windows in exchange time across the
March 2011 DST change, WINDOW_TIMEZONE=UTC / IANA, holidays, the 2011-11-25 early close, the close cut-off."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import make_settings, template_text, with_values
from strategy_bars import at

from tbot_bot.market_time import (
    closed_reason,
    next_session_date,
    previous_session_date,
    session_bounds,
    session_date_at,
    window_for,
)

NY = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[1]


def test_open_window_in_winter_starts_at_the_bell() -> None:
    w = window_for("open", date(2011, 3, 11), make_settings())
    assert w.fits and not w.cut
    assert w.start == at("2011-03-11", "14:30") == w.session_open
    assert w.breakout_start == at("2011-03-11", "14:50") and w.breakout_end == at("2011-03-11", "15:00")
    assert w.start.astimezone(NY).strftime("%H:%M") == "09:30"


def test_after_the_dst_change_open_still_starts_at_the_bell() -> None:
    """START_TIME_OPEN=09:30 New York: after 2011-03-13 that is 13:30Z, the session's open."""
    for day in (date(2011, 3, 14), date(2011, 3, 15)):
        w = window_for("open", day, make_settings())
        assert w.fits and not w.cut
        assert (
            w.start
            == w.session_open
            == datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=13, minutes=30)
        )
        assert w.start.astimezone(NY).strftime("%H:%M") == "09:30"
        assert w.session_close == at(day.isoformat(), "20:00")


def test_close_window_keeps_its_new_york_time_and_its_full_monitoring_in_summer() -> None:
    summer = window_for("close", date(2011, 3, 14), make_settings())
    winter = window_for("close", date(2011, 3, 11), make_settings())
    assert summer.fits and not summer.cut and winter.fits and not winter.cut
    assert summer.start == at("2011-03-14", "18:30") and winter.start == at("2011-03-11", "19:30")
    assert summer.monitoring_end == at("2011-03-14", "19:05")  # 14:30 + 5 + 5 + 25 minutes, New York 15:05


def test_utc_window_timezone_reproduces_the_old_clock() -> None:
    """WINDOW_TIMEZONE=UTC: 14:30Z is 10:30 New York in summer, and CLOSE at 19:30Z is cut by the 20:00Z close."""
    # MID (10:30Z) is left out of the sequence: it would start before OPEN
    s = make_settings(
        WINDOW_TIMEZONE="UTC",
        START_TIME_OPEN="14:30",
        START_TIME_CLOSE="19:30",
        STRATEGY_SEQUENCE="open,close",
    )
    w = window_for("open", date(2011, 3, 14), s)
    assert w.fits and w.start == at("2011-03-14", "14:30")
    assert w.start.astimezone(NY).strftime("%H:%M") == "10:30"
    c = window_for("close", date(2011, 3, 14), s)
    assert c.fits and c.cut and "cut" in c.reason
    assert c.last_bar_start == at("2011-03-14", "19:59")
    assert c.position_deadline(at("2011-03-14", "19:38")) == at("2011-03-14", "19:59")


def test_an_iana_window_timezone_is_read_as_that_zone() -> None:
    # 15:30 in London on 2011-01-04 (GMT) = 15:30Z = 10:30 New York
    s = make_settings(WINDOW_TIMEZONE="Europe/London", START_TIME_MID="15:30", STRATEGY_SEQUENCE="mid")
    assert window_for("mid", date(2011, 1, 4), s).start == at("2011-01-04", "15:30")


def test_a_zone_a_day_ahead_of_the_exchange_reads_its_times_on_the_next_date() -> None:
    """WINDOW_TIMEZONE=Australia/Sydney, START_TIME_OPEN=01:30: the New York open of the day before, in both seasons
    (Sydney's summer is New York's winter). Every window was put a day early and skipped ("window starts 09:30
    America/New_York = 14:30 UTC, before the session opens 09:30 ...") while `tbot check` said OK (a config
    review). The cron fires on the Sydney weekdays that are the sessions' dates in New York."""
    from tbot_bot.runtime.schedule import cron_trigger

    s = make_settings(  # accepted
        WINDOW_TIMEZONE="Australia/Sydney",
        START_TIME_OPEN="01:30",
        START_TIME_MID="02:30",
        START_TIME_CLOSE="06:30",
    )
    winter = window_for("open", date(2011, 1, 4), s)
    assert winter.fits and winter.start == winter.session_open == at("2011-01-04", "14:30")
    # on 2011-06-07 01:30 Sydney (AEST, +10) is 15:30Z, 11:30 New York: OPEN starts an hour after the bell
    summer = window_for("open", date(2011, 6, 7), s)
    assert summer.fits and summer.start == at("2011-06-07", "15:30")
    trigger = cron_trigger(s, "open")
    # Monday's session (New York) starts on Tuesday in Sydney; Friday's on Saturday
    fired = trigger.get_next_fire_time(None, datetime(2011, 1, 8, 0, 0, tzinfo=UTC))  # Saturday
    assert fired.astimezone(UTC) == at("2011-01-10", "14:30")
    fired = trigger.get_next_fire_time(None, at("2011-01-14", "14:00"))  # Friday, before the open
    assert fired.astimezone(UTC) == at("2011-01-14", "14:30")


def test_windows_that_fall_on_two_dates_or_only_closed_days_are_refused() -> None:
    """A zone in which the session spans midnight (Kolkata: 09:30 New York is 20:00, 14:30 is 01:00 the next
    day), or TRADING_DAYS naming only days the exchange never opens, passed `tbot check` and never traded."""
    from tbot_bot.errors import ConfigError

    def refused(**values: object) -> str:
        try:
            make_settings(**values)
        except ConfigError as exc:
            return str(exc)
        return ""

    # 20:00 Kolkata is 09:30 New York in winter (10:30 in summer), 23:30 is 13:00 (14:00): one date
    kolkata = {"WINDOW_TIMEZONE": "Asia/Kolkata", "START_TIME_OPEN": "20:00", "START_TIME_MID": "21:00",
               "START_TIME_CLOSE": "23:30", "CLOSE_MONITORING_TIME": 10}  # fmt: skip
    assert refused(**kolkata) == ""
    # 00:30 Kolkata is 14:00 New York of the day before (winter): OPEN and MID on the session's date, CLOSE after it
    problem = refused(
        **{**kolkata, "START_TIME_OPEN": "00:30", "START_TIME_MID": "01:30", "START_TIME_CLOSE": "20:00"}
    )
    assert (
        "do not all start on one date of the session's" in problem
        and "use WINDOW_TIMEZONE=exchange" in problem
    )
    problem = refused(TRADING_DAYS="sat,sun")
    assert (
        "TRADING_DAYS=sat,sun names no day XNYS has sessions on" in problem
        and "mon,tue,wed,thu,fri" in problem
    )
    assert refused(TRADING_DAYS="fri,sat") == ""


def test_early_close_skips_windows_that_cannot_trade_and_keeps_the_rest() -> None:
    """2011-11-25 closes 13:00 New York (18:00Z): OPEN and MID fit; CLOSE (14:30) is skipped, with the reason;
    a window whose monitoring alone passes the close runs, its positions leaving at the last bar."""
    day = date(2011, 11, 25)
    s = make_settings()
    assert session_bounds(day) == (at("2011-11-25", "14:30"), at("2011-11-25", "18:00"))
    assert window_for("open", day, s).fits and window_for("mid", day, s).fits
    close = window_for("close", day, s)
    assert not close.fits
    assert "after the session closes 13:00 America/New_York = 18:00 UTC (early close)" in close.reason
    trimmed = window_for("mid", day, make_settings(START_TIME_MID="12:30"))  # 12:30+15+10 fits, +30 does not
    assert trimmed.fits and trimmed.cut and trimmed.monitoring_end == at("2011-11-25", "18:00")


def test_holidays_and_weekends_are_named() -> None:
    assert not window_for("open", date(2011, 1, 17), make_settings()).fits
    assert "Martin Luther King" in (closed_reason(date(2011, 1, 17)) or "")
    assert closed_reason(date(2011, 1, 15)) == "a Saturday"
    assert closed_reason(date(2011, 1, 14)) is None
    assert "Good Friday" in window_for("open", date(2011, 4, 22), make_settings()).reason


def test_trading_days_key_skips_a_weekday() -> None:
    w = window_for("open", date(2011, 1, 4), make_settings(TRADING_DAYS="mon,wed,thu,fri"))
    assert not w.fits and "TRADING_DAYS" in w.reason


def test_session_helpers() -> None:
    assert session_bounds(date(2011, 1, 15)) is None
    assert previous_session_date(date(2011, 1, 18)) == date(2011, 1, 14)
    assert previous_session_date(date(2011, 1, 17)) == date(2011, 1, 14)
    # 01:00Z on Jan 5 is still Jan 4 in New York; a Saturday's next session is Monday
    assert session_date_at(datetime(2011, 1, 5, 1, 0, tzinfo=UTC)) == date(2011, 1, 4)
    assert next_session_date(datetime(2011, 1, 15, 12, 0, tzinfo=UTC)) == date(2011, 1, 18)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("exchange", True), ("UTC", True), ("America/Chicago", True), ("Mars/Olympus", False), ("", False)],
)
def test_window_timezone_is_validated(value: str, ok: bool) -> None:
    from tbot_bot.config.env_bot import settings_from_text
    from tbot_bot.errors import ConfigError

    text = with_values(template_text(), WINDOW_TIMEZONE=value)
    if ok:
        assert settings_from_text(text).WINDOW_TIMEZONE == value
    else:
        with pytest.raises(ConfigError, match="WINDOW_TIMEZONE"):
            settings_from_text(text)


def test_brokers_take_market_time_from_the_neutral_module() -> None:
    """Market time lives in one neutral module: brokers never reach into strategy/ for it, and filters and
    safety modules take CheckResult from the neutral tbot_bot.checks, not from the broker interface."""
    offenders = []
    for path in (ROOT / "tbot_bot").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {a.name for a in node.names}
                if node.module == "tbot_bot.broker.broker_api" and "CheckResult" in names:
                    offenders.append(f"{path.name}: CheckResult from broker_api")
                if path.parent.name in ("broker", "brokers") and node.module.startswith("tbot_bot.strategy"):
                    offenders.append(f"{path.name}: imports {node.module}")
    assert offenders == []


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"ADX_PERIOD": 42}, None),
        ({"ADX_PERIOD": 43}, "ADX_PERIOD=43 (its first value needs 86 bars; at most 42)"),
        ({"BOLLINGER_PERIOD": 85}, None),
        ({"BOLLINGER_PERIOD": 86}, "BOLLINGER_PERIOD=86 (needs 86 bars; at most 85)"),
        ({"ADX_PERIOD": 60, "START_TIME_MID": "12:00"}, None),  # started later, the indicators are ready
        ({"ADX_PERIOD": 60, "STRATEGY_SEQUENCE": "open,close"}, None),  # MID does not run
    ],
)
def test_mid_indicator_periods_it_can_never_reach_are_refused(
    values: dict[str, object], refused: str | None
) -> None:
    """ADX and Bollinger start at the session open: with MID at 10:30 + 15 + 10 minutes (85 bars), ADX_PERIOD 43 or
    BOLLINGER_PERIOD 86 blocked every MID entry of every day, and `tbot check` said OK (a config review)."""
    from tbot_bot.errors import ConfigError

    if refused is None:
        make_settings(**values)
        return
    with pytest.raises(ConfigError) as exc:
        make_settings(**values)
    assert refused in str(exc.value) and "MID could never enter" in str(exc.value)
    assert "breakout ends at 10:55 exchange time, 85 bars in" in str(exc.value)
