"""The backtest's fill and sizing path for many trials: the rules of `execution.execute_day` (the window's
opening screen, the entry-time screen and instrument choice, the session's blocklist, RiskManager sizing, kill
switch and defense mode, instrument fills, slippage, fees) driven from the strategy's signal arrays instead of a
DataFrame, through the same `execution` functions.

What makes it fast, without changing a single booked fill (tests/test_optimizer_parity.py):
- what does not depend on a trial's parameters (fundamentals, instrument look-ups) is built once per worker in
  `FillContext`, and the window's opening screen is cached per (day, symbol, screen settings);
- a day stops being walked once nothing more can fill: MAX_TRADES slots used or the session cap committed
  (every later signal of the day would only be denied, and denials book nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbot_bot.backtest.execution import (
    Choice,
    MarketView,
    Screens,
    SessionState,
    _fill,
    choose,
    fee_schedule,
    fundamentals_of,
)
from tbot_bot.market_time import previous_session_date
from tbot_bot.strategy.signals import Exit, Kind
from tbot_bot.trading.risk_bot import Sized, session_cap

if TYPE_CHECKING:
    from tbot_bot.backtest.slippage import SlippageModel
    from tbot_bot.broker.capabilities import BrokerCapabilities
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.strategy.grid import SessionGrid
    from tbot_bot.strategy.strategy_base import SignalArrays
    from tbot_bot.trading.fees import FeeSchedule

_KIND = {int(k): k.name.lower() for k in Kind}
_EXIT = {int(e): e.name.lower() for e in Exit}


@dataclass(slots=True)
class _Row:
    """The attributes of one simulate() row that execution.py reads."""

    symbol: str
    session: date
    direction: str
    strength: float
    signal_close: float
    signal_time: pd.Timestamp
    entry_time: pd.Timestamp
    exit_time: pd.Timestamp
    exit_reason: str
    kind: str


def _stamp(minute: int) -> pd.Timestamp:
    return pd.Timestamp(int(minute) * 60_000_000_000, tz="UTC")


@dataclass(frozen=True, slots=True)
class TradeArrays:
    """The booked trades of one run, in booking order: what the metrics need."""

    pnl: np.ndarray  # float, currency, NET of fees (from the exact 4-place Decimal net_PnL)
    entry_t: np.ndarray  # epoch minutes
    exit_t: np.ndarray
    day: np.ndarray  # grid day index
    records: list[dict[str, Any]]  # the fills exactly as execute_day returns them


class FillContext:
    """Per-worker, parameter-independent inputs of the fill path for one strategy over one grid."""

    def __init__(
        self,
        grid: SessionGrid,
        market: MarketView,
        fundamentals: Mapping[str, Mapping[str, float]],
        strategy: str,
    ) -> None:
        self.grid = grid
        self.market = market
        self.strategy = strategy
        self.fundamentals = fundamentals_of(fundamentals)
        days = grid.days
        self.row_day: list[date] = [days[d] for d in grid.day]
        self._opening: dict[tuple[Any, ...], dict[str, tuple[str, str]]] = {}

    def screens(self, settings: BotSettings) -> Screens:
        return Screens(self.strategy, settings, self.market, self.fundamentals)

    def opening_screen(
        self, screens: Screens, settings: BotSettings, day: date, symbols: list[str]
    ) -> dict[str, tuple[str, str]]:
        """Screens.at_window_start, cached by the settings the screen reads (trials rarely change them)."""
        up = self.strategy.upper()
        key = (
            day, tuple(symbols), settings.MIN_PRICE, settings.MAX_PRICE, settings.MIN_VOLUME_THRESHOLD,
            settings.MAX_SPREAD_PCT, getattr(settings, f"MAX_GAP_PCT_{up}"), getattr(settings, f"MIN_MARKET_CAP_{up}"),
            getattr(settings, f"MAX_MARKET_CAP_{up}"), settings.ENABLE_FUNNHUB_FUNDAMENTALS_FILTER,
            settings.MAX_PE_RATIO, settings.MAX_DEBT_EQUITY, settings.MIN_MARKET_CAP_FUNDAMENTAL,
            screens.spec, settings.MARKET_CALENDAR, settings.TRADING_DAYS,
        )  # fmt: skip
        cached = self._opening.get(key)
        if cached is None:
            cached = self._opening[key] = screens.at_window_start(symbols, day)
        return cached


def execute_all(
    ctx: FillContext,
    a: SignalArrays,
    settings: BotSettings,
    capabilities: BrokerCapabilities,
    broker_current_float: Decimal,
    slippage: SlippageModel,
    *,
    days: set[int] | None = None,
    fees: FeeSchedule | None = None,
) -> TradeArrays:
    """Every session's fills of one strategy window (only the grid days in `days` when given); `fees`
    defaults to the settings' SIM_FEE_PROFILE schedule, exactly as execute_day."""
    schedule = fee_schedule(settings) if fees is None else fees
    grid = ctx.grid
    records: list[dict[str, Any]] = []
    pnl: list[float] = []
    entry_t: list[int] = []
    exit_t: list[int] = []
    day_of: list[int] = []
    # DISABLE_ALL_TRADES=true: every signal is denied, nothing is booked
    if settings.DISABLE_ALL_TRADES or len(a.row) == 0:
        return _arrays(records, pnl, entry_t, exit_t, day_of)
    screens = ctx.screens(settings)
    row_day = grid.day[a.row]
    # the order simulate() gives: signal time, strongest first, then symbol
    order = np.lexsort((grid.symbol[a.row].astype(str), -a.strength, a.signal_t))
    if days is not None:
        order = order[np.isin(row_day[order], list(days))]
    carried: str | None = None
    previous: date | None = None
    i, n = 0, len(order)
    while i < n:
        day = int(row_day[order[i]])
        j = i
        while j < n and row_day[order[j]] == day:
            j += 1
        session = grid.days[day]
        # defense mode switched on by the previous session's results carries into this one
        carry = (
            carried
            if previous is not None and previous_session_date(session, settings.MARKET_CALENDAR) == previous
            else None
        )
        state = SessionState(settings, capabilities, broker_current_float, carried_defense=carry)
        _day(
            ctx, screens, a, order[i:j], settings, capabilities, state, slippage.for_session(session, ctx.strategy),
            schedule, records,
        )  # fmt: skip
        state.close_day()
        carried = f"carried over from {session}: {state.switched}" if state.switched else None
        previous = session
        for rec in records[len(pnl) :]:
            pnl.append(float(rec["net_PnL"]))
            entry_t.append(rec["_entry_t"])
            exit_t.append(rec["_exit_t"])
            day_of.append(day)
        i = j
    for rec in records:
        del rec["_entry_t"], rec["_exit_t"]
    return _arrays(records, pnl, entry_t, exit_t, day_of)


def _arrays(
    records: list[dict[str, Any]], pnl: list[float], entry_t: list[int], exit_t: list[int], day: list[int]
) -> TradeArrays:
    return TradeArrays(
        np.array(pnl, dtype=float),
        np.array(entry_t, dtype=np.int64),
        np.array(exit_t, dtype=np.int64),
        np.array(day, dtype=np.int64),
        records,
    )


def _day(
    ctx: FillContext, screens: Screens, a: SignalArrays, idx: np.ndarray, settings: BotSettings,
    capabilities: BrokerCapabilities, state: SessionState, slippage: SlippageModel, fees: FeeSchedule,
    records: list[dict[str, Any]],
) -> None:  # fmt: skip
    strategy, market, grid = ctx.strategy, ctx.market, ctx.grid
    session = ctx.row_day[int(a.row[idx[0]])]
    symbols = sorted({str(grid.symbol[int(a.row[s])]) for s in idx})
    unscreened = ctx.opening_screen(screens, settings, session, symbols)
    taken, committed = 0, Decimal(0)
    k, n = 0, len(idx)
    while k < n:
        limits = state.risk.limits()
        if taken >= limits.max_trades or committed >= session_cap(state.float, limits):
            break  # no slot or no money left today: later signals could only be denied
        t_sig = int(a.signal_t[idx[k]])
        m = k
        while m < n and a.signal_t[idx[m]] == t_sig:
            m += 1
        state.settle(t_sig)
        chosen: list[tuple[Choice, _Row]] = []
        for s in idx[k:m]:
            r = int(a.row[s])
            symbol = str(grid.symbol[r])
            if symbol in unscreened:
                continue
            row = _Row(
                symbol=symbol, session=ctx.row_day[r],
                direction="bullish" if a.direction[s] > 0 else "bearish", strength=float(a.strength[s]),
                signal_close=float(a.signal_close[s]), signal_time=_stamp(t_sig),
                entry_time=_stamp(a.entry_t[s]), exit_time=_stamp(a.exit_t[s]),
                exit_reason=_EXIT[int(a.exit_reason[s])], kind=_KIND[int(a.kind[s])],
            )  # fmt: skip
            choice, skip = choose(row, screens, settings, capabilities)
            if skip is not None or choice is None or state.blocked(choice.instrument):
                continue
            if any(c.instrument == choice.instrument for c, _ in chosen):
                continue
            chosen.append((choice, row))
        k = m
        if not chosen:
            continue
        decisions = state.size(strategy, [c.candidate for c, _ in chosen], t_sig + 1)
        by_id = {id(c.candidate): (c, row) for c, row in chosen}
        for d in decisions:
            if not isinstance(d, Sized):
                continue
            choice, row = by_id[id(d.candidate)]
            state.record(d.ticker, strategy)
            fill = _fill(row, d, choice.side, choice.tag, strategy, market, slippage, fees)
            if fill is None:
                state.risk.release(strategy, d.notional)
                continue
            taken += 1
            committed += d.notional
            exit_min = int(row.exit_time.value // 60_000_000_000)
            state.book(fill, exit_min)
            fill["_entry_t"] = int(row.entry_time.value // 60_000_000_000)
            fill["_exit_t"] = exit_min
            records.append(fill)
