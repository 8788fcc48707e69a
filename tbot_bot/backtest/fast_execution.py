"""The backtest's fill and sizing path for many trials: the rules of `execution.execute_day` (screens, bearish
instrument, one trade per ticker per day, `risk_bot.plan_entries`, instrument fills, slippage, fees) driven from
the strategy's signal arrays instead of a DataFrame.

What makes it fast, without changing a single booked fill (tests/test_optimizer_parity.py):
- everything that does not depend on a trial's parameters (each row's first open of the day, the market-cap
  screen, instrument look-ups) is computed once per worker in `FillContext`;
- the gap screen is one vectorised comparison over every signal of the trial;
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

from tbot_bot.backtest.execution import MarketView, _fill, fee_schedule, instrument_for
from tbot_bot.strategy.signals import Exit, Kind
from tbot_bot.trading.risk_bot import Candidate, RiskLimits, Sized, plan_entries, session_cap

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
        up = strategy.upper()
        self._cap_keys = (f"MIN_MARKET_CAP_{up}", f"MAX_MARKET_CAP_{up}")
        self._gap_key = f"MAX_GAP_PCT_{up}"
        days = grid.days
        self.row_day: list[date] = [days[d] for d in grid.day]
        opens = [market.session_open_price(str(s), d) for s, d in zip(grid.symbol, self.row_day, strict=True)]
        # a falsy first open (none known) skips the gap screen, as execution.screen does
        self.day_open = np.array([o if o else np.nan for o in opens], dtype=float)
        self._cap: dict[str, float] = {}
        for s in set(map(str, grid.symbol)):
            metrics = fundamentals.get(s)
            if metrics and "marketCapitalization" in metrics:
                self._cap[s] = float(metrics["marketCapitalization"]) * 1e6

    def screened_out(self, a: SignalArrays, settings: BotSettings) -> np.ndarray:
        """Per signal: dropped by the gap or market-cap screen (execution.screen, vectorised)."""
        gap_limit = getattr(settings, self._gap_key)
        day_open = self.day_open[a.row]
        with np.errstate(invalid="ignore", divide="ignore"):
            # MAX_GAP_PCT_X: |signal close / today's open - 1| above it drops the candidate
            gap = np.abs(a.signal_close / day_open - 1) > gap_limit
        lo, hi = (getattr(settings, k) for k in self._cap_keys)
        syms = self.grid.symbol[a.row]
        # MIN/MAX_MARKET_CAP_X: outside the range is dropped (symbols without a market cap are exempt)
        cap_out = np.fromiter(
            (s in self._cap and not lo <= self._cap[s] <= hi for s in syms), dtype=bool, count=len(syms)
        )
        return np.where(np.isnan(day_open), False, gap) | cap_out


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
    limits = RiskLimits.from_settings(settings, capabilities, defense_mode=settings.DEFENSE_MODE_ACTIVE)
    schedule = fee_schedule(settings) if fees is None else fees
    grid = ctx.grid
    records: list[dict[str, Any]] = []
    pnl: list[float] = []
    entry_t: list[int] = []
    exit_t: list[int] = []
    day_of: list[int] = []
    # DISABLE_ALL_TRADES=true: every signal is denied, nothing is booked
    if limits.trades_disabled or len(a.row) == 0:
        return _arrays(records, pnl, entry_t, exit_t, day_of)
    cap = session_cap(broker_current_float, limits)
    out = ctx.screened_out(a, settings)
    row_day = grid.day[a.row]
    # the order simulate() gives: signal time, strongest first, then symbol
    order = np.lexsort((grid.symbol[a.row].astype(str), -a.strength, a.signal_t))
    order = order[~out[order]]
    if days is not None:
        order = order[np.isin(row_day[order], list(days))]
    i, n = 0, len(order)
    while i < n:
        day = int(row_day[order[i]])
        j = i
        while j < n and row_day[order[j]] == day:
            j += 1
        _day(
            ctx,
            a,
            order[i:j],
            settings,
            capabilities,
            limits,
            cap,
            broker_current_float,
            slippage,
            schedule,
            records,
        )
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
    ctx: FillContext, a: SignalArrays, idx: np.ndarray, settings: BotSettings,
    capabilities: BrokerCapabilities, limits: RiskLimits,
    cap: Decimal, broker_current_float: Decimal, slippage: SlippageModel, fees: FeeSchedule,
    records: list[dict[str, Any]],
) -> None:  # fmt: skip
    strategy, market, grid = ctx.strategy, ctx.market, ctx.grid
    taken, committed = 0, Decimal(0)
    open_until: list[int] = []
    traded: set[str] = set()
    k, n = 0, len(idx)
    while k < n:
        if taken >= limits.max_trades or committed >= cap:
            break  # no slot or no money left today: later signals could only be denied
        t_sig = int(a.signal_t[idx[k]])
        m = k
        while m < n and a.signal_t[idx[m]] == t_sig:
            m += 1
        candidates: list[tuple[Candidate, _Row, str, str]] = []
        for s in idx[k:m]:
            r = int(a.row[s])
            row = _Row(
                symbol=str(grid.symbol[r]), session=ctx.row_day[r],
                direction="bullish" if a.direction[s] > 0 else "bearish", strength=float(a.strength[s]),
                signal_close=float(a.signal_close[s]), signal_time=_stamp(t_sig),
                entry_time=_stamp(a.entry_t[s]), exit_time=_stamp(a.exit_t[s]),
                exit_reason=_EXIT[int(a.exit_reason[s])], kind=_KIND[int(a.kind[s])],
            )  # fmt: skip
            instrument, side, tag, skip = instrument_for(row, strategy, settings, market, capabilities)
            if skip is not None or instrument is None or instrument in traded:
                continue
            traded.add(instrument)
            px = market.close_of(instrument, t_sig)
            cand = Candidate(
                ticker=instrument,
                strength=row.strength,
                price=_money_or_zero(px),
                prev_volume=market.prev_session_volume(instrument, row.session),
                spread_pct=0.0,
                signal_ticker=row.symbol,
            )
            candidates.append((cand, row, side, tag))
        k = m
        if not candidates:
            continue
        open_now = sum(1 for t in open_until if t > t_sig + 1)
        decisions = plan_entries(
            [c for c, *_ in candidates], limits, broker_current_float,
            open_positions=open_now, trades_taken=taken, committed=committed,
        )  # fmt: skip
        by_id = {id(c): (row, side, tag) for c, row, side, tag in candidates}
        for d in decisions:
            if not isinstance(d, Sized):
                continue
            row, side, tag = by_id[id(d.candidate)]
            fill = _fill(row, d, side, tag, strategy, market, slippage, fees)
            if fill is None:
                continue
            taken += 1
            committed += d.notional
            exit_min = int(row.exit_time.value // 60_000_000_000)
            open_until.append(exit_min)
            fill["_entry_t"] = int(row.entry_time.value // 60_000_000_000)
            fill["_exit_t"] = exit_min
            records.append(fill)


def _money_or_zero(px: float | None) -> Decimal:
    from tbot_bot.backtest.execution import _money

    return _money(px) if px is not None else Decimal(0)
