"""A real SMTP server on 127.0.0.1 (aiosmtpd Controller) that records messages; can refuse the next n."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler:
    def __init__(self, owner: FakeSmtp) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.owner._lock:
            if self.owner._refuse > 0:
                self.owner._refuse -= 1
                return "451 4.3.0 try again later"
            self.owner.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
            )
        return "250 OK"


class FakeSmtp:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self._refuse = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def refuse_next(self, n: int) -> None:
        with self._lock:
            self._refuse = n

    def start(self) -> FakeSmtp:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
