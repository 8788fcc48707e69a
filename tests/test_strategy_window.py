"""Window arithmetic against the XNYS calendar: DST in March 2011, holidays, early closes, the close cut-off."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from helpers import make_settings
from strategy_bars import at

from tbot_bot.strategy.window import previous_session_date, session_bounds, window_for

NY = ZoneInfo("America/New_York")


def test_open_window_in_winter_starts_at_the_bell() -> None:
    w = window_for("open", date(2011, 3, 11), make_settings())
    assert w.fits and not w.cut
    assert w.start == at("2011-03-11", "14:30") == w.session_open
    assert w.breakout_start == at("2011-03-11", "14:50") and w.breakout_end == at("2011-03-11", "15:00")
    assert w.start.astimezone(NY).strftime("%H:%M") == "09:30"


def test_dst_change_march_2011_moves_the_window_an_hour_later_in_new_york() -> None:
    """START_TIME_OPEN is UTC: after 2011-03-13 the same 14:30 UTC is 10:30 in New York, an hour after the open."""
    w = window_for("open", date(2011, 3, 14), make_settings())
    assert w.fits
    assert w.session_open == at("2011-03-14", "13:30")
    assert w.start == at("2011-03-14", "14:30")
    assert w.start.astimezone(NY).strftime("%H:%M") == "10:30"
    assert w.session_close == at("2011-03-14", "20:00")


def test_close_window_is_cut_by_the_summer_close() -> None:
    # 19:30 + 5 + 5 = 19:40; + 25 monitoring = 20:05 > 20:00 close after DST
    w = window_for("close", date(2011, 3, 14), make_settings())
    assert w.fits and w.cut and "cut" in w.reason
    assert w.last_bar_start == at("2011-03-14", "19:59")
    assert w.position_deadline(at("2011-03-14", "19:38")) == at("2011-03-14", "19:59")
    assert w.monitoring_end == at("2011-03-14", "20:00")
    winter = window_for("close", date(2011, 3, 11), make_settings())
    assert winter.fits and not winter.cut
    assert winter.position_deadline(at("2011-03-11", "19:38")) == at("2011-03-11", "19:38") + timedelta(
        minutes=25
    )


def test_holiday_and_early_close_do_not_fit() -> None:
    assert not window_for("open", date(2011, 1, 17), make_settings()).fits  # MLK day
    early = window_for("close", date(2011, 11, 25), make_settings())  # closes 18:00 UTC
    assert not early.fits and "after the session closes" in early.reason


def test_trading_days_key_skips_a_weekday() -> None:
    w = window_for("open", date(2011, 1, 4), make_settings(TRADING_DAYS="mon,wed,thu,fri"))
    assert not w.fits and "TRADING_DAYS" in w.reason


def test_session_helpers() -> None:
    assert session_bounds(date(2011, 1, 15)) is None
    assert previous_session_date(date(2011, 1, 18)) == date(2011, 1, 14)
    assert previous_session_date(date(2011, 1, 17)) == date(2011, 1, 14)
