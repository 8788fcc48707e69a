"""systemd integration: READY, WATCHDOG and STATUS notifications via sdnotify when run under systemd.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the same supervisor runs by hand or in tests.
Besides the pings the main loop sends, a keep-alive thread pings every half WatchdogSec (WATCHDOG_USEC) while
the supervisor is alive by the given test (`runtime/liveness.py`), so a slow broker call or a long retry
back-off never lets the watchdog fire, while a hung main thread still does. Each of its pings also extends the
timeout systemd is running at that moment (EXTEND_TIMEOUT_USEC: the start's while the boot warms up, the stop's
while a closing goes on), by three keep-alive periods.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import sdnotify

_log = logging.getLogger(__name__)
DEFAULT_WATCHDOG_SEC = 60.0  # deploy/systemd/tbot.service WatchdogSec, when systemd does not say


def watchdog_seconds() -> float:
    """WatchdogSec as systemd passes it (WATCHDOG_USEC), else the unit file's default."""
    raw = os.environ.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return DEFAULT_WATCHDOG_SEC
    return usec / 1_000_000 if usec > 0 else DEFAULT_WATCHDOG_SEC


class ServiceNotifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._n = sdnotify.SystemdNotifier() if self.enabled else None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unhealthy: str | None = None  # why the keep-alive stopped vouching, if it did

    def _send(self, msg: str) -> None:
        if self._n is not None:
            with self._send_lock:
                self._n.notify(msg)

    def ready(self, status: str = "ready") -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def start_keepalive(self, alive: Callable[[], tuple[bool, str]], interval: float | None = None) -> None:
        """Ping from a daemon thread every `interval` (default: half WatchdogSec) while alive() says so."""
        if not self.enabled or self._thread is not None:
            return
        period = interval if interval is not None else watchdog_seconds() / 2
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._keepalive, args=(alive, period), name="tbot-watchdog", daemon=True
        )
        self._thread.start()

    def stop_keepalive(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        """Stop the keep-alive and release the notification socket."""
        self.stop_keepalive()
        sock = getattr(self._n, "socket", None)
        if sock is not None:
            sock.close()
        self._n = None

    def _keepalive(self, alive: Callable[[], tuple[bool, str]], period: float) -> None:
        while not self._stop.wait(period):
            ok, why = alive()
            if ok:
                self.unhealthy = None
                # with each ping, more time for what systemd is timing now: a boot (TimeoutStartSec) warming up a
                # large universe, a stop (TimeoutStopSec) closing positions through a slow broker; a hung
                # supervisor extends nothing and is killed when the last extension runs out
                self._send(f"WATCHDOG=1\nEXTEND_TIMEOUT_USEC={int(period * 3 * 1_000_000)}")
            elif self.unhealthy is None:
                # said once: systemd will restart the daemon when WatchdogSec passes without a ping
                self.unhealthy = why
                _log.error("watchdog: not pinging, supervisor looks hung: %s", why)
                self.status(f"hung: {why}")
