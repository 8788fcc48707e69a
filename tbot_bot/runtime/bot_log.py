"""The supervisor's log: the books' StrategyLog with this bot's broker filled in and replay-aware timestamps."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbot_bot.trading.logs_bot import StrategyLog

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr as it is when a record is written (systemd's journal in production; swapped by test runners)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def console_log_level(settings: BotSettings) -> int:
    # BUILD_MODE=debug: every detail on the console, whatever DEBUG_LOG_LEVEL says
    if settings.BUILD_MODE == "debug":
        return logging.DEBUG
    # DEBUG_LOG_LEVEL: quiet = warnings and errors only, info = progress lines, verbose = every detail
    return {"quiet": logging.WARNING, "info": logging.INFO, "verbose": logging.DEBUG}[
        settings.DEBUG_LOG_LEVEL
    ]


def configure_console_logging(settings: BotSettings) -> logging.Logger:
    """The engine's diagnostic lines on stderr (the journal under systemd), UTC-stamped, at the configured level.
    The audit artifacts (strategy logs, trade history, ledger) do not depend on this."""
    engine = logging.getLogger("tbot_bot")
    engine.setLevel(console_log_level(settings))
    if not any(isinstance(h, _CurrentStderr) for h in engine.handlers):
        handler = _CurrentStderr()
        formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
        engine.addHandler(handler)
    return engine


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
