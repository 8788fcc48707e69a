"""systemd integration: READY, WATCHDOG and STATUS notifications via sdnotify when run under systemd.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the same supervisor runs by hand or in tests.
"""

from __future__ import annotations

import os

import sdnotify


class ServiceNotifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._n = sdnotify.SystemdNotifier() if self.enabled else None

    def _send(self, msg: str) -> None:
        if self._n is not None:
            self._n.notify(msg)

    def ready(self, status: str = "ready") -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")
