"""A real HTTP receiver on 127.0.0.1 for Slack webhooks, PagerDuty Events v2 and an SMS gateway.

Records every POST (path, headers, JSON body); `fail_next(n, status)` answers the next n with an error,
`delay` holds every reply (to prove the trading loop does not wait for alerts).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class FakeWebhooks:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.delay = 0.0
        self._failures: list[tuple[int, bytes, dict[str, str]]] = []
        self._drops = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def fail_next(
        self,
        n: int,
        status: int = 500,
        body: bytes = b'{"status":"error"}',
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._failures.extend([(status, body, headers or {})] * n)

    def drop_next(self, n: int) -> None:
        """Read the request, then close the connection without any answer (a load balancer reset)."""
        with self._lock:
            self._drops += n

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def clear(self) -> None:
        """Forget what was received (one server for several scenarios)."""
        with self._lock:
            self.received.clear()

    def url(self, path: str) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def start(self) -> FakeWebhooks:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if fake.delay:
                    time.sleep(fake.delay)
                with fake._lock:
                    if fake._drops:
                        fake._drops -= 1
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    failure = fake._failures.pop(0) if fake._failures else None
                    if failure is None:
                        body = json.loads(raw) if raw else None
                        fake.received.append(Received(self.path, dict(self.headers.items()), body))
                if failure is not None:
                    return self._reply(failure[0], failure[1], failure[2])
                if "enqueue" in self.path:  # PagerDuty answers 202 with a dedup key
                    return self._reply(
                        202, b'{"status":"success","message":"Event processed","dedup_key":"k"}'
                    )
                return self._reply(200, b"ok")

            def _reply(self, status: int, data: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if data[:1] == b"{" else "text/plain")
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeWebhooks:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
