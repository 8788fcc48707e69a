"""A fake Finnhub REST server on 127.0.0.1 for finnhub-python (paths arrive as /api/v1//stock/metric?...).

Serves company_basic_financials, quote and stock_symbols from in-memory data; checks the `token` query
parameter (401 otherwise); `fail_next(n, status)` makes the next n requests fail (429 injection).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeFinnhub:
    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.metrics: dict[str, dict[str, Any]] = {}
        self.quotes: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []  # (normalized path, query)
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control
    def set_metric(self, symbol: str, market_cap_m: float | None, pe: float | None, de: float | None) -> None:
        self.metrics[symbol] = {
            "marketCapitalization": market_cap_m,
            "peNormalizedAnnual": pe,
            "totalDebt/totalEquityAnnual": de,
            "52WeekHigh": 1.0,
        }

    def fail_next(self, n: int, status: int = 429) -> None:
        with self._lock:
            self._failures.extend([status] * n)

    def metric_calls(self) -> list[str]:
        return [q.get("symbol", "") for p, q in self.requests if p.endswith("/stock/metric")]

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    # --- lifecycle
    def start(self) -> FakeFinnhub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path = re.sub("/+", "/", parts.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with fake._lock:
                    fake.requests.append((path, query))
                    failure = fake._failures.pop(0) if fake._failures else None
                if failure is not None:
                    return self._reply(failure, {"error": "API limit reached. Please try again later."})
                if query.get("token") != fake.token:
                    return self._reply(401, {"error": "Invalid API key"})
                if path == "/api/v1/stock/metric":
                    sym = query.get("symbol", "")
                    metric = fake.metrics.get(sym, {})
                    body = {
                        "symbol": sym,
                        "metricType": query.get("metric", "all"),
                        "metric": metric,
                        "series": {},
                    }
                    return self._reply(200, body)
                if path == "/api/v1/quote":
                    q = fake.quotes.get(
                        query.get("symbol", ""),
                        {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0},
                    )
                    return self._reply(200, q)
                if path == "/api/v1/stock/symbol":
                    return self._reply(
                        200,
                        [
                            {
                                "currency": "USD",
                                "description": s,
                                "displaySymbol": s,
                                "figi": "",
                                "mic": "XNYS",
                                "symbol": s,
                                "type": "Common Stock",
                            }
                            for s in sorted(fake.metrics)
                        ],
                    )
                return self._reply(404, {"error": f"no route {path}"})

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeFinnhub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
