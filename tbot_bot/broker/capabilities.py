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


# Static declarations used by config validation before any adapter exists. An adapter may narrow these at
# runtime (e.g. an Alpaca account without short-selling permission) but never widen them.
_DECLARED = {
    "SIM": BrokerCapabilities(
        fractional=True, short_sell=True, options=True, trailing_stop=False, imbalance_data=False
    ),
    "ALPACA": BrokerCapabilities(
        fractional=True, short_sell=True, options=False, trailing_stop=True, imbalance_data=False
    ),
    "IBKR": BrokerCapabilities(
        fractional=False, short_sell=True, options=True, trailing_stop=True, imbalance_data=True
    ),
}


def capabilities_for(broker_name: str) -> BrokerCapabilities:
    try:
        return _DECLARED[broker_name.upper()]
    except KeyError:
        raise ValueError(f"unknown broker {broker_name!r}; allowed: {', '.join(_DECLARED)}") from None
