"""Broker and market-data health (spec: emergency event matrix).

Broker API failure -> trading suspended and open orders cancelled (the supervisor acts on a SUSPEND
classification). Market-data failure -> full shutdown. The self-check probes both before the first window.
"""

from __future__ import annotations

from datetime import timedelta

from tbot_bot.broker.adapter_guard import describe_endpoint
from tbot_bot.broker.broker_api import Broker
from tbot_bot.checks import CheckResult, cause_of
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.domain.clock import Clock
from tbot_bot.errors import TbotError


class Watchdog:
    def __init__(self, broker: Broker, errors: ErrorHandler, clock: Clock) -> None:
        self.broker = broker
        self.errors = errors
        self.clock = clock

    def check_broker(self) -> CheckResult:
        try:
            self.errors.call(self.broker.get_clock)
        except TbotError as exc:
            where = describe_endpoint(self.broker)
            return CheckResult(
                False,
                f"broker API failure at {where}: {exc}",
                {"broker": self.broker.name, "endpoint": where},
                cause_of(exc),
            )
        return self.broker.self_check()

    def check_market_data(self, symbol: str) -> CheckResult:
        now = self.clock.now()
        try:
            self.errors.call(self.broker.get_bars, [symbol], now - timedelta(days=5), now)
        except TbotError as exc:
            return CheckResult(False, f"market data failure: {exc}", {"symbol": symbol}, cause_of(exc))
        return CheckResult(True, "ok", {"symbol": symbol})

    def self_check(self, probe_symbol: str | None) -> CheckResult:
        broker = self.check_broker()
        if not broker.ok or probe_symbol is None:
            return broker
        return self.check_market_data(probe_symbol)
