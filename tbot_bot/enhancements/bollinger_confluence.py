"""MID's confluence filter: the signal close must lie beyond the BOLLINGER_STD band (BOLLINGER_PERIOD) on the
signal side (below the lower band for a bullish entry, above the upper band for a bearish one).

The one home of the rule (`beyond_bands`) and of the indicator (`bollinger_bands`, plus `bands_from_sums`,
the step the live evaluator's running bands in strategy.running_indicators share). MID's kernel in
strategy.signals, the optimizer's prepared indicators, the live evaluator and the day plot all come here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.checks import CheckResult

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

NAME = "bollinger_confluence"


def beyond_bands(close: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bullish, bearish): the close strictly below the lower band, strictly above the upper band. On a band
    (or before the bands exist, NaN) neither side confirms."""
    with np.errstate(invalid="ignore"):
        return np.asarray(close < lower), np.asarray(close > upper)


def bands_from_sums(
    window_sum: np.ndarray, window_sum_sq: np.ndarray, centre: np.ndarray, period: int, num_std: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mid, upper, lower) from the sums of the last `period` closes and of their squares, the closes taken
    relative to `centre` (the session's first close) so the sums stay well conditioned; population std."""
    m = window_sum / period
    mid = m + centre
    std = np.sqrt(np.maximum(window_sum_sq / period - m * m, 0.0))
    return mid, mid + num_std * std, mid - num_std * std


def bollinger_bands(
    close: np.ndarray, period: int, num_std: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mid, upper, lower) along the last axis (1-D or one row per symbol): rolling mean +- num_std population
    std of the last `period` closes; NaN until `period` bars exist. Causal: column k uses columns <= k only."""
    c = np.asarray(close, float)
    x = c - c[..., :1]
    n = c.shape[-1]
    mid = np.full(c.shape, np.nan)
    upper = np.full(c.shape, np.nan)
    lower = np.full(c.shape, np.nan)
    if n >= period:
        cs = np.cumsum(np.concatenate([np.zeros(c.shape[:-1] + (1,)), x], axis=-1), axis=-1)
        cs2 = np.cumsum(np.concatenate([np.zeros(c.shape[:-1] + (1,)), x * x], axis=-1), axis=-1)
        s = cs[..., period:] - cs[..., :-period]
        s2 = cs2[..., period:] - cs2[..., :-period]
        mid[..., period - 1 :], upper[..., period - 1 :], lower[..., period - 1 :] = bands_from_sums(
            s, s2, c[..., :1], period, num_std
        )
    return mid, upper, lower


def self_check(settings: BotSettings) -> CheckResult:
    context = {"BOLLINGER_PERIOD": settings.BOLLINGER_PERIOD, "BOLLINGER_STD": settings.BOLLINGER_STD}
    try:
        closes = np.concatenate([np.full(settings.BOLLINGER_PERIOD, 100.0), [100.0 + 1e-3]])
        closes[::2] += 0.5
        mid, upper, lower = bollinger_bands(closes, settings.BOLLINGER_PERIOD, settings.BOLLINGER_STD)
        hi, lo = float(upper[-1]), float(lower[-1])
        probe = np.array([lo - 1.0, lo, hi, hi + 1.0, math.nan])
        bull, bear = beyond_bands(probe, np.full(5, hi), np.full(5, lo))
    except Exception as exc:  # any failure means the filter cannot run; reported, launch blocked
        return CheckResult(False, f"Bollinger indicator unavailable: {exc}", context)
    if not float(lower[-1]) < float(mid[-1]) < float(upper[-1]):
        return CheckResult(False, "Bollinger bands are not ordered lower < mid < upper", context)
    if bull.tolist() != [True, False, False, False, False] or bear.tolist() != [
        False,
        False,
        False,
        True,
        False,
    ]:
        return CheckResult(
            False, "Bollinger confluence does not require a close strictly beyond the band", context
        )
    return CheckResult(True, "ok", context)
