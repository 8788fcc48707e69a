"""Is the supervisor alive? The systemd watchdog keep-alive asks this instead of pinging only from the main loop.

The main thread beats whenever it passes a loop or a wait. Calls that may legitimately take long — a slow broker,
a retry back-off, the fundamentals API, the accounting API — run inside `external(...)`, so the keep-alive
thread keeps pinging while they last (up to `max_external` seconds each). A main thread stuck anywhere else, or
in one call longer than that, stops the pings and systemd restarts the daemon (recovery runs first).
"""

from __future__ import annotations

import itertools
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tbot_bot.config.retry import MAX_EXTERNAL_WAIT


class Liveness:
    def __init__(
        self,
        *,
        stale_after: float,
        max_external: float = MAX_EXTERNAL_WAIT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stale_after = stale_after
        self.max_external = max_external
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last_beat = monotonic()
        self._external: dict[int, tuple[str, float]] = {}
        self._tokens = itertools.count()

    def beat(self) -> None:
        with self._lock:
            self._last_beat = self._monotonic()

    @contextmanager
    def external(self, what: str) -> Iterator[None]:
        token = next(self._tokens)
        with self._lock:
            self._external[token] = (what, self._monotonic())
        try:
            yield
        finally:
            with self._lock:
                del self._external[token]
                self._last_beat = self._monotonic()

    def alive(self) -> tuple[bool, str]:
        """(alive, why): beating recently, or waiting on an external call that has not overrun."""
        with self._lock:
            now = self._monotonic()
            if now - self._last_beat <= self.stale_after:
                return True, "beating"
            if self._external:
                what, since = min(self._external.values(), key=lambda w: w[1])
                waited = now - since
                if waited <= self.max_external:
                    return True, f"waiting on {what} for {waited:.0f}s"
                return False, f"{what} has not returned for {waited:.0f}s"
            return False, f"no progress for {now - self._last_beat:.0f}s"


class Watched:
    """Delegates to a service object (broker, fundamentals, accounting client); each public call is external.

    Methods come back bound to this proxy, so attributes such as a broker's `retries_internally` (read through
    `fn.__self__` by the error handler) still describe the wrapped object.
    """

    def __init__(self, inner: Any, liveness: Liveness, label: str) -> None:
        self._inner = inner
        self._liveness = liveness
        self._label = label

    def __getattr__(self, item: str) -> Any:
        target = getattr(self._inner, item)
        if item.startswith("_") or not callable(target) or isinstance(target, type):
            return target
        label = f"{self._label}.{item}"
        liveness = self._liveness

        def call(_self: Watched, *args: Any, **kwargs: Any) -> Any:
            with liveness.external(label):
                return target(*args, **kwargs)

        return types.MethodType(call, self)
