"""MID's trend filter: a mean-reversion entry is allowed only while ADX(ADX_PERIOD) < ADX_THRESHOLD."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.checks import CheckResult
from tbot_bot.enhancements.base import FilterDecision

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

NAME = "adx_filter"


def check_adx(adx: float | None, threshold: float) -> FilterDecision:
    """Deny when ADX >= threshold (a trend), or when ADX is not yet defined (too few bars)."""
    if adx is None or math.isnan(adx):
        return FilterDecision.deny(
            NAME, "ADX not available yet (too few bars)", adx=None, threshold=threshold
        )
    # ADX_THRESHOLD: at or above it the market is trending and reversion entries are blocked
    if adx >= threshold:
        return FilterDecision.deny(
            NAME, f"ADX {adx:.2f} >= ADX_THRESHOLD {threshold}", adx=adx, threshold=threshold
        )
    return FilterDecision.allow(
        NAME, f"ADX {adx:.2f} < ADX_THRESHOLD {threshold}", adx=adx, threshold=threshold
    )


def latest_adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> float | None:
    """ADX on the last bar of the bars seen so far (the shared indicator in strategy.signals)."""
    from tbot_bot.strategy.signals import wilder_adx

    if len(close) == 0:
        return None
    value = float(np.asarray(wilder_adx(high, low, close, period))[..., -1])
    return None if math.isnan(value) else value


def evaluate(settings: BotSettings, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> FilterDecision:
    return check_adx(latest_adx(high, low, close, settings.ADX_PERIOD), settings.ADX_THRESHOLD)


def self_check(settings: BotSettings) -> CheckResult:
    context = {"ADX_PERIOD": settings.ADX_PERIOD, "ADX_THRESHOLD": settings.ADX_THRESHOLD}
    try:
        from tbot_bot.strategy.signals import wilder_adx

        n = 3 * settings.ADX_PERIOD
        ramp = np.linspace(100.0, 130.0, n)
        value = float(np.asarray(wilder_adx(ramp + 0.5, ramp - 0.5, ramp, settings.ADX_PERIOD))[-1])
    except Exception as exc:  # any failure means the filter cannot run; reported, launch blocked
        return CheckResult(False, f"ADX indicator unavailable: {exc}", context)
    if math.isnan(value) or not 0 <= value <= 100:
        return CheckResult(False, f"ADX of a steady trend came out {value}; expected 0..100", context)
    return CheckResult(True, "ok", context)
