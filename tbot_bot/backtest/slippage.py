"""Slippage model shared by the sim exchange and the backtest engine.

Types (SLIPPAGE_SIMULATION_TYPE): `none`; `rule_based` = a fixed SLIPPAGE_MEAN_PCT percent against the
trader; `randomized` = |N(mean, stddev)| percent against the trader, from a seeded generator so a run is
reproducible. Slippage always worsens the price: buys pay more, sells receive less.

The backtest and the optimizer draw from one generator per session and strategy window (`for_session`, seeded
from the run's seed, the date and the window), so a session's fills are the same whatever span it is run in: a
backtest of one fold's out-of-sample block equals that block inside a study's trial.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

SlippageType = Literal["none", "rule_based", "randomized"]


@dataclass(slots=True)
class SlippageModel:
    kind: SlippageType = "none"
    mean_pct: float = 0.0
    stddev_pct: float = 0.0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @classmethod
    def from_settings(cls, settings: BotSettings, seed: int = 0) -> SlippageModel:
        # ENABLE_SLIPPAGE_MODEL=false: fills at the raw bar price whatever SLIPPAGE_SIMULATION_TYPE says
        if not settings.ENABLE_SLIPPAGE_MODEL:
            return cls(kind="none", seed=seed)
        return cls(
            kind=settings.SLIPPAGE_SIMULATION_TYPE,
            mean_pct=settings.SLIPPAGE_MEAN_PCT,
            stddev_pct=settings.SLIPPAGE_STDDEV_PCT,
            seed=seed,
        )

    def for_session(self, day: date, strategy: str) -> SlippageModel:
        """The model of one session's window: its own generator, seeded from (seed, date, window)."""
        # SLIPPAGE_SIMULATION_TYPE=randomized draws per session; the other types have nothing to reseed
        if self.kind != "randomized":
            return self
        return replace(self, seed=zlib.crc32(f"{self.seed}:{day.isoformat()}:{strategy}".encode()))

    @property
    def active(self) -> bool:
        return self.kind != "none"

    def fraction(self) -> float:
        """The next slippage as a fraction of price (>= 0)."""
        # SLIPPAGE_SIMULATION_TYPE: rule_based = always the mean; randomized = a normal draw around it; none = 0
        if self.kind == "rule_based":
            return self.mean_pct / 100.0
        if self.kind == "randomized":
            return abs(float(self._rng.normal(self.mean_pct, self.stddev_pct))) / 100.0
        return 0.0

    def adjust(self, price: float, side: Literal["buy", "sell"]) -> float:
        """Price after slippage for one fill."""
        f = self.fraction()
        return price * (1 + f) if side == "buy" else price * (1 - f)
