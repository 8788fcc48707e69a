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
