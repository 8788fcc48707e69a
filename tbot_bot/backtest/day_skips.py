"""Whole-day backtest skips (DESIGN §7, §11): days a strategy's window cannot run, and CLOSE days its VIX gate
blocks, recorded as `Skip` rows so the daily summary and the printed line count them like signal skips."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import TYPE_CHECKING, Any

from tbot_bot.backtest.execution import Skip
from tbot_bot.enhancements import vix_gatekeeper
from tbot_bot.inputs.vix import NO_VIX
from tbot_bot.market_time import WindowSpec, compute_window
from tbot_bot.support.utils_bot import counted

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

DAY_LEVEL = frozenset({"window_not_fit", NO_VIX, "vix_below_threshold"})


def day_skips(
    strategy: str, settings: BotSettings, params: Any, days: tuple[date, ...], vix: dict[date, float]
) -> list[Skip]:
    """Whole-day skips, recorded like signal skips so the summary counts them: a window that does not fit the
    session (holiday, early close) and CLOSE blocked by its VIX gate (`no_vix` when there is no value)."""
    spec = WindowSpec.from_settings(strategy, settings)
    out = []
    for d in days:
        w = compute_window(spec, d, settings.MARKET_CALENDAR, settings.TRADING_DAYS)
        if not w.fits:
            out.append(Skip(d, strategy, "", None, "window_not_fit", w.reason))
            continue
        if strategy == "close":
            ok, why = vix_gatekeeper.gate(vix.get(d), params.vix_threshold)
            if not ok:
                # no VIX close for the session before d: the day is a recorded no_vix skip (DESIGN §7)
                code = NO_VIX if d not in vix else "vix_below_threshold"
                out.append(Skip(d, strategy, "", None, code, why))
    return out


def skip_summary(skips: list[Skip]) -> str:
    """'no_vix 20 days, gap_too_large 3 signals': day-level skips count days (and the windows, when several
    windows of a day were skipped: `--strategy all` skips a day's three windows), the others signals."""
    if not skips:
        return "none"
    counts = Counter(s.code for s in skips)

    def counted_skip(code: str, n: int) -> str:
        if code not in DAY_LEVEL:
            return f"{code} {counted(n, 'signal')}"
        days = len({s.session for s in skips if s.code == code})
        return (
            f"{code} {counted(days, 'day')}"
            if days == n
            else f"{code} {counted(n, 'window')} on {counted(days, 'day')}"
        )

    return ", ".join(
        counted_skip(code, n) for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
