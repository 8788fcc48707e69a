"""CLOSE's volatility gate: entries only when VIX at the window start is above STRAT_CLOSE_VIX_THRESHOLD.
No VIX value = blocked. In replays and backtests the value at S is the previous session's close.

The one home of the gate (`gate`, which CLOSE's strategy, the live evaluator through it and the backtest's
day skips call) and of the replay/backtest lookup (`previous_close_vix`). The live daemon's stricter lookup
(the close of exactly the previous session, else stale) is `inputs.vix.reading_for`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

from tbot_bot.checks import CheckResult

# the highest VIX level a file may give: the index has never closed above ~83 (2020-03-16; intraday 89.53 in 2008);
# far beyond is a unit or file error, and a gate compared with 1e308 would let every CLOSE window through
VIX_MAX = 500.0

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

NAME = "vix_gatekeeper"


def gate(vix_at_start: float | None, threshold: float) -> tuple[bool, str]:
    """STRAT_CLOSE_VIX_THRESHOLD: CLOSE enters only when VIX at S is strictly above it; at or below it, or with
    no (or a non-finite) value, CLOSE is blocked. Returns (allowed, the reason when blocked)."""
    if vix_at_start is None or not math.isfinite(vix_at_start):
        return False, "no VIX value at the window start: CLOSE blocked"
    # STRAT_CLOSE_VIX_THRESHOLD: a calm market (VIX at or below it) blocks CLOSE for the day
    if vix_at_start <= threshold:
        return False, f"VIX {vix_at_start:.2f} <= STRAT_CLOSE_VIX_THRESHOLD {threshold:g}: CLOSE blocked"
    return True, ""


def previous_close_vix(vix_closes: Mapping[date, float], session: date) -> float | None:
    """DESIGN §7: the VIX a replay or backtest uses at the CLOSE window start of `session`, the close of the
    last date strictly before it (what is known at the window start); None when there is none."""
    earlier = [d for d in vix_closes if d < session]
    return float(vix_closes[max(earlier)]) if earlier else None


def self_check(settings: BotSettings) -> CheckResult:
    t = settings.STRAT_CLOSE_VIX_THRESHOLD
    context = {"STRAT_CLOSE_VIX_THRESHOLD": t}
    if gate(None, t)[0] or gate(math.nan, t)[0] or gate(t, t)[0] or not gate(t + 1, t)[0]:
        return CheckResult(False, "VIX gate does not block a missing or low VIX", context)
    return CheckResult(True, "ok", context)
