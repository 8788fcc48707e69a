"""What a strategy decides, shared by its vectorised path (`strategy_base.Strategy.simulate`) and its
bar-by-bar path (`live_evaluator.LiveEvaluator`): decisions, open positions, per-row window bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from tbot_bot.domain.vocab import Direction, ExitReason
from tbot_bot.strategy import signals as sig

EXIT_NAMES = {int(e): ExitReason[e.name] for e in sig.Exit if e is not sig.Exit.NONE}
KIND_NAMES = {int(k): k.name.lower() for k in sig.Kind}


@dataclass(frozen=True, slots=True)
class EntryDecision:
    """Enter at the next bar's open. Decided on the SIGNAL ticker; the order may go to another instrument."""

    strategy: str
    symbol: str
    direction: Direction
    strength: float  # distance beyond the trigger, as a fraction of the trigger price
    signal_time: datetime  # start of the bar whose close triggered
    signal_close: float
    kind: str  # breakout | vwap_reversion | continuation | fade


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position as the evaluator needs it, in signal-ticker terms. entry_price None = the signal ticker's
    open of the bar starting at entry_time (what the backtest uses)."""

    symbol: str
    direction: Direction
    entry_time: datetime
    entry_price: float | None = None


@dataclass(frozen=True, slots=True)
class ExitDecision:
    """Exit at the next bar's open."""

    strategy: str
    symbol: str
    reason: ExitReason
    decided_at: datetime
    trigger_time: datetime | None = None  # bar whose close triggered (stops and VWAP touch)
    trigger_close: float | None = None


@dataclass(frozen=True, slots=True)
class Decisions:
    entries: list[EntryDecision]
    exits: list[ExitDecision]
    blocked_reason: str | None = None  # set when the whole window is gated (e.g. CLOSE without VIX)


@dataclass(frozen=True, slots=True)
class WindowArrays:
    """Per-row window bounds in minutes (signals.py units) and whether the window runs that day."""

    analysis_start: np.ndarray
    breakout_start: np.ndarray
    breakout_end: np.ndarray
    last_bar: np.ndarray
    fits: np.ndarray
