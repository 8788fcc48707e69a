"""The supervisor's log: the books' StrategyLog with this bot's broker filled in and replay-aware timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from tbot_bot.trading.logs_bot import StrategyLog


class BotLog(StrategyLog):
    def __init__(self, logs_dir: Path, log_format: str, *, broker: str, now: Callable[[], datetime]) -> None:
        super().__init__(logs_dir, log_format, now=now)
        self.broker = broker

    def unresolved(
        self, strategy: str, *, broker: str | None = None, error_type: str = "BrokerError", **fields: Any
    ) -> dict[str, Any]:  # type: ignore[override]
        return super().unresolved(strategy, broker=broker or self.broker, error_type=error_type, **fields)
