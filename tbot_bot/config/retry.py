"""One retry decorator keyed on exception type, with exponential backoff and an injectable sleep.

freqtrade's `retrier` idea: temporary failures (NetworkError by default) are retried up to
API_RETRY_LIMIT times with delays base, 2*base, 4*base ... capped at max_delay; anything else passes
through untouched on the first raise. Tests inject `sleep` so they never wait.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from tbot_bot.errors import NetworkError

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

RetryHook = Callable[[int, BaseException, float], None]

# seconds one external call (with its retries) may last before the watchdog keep-alive stops vouching for the
# supervisor (runtime/liveness.py): config validation keeps API_TIMEOUT x attempts + back-off below it
MAX_EXTERNAL_WAIT = 900.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry. `retries` is the number of extra attempts after the first."""

    retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    retry_on: tuple[type[BaseException], ...] = (NetworkError,)
    never_on: tuple[type[BaseException], ...] = ()
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    on_retry: RetryHook | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")

    @classmethod
    def from_settings(cls, settings: BotSettings, **overrides: object) -> RetryPolicy:
        """API_RETRY_LIMIT sets how many times a temporary failure is retried."""
        policy = cls(retries=int(settings.API_RETRY_LIMIT))
        return replace(policy, **overrides) if overrides else policy  # type: ignore[arg-type]

    def with_(self, **changes: object) -> RetryPolicy:
        return replace(self, **changes)  # type: ignore[arg-type]

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based): base * 2**(attempt-1), capped."""
        return float(min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))

    def longest(self, timeout: float) -> float:
        """Seconds a call that times out after `timeout` on every attempt lasts, its back-off included."""
        return (self.retries + 1) * timeout + sum(self.delay(a) for a in range(1, self.retries + 1))

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) and not isinstance(exc, self.never_on)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run fn, retrying retryable exceptions; the last one is re-raised once retries are spent."""
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except BaseException as exc:
                # API_RETRY_LIMIT (self.retries): a transient failure is retried that many times, then raised
                if not self.is_retryable(exc) or attempt >= self.retries:
                    raise
                attempt += 1
                wait = self.delay(attempt)
                log.warning(
                    "retry %d/%d of %s in %.2fs after %s: %s",
                    attempt,
                    self.retries,
                    getattr(fn, "__qualname__", repr(fn)),
                    wait,
                    type(exc).__name__,
                    exc,
                )
                if self.on_retry is not None:
                    self.on_retry(attempt, exc, wait)
                self.sleep(wait)


def retrier(
    policy: RetryPolicy | None = None,
    *,
    retries: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    never_on: tuple[type[BaseException], ...] | None = None,
    sleep: Callable[[float], None] | None = None,
    on_retry: RetryHook | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form: `@retrier(retries=3)` or `@retrier(RetryPolicy.from_settings(settings))`."""
    base = policy or RetryPolicy()
    changes = {
        k: v
        for k, v in {
            "retries": retries,
            "base_delay": base_delay,
            "max_delay": max_delay,
            "retry_on": retry_on,
            "never_on": never_on,
            "sleep": sleep,
            "on_retry": on_retry,
        }.items()
        if v is not None
    }
    effective = base.with_(**changes) if changes else base

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return effective.call(fn, *args, **kwargs)

        wrapper.retry_policy = effective  # type: ignore[attr-defined]
        return wrapper

    return decorate


def longest_broker_call(broker: str, timeout: float, retries: int) -> float:
    """Seconds one broker call lasts when every attempt times out after `timeout`, retried `retries` times
    (API_RETRY_LIMIT) with the retry policy's back-off. IBKR's adapter reconnects inside each attempt (as many
    connect attempts, 1 s doubling up to 60 s between them), so its attempts are that long."""
    policy = RetryPolicy(retries=retries)
    attempt = timeout
    # BROKER_NAME=IBKR: the adapter's own reconnect loop runs inside every attempt the error handler makes
    if broker == "IBKR":
        attempt = RetryPolicy(retries=retries, max_delay=60.0).longest(timeout)
    return policy.longest(attempt)
