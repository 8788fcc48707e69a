"""A real HTTP fake of Cboe's public daily-price CSV endpoint on 127.0.0.1.

`server.files[path] = (status, content_type, body)` decides what each path answers; unknown paths are 404 with
an HTML page, as a CDN answers. `cboe_csv(rows)` renders rows in Cboe's format (DATE MM/DD/YYYY, 6 decimals).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CSV = "text/csv"
HTML = "text/html; charset=utf-8"
NOT_FOUND = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>"


def cboe_csv(rows: Iterable[tuple[date, float]]) -> bytes:
    lines = ["DATE,OPEN,HIGH,LOW,CLOSE"]
    for d, close in rows:
        lines.append(f"{d:%m/%d/%Y},{close + 0.1:.6f},{close + 0.5:.6f},{close - 0.5:.6f},{close:.6f}")
    return ("\n".join(lines) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    server: FakeCboeServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, ctype, body = self.server.files.get(self.path, (404, HTML, NOT_FOUND))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeCboeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[int, str, bytes]] = {}
        self.hits: list[str] = []
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def __enter__(self) -> FakeCboeServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
