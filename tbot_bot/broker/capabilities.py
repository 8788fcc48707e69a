"""What each broker adapter supports, declared once (freqtrade's `FtHas` idea): capabilities, not isinstance."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    fractional: bool
    short_sell: bool
    options: bool
    trailing_stop: bool
    imbalance_data: bool
    # market-data requests per minute the plan allows (universe build and warm-up pace themselves by it);
    # None = no limit (the simulated exchange)
    data_calls_per_minute: int | None = None
    # fractional short sales: no US broker we support allows them (Alpaca refuses fractional shorts), so short
    # sales are whole shares unless an adapter declares this
    fractional_short: bool = False


# Static declarations used by config validation before any adapter exists. An adapter may narrow these at
# runtime (e.g. an Alpaca account without short-selling permission) but never widen them.
_DECLARED = {
    "SIM": BrokerCapabilities(
        fractional=True, short_sell=True, options=True, trailing_stop=False, imbalance_data=False
    ),
    "ALPACA": BrokerCapabilities(
        fractional=True,
        short_sell=True,
        options=True,  # single-leg, whole contracts, market/limit, day orders (an approved options level)
        trailing_stop=True,
        imbalance_data=False,
        data_calls_per_minute=200,  # Alpaca's basic market-data plan
    ),
    # long equities, inverse ETFs and long options: bearish signals trade inverse ETFs (SHORT_TYPE_X=InverseETF)
    # or long puts (LongPut), never short sales
    "TRADIER": BrokerCapabilities(
        fractional=False,
        short_sell=False,
        options=True,
        trailing_stop=False,
        imbalance_data=False,
        data_calls_per_minute=120,  # Tradier's market-data rate limit
    ),
    "IBKR": BrokerCapabilities(
        fractional=False,
        short_sell=True,
        options=True,
        trailing_stop=True,
        imbalance_data=True,
        data_calls_per_minute=60,  # IB historical-data pacing (about 60 requests per minute sustained)
    ),
}


def capabilities_for(broker_name: str) -> BrokerCapabilities:
    try:
        return _DECLARED[broker_name.upper()]
    except KeyError:
        raise ValueError(f"unknown broker {broker_name!r}; allowed: {', '.join(_DECLARED)}") from None
