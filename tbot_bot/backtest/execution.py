"""Turns a strategy's signal-ticker trades into backtest fills: candidate screening, the bearish instrument
(SHORT_TYPE_X), sizing by the live risk rules (trading/risk_bot.plan_entries), instrument prices at the
same entry/exit bars, the slippage model, and the sim's fees (trading/fees.FeeSchedule of SIM_FEE_PROFILE):
each trade carries PnL (before fees, as the live trade history), fees and net_PnL. Pure: no ledger, no broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbot_bot.accounting.account_transaction import realised_pnl
from tbot_bot.domain.vocab import DenialCode, Direction, InstrumentType
from tbot_bot.market_time import previous_session_date
from tbot_bot.strategy.strategy_meta import leverage_of
from tbot_bot.trading.bearish import route_signal
from tbot_bot.trading.fees import FeeSchedule
from tbot_bot.trading.risk_bot import Candidate, Denied, InstrumentKind, RiskLimits, Sized, plan_entries

if TYPE_CHECKING:
    from tbot_bot.backtest.slippage import SlippageModel
    from tbot_bot.broker.capabilities import BrokerCapabilities
    from tbot_bot.config.env_bot import BotSettings

_NS_PER_MIN = 60_000_000_000
PRICE_QUANTUM = Decimal("0.0001")


def _money(x: float) -> Decimal:
    return Decimal(repr(float(x))).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


class MarketView:
    """Per-symbol bar arrays for price look-ups, and previous-session volumes."""

    def __init__(self, frame: pd.DataFrame, calendar_name: str = "XNYS") -> None:
        self._calendar = calendar_name
        self._bars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._volume: dict[tuple[str, date], float] = {}
        self._first_open: dict[tuple[str, date], float] = {}
        for symbol, g in frame.groupby("symbol", sort=False):
            t = g["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) // _NS_PER_MIN
            order = np.argsort(t, kind="stable")
            self._bars[str(symbol)] = (
                t[order],
                g["open"].to_numpy(float)[order],
                g["close"].to_numpy(float)[order],
            )
            days = g["timestamp"].dt.date
            for d, v in g.groupby(days)["volume"].sum().items():
                self._volume[(str(symbol), d)] = float(v)
            for d, o in g.sort_values("timestamp").groupby(days)["open"].first().items():
                self._first_open[(str(symbol), d)] = float(o)

    def has(self, symbol: str) -> bool:
        return symbol in self._bars

    def open_at_or_after(self, symbol: str, minute: int) -> tuple[int, float] | None:
        t, o, _ = self._bars[symbol]
        i = int(np.searchsorted(t, minute, side="left"))
        return (int(t[i]), float(o[i])) if i < len(t) else None

    def close_of(self, symbol: str, minute: int) -> float | None:
        t, _, c = self._bars[symbol]
        i = int(np.searchsorted(t, minute, side="left"))
        return float(c[i]) if i < len(t) and t[i] == minute else None

    def last_close_before(self, symbol: str, minute: int) -> tuple[int, float] | None:
        t, _, c = self._bars[symbol]
        i = int(np.searchsorted(t, minute, side="left")) - 1
        return (int(t[i]) + 1, float(c[i])) if i >= 0 else None

    def prev_session_volume(self, symbol: str, day: date) -> int | None:
        prev = previous_session_date(day, self._calendar)
        v = self._volume.get((symbol, prev))
        return int(v) if v is not None else None

    def session_open_price(self, symbol: str, day: date) -> float | None:
        return self._first_open.get((symbol, day))


@dataclass(frozen=True, slots=True)
class Skip:
    session: date
    strategy: str
    signal_ticker: str
    instrument: str | None
    code: str
    reason: str


def _minute(ts: pd.Timestamp) -> int:
    return int(ts.value // _NS_PER_MIN)


def screen(
    row: Any,
    strategy: str,
    settings: BotSettings,
    market: MarketView,
    fundamentals: Mapping[str, Mapping[str, float]],
) -> tuple[str, str] | None:
    """Signal-ticker screens the bars can answer (DESIGN §7 candidates): gap from today's open and market cap.
    Price, volume and spread are checked on the instrument by risk_bot. Returns (code, reason) to skip."""
    up = strategy.upper()
    day_open = market.session_open_price(row.symbol, row.session)
    gap_limit = getattr(settings, f"MAX_GAP_PCT_{up}")
    # MAX_GAP_PCT_X: |price / today's open - 1| above it drops the candidate
    if day_open and abs(row.signal_close / day_open - 1) > gap_limit:
        return (
            "gap_too_large",
            f"|{row.signal_close:.4f} / open {day_open:.4f} - 1| > MAX_GAP_PCT_{up}={gap_limit}",
        )
    metrics = fundamentals.get(row.symbol)
    if metrics and "marketCapitalization" in metrics:
        cap = float(metrics["marketCapitalization"]) * 1e6
        lo, hi = getattr(settings, f"MIN_MARKET_CAP_{up}"), getattr(settings, f"MAX_MARKET_CAP_{up}")
        # MIN/MAX_MARKET_CAP_X: candidates outside the range are dropped (ETFs carry no market cap: exempt)
        if not lo <= cap <= hi:
            return "market_cap", f"market cap {cap:,.0f} outside {lo:,}..{hi:,}"
    return None


def instrument_for(
    row: Any, strategy: str, settings: BotSettings, market: MarketView, capabilities: BrokerCapabilities
) -> tuple[str | None, str, str, tuple[str, str] | None]:
    """(instrument, position side in the instrument long|short, tag, skip) for one signal: the live rule
    (`trading/bearish.route_signal`), with "has a bar at the signal" as the inverse ETF's check."""
    sig_min = _minute(row.signal_time)
    route = route_signal(
        Direction(row.direction), row.symbol, strategy, settings.short_type(strategy), capabilities,
        settings.BROKER_NAME, lambda s: market.has(s) and market.close_of(s, sig_min) is not None,
    )  # fmt: skip
    tag = str(route.tag or "")
    if route.denial is not None:
        return None, "", tag, (str(route.denial[0]), route.denial[1])
    if route.instrument is InstrumentType.OPTION:
        # a long put needs option quotes, which 1-minute equity bars do not carry
        key = f"SHORT_TYPE_{strategy.upper()}"
        return None, "", tag, (DenialCode.NO_OPTION_DATA, f"{key}=LongPut: no option prices in backtest data")
    return route.symbol, str(route.position_side), tag, None


def execute_day(
    day_trades: pd.DataFrame,
    strategy: str,
    settings: BotSettings,
    capabilities: BrokerCapabilities,
    market: MarketView,
    fundamentals: Mapping[str, Mapping[str, float]],
    broker_current_float: Decimal,
    slippage: SlippageModel,
    fees: FeeSchedule | None = None,
) -> tuple[list[dict[str, Any]], list[Skip]]:
    """One session of one strategy window: batches of signals in signal-time order (strongest first within a
    bar) go through risk_bot.plan_entries with the window's running usage, as the live supervisor would.
    `fees` defaults to the settings' SIM_FEE_PROFILE schedule (what the sim charges the replay of the same day)."""
    limits = RiskLimits.from_settings(settings, capabilities, defense_mode=settings.DEFENSE_MODE_ACTIVE)
    schedule = fee_schedule(settings) if fees is None else fees
    fills: list[dict[str, Any]] = []
    skips: list[Skip] = []
    taken, committed = 0, Decimal(0)
    open_until: list[pd.Timestamp] = []
    traded: set[str] = set()  # ticker_blocklist: one trade per ticker per day
    for signal_time, batch in day_trades.groupby("signal_time", sort=True):
        candidates: list[tuple[Candidate, Any, str, str]] = []
        for row in batch.sort_values(["strength", "symbol"], ascending=[False, True]).itertuples():
            skip = screen(row, strategy, settings, market, fundamentals)
            instrument, side, tag = None, "", ""
            if skip is None:
                instrument, side, tag, skip = instrument_for(row, strategy, settings, market, capabilities)
            if skip is None and instrument in traded:
                skip = (
                    DenialCode.TICKER_BLOCKLIST,
                    f"{instrument} already traded today (one trade per ticker per day)",
                )
            if skip is not None or instrument is None:
                code, why = skip or ("no_instrument", "no instrument")
                skips.append(Skip(row.session, strategy, row.symbol, instrument, code, why))
                continue
            traded.add(instrument)
            px = market.close_of(instrument, _minute(row.signal_time))
            cand = Candidate(
                ticker=instrument,
                strength=float(row.strength),
                price=_money(px) if px is not None else Decimal(0),
                prev_volume=market.prev_session_volume(instrument, row.session),
                spread_pct=0.0,  # bars carry no quotes: the spread filter cannot reject in a backtest
                signal_ticker=row.symbol,
                # a short sale is sized in whole shares unless the broker allows fractional shorts
                kind=InstrumentKind.SHORT_SALE if side == "short" else InstrumentKind.EQUITY,
            )
            candidates.append((cand, row, side, tag))
        if not candidates:
            continue
        entry_at = pd.Timestamp(signal_time) + pd.Timedelta(minutes=1)
        open_now = sum(1 for t in open_until if t > entry_at)
        decisions = plan_entries(
            [c for c, *_ in candidates], limits, broker_current_float,
            open_positions=open_now, trades_taken=taken, committed=committed,
        )  # fmt: skip
        by_id = {id(c): (row, side, tag) for c, row, side, tag in candidates}
        for d in decisions:
            row, side, tag = by_id[id(d.candidate)]
            if isinstance(d, Denied):
                skips.append(Skip(row.session, strategy, row.symbol, d.ticker, str(d.code), d.reason))
                continue
            assert isinstance(d, Sized)
            fill = _fill(row, d, side, tag, strategy, market, slippage, schedule)
            if fill is None:
                skips.append(
                    Skip(
                        row.session,
                        strategy,
                        row.symbol,
                        d.ticker,
                        "no_bars",
                        "instrument has no bar to fill",
                    )
                )
                continue
            taken += 1
            committed += d.notional
            open_until.append(row.exit_time)
            fills.append(fill)
    return fills, skips


def fee_schedule(settings: BotSettings) -> FeeSchedule:
    # SIM_FEE_PROFILE (custom: the SIM_* fee keys): what each backtest fill costs, as in the sim
    return FeeSchedule.from_settings(settings)


def _fill(
    row: Any, sized: Sized, side: str, tag: str, strategy: str, market: MarketView, slippage: SlippageModel,
    fees: FeeSchedule,
) -> dict[str, Any] | None:  # fmt: skip
    instrument = sized.ticker
    entry_min, exit_min = _minute(row.entry_time), _minute(row.exit_time)
    entry = market.open_at_or_after(instrument, entry_min)
    ex = market.open_at_or_after(instrument, exit_min)
    if ex is None or ex[0] != exit_min:
        # no instrument bar starting at the exit minute: its last close before then
        ex = market.last_close_before(instrument, exit_min + 1)
    if entry is None or entry[0] - entry_min > 5 or ex is None:
        return None
    sign = 1 if side == "long" else -1
    entry_raw, exit_raw = entry[1], ex[1]
    entry_px = slippage.adjust(entry_raw, "buy" if sign > 0 else "sell")
    exit_px = slippage.adjust(exit_raw, "sell" if sign > 0 else "buy")
    qty = sized.qty
    # the ledger's one PnL formula (each leg rounded to 1/10,000), so a backtest books what a replay books
    one = Decimal(1)
    pnl = realised_pnl(qty, _money(entry_px), _money(exit_px), one, short=sign < 0)
    pnl_raw = realised_pnl(qty, _money(entry_raw), _money(exit_raw), one, short=sign < 0)
    # the sim charges each order at its fill price; the unslipped comparison pays fees at the raw prices
    fee = fees.round_trip(qty, _money(entry_px), _money(exit_px), short=sign < 0)
    fee_raw = fees.round_trip(qty, _money(entry_raw), _money(exit_raw), short=sign < 0)
    return {
        "timestamp": row.entry_time.isoformat(),
        "strategy_name": strategy,
        "ticker": instrument,
        "signal_ticker": row.symbol,
        # position semantics (DESIGN §6): the side held; an inverse ETF is long with direction bearish
        "side": side,
        "direction": row.direction,
        "tag": tag,
        "leverage_multiplier": leverage_of(instrument) if tag == "InverseETF" else None,
        "size": str(qty),
        "notional": str(sized.notional.quantize(PRICE_QUANTUM)),
        "weight": str(sized.weight),
        "entry_time": row.entry_time.isoformat(),
        "exit_time": row.exit_time.isoformat(),
        "entry_price": str(_money(entry_px)),
        "exit_price": str(_money(exit_px)),
        "entry_price_no_slippage": str(_money(entry_raw)),
        "exit_price_no_slippage": str(_money(exit_raw)),
        "PnL": str(pnl.quantize(PRICE_QUANTUM)),  # before fees, as the live trade history's PnL
        "fees": str(fee.quantize(PRICE_QUANTUM)),  # entry + exit order (Dr 5010 in a replay's ledger)
        "net_PnL": str((pnl - fee).quantize(PRICE_QUANTUM)),  # what the metrics use
        "PnL_no_slippage": str(pnl_raw.quantize(PRICE_QUANTUM)),
        "net_PnL_no_slippage": str((pnl_raw - fee_raw).quantize(PRICE_QUANTUM)),
        "exit_reason": row.exit_reason,
        "signal_kind": row.kind,
        "strength": float(row.strength),
        "session": row.session.isoformat(),
        "mode": "backtest",
    }
