"""OPEN: opening-range breakout (DESIGN §7). Range = max high / min low of the analysis bars; the first
breakout-window close beyond it by STRAT_OPEN_BUFFER enters; exit on the trailing stop or timeout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.market_time import WindowSpec
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.decisions import WindowArrays
from tbot_bot.strategy.strategy_base import IndicatorSource, Strategy

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.strategy.grid import SessionGrid


@dataclass(frozen=True, slots=True)
class OpenParams:
    spec: WindowSpec
    buffer: float
    trailing_stop_pct: float
    calendar: str = "XNYS"

    @classmethod
    def from_settings(cls, settings: BotSettings) -> OpenParams:
        return cls(
            WindowSpec.from_settings("open", settings),
            settings.STRAT_OPEN_BUFFER,
            settings.OPEN_TRAILING_STOP_PCT,
            settings.MARKET_CALENDAR,
        )


class OpenStrategy(Strategy):
    name = "open"
    live_needs_session_history = False  # day open + the window's own bars are all it reads

    def params_from_settings(self, settings: BotSettings) -> OpenParams:
        return OpenParams.from_settings(settings)

    def entries(
        self, grid: SessionGrid, win: WindowArrays, params: OpenParams, source: IndicatorSource | None = None
    ) -> sig.Entries:
        return sig.open_entries(
            grid.t, grid.high, grid.low, grid.close,
            win.analysis_start, win.breakout_start, win.breakout_end, win.last_bar, params.buffer,
        )  # fmt: skip

    def triggers(
        self, grid: SessionGrid, entry_col: np.ndarray, entry_price: np.ndarray, direction: np.ndarray,
        params: OpenParams, source: IndicatorSource | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        hits = sig.trailing_stop_hits(grid.close, entry_col, direction, params.trailing_stop_pct)
        return sig.combine_triggers([(hits, sig.Exit.TRAILING_STOP)])


STRATEGY = OpenStrategy()
simulate = STRATEGY.simulate
self_check = STRATEGY.self_check
live = STRATEGY.live
live_for = STRATEGY.live_for
