"""Which instrument a signal trades (DESIGN §7): the ticker itself when bullish; when bearish, by SHORT_TYPE_X
an inverse ETF mapped to the ticker, a long put, a short sale, or nothing (disabled)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from tbot_bot.broker.broker_api import OptionContract
from tbot_bot.config.env_bot import ShortType
from tbot_bot.domain.vocab import DenialCode, InstrumentTag, InstrumentType, OrderSide
from tbot_bot.enhancements.black_scholes_filter import years_to_expiry
from tbot_bot.errors import TbotError
from tbot_bot.strategy.decisions import EntryDecision
from tbot_bot.trading.bearish import route_signal
from tbot_bot.trading.orders_bot import option_to_json
from tbot_bot.trading.risk_bot import Candidate, InstrumentKind

if TYPE_CHECKING:
    from tbot_bot.runtime.day_context import DayContext


@dataclass(frozen=True, slots=True)
class InstrumentChoice:
    symbol: str
    instrument: InstrumentType
    entry_side: OrderSide
    candidate: Candidate
    tag: InstrumentTag | None = None
    leverage: Decimal | None = None
    option_json: str | None = None
    denial: tuple[DenialCode, str] | None = None

    def denied(self, code: DenialCode, reason: str) -> InstrumentChoice:
        return replace(self, denial=(code, reason))


def _equity_candidate(
    ctx: DayContext, strategy: str, symbol: str, strength: float, signal_ticker: str, *, etf: bool
) -> Candidate | None:
    screen = (
        ctx.screener.screen_inverse_etfs(strategy, [symbol], now=ctx.clock.now())
        if etf
        else ctx.screener.screen(strategy, [symbol], now=ctx.clock.now())
    )
    if not screen.candidates:
        return None
    c = screen.candidates[0]
    return Candidate(
        ticker=symbol,
        strength=strength,
        price=c.price,
        prev_volume=c.prev_volume,
        spread_pct=c.spread_pct,
        signal_ticker=signal_ticker,
    )


def choose_instrument(
    ctx: DayContext, strategy: str, e: EntryDecision, short_type: ShortType
) -> InstrumentChoice:
    blank = Candidate(
        ticker=e.symbol,
        strength=e.strength,
        price=Decimal(str(e.signal_close)),
        prev_volume=None,
        spread_pct=None,
        signal_ticker=e.symbol,
    )
    found: dict[str, Candidate] = {}

    def inverse_etf_passes(sym: str) -> bool:
        # an inverse ETF must be in the universe and pass the same price/volume/spread filters
        if sym not in ctx.tradable:
            return False
        cand = _equity_candidate(ctx, strategy, sym, e.strength, e.symbol, etf=True)
        if cand:
            found[sym] = cand
        return cand is not None

    route = route_signal(
        e.direction,
        e.symbol,
        strategy,
        short_type,
        ctx.broker.capabilities,
        ctx.broker.name,
        inverse_etf_passes,
    )
    choice = InstrumentChoice(
        route.symbol,
        route.instrument,
        route.entry_side,
        found.get(route.symbol, blank),
        route.tag,
        route.leverage,
    )
    if route.denial is not None:
        return choice.denied(*route.denial)
    if route.tag is InstrumentTag.INVERSE_ETF:
        return choice
    if route.instrument is InstrumentType.OPTION:
        return _long_put(ctx, strategy, e, blank)
    cand = _equity_candidate(ctx, strategy, e.symbol, e.strength, e.symbol, etf=False)
    if cand is None:
        return choice.denied(DenialCode.SCREENER, f"{e.symbol} no longer passes the screener")
    if route.entry_side is OrderSide.SELL:
        cand = replace(cand, kind=InstrumentKind.SHORT_SALE)  # sized in whole shares (capabilities)
    return replace(choice, candidate=cand)


def nearest_expiry(ctx: DayContext) -> date:
    """The first Friday at least two trading sessions after today (standard weekly expiries)."""
    from tbot_bot.market_time import session_for

    day, sessions, last = ctx.session_date, 0, ctx.session_date
    while True:
        day += timedelta(days=1)
        # MARKET_CALENDAR decides which days are trading sessions (expiry must be >= 2 sessions out)
        is_session = session_for(day, ctx.settings.MARKET_CALENDAR) is not None
        if is_session:
            sessions += 1
        if sessions >= 2 and day.weekday() == 4:
            # a Friday holiday (Good Friday) moves that week's expiry to the session before it, as listed
            return day if is_session else last
        if is_session:
            last = day


def strike_near(price: Decimal) -> Decimal:
    step = Decimal(1) if price >= 25 else Decimal("0.5")
    return ((price / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


def _long_put(ctx: DayContext, strategy: str, e: EntryDecision, blank: Candidate) -> InstrumentChoice:
    under = _equity_candidate(ctx, strategy, e.symbol, e.strength, e.symbol, etf=False)
    if under is None:
        return InstrumentChoice(e.symbol, InstrumentType.OPTION, OrderSide.BUY, blank).denied(
            DenialCode.SCREENER, f"{e.symbol} no longer passes the screener"
        )
    contract = OptionContract(e.symbol, nearest_expiry(ctx), strike_near(under.price), "P")
    try:
        quote = ctx.errors.call(ctx.broker.get_latest_quote, contract.occ_symbol)
    except TbotError as exc:
        # no quote for this contract (unlisted strike, no option data): this signal is skipped, trading goes on
        return InstrumentChoice(e.symbol, InstrumentType.OPTION, OrderSide.BUY, blank).denied(
            DenialCode.MISSING_MARKET_DATA, f"no quote for {contract.occ_symbol}: {exc}"
        )
    if quote.bid <= 0 or quote.ask < quote.bid:
        return InstrumentChoice(e.symbol, InstrumentType.OPTION, OrderSide.BUY, blank).denied(
            DenialCode.NO_OPTION_DATA,
            f"{contract.occ_symbol} has no two-sided market (bid {quote.bid}, ask {quote.ask}): a market buy "
            "could pay any price",
        )
    # a market buy pays the ask: the contracts are sized and the Black-Scholes filter judged at it (sized at the
    # mid, a wide spread bought up to twice the window's slot, and the filter passed a premium the bot did not pay)
    premium = quote.ask
    # the time the sim and the market price with (to the expiry's close), not whole days: whole days made the
    # filter reject the sim's own fair premium
    years = years_to_expiry(ctx.clock.now(), contract.expiry)
    decision = ctx.bsm.check(
        symbol=contract.occ_symbol,
        right="P",
        underlying_price=float(under.price),
        strike=float(contract.strike),
        years=years,
        volatility=ctx.option_volatility,
        market_premium=float(premium),
    )
    cand = Candidate(
        ticker=contract.occ_symbol,
        strength=e.strength,
        price=under.price,
        prev_volume=under.prev_volume,
        spread_pct=under.spread_pct,
        signal_ticker=e.symbol,
        kind=InstrumentKind.LONG_PUT,
        premium=premium,
    )
    choice = InstrumentChoice(
        contract.occ_symbol,
        InstrumentType.OPTION,
        OrderSide.BUY,
        cand,
        tag=InstrumentTag.LONG_PUT,
        leverage=Decimal(1),
        option_json=option_to_json(contract),
    )
    # ENABLE_BSM_FILTER: a put priced beyond MAX_BSM_DEVIATION from Black-Scholes is not bought
    return choice if decision.allowed else choice.denied(DenialCode.BLACK_SCHOLES_FILTER, decision.reason)
