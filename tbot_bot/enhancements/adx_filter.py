"""MID's trend filter: a mean-reversion entry is allowed only while ADX(ADX_PERIOD) < ADX_THRESHOLD.

The one home of the rule (`calm`) and of the indicator (`wilder_adx`, plus the per-bar steps `movement` and
`dx_from_smoothed` that the live evaluator's running ADX in strategy.running_indicators continues column by
column). MID's kernel in strategy.signals, the optimizer's prepared indicators and the live evaluator all come
here; nothing else computes ADX or compares it with the threshold.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.checks import CheckResult

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

NAME = "adx_filter"
WILDER_BLOCK = 64  # columns per closed-form block of Wilder smoothing (keeps d^-i far from overflow)


def calm(adx: np.ndarray, threshold: float) -> np.ndarray:
    """ADX_THRESHOLD: True where ADX is strictly below it (no trend, reversion entries allowed); at or above it
    the market is trending. NaN (too few bars for ADX) is never calm."""
    with np.errstate(invalid="ignore"):
        return np.asarray(adx) < threshold


def movement(
    high: np.ndarray, low: np.ndarray, prev_high: np.ndarray, prev_low: np.ndarray, prev_close: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true range, +DM, -DM) of bars against the bars before them, element by element."""
    up = high - prev_high
    dn = prev_low - low
    plus_dm = np.where((up > dn) & (up > 0), up, 0.0)
    minus_dm = np.where((dn > up) & (dn > 0), dn, 0.0)
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev_close), np.abs(low - prev_close)))
    return tr, plus_dm, minus_dm


def dx_from_smoothed(s_tr: np.ndarray, s_plus: np.ndarray, s_minus: np.ndarray) -> np.ndarray:
    """DX from the Wilder-smoothed true range and directional movement; a flat market (no direction) is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pdi = 100.0 * s_plus / s_tr
        mdi = 100.0 * s_minus / s_tr
        dx = 100.0 * np.abs(pdi - mdi) / (pdi + mdi)
    return np.where(np.isfinite(s_tr) & ~np.isfinite(dx), 0.0, dx)


def _wilder(x: np.ndarray, period: int, first: int, *, average: bool) -> np.ndarray:
    """Wilder smoothing along the last axis; the seed at column `first + period - 1` is the sum (or mean)
    of x[first : first + period]; NaN before. Same result for 1 or N rows.

    The recursion y[k] = y[k-1] * (1 - 1/period) + x[k] (x/period for the mean) is evaluated in closed form per
    block of columns: y[k0+m] = d^m * (y[k0] + sum_i x[k0+i] * d^-i), a cumulative sum instead of a Python loop
    per column. The series smoothed here (true range, directional movement, DX) are never negative, so the sum
    has no cancellation; blocks keep d^-i far from overflow.
    """
    n = x.shape[-1]
    seed_col = first + period - 1
    if seed_col >= n:
        return np.full(x.shape, np.nan)
    out = np.full(x.shape, np.nan)
    acc = x[..., first : seed_col + 1].sum(axis=-1)
    out[..., seed_col] = acc / period if average else acc
    decay = 1.0 - 1.0 / period
    step = x / period if average else x
    k0 = seed_col
    while k0 < n - 1:
        k1 = min(n - 1, k0 + WILDER_BLOCK)
        m = np.arange(1, k1 - k0 + 1, dtype=float)
        growth = decay**-m
        running = np.cumsum(step[..., k0 + 1 : k1 + 1] * growth, axis=-1)
        out[..., k0 + 1 : k1 + 1] = (out[..., k0 : k0 + 1] + running) / growth
        k0 = k1
    return out


def wilder_adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's ADX(period) along the last axis (1-D or one row per symbol); first value at column
    2*period - 1, NaN before. Causal: column k depends only on columns <= k."""
    h, lo, c = (np.asarray(a, float) for a in (high, low, close))
    tr = np.zeros(h.shape)
    plus_dm = np.zeros(h.shape)
    minus_dm = np.zeros(h.shape)
    # the first bar has no bar before it: no movement, no true range
    tr[..., 1:], plus_dm[..., 1:], minus_dm[..., 1:] = movement(
        h[..., 1:], lo[..., 1:], h[..., :-1], lo[..., :-1], c[..., :-1]
    )
    # one smoothing pass over the three series stacked (the Python loop is over columns, so 3x fewer steps)
    s_tr, s_p, s_m = _wilder(np.stack([tr, plus_dm, minus_dm]), period, 1, average=False)
    dx = dx_from_smoothed(s_tr, s_p, s_m)
    return np.clip(_wilder(dx, period, period, average=True), 0.0, 100.0)  # rounding never leaves 0..100


def self_check(settings: BotSettings) -> CheckResult:
    t = settings.ADX_THRESHOLD
    context = {"ADX_PERIOD": settings.ADX_PERIOD, "ADX_THRESHOLD": t}
    try:
        n = 3 * settings.ADX_PERIOD
        ramp = np.linspace(100.0, 130.0, n)
        value = float(np.asarray(wilder_adx(ramp + 0.5, ramp - 0.5, ramp, settings.ADX_PERIOD))[-1])
        gate = calm(np.array([t - 1.0, t, math.nan]), t).tolist()
    except Exception as exc:  # any failure means the filter cannot run; reported, launch blocked
        return CheckResult(False, f"ADX indicator unavailable: {exc}", context)
    if math.isnan(value) or not 0 <= value <= 100:
        return CheckResult(False, f"ADX of a steady trend came out {value}; expected 0..100", context)
    if gate != [True, False, False]:
        return CheckResult(
            False, "ADX filter does not block ADX at the threshold or an undefined ADX", context
        )
    return CheckResult(True, "ok", context)
