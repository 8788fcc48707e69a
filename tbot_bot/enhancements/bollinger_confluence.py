"""MID's confluence filter: the signal close must lie beyond the BOLLINGER_STD band (BOLLINGER_PERIOD) on the
signal side (below the lower band for a bullish entry, above the upper band for a bearish one).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.checks import CheckResult
from tbot_bot.enhancements.base import FilterDecision

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

NAME = "bollinger_confluence"


def check_bollinger(close: float, upper: float | None, lower: float | None, direction: int) -> FilterDecision:
    """direction +1 = bullish (needs close < lower), -1 = bearish (needs close > upper). Strictly beyond."""
    ctx = {"close": close, "upper": upper, "lower": lower, "direction": direction}
    if upper is None or lower is None or math.isnan(upper) or math.isnan(lower):
        return FilterDecision.deny(NAME, "Bollinger bands not available yet (too few bars)", **ctx)
    if direction > 0:
        if close < lower:
            return FilterDecision.allow(NAME, f"close {close:.4f} below lower band {lower:.4f}", **ctx)
        return FilterDecision.deny(NAME, f"bullish close {close:.4f} not below lower band {lower:.4f}", **ctx)
    if direction < 0:
        if close > upper:
            return FilterDecision.allow(NAME, f"close {close:.4f} above upper band {upper:.4f}", **ctx)
        return FilterDecision.deny(NAME, f"bearish close {close:.4f} not above upper band {upper:.4f}", **ctx)
    return FilterDecision.deny(NAME, "no signal direction", **ctx)


def evaluate(settings: BotSettings, close: np.ndarray, direction: int) -> FilterDecision:
    """Bands over the closes seen so far (the shared indicator in strategy.signals), tested on the last one."""
    from tbot_bot.strategy.signals import bollinger_bands

    c = np.asarray(close, float)
    if len(c) == 0:
        return check_bollinger(math.nan, None, None, direction)
    _, upper, lower = bollinger_bands(c, settings.BOLLINGER_PERIOD, settings.BOLLINGER_STD)
    return check_bollinger(float(c[-1]), float(upper[-1]), float(lower[-1]), direction)


def self_check(settings: BotSettings) -> CheckResult:
    context = {"BOLLINGER_PERIOD": settings.BOLLINGER_PERIOD, "BOLLINGER_STD": settings.BOLLINGER_STD}
    try:
        from tbot_bot.strategy.signals import bollinger_bands

        closes = np.concatenate([np.full(settings.BOLLINGER_PERIOD, 100.0), [100.0 + 1e-3]])
        closes[::2] += 0.5
        mid, upper, lower = bollinger_bands(closes, settings.BOLLINGER_PERIOD, settings.BOLLINGER_STD)
    except Exception as exc:  # any failure means the filter cannot run; reported, launch blocked
        return CheckResult(False, f"Bollinger indicator unavailable: {exc}", context)
    if not float(lower[-1]) < float(mid[-1]) < float(upper[-1]):
        return CheckResult(False, "Bollinger bands are not ordered lower < mid < upper", context)
    return CheckResult(True, "ok", context)
