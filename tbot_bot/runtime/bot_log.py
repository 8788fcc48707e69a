"""The supervisor's log: the books' StrategyLog with this bot's broker filled in and replay-aware timestamps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tbot_bot.trading.logs_bot import StrategyLog


class BotLog:
    def __init__(self, logs_dir: Path, log_format: str, *, broker: str, now: Callable[[], datetime]) -> None:
        self._log = StrategyLog(logs_dir, log_format, now=now)
        self.broker = broker

    def event(self, strategy: str, event: str, **fields: Any) -> Any:
        return self._log.event(strategy, event, **fields)

    def unresolved(self, strategy: str, **fields: Any) -> Any:
        fields.setdefault("broker", self.broker)
        fields.setdefault("error_type", "BrokerError")
        return self._log.unresolved(strategy, **fields)

    def error(
        self, strategy: str, reason: str, context: Mapping[str, Any] | str, exc: BaseException | None = None
    ) -> Any:
        return self._log.error(strategy, reason, context, exc)
