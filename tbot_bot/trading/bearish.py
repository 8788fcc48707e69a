"""Which instrument a signal trades (DESIGN §7), as one pure rule for the live day and the backtest.

Bullish: the signal ticker itself. Bearish, by SHORT_TYPE_X: the inverse ETF mapped to the ticker that the
caller's check admits (live: the screener's price/volume/spread filters; backtest: bars at the signal),
a long put on the ticker (the caller picks the contract), a short sale, or nothing. The live path
(`trading/instruments.py`) and the backtest (`backtest/execution.py`) both ask this function, so they deny
with the same codes for the same reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from tbot_bot.broker.capabilities import BrokerCapabilities
from tbot_bot.config.env_bot import ShortType
from tbot_bot.domain.vocab import (
    DenialCode,
    Direction,
    InstrumentTag,
    InstrumentType,
    OrderSide,
    PositionSide,
)
from tbot_bot.strategy.strategy_meta import leverage_of, pick_inverse_etf


@dataclass(frozen=True, slots=True)
class Route:
    symbol: str  # the instrument (for a long put: the underlying; the caller picks the contract)
    instrument: InstrumentType
    entry_side: OrderSide
    tag: InstrumentTag | None = None
    leverage: Decimal | None = None
    denial: tuple[DenialCode, str] | None = None

    @property
    def position_side(self) -> PositionSide:
        """The position held in the instrument: only a short sale is short."""
        return PositionSide.SHORT if self.entry_side is OrderSide.SELL else PositionSide.LONG


def route_signal(
    direction: Direction,
    signal_symbol: str,
    strategy: str,
    short_type: ShortType,
    capabilities: BrokerCapabilities,
    broker_name: str,
    inverse_etf_ok: Callable[[str], bool],
) -> Route:
    if direction is Direction.BULLISH:
        return Route(signal_symbol, InstrumentType.EQUITY, OrderSide.BUY)
    key = f"SHORT_TYPE_{strategy.upper()}"
    if short_type is ShortType.DISABLED:
        # SHORT_TYPE_X=disabled: bearish signals are logged, never traded
        return Route(
            signal_symbol,
            InstrumentType.EQUITY,
            OrderSide.BUY,
            denial=(DenialCode.SHORT_TYPE_DISABLED, f"{key}=disabled: bearish signal logged, not traded"),
        )
    if short_type is ShortType.INVERSE_ETF:
        # SHORT_TYPE_X=InverseETF: buy the inverse ETF mapped to the ticker that passes the caller's check
        etf = pick_inverse_etf(signal_symbol, strategy, inverse_etf_ok)
        if etf is None:
            why = (
                f"no inverse ETF mapped to {signal_symbol} passes the price/volume/spread filters or has bars"
            )
            return Route(
                signal_symbol,
                InstrumentType.EQUITY,
                OrderSide.BUY,
                InstrumentTag.INVERSE_ETF,
                denial=(DenialCode.INVERSE_ETF_UNAVAILABLE, why),
            )
        lev = leverage_of(etf)
        return Route(
            etf,
            InstrumentType.EQUITY,
            OrderSide.BUY,
            InstrumentTag.INVERSE_ETF,
            Decimal(lev) if lev else None,
        )
    if short_type is ShortType.SHORT_SELL:
        # SHORT_TYPE_X=ShortSell: sell the ticker short, when the broker allows it
        route = Route(
            signal_symbol, InstrumentType.EQUITY, OrderSide.SELL, InstrumentTag.SHORT_SELL, Decimal(1)
        )
        if not capabilities.short_sell:
            return replace(
                route, denial=(DenialCode.SHORT_SELL_UNSUPPORTED, f"broker {broker_name} cannot short sell")
            )
        return route
    # SHORT_TYPE_X=LongPut: buy a put on the ticker, when the broker trades options
    route = Route(signal_symbol, InstrumentType.OPTION, OrderSide.BUY, InstrumentTag.LONG_PUT, Decimal(1))
    if not capabilities.options:
        why = f"broker {broker_name} does not trade options"
        return replace(route, denial=(DenialCode.OPTIONS_UNSUPPORTED, why))
    return route
