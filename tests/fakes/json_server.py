"""A small base for real JSON-over-HTTP fakes on 127.0.0.1 with the Alpaca fake's fault kinds.

Subclasses implement `route(method, path, query, body, headers) -> (status, payload)`. Faults are queued with
`inject(method, path_prefix, kind, ...)`: `status` (answer an error before acting), `status_after` (act, then
answer an error: the reply is lost), `drop` / `drop_after` (close the connection), `delay` / `delay_after` (sleep
past the client's timeout), `garbage` (act, answer unparsable JSON). Every request is recorded. `reply_with`
serves a vendor's recorded reply (fakes.vendor_shapes) for one route instead of the simulated book.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

FaultKind = Literal["status", "status_after", "drop", "drop_after", "delay", "delay_after", "garbage"]


@dataclass
class Fault:
    method: str  # "GET", "POST", "DELETE", "PUT" or "*"
    path: str  # prefix of the request path
    kind: FaultKind
    status: int = 500
    message: str = "internal server error"
    delay: float = 0.0
    times: int = 1
    skip: int = 0  # let this many matching requests through untouched first
    code: Any = None  # the error body's code (None: the server's default for faults)

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and path.startswith(self.path)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class Reply:
    status: int
    payload: Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        self.status, self.message, self.code = status, message, code
        super().__init__(message)


class _Handler(BaseHTTPRequestHandler):
    server: FakeJsonServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after a test

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("fake server: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (timeout): exactly what a slow real server sees
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        with self.server.in_flight():
            self._handle(method)

    def _handle(self, method: str) -> None:
        srv = self.server
        parts = urlsplit(self.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        body: Any = None
        if raw_body:
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                try:
                    body = json.loads(raw_body)
                except ValueError:
                    self._send(400, srv.error_body(400, "request body is not JSON", "bad_json"))
                    return
            else:
                body = dict(parse_qsl(raw_body.decode(), keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        srv.record(Recorded(method, path, query, body, headers))
        refusal = srv.authorize(headers)
        if refusal is not None:
            self._send(refusal, srv.error_body(refusal, "request is not authorized", "unauthorized"))
            return
        fault = srv.take_fault(method, path)
        if fault is not None and fault.kind == "status":
            self._send(fault.status, srv.error_body(fault.status, fault.message, fault.code))
            return
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        try:
            canned = srv.take_reply(method, path)
            status, payload = canned if canned is not None else srv.route(method, path, query, body, headers)
        except ApiError as err:
            status, payload = err.status, srv.error_body(err.status, err.message, err.code or str(err.status))
        if fault is not None:
            if fault.kind == "status_after":
                self._send(fault.status, srv.error_body(fault.status, fault.message, fault.code))
                return
            if fault.kind == "drop_after":
                self._drop()
                return
            if fault.kind == "delay_after":
                time.sleep(fault.delay)
            if fault.kind == "garbage":
                self._send(200, raw=b'{"id": ')
                return
        self._send(status, payload)


class FakeJsonServer(ThreadingHTTPServer):
    """`with Subclass(...) as srv:` starts on a free port of 127.0.0.1; `srv.url` is the base URL."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, port: int = 0, token: str | None = "test-token") -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.token = token  # None: any bearer token is accepted (manual runs)
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self._meta = threading.Lock()
        self._thread: threading.Thread | None = None
        self._active = 0
        self.replies: dict[tuple[str, str], list[tuple[int, Any]]] = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeJsonServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._meta:
            self._active += 1
        try:
            yield
        finally:
            with self._meta:
                self._active -= 1

    def wait_idle(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._meta:
                if self._active == 0:
                    return
            time.sleep(0.01)
        raise TimeoutError("fake server still busy")

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake server: connection error from %s", client_address, exc_info=True)

    def authorize(self, headers: dict[str, str]) -> int | None:
        """None to serve the request, else the HTTP status refusing it."""
        if self.token is None:
            return None
        return None if headers.get("authorization") == f"Bearer {self.token}" else 401

    def error_body(self, status: int, message: str, code: Any) -> Any:
        """The JSON an error reply carries (a fault without a code says "fault")."""
        return {"code": "fault" if code is None else code, "message": message}

    # --- test controls --------------------------------------------------------------------------------
    def inject(self, method: str, path: str, kind: FaultKind, **kw: Any) -> Fault:
        fault = Fault(method=method, path=path, kind=kind, **kw)
        with self._meta:
            self.faults.append(fault)
        return fault

    def reply_with(self, method: str, path: str, *replies: Any, status: int = 200) -> None:
        """Answer `method path` (exact) with these recorded vendor replies, one per request; the last one
        stays. A `Reply` carries its own status (an error in a sequence). Faults still apply around them."""
        with self._meta:
            self.replies[(method, path)] = [
                (r.status, r.payload) if isinstance(r, Reply) else (status, r) for r in replies
            ]

    def take_reply(self, method: str, path: str) -> tuple[int, Any] | None:
        with self._meta:
            queue = self.replies.get((method, path))
            if not queue:
                return None
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._meta:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    def record(self, entry: Recorded) -> None:
        with self._meta:
            self.requests.append(entry)

    def count(self, method: str, path: str) -> int:
        with self._meta:
            return sum(1 for r in self.requests if r.method == method and r.path == path)

    def route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        raise NotImplementedError
