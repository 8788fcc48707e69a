"""CLOSE's volatility gate: entries only when VIX at the window start is above STRAT_CLOSE_VIX_THRESHOLD.
No VIX value = blocked. In replays and backtests the value at S is the previous session's close.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

from tbot_bot.checks import CheckResult
from tbot_bot.enhancements.base import FilterDecision

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

NAME = "vix_gatekeeper"


def check_vix(vix: float | None, threshold: float) -> FilterDecision:
    if vix is None or math.isnan(vix):
        return FilterDecision.deny(NAME, "no VIX value: CLOSE is blocked", vix=None, threshold=threshold)
    # STRAT_CLOSE_VIX_THRESHOLD: VIX must be strictly above it; at or below, CLOSE does not trade
    if vix <= threshold:
        return FilterDecision.deny(
            NAME, f"VIX {vix:.2f} <= STRAT_CLOSE_VIX_THRESHOLD {threshold}", vix=vix, threshold=threshold
        )
    return FilterDecision.allow(
        NAME, f"VIX {vix:.2f} > STRAT_CLOSE_VIX_THRESHOLD {threshold}", vix=vix, threshold=threshold
    )


def previous_close_vix(vix_closes: Mapping[date, float], session: date) -> float | None:
    """The VIX close of the last date strictly before `session` (what is known at the window start)."""
    earlier = [d for d in vix_closes if d < session]
    return float(vix_closes[max(earlier)]) if earlier else None


def evaluate(settings: BotSettings, vix: float | None) -> FilterDecision:
    return check_vix(vix, settings.STRAT_CLOSE_VIX_THRESHOLD)


def self_check(settings: BotSettings) -> CheckResult:
    t = settings.STRAT_CLOSE_VIX_THRESHOLD
    context = {"STRAT_CLOSE_VIX_THRESHOLD": t}
    if check_vix(None, t).allowed or check_vix(t, t).allowed or not check_vix(t + 1, t).allowed:
        return CheckResult(False, "VIX gate does not block a missing or low VIX", context)
    return CheckResult(True, "ok", context)
