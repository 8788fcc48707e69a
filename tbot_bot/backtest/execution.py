"""Turns a strategy's signal-ticker trades into backtest fills by the rules of the live day, through the live
functions: the window-start and entry-time screens (screeners/finnhub_screener.market_filters and
fundamentals_rejection, on snapshots quoted by the sim's one spread model, broker/brokers/sim_market.quote_around),
the bearish instrument (trading/bearish.route_signal), one trade per ticker per session across windows, sizing
and MAX_OPEN_POSITIONS by trading/risk_bot.RiskManager, the kill switch (trading/kill_switch.KillSwitch on net
realised PnL) and defense mode (runtime/defense.performance_of + RiskManager.observe_performance), instrument
prices at the same entry/exit bars, the slippage model, and the sim's fees (trading/fees.FeeSchedule of
SIM_FEE_PROFILE): each trade carries PnL (before fees, as the live trade history), fees and net_PnL.
A `SessionState` is one session shared by its windows (`--strategy all`). Pure: no ledger, no broker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbot_bot.accounting.account_transaction import realised_pnl
from tbot_bot.broker.broker_api import Quote, Snapshot
from tbot_bot.broker.brokers.sim_market import from_ns, price_decimal, quote_around
from tbot_bot.domain.vocab import DenialCode, Direction, InstrumentType, OrderSide
from tbot_bot.enhancements.finnhub_fundamental_guard import FundamentalGuard
from tbot_bot.market_time import WindowSpec, compute_window, previous_session_date
from tbot_bot.runtime.defense import performance_of
from tbot_bot.screeners.finnhub_screener import Candidate as Screened
from tbot_bot.screeners.finnhub_screener import fundamentals_rejection, market_filters
from tbot_bot.screeners.fundamentals import Fundamentals
from tbot_bot.strategy.grid import BarColumns, by_key_then_time
from tbot_bot.strategy.strategy_meta import is_inverse_etf, leverage_of
from tbot_bot.trading.bearish import route_signal
from tbot_bot.trading.fees import FeeSchedule
from tbot_bot.trading.kill_switch import KillSwitch
from tbot_bot.trading.risk_bot import Candidate, Denied, InstrumentKind, RiskManager, Sized

if TYPE_CHECKING:
    from tbot_bot.backtest.slippage import SlippageModel
    from tbot_bot.broker.capabilities import BrokerCapabilities
    from tbot_bot.config.env_bot import BotSettings

_NS_PER_MIN = 60_000_000_000
_MIN_PER_DAY = 1440
_EPOCH = date(1970, 1, 1)
PRICE_QUANTUM = Decimal("0.0001")


def _money(x: float) -> Decimal:
    return Decimal(repr(float(x))).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


class MarketView:
    """Per-symbol bar arrays for price look-ups, previous-session volumes, and the snapshot the sim exchange
    would give at a minute (last close quoted with the sim's spread, today's open, previous volume)."""

    def __init__(self, frame: pd.DataFrame | BarColumns, calendar_name: str = "XNYS") -> None:
        """`frame`: the loader's frame, or the BarColumns the signal grid was built from (converted once)."""
        self._calendar = calendar_name
        self._bars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._volume: dict[tuple[str, date], float] = {}
        self._first: dict[tuple[str, date], tuple[int, float]] = {}
        cols = frame if isinstance(frame, BarColumns) else BarColumns.of(frame)
        t_all = cols.ts_ns // _NS_PER_MIN
        # one sort by (symbol, time) and each symbol's run of bars, instead of a group-by per symbol
        order = by_key_then_time(cols.code, t_all)
        codes = cols.code[order]
        bounds = np.flatnonzero(np.diff(codes)) + 1
        for run in np.split(order, bounds) if len(order) else []:
            symbol = str(cols.names[cols.code[run[0]]])
            t, opens = t_all[run], cols.open[run]
            self._bars[symbol] = (t, opens, cols.close[run])
            # per UTC date (the US session): its first bar and its volume
            days, first = np.unique(t // _MIN_PER_DAY, return_index=True)
            volumes = np.add.reduceat(cols.volume[run], first)
            for d, i, v in zip(days, first, volumes, strict=True):
                key = (symbol, _EPOCH + timedelta(days=int(d)))
                self._volume[key] = float(v)
                self._first[key] = (int(t[i]), float(opens[i]))

    def has(self, symbol: str) -> bool:
        return symbol in self._bars

    def open_at_or_after(self, symbol: str, minute: int) -> tuple[int, float] | None:
        t, o, _ = self._bars[symbol]
        i = int(np.searchsorted(t, minute, side="left"))
        return (int(t[i]), float(o[i])) if i < len(t) else None

    def last_close_before(self, symbol: str, minute: int) -> tuple[int, float] | None:
        t, _, c = self._bars[symbol]
        i = int(np.searchsorted(t, minute, side="left")) - 1
        return (int(t[i]) + 1, float(c[i])) if i >= 0 else None

    def prev_session_volume(self, symbol: str, day: date) -> int | None:
        prev = previous_session_date(day, self._calendar)
        v = self._volume.get((symbol, prev))
        return int(v) if v is not None else None

    def snapshot(self, symbol: str, day: date, now: int) -> Snapshot | None:
        """What SimBroker.get_snapshots answers at minute `now` of `day`: the last bar closed by then (start +
        1 minute <= now) quoted with the sim's spread, today's open once its first bar has started, and the
        previous session's volume; None when nothing has traded yet (the broker omits the symbol)."""
        if symbol not in self._bars:
            return None
        last = self.last_close_before(symbol, now)
        if last is None:
            return None
        bid, ask = quote_around(price_decimal(last[1]))
        quote = Quote(symbol, bid, ask, from_ns(last[0] * _NS_PER_MIN))
        first = self._first.get((symbol, day))
        today_open = price_decimal(first[1]) if first and first[0] <= now else None
        return Snapshot(symbol, quote.mid, today_open, None, self.prev_session_volume(symbol, day), quote)


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


def fundamentals_of(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, Fundamentals]:
    """The cached fundamentals file a replay reads ({"SYM": {"marketCapitalization": ...}}) as the screener sees it."""
    return {str(k).upper(): Fundamentals.from_metric(str(k).upper(), dict(v)) for k, v in metrics.items()}


class Screens:
    """The live screener's checks for one strategy and settings, on the backtest's snapshots."""

    def __init__(
        self,
        strategy: str,
        settings: BotSettings,
        market: MarketView,
        fundamentals: Mapping[str, Fundamentals],
        file_name: str = "fundamentals.json",
    ) -> None:
        self.strategy = strategy
        self.settings = settings
        self.market = market
        self.fundamentals = fundamentals
        self.guard = FundamentalGuard(settings)
        self._file = file_name
        self.spec = WindowSpec.from_settings(strategy, settings)

    def window_start(self, day: date) -> int:
        w = compute_window(self.spec, day, self.settings.MARKET_CALENDAR, self.settings.TRADING_DAYS)
        return _minute(pd.Timestamp(w.start))

    def equity(self, symbol: str, day: date, now: int) -> tuple[tuple[str, str] | None, Screened | None]:
        """Screener.screen of one symbol at minute `now`: (rejection (filter, reason), its candidate)."""
        snap = self.market.snapshot(symbol, day, now)
        if snap is None:
            return ("snapshot", "broker returned no snapshot"), None
        etf = is_inverse_etf(symbol)
        rejection, cand = market_filters(self.settings, self.strategy, snap, etf)
        if rejection is None and not etf:
            rejection = fundamentals_rejection(
                self.settings, self.guard, self.strategy, symbol, self.fundamentals.get(symbol.upper()),
                f"no fundamentals for {symbol} in {self._file}",
            )  # fmt: skip
        if rejection is not None:
            return (rejection.filter, rejection.reason), None
        return None, cand

    def inverse_etf(self, symbol: str, day: date, now: int) -> Screened | None:
        """Screener.screen_inverse_etfs of one ETF (price, volume, spread): its candidate or None."""
        snap = self.market.snapshot(symbol, day, now)
        if snap is None:
            return None
        rejection, cand = market_filters(self.settings, self.strategy, snap, True)
        return cand if rejection is None else None

    def at_window_start(self, symbols: Iterable[str], day: date) -> dict[str, tuple[str, str]]:
        """The window's opening screen of the signal universe: symbol -> why it is not evaluated today."""
        start = self.window_start(day)
        out: dict[str, tuple[str, str]] = {}
        for symbol in symbols:
            rejection, _ = self.equity(symbol, day, start)
            if rejection is not None:
                out[symbol] = rejection
        return out


@dataclass(frozen=True, slots=True)
class Choice:
    instrument: str
    side: str  # position side held: long | short
    tag: str
    candidate: Candidate


def choose(
    row: Any, screens: Screens, settings: BotSettings, capabilities: BrokerCapabilities
) -> tuple[Choice | None, tuple[str, str] | None]:
    """trading/instruments.choose_instrument on backtest data: the instrument, its screen and its risk candidate
    at the entry decision (the minute after the signal bar), or (None, (code, reason))."""
    strategy, market = screens.strategy, screens.market
    now = _minute(row.signal_time) + 1
    found: dict[str, Screened] = {}

    def inverse_etf_passes(sym: str) -> bool:
        cand = screens.inverse_etf(sym, row.session, now) if market.has(sym) else None
        if cand is not None:
            found[sym] = cand
        return cand is not None

    route = route_signal(
        Direction(row.direction), row.symbol, strategy, settings.short_type(strategy), capabilities,
        settings.BROKER_NAME, inverse_etf_passes,
    )  # fmt: skip
    tag = str(route.tag or "")
    if route.denial is not None:
        return None, (str(route.denial[0]), route.denial[1])
    if route.instrument is InstrumentType.OPTION:
        # a long put needs option quotes, which 1-minute equity bars do not carry
        key = f"SHORT_TYPE_{strategy.upper()}"
        return None, (DenialCode.NO_OPTION_DATA, f"{key}=LongPut: no option prices in backtest data")
    screened = found.get(route.symbol)
    if screened is None:
        rejection, screened = screens.equity(row.symbol, row.session, now)
        if rejection is not None or screened is None:
            why = rejection[1] if rejection else "no candidate"
            return None, (DenialCode.SCREENER, f"{row.symbol} no longer passes the screener: {why}")
    short = route.entry_side is OrderSide.SELL
    cand = Candidate(
        ticker=route.symbol,
        strength=float(row.strength),
        price=screened.price,
        prev_volume=screened.prev_volume,
        spread_pct=screened.spread_pct,
        signal_ticker=row.symbol,
        # a short sale is sized in whole shares unless the broker allows fractional shorts
        kind=InstrumentKind.SHORT_SALE if short else InstrumentKind.EQUITY,
    )
    return Choice(route.symbol, str(route.position_side), tag, cand), None


class SessionState:
    """One session as the live day keeps it across its windows: the ticker blocklist (one trade per ticker per
    session), the open positions (MAX_OPEN_POSITIONS), the kill switch on net realised PnL, defense mode, and
    each window's MAX_TRADES / session-cap usage (RiskManager). `carried_defense`: a switch of the previous
    session (runtime/defense.DefenseMonitor.carried_reason)."""

    def __init__(
        self,
        settings: BotSettings,
        capabilities: BrokerCapabilities,
        broker_current_float: Decimal,
        *,
        carried_defense: str | None = None,
    ) -> None:
        self.float = Decimal(broker_current_float)
        self.kill = KillSwitch(settings, self.float)
        self.risk = RiskManager(
            settings, self.float, capabilities, kill_switch=self.kill, defense_reason=carried_defense
        )
        self.traded: dict[str, str] = {}  # instrument -> the strategy that traded it
        self.switched: str | None = None  # defense mode turned on by this session's own results
        # (exit minute, strategy, instrument, net PnL): exits filling at one minute are booked in the order of their
        # client order ids (<bot>-<day>-<strategy>-<ticker>-<seq>), as the supervisor books a bar's fills
        self._open: list[tuple[int, str, str, Decimal]] = []
        self._closed: list[Decimal] = []

    def blocked(self, instrument: str) -> str | None:
        """enhancements/ticker_blocklist: the reason a ticker traded earlier today is denied, else None."""
        by = self.traded.get(instrument.upper())
        return f"{instrument.upper()} already traded today by {by}" if by else None

    def settle(self, minute: float) -> None:
        """Book the exits filled by `minute` (exit bar start <= minute) in exit order: each feeds the kill switch
        and the defense-mode triggers, as DayContext.on_fill does."""
        due = sorted(x for x in self._open if x[0] <= minute)
        if not due:
            return
        self._open = [x for x in self._open if x[0] > minute]
        for *_, net in due:
            self._closed.append(net)
            self.kill.record_realised(net)
            if not self.risk.defense_mode:
                perf = performance_of(self._closed, self.float)
                if self.risk.observe_performance(drawdown=perf.drawdown, win_rate=perf.win_rate):
                    self.switched = self.risk.defense_reason

    def open_positions(self, entry_minute: int) -> int:
        return sum(1 for x in self._open if x[0] > entry_minute)

    def size(self, strategy: str, candidates: list[Candidate], entry_minute: int) -> list[Sized | Denied]:
        return self.risk.size_signals(strategy, candidates, self.open_positions(entry_minute))

    def record(self, instrument: str, strategy: str) -> None:
        self.traded.setdefault(instrument.upper(), strategy)

    def book(self, fill: dict[str, Any], exit_minute: int) -> None:
        self._open.append((exit_minute, fill["strategy_name"], fill["ticker"], Decimal(fill["net_PnL"])))

    def close_day(self) -> None:
        self.settle(float("inf"))


def execute_day(
    day_trades: pd.DataFrame,
    strategy: str,
    settings: BotSettings,
    capabilities: BrokerCapabilities,
    market: MarketView,
    fundamentals: Mapping[str, Mapping[str, float]] | Mapping[str, Fundamentals],
    broker_current_float: Decimal,
    slippage: SlippageModel,
    fees: FeeSchedule | None = None,
    *,
    state: SessionState | None = None,
) -> tuple[list[dict[str, Any]], list[Skip]]:
    """One session of one strategy window as the live supervisor runs it: the window's opening screen, then
    batches of signals in signal-time order (strongest first within a bar) through the instrument choice, the
    ticker blocklist and RiskManager.size_signals. `state` is the session shared with the day's other windows
    (a fresh one when None). `fees` defaults to the settings' SIM_FEE_PROFILE schedule."""
    own = state is None
    day_state = SessionState(settings, capabilities, broker_current_float) if state is None else state
    schedule = fee_schedule(settings) if fees is None else fees
    screens = Screens(strategy, settings, market, _as_fundamentals(fundamentals))
    fills: list[dict[str, Any]] = []
    skips: list[Skip] = []
    if day_trades.empty:
        return fills, skips
    session = day_trades["session"].iloc[0]
    unscreened = screens.at_window_start(sorted(set(map(str, day_trades["symbol"]))), session)
    for signal_time, batch in day_trades.groupby("signal_time", sort=True):
        t_sig = _minute(pd.Timestamp(signal_time))
        day_state.settle(t_sig)
        chosen: list[tuple[Choice, Any]] = []
        for row in batch.sort_values(["strength", "symbol"], ascending=[False, True]).itertuples():
            if row.symbol in unscreened:
                code, why = unscreened[row.symbol]
                skips.append(Skip(row.session, strategy, row.symbol, None, f"screen:{code}", why))
                continue
            choice, skip = choose(row, screens, settings, capabilities)
            if choice is not None:
                blocked = day_state.blocked(choice.instrument)
                if blocked:
                    skip = (DenialCode.TICKER_BLOCKLIST, blocked)
                elif any(c.instrument == choice.instrument for c, _ in chosen):
                    skip = (
                        DenialCode.TICKER_BLOCKLIST,
                        f"{choice.instrument} already taken by a stronger signal this minute",
                    )
            if skip is not None or choice is None:
                code, why = skip or ("no_instrument", "no instrument")
                instrument = choice.instrument if choice else None
                skips.append(Skip(row.session, strategy, row.symbol, instrument, str(code), why))
                continue
            chosen.append((choice, row))
        if not chosen:
            continue
        decisions = day_state.size(strategy, [c.candidate for c, _ in chosen], t_sig + 1)
        by_id = {id(c.candidate): (c, row) for c, row in chosen}
        for d in decisions:
            choice, row = by_id[id(d.candidate)]
            if isinstance(d, Denied):
                skips.append(Skip(row.session, strategy, row.symbol, d.ticker, str(d.code), d.reason))
                continue
            day_state.record(d.ticker, strategy)
            fill = _fill(row, d, choice.side, choice.tag, strategy, market, slippage, schedule)
            if fill is None:
                day_state.risk.release(strategy, d.notional)
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
            day_state.book(fill, _minute(row.exit_time))
            fills.append(fill)
    if own:
        day_state.close_day()
    return fills, skips


def _as_fundamentals(
    given: Mapping[str, Mapping[str, float]] | Mapping[str, Fundamentals],
) -> Mapping[str, Fundamentals]:
    if all(isinstance(v, Fundamentals) for v in given.values()):
        return given  # type: ignore[return-value]
    return fundamentals_of(given)  # type: ignore[arg-type]


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
        # positional notation (a float's shortest repr): 0.0000202425..., never 2.02e-05 in the CSV
        "strength": format(Decimal(repr(float(row.strength))), "f"),
        "session": row.session.isoformat(),
        "mode": "backtest",
    }
