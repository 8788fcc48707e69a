"""Centralised error management: classify, retry with backoff, log, escalate (spec: "Centralized Error Management").

Classes come from `tbot_bot.errors` (NetworkError, BrokerError, LogicError, ConfigError). Temporary failures are
retried with exponential backoff up to API_RETRY_LIMIT (`tbot_bot.config.retry.RetryPolicy`); a failure that
outlives its retries, a LogicError or an unknown exception escalates: logged with its traceback to
`error_tracebacks.log`, counted, and reported to the notifier as critical.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from tbot_bot.config.retry import RetryPolicy
from tbot_bot.errors import (
    BrokerError,
    ConfigError,
    LedgerError,
    LogicError,
    MarketDataError,
    MarketDataUnreachable,
    NetworkError,
)

T = TypeVar("T")


class Severity(StrEnum):
    RECOVERABLE = "recoverable"  # logged; trading continues
    SUSPEND = "suspend"  # broker unusable: suspend trading, cancel open orders
    SHUTDOWN = "shutdown"  # market data or a critical failure: full shutdown


@dataclass(frozen=True, slots=True)
class Classified:
    error_type: str
    severity: Severity
    error_code: str | None
    message: str


class ErrorSink(Protocol):
    def error(
        self, strategy: str, reason: str, context: dict[str, Any], exc: BaseException | None = None
    ) -> None: ...


def classify(exc: BaseException) -> Classified:
    """Map an exception to what happens next (STYLE §1)."""
    code = getattr(exc, "code", None)
    if isinstance(exc, MarketDataUnreachable):
        return Classified("NetworkError", Severity.SUSPEND, "network", str(exc))
    if isinstance(exc, MarketDataError):
        return Classified("NetworkError", Severity.SHUTDOWN, "market_data", str(exc))
    if isinstance(exc, NetworkError):
        return Classified("NetworkError", Severity.SUSPEND, "network", str(exc))
    if isinstance(exc, BrokerError):
        return Classified("BrokerError", Severity.RECOVERABLE, str(code) if code else "rejected", str(exc))
    if isinstance(exc, ConfigError):
        return Classified("ConfigError", Severity.SHUTDOWN, "config", str(exc))
    if isinstance(exc, LedgerError):
        return Classified("LedgerError", Severity.SHUTDOWN, "ledger", str(exc))
    if isinstance(exc, LogicError):
        return Classified("LogicError", Severity.SHUTDOWN, "logic", str(exc))
    return Classified(
        "LogicError", Severity.SHUTDOWN, type(exc).__name__, f"unexpected {type(exc).__name__}: {exc}"
    )


class ErrorHandler:
    """Wraps broker calls with retries and turns every failure into a logged, classified decision."""

    def __init__(
        self, policy: RetryPolicy, sink: ErrorSink, *, on_retry: Callable[[], None] | None = None
    ) -> None:
        self._on_retry_count = on_retry
        self.policy = policy.with_(on_retry=self._count_retry)
        self.sink = sink
        self.retries = 0
        self.errors = 0
        # runtime.liveness.Liveness: a call with its retry back-offs counts as an external wait (watchdog)
        self.liveness: Any = None

    def _count_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self.retries += 1
        if self._on_retry_count:
            self._on_retry_count()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a broker call with backoff on NetworkError; re-raise once retries are spent."""
        if self.liveness is None:
            return self._call(fn, *args, **kwargs)
        with self.liveness.external(f"retrying {getattr(fn, '__name__', 'call')}"):
            return self._call(fn, *args, **kwargs)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # a broker that retries internally (AlpacaBroker) has already spent API_RETRY_LIMIT: never multiply
        if getattr(getattr(fn, "__self__", None), "retries_internally", False):
            return fn(*args, **kwargs)
        return self.policy.call(fn, *args, **kwargs)

    def handle(self, exc: BaseException, *, strategy: str, context: dict[str, Any]) -> Classified:
        """Log one failure with its classification and return what the caller must do."""
        self.errors += 1
        c = classify(exc)
        self.sink.error(
            strategy,
            f"{c.error_type}: {c.message}",
            {
                **context,
                "error_type": c.error_type,
                "error_code": c.error_code,
                "severity": c.severity.value,
                "raw_exception": "".join(traceback.format_exception_only(type(exc), exc)).strip(),
            },
            exc,
        )
        return c

    def self_check(self) -> tuple[bool, str]:
        probe = classify(NetworkError("probe"))
        if probe.severity is not Severity.SUSPEND or self.policy.retries < 0:
            return False, "error classification table is inconsistent"
        return True, f"ok (retries {self.policy.retries})"
