"""Builds the one enabled adapter (DESIGN §9): the only module that knows every adapter, so the interface
(`broker_api.py`) never imports an adapter and no adapter imports the factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tbot_bot.broker.broker_api import Broker

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.support.path_resolver import BotHome


def build_broker(settings: BotSettings, home: BotHome, **kwargs: Any) -> Broker:
    """Build the one enabled adapter. kwargs reach the adapter (the sim needs a clock and market data)."""
    # BROKER_NAME (with its matching *_ENABLED, checked by config validation) picks the adapter
    if settings.BROKER_NAME == "SIM":
        from tbot_bot.broker.brokers.sim import SimBroker

        return SimBroker.from_settings(settings, home, **kwargs)
    if settings.BROKER_NAME == "ALPACA":
        from tbot_bot.broker.brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings(settings, home, **kwargs)
    if settings.BROKER_NAME == "IBKR":
        from tbot_bot.broker.brokers.ibkr import IbkrBroker

        return IbkrBroker.from_settings(settings, home, **kwargs)
    if settings.BROKER_NAME == "TRADIER":
        from tbot_bot.broker.brokers.tradier import TradierBroker

        return TradierBroker.from_settings(settings, home, **kwargs)
    raise ValueError(f"unknown BROKER_NAME {settings.BROKER_NAME!r}")
