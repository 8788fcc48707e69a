"""Black-Scholes-Merton filter against textbook values (Hull, Options, Futures and Other Derivatives)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest
from helpers import make_settings

from tbot_bot.enhancements.black_scholes_filter import (
    BlackScholesFilter,
    bsm_price,
    historical_volatility,
    risk_free_rate,
    years_to_expiry,
)


def test_hull_example_call_and_put() -> None:
    # Hull 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5 -> c=4.76, p=0.81
    assert bsm_price(42, 40, 0.5, 0.10, 0.20, "C") == pytest.approx(4.7594, abs=1e-4)
    assert bsm_price(42, 40, 0.5, 0.10, 0.20, "P") == pytest.approx(0.8086, abs=1e-4)


def test_merton_dividend_example() -> None:
    # Hull 17.4 (index option): S=930, K=900, r=8%, q=3%, sigma=20%, T=2/12 -> c=51.83
    assert bsm_price(930, 900, 2 / 12, 0.08, 0.20, "C", dividend_yield=0.03) == pytest.approx(51.83, abs=0.01)


def test_put_call_parity() -> None:
    c = bsm_price(100, 105, 0.25, 0.045, 0.3, "C")
    p = bsm_price(100, 105, 0.25, 0.045, 0.3, "P")
    import math

    assert c - p == pytest.approx(100 - 105 * math.exp(-0.045 * 0.25), abs=1e-9)


def test_expired_is_intrinsic() -> None:
    assert bsm_price(95, 100, 0.0, 0.05, 0.2, "P") == pytest.approx(5.0)
    assert bsm_price(95, 100, 0.0, 0.05, 0.2, "C") == 0.0


def test_years_to_expiry_and_volatility() -> None:
    now = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    assert years_to_expiry(now, date(2026, 11, 26)) == pytest.approx(1 / 365)
    with pytest.raises(ValueError):
        years_to_expiry(datetime(2026, 11, 25), date(2026, 11, 26))  # noqa: DTZ001
    assert historical_volatility([100.0, 101.0, 100.0, 101.0]) > 0


def test_rate_static_and_dynamic() -> None:
    s = make_settings(RISK_FREE_RATE_SOURCE="static", RISK_FREE_RATE="0.05")
    assert risk_free_rate(s, "GBR") == (0.05, "RISK_FREE_RATE")
    d = make_settings(RISK_FREE_RATE_SOURCE="dynamic", RISK_FREE_RATE="0.05")
    assert risk_free_rate(d, "gbr") == (0.0425, "RISK_FREE_RATE_TABLE[GBR]")
    rate, source = risk_free_rate(d, "JPN")
    assert rate == 0.05 and "no table entry" in source


def _hull_check(f: BlackScholesFilter, premium: float) -> object:
    return f.check(
        symbol="XYZ",
        right="P",
        underlying_price=42,
        strike=40,
        years=0.5,
        volatility=0.20,
        market_premium=premium,
    )


def test_filter_allows_within_and_rejects_beyond(caplog: pytest.LogCaptureFixture) -> None:
    s = make_settings(ENABLE_BSM_FILTER="true", MAX_BSM_DEVIATION="0.15", RISK_FREE_RATE="0.10")
    f = BlackScholesFilter(s, "USA")
    ok = f.check(
        symbol="XYZ",
        right="P",
        underlying_price=42,
        strike=40,
        years=0.5,
        volatility=0.2,
        market_premium=0.85,
    )
    assert ok.allowed
    with caplog.at_level(logging.INFO):
        over = f.check(
            symbol="XYZ",
            right="P",
            underlying_price=42,
            strike=40,
            years=0.5,
            volatility=0.2,
            market_premium=1.0,
        )
    assert not over.allowed and "over theoretical" in over.reason
    assert over.context["theoretical_value"] == pytest.approx(0.8086, abs=1e-4)
    assert over.context["deviation"] == pytest.approx(1.0 / 0.80857 - 1, abs=1e-3)
    assert "XYZ" in caplog.text and "theoretical_value" in caplog.text
    under = f.check(
        symbol="XYZ", right="P", underlying_price=42, strike=40, years=0.5, volatility=0.2, market_premium=0.6
    )
    assert not under.allowed and "under" in under.reason


def test_filter_rejects_worthless_and_bad_input() -> None:
    f = BlackScholesFilter(make_settings(ENABLE_BSM_FILTER="true"), None)
    far = f.check(
        symbol="X",
        right="P",
        underlying_price=100,
        strike=10,
        years=0.01,
        volatility=0.2,
        market_premium=0.05,
    )
    assert not far.allowed and "below" in far.reason
    bad = f.check(
        symbol="X", right="Q", underlying_price=100, strike=100, years=0.1, volatility=0.2, market_premium=1
    )
    assert not bad.allowed and "cannot price" in bad.reason


def test_disabled_allows_everything() -> None:
    f = BlackScholesFilter(make_settings(ENABLE_BSM_FILTER="false"), "USA")
    assert f.check(
        symbol="X", right="P", underlying_price=42, strike=40, years=0.5, volatility=0.2, market_premium=99
    ).allowed


def test_self_check() -> None:
    assert BlackScholesFilter(make_settings(), "USA").self_check().ok
