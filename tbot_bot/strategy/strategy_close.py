"""CLOSE: end-of-day momentum continuation / spike fade (DESIGN §7), only when VIX at the window start is
above STRAT_CLOSE_VIX_THRESHOLD (no VIX value = blocked); exit on the stop loss, timeout or session close."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from tbot_bot.enhancements import vix_gatekeeper
from tbot_bot.market_time import WindowSpec
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.decisions import WindowArrays
from tbot_bot.strategy.strategy_base import IndicatorSource, Strategy

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.strategy.grid import SessionGrid


@dataclass(frozen=True, slots=True)
class CloseParams:
    spec: WindowSpec
    buffer: float
    momentum_pct: float
    spike_pct: float
    vix_threshold: float
    stop_loss_pct: float
    calendar: str = "XNYS"

    @classmethod
    def from_settings(cls, settings: BotSettings) -> CloseParams:
        return cls(
            WindowSpec.from_settings("close", settings),
            settings.STRAT_OPEN_BUFFER,  # DESIGN §7: "as OPEN, same buffer"
            settings.STRAT_CLOSE_MOMENTUM_PCT,
            settings.STRAT_CLOSE_SPIKE_PCT,
            settings.STRAT_CLOSE_VIX_THRESHOLD,
            settings.CLOSE_STOP_LOSS_PCT,
            settings.MARKET_CALENDAR,
        )


class CloseStrategy(Strategy):
    name = "close"
    live_needs_session_history = False  # day open + the window's own bars are all it reads

    def params_from_settings(self, settings: BotSettings) -> CloseParams:
        return CloseParams.from_settings(settings)

    def gate(
        self, days: Sequence[date], params: CloseParams, vix: Mapping[date, float] | None
    ) -> tuple[np.ndarray, list[str]]:
        # STRAT_CLOSE_VIX_THRESHOLD: the enhancement's gate decides every day (no VIX value = blocked)
        results = [vix_gatekeeper.gate((vix or {}).get(d), params.vix_threshold) for d in days]
        return np.array([ok for ok, _ in results], dtype=bool), [why for _, why in results]

    def entries(
        self, grid: SessionGrid, win: WindowArrays, params: CloseParams, source: IndicatorSource | None = None
    ) -> sig.Entries:
        return sig.close_entries(
            grid.t, grid.open, grid.high, grid.low, grid.close,
            win.analysis_start, win.breakout_start, win.breakout_end, win.last_bar,
            params.buffer, params.momentum_pct, params.spike_pct,
            source.first_open() if source is not None else None,
        )  # fmt: skip

    def triggers(
        self, grid: SessionGrid, entry_col: np.ndarray, entry_price: np.ndarray, direction: np.ndarray,
        params: CloseParams, source: IndicatorSource | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        stop = sig.stop_loss_hits(grid.close, entry_col, entry_price, direction, params.stop_loss_pct)
        return sig.combine_triggers([(stop, sig.Exit.STOP_LOSS)])


STRATEGY = CloseStrategy()
simulate = STRATEGY.simulate
self_check = STRATEGY.self_check
live = STRATEGY.live
live_for = STRATEGY.live_for
