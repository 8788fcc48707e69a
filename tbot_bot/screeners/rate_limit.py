"""A token bucket that keeps calls to a metered API (Finnhub) within its per-minute plan limit.

Time comes from an injected monotonic function and waiting from an injected sleep, so tests run instantly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`acquire()` blocks (through `sleep`) until a token is available, then takes it.

    Refills continuously at calls_per_minute / 60 tokens per second up to `capacity` (the burst allowed).
    """

    def __init__(
        self,
        calls_per_minute: int,
        *,
        capacity: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_minute < 1:
            raise ValueError("calls_per_minute must be at least 1")
        self.rate_per_second = calls_per_minute / 60.0
        # a burst of at most 10 calls (or the plan's minute if smaller) keeps us under per-second caps too
        self.capacity = float(capacity if capacity is not None else min(calls_per_minute, 10))
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = monotonic()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def _refill(self) -> None:
        now = self._monotonic()
        elapsed = max(now - self._last, 0.0)
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate_per_second)

    def acquire(self) -> float:
        """Take one token; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    self.waited_seconds += waited
                    return waited
                wait = (1.0 - self._tokens) / self.rate_per_second
                self._sleep(wait)
                waited += wait

    def drain(self) -> None:
        """Empty the bucket (after the server said 429: our view of the budget was wrong)."""
        with self._lock:
            self._refill()
            self._tokens = 0.0
