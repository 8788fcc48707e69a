"""MID: VWAP reversion (DESIGN §7). In the breakout window a close beyond session VWAP by
STRAT_MID_VWAP_THRESHOLD enters against the move when ADX is low and the close is outside the Bollinger band;
exit when the close is back at VWAP, on the stop loss, or at the timeout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.market_time import WindowSpec
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.decisions import WindowArrays
from tbot_bot.strategy.running_indicators import RunningIndicators
from tbot_bot.strategy.strategy_base import IndicatorSource, Strategy

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.strategy.grid import SessionGrid


@dataclass(frozen=True, slots=True)
class MidParams:
    spec: WindowSpec
    vwap_threshold: float
    stop_loss_pct: float
    adx_period: int
    adx_threshold: float
    bb_period: int
    bb_std: float
    calendar: str = "XNYS"

    @classmethod
    def from_settings(cls, settings: BotSettings) -> MidParams:
        return cls(
            WindowSpec.from_settings("mid", settings),
            settings.STRAT_MID_VWAP_THRESHOLD,
            settings.MID_STOP_LOSS_PCT,
            settings.ADX_PERIOD,
            settings.ADX_THRESHOLD,
            settings.BOLLINGER_PERIOD,
            settings.BOLLINGER_STD,
            settings.MARKET_CALENDAR,
        )


class MidStrategy(Strategy):
    name = "mid"

    def params_from_settings(self, settings: BotSettings) -> MidParams:
        return MidParams.from_settings(settings)

    def running_indicators(self, params: MidParams) -> RunningIndicators:
        """The live evaluator's incremental VWAP/ADX/Bollinger (same arithmetic as the vectorised path)."""
        return RunningIndicators(params.adx_period, params.bb_period, params.bb_std)

    def entries(
        self, grid: SessionGrid, win: WindowArrays, params: MidParams, source: IndicatorSource | None = None
    ) -> sig.Entries:
        if source is None:
            return sig.mid_entries(
                grid.t, grid.high, grid.low, grid.close, grid.volume,
                win.breakout_start, win.breakout_end, win.last_bar,
                params.vwap_threshold, params.adx_period, params.adx_threshold, params.bb_period, params.bb_std,
            )  # fmt: skip
        upper, lower = source.bollinger(params.bb_period, params.bb_std)
        return sig.mid_entries_from(
            grid.t, grid.close, source.vwap(), source.adx(params.adx_period), upper, lower,
            win.breakout_start, win.breakout_end, win.last_bar, params.vwap_threshold, params.adx_threshold,
        )  # fmt: skip

    def triggers(
        self, grid: SessionGrid, entry_col: np.ndarray, entry_price: np.ndarray, direction: np.ndarray,
        params: MidParams, source: IndicatorSource | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        vwap = (
            source.vwap()
            if source is not None
            else sig.session_vwap(grid.high, grid.low, grid.close, grid.volume)
        )
        stop = sig.stop_loss_hits(grid.close, entry_col, entry_price, direction, params.stop_loss_pct)
        touch = sig.vwap_touch_hits(grid.close, vwap, entry_col, direction)
        # on the same bar the stop loss is reported first (risk before target)
        return sig.combine_triggers([(stop, sig.Exit.STOP_LOSS), (touch, sig.Exit.VWAP_TOUCH)])


STRATEGY = MidStrategy()
simulate = STRATEGY.simulate
self_check = STRATEGY.self_check
live = STRATEGY.live
live_for = STRATEGY.live_for
