"""Fundamentals guard: MAX_PE_RATIO, MAX_DEBT_EQUITY, MIN_MARKET_CAP_FUNDAMENTAL, each rejection logged with numbers."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from helpers import make_settings

from tbot_bot.enhancements.finnhub_fundamental_guard import FundamentalGuard, GuardDecision
from tbot_bot.screeners.fundamentals import Fundamentals


def fundamentals(cap_m: float | None = 5000, pe: float | None = 20, de: float | None = 1.0) -> Fundamentals:
    metric = {"marketCapitalization": cap_m, "peNormalizedAnnual": pe, "totalDebt/totalEquityAnnual": de}
    return Fundamentals.from_metric("XYZ", metric)


def guard(**overrides: object) -> FundamentalGuard:
    return FundamentalGuard(make_settings(ENABLE_FUNNHUB_FUNDAMENTALS_FILTER="true", **overrides))


def test_passes_within_limits() -> None:
    d = guard().check(fundamentals())
    assert d.allowed and d.context["market_cap_usd"] == "5000000000"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"pe": 50.01}, "P/E 50.01 outside (0, MAX_PE_RATIO=50]"),
        ({"pe": -3}, "P/E -3.00 outside"),
        ({"pe": None}, "P/E unknown"),
        ({"de": 2.6}, "debt/equity 2.60 > MAX_DEBT_EQUITY=2.5"),
        ({"de": None}, "debt/equity unknown"),
        ({"cap_m": 1999.999}, "market cap 1,999,999,000 < MIN_MARKET_CAP_FUNDAMENTAL=2,000,000,000"),
        ({"cap_m": None}, "market cap unknown"),
    ],
)
def test_each_limit_rejects_with_its_numbers(
    kwargs: dict[str, float | None], fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        d = guard().check(fundamentals(**kwargs))  # type: ignore[arg-type]
    assert not d.allowed and fragment in d.reason
    assert "fundamental_guard rejected XYZ" in caplog.text and "MAX_PE_RATIO" in caplog.text


def test_boundaries_are_inclusive() -> None:
    assert guard().check(fundamentals(cap_m=2000, pe=50, de=2.5)).allowed


def test_several_problems_reported_together() -> None:
    d = guard().check(fundamentals(pe=99, de=9))
    assert "P/E" in d.reason and "debt/equity" in d.reason


def test_limits_come_from_settings() -> None:
    g = guard(MAX_PE_RATIO="10", MAX_DEBT_EQUITY="0.1", MIN_MARKET_CAP_FUNDAMENTAL="1")
    assert g.min_market_cap == Decimal(1)
    assert not g.check(fundamentals(pe=11, de=0.05)).allowed


def test_disabled_never_blocks() -> None:
    g = FundamentalGuard(make_settings(ENABLE_FUNNHUB_FUNDAMENTALS_FILTER="false"))
    assert g.check(fundamentals(pe=None, de=None, cap_m=None)).allowed


def test_self_check_probes_the_rule_at_its_limits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert guard().self_check().ok
    assert not caplog.records  # the probes' rejections are not logged as candidates' are
    assert FundamentalGuard(make_settings(ENABLE_FUNNHUB_FUNDAMENTALS_FILTER="false")).self_check().ok
    real = FundamentalGuard.check

    def lenient(self: FundamentalGuard, f: Fundamentals) -> GuardDecision:
        # a rule gone wrong: the debt limit compared the wrong way round lets indebted companies through
        if f.debt_equity is not None and f.debt_equity > self.max_debt_equity:
            return GuardDecision(True, "within limits")
        return real(self, f)

    monkeypatch.setattr(FundamentalGuard, "check", lenient)
    failed = guard().self_check()
    assert not failed.ok and "beyond its limits" in failed.reason
