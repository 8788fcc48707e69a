"""A real HTTP fake of Alpaca's trading and market-data APIs on 127.0.0.1, with fault injection.

Point alpaca-py at it with `url_override=server.url` (trading and data share the port). Faults are queued
with `inject(...)`; every request is recorded in `server.requests` so tests can count what was sent.
By hand: `PYTHONPATH=tests .venv/bin/python -m fakes.alpaca_server --port 8765`.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from fakes.alpaca_exchange import ApiReject, FakeAlpacaExchange, PartialPlan, parse_ts

log = logging.getLogger(__name__)

FaultKind = Literal["status", "status_after", "drop", "drop_after", "delay", "delay_after", "garbage"]


@dataclass
class Fault:
    """One injected misbehaviour. `*_after` kinds let the exchange act first (the order IS accepted)."""

    method: str  # "GET", "POST", "DELETE" or "*"
    path: str  # prefix of the request path, e.g. "/v2/orders"
    kind: FaultKind
    status: int = 500
    code: int = 50010000
    message: str = "internal server error"
    delay: float = 0.0
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and path.startswith(self.path)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class _Handler(BaseHTTPRequestHandler):
    server: FakeAlpacaServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after a test

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("fake alpaca: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

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
            try:
                body = json.loads(raw_body)
            except ValueError:
                self._send(400, {"code": 40010000, "message": "request body is not JSON"})
                return
        srv.record(Recorded(method, path, query, body))
        if srv.api_key is not None and (
            self.headers.get("APCA-API-KEY-ID") != srv.api_key
            or self.headers.get("APCA-API-SECRET-KEY") != srv.secret_key
        ):
            self._send(401, {"code": 40110000, "message": "request is not authorized"})
            return
        fault = srv.take_fault(method, path)
        if fault is not None and fault.kind == "status":
            self._send(fault.status, {"code": fault.code, "message": fault.message})
            return
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        try:
            status, payload = srv.route(method, path, query, body)
        except ApiReject as rej:
            status, payload = rej.status, {"code": rej.code, "message": rej.message}
        if fault is not None:
            if fault.kind == "status_after":
                self._send(fault.status, {"code": fault.code, "message": fault.message})
                return
            if fault.kind == "drop_after":
                self._drop()
                return
            if fault.kind == "delay_after":
                time.sleep(fault.delay)
            if fault.kind == "garbage":
                self._send(200, raw=b'{"id": "not-a-uuid", "status": ')
                return
        self._send(status, payload)


class FakeAlpacaServer(ThreadingHTTPServer):
    """`with FakeAlpacaServer(exchange) as srv:` starts it on a free port; `srv.url` is the url_override."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        exchange: FakeAlpacaExchange | None = None,
        *,
        port: int = 0,
        api_key: str | None = "test-key",
        secret_key: str | None = "test-secret",
        page_size: int = 10_000,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.exchange = exchange or FakeAlpacaExchange()
        self.api_key = api_key  # None: any key is accepted (manual runs)
        self.secret_key = secret_key
        self.page_size = page_size
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self._meta = threading.Lock()
        self._thread: threading.Thread | None = None
        self._active = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAlpacaServer:
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

    def __enter__(self) -> FakeAlpacaServer:
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
        """Wait until no request is being handled (a delayed handler may still act after the client gave up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._meta:
                if self._active == 0:
                    return
            time.sleep(0.01)
        raise TimeoutError("fake Alpaca server still busy")

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake alpaca: connection error from %s", client_address, exc_info=True)

    # --- test controls ------------------------------------------------------------------------------
    def inject(self, method: str, path: str, kind: FaultKind, **kw: Any) -> Fault:
        fault = Fault(method=method, path=path, kind=kind, **kw)
        with self._meta:
            self.faults.append(fault)
        return fault

    def inject_partial_fill(self, steps: list[str], *, stall: bool = False) -> None:
        """The next market order fills in these fractions (first at once, then one per read of the order);
        with stall=True the rest never fills."""
        self.exchange.partial_plans.append(PartialPlan([Decimal(s) for s in steps], stall=stall))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._meta:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def record(self, entry: Recorded) -> None:
        with self._meta:
            self.requests.append(entry)

    def count(self, method: str, path: str) -> int:
        with self._meta:
            return sum(1 for r in self.requests if r.method == method and r.path == path)

    # --- routes -------------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        ex = self.exchange
        if path == "/v2/account" and method == "GET":
            return 200, ex.account()
        if path == "/v2/clock" and method == "GET":
            return 200, ex.clock()
        if path == "/v2/positions" and method == "GET":
            return 200, ex.list_positions()
        if path.startswith("/v2/positions/"):
            symbol = path.rsplit("/", 1)[1]
            if method == "GET":
                return 200, ex.get_position(symbol)
            if method == "DELETE":
                return 200, ex.close_position(symbol)
        if path == "/v2/orders":
            if method == "POST":
                return 200, ex.submit(body or {})
            if method == "GET":
                return 200, ex.list_orders(query)
            if method == "DELETE":
                return 207, ex.cancel_all()
        if path == "/v2/orders:by_client_order_id" and method == "GET":
            return 200, ex.find(client_order_id=query.get("client_order_id", ""))
        if path.startswith("/v2/orders/"):
            order_id = path.rsplit("/", 1)[1]
            if method == "GET":
                return 200, ex.find(order_id=order_id)
            if method == "DELETE":
                ex.cancel(order_id)
                return 204, None
        if path == "/v2/account/activities" and method == "GET":
            return 200, ex.list_activities(query)
        if path == "/v2/assets" and method == "GET":
            return 200, ex.list_assets(query)
        if path == "/v2/stocks/bars" and method == "GET":
            return 200, self._bars(query)
        if path == "/v2/stocks/quotes/latest" and method == "GET":
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            quotes = {s: q for s in symbols if (q := ex.quote(s)) is not None}
            return 200, {"quotes": quotes}
        if path == "/v2/stocks/snapshots" and method == "GET":
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            return 200, {s: snap for s in symbols if (snap := ex.snapshot(s)) is not None}
        raise ApiReject(404, 40410000, f"endpoint not found: {method} {path}")

    def _bars(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("timeframe") not in ("1Min", "1T"):
            raise ApiReject(422, 42210000, f"fake server serves 1Min bars only, not {query.get('timeframe')}")
        symbols = [s for s in query.get("symbols", "").split(",") if s]
        start = parse_ts(query["start"]) if query.get("start") else None
        end = parse_ts(query["end"]) if query.get("end") else None
        rows = self.exchange.bars_between(symbols, start, end)
        offset = int(base64.b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        limit = min(int(query.get("limit") or self.page_size), self.page_size)
        page = rows[offset : offset + limit]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar)
        nxt = offset + limit
        token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(rows) else None
        return {"bars": grouped, "next_page_token": token}


def broker_for(server: FakeAlpacaServer, **kwargs: Any) -> Any:
    """An AlpacaBroker pointed at `server` with test-speed settings (no real sleeps, short timeouts)."""
    from tbot_bot.broker.brokers.alpaca import AlpacaBroker
    from tbot_bot.config.retry import RetryPolicy

    options: dict[str, Any] = {
        "timeout": 2.0,
        "retry": RetryPolicy(retries=3, sleep=lambda s: None),
        "poll_interval": 0.01,
        "fill_timeout": 0.2,
        "sleep": lambda s: None,
    }
    options.update(kwargs)
    return AlpacaBroker(
        server.api_key or "any-key",
        server.secret_key or "any-secret",
        base_url=server.url,
        data_url=server.url,
        **options,
    )


def _offset_clock(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` and then runs at wall speed (manual replays of recorded bars)."""
    t0 = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - t0)


DEFAULT_PRICES = {"SPY": "450.00", "QQQ": "380.00", "AAPL": "190.00", "MSFT": "370.00", "SH": "14.00"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.alpaca_server", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default=None, help="required APCA-API-KEY-ID (default: accept any)")
    parser.add_argument("--secret", default=None, help="required APCA-API-SECRET-KEY")
    parser.add_argument("--cash", default="100000")
    parser.add_argument("--bars", default=None, help="CSV/Parquet of 1-minute bars to replay")
    parser.add_argument("--start", default=None, help="UTC time the replay starts at (with --bars)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    bars = None
    now: Callable[[], datetime] | None = None
    prices: dict[str, Decimal | str | float] | None = dict(DEFAULT_PRICES)
    if args.bars:
        bars = pd.read_parquet(args.bars) if args.bars.endswith(".parquet") else pd.read_csv(args.bars)
        prices = None
        first = pd.to_datetime(bars["timestamp"], utc=True).min().to_pydatetime()
        now = _offset_clock(parse_ts(args.start) if args.start else first + timedelta(minutes=1))
    exchange = FakeAlpacaExchange(bars=bars, now=now, prices=prices, cash=Decimal(args.cash))
    server = FakeAlpacaServer(exchange, port=args.port, api_key=args.key, secret_key=args.secret)
    print(f"fake Alpaca listening on {server.url} (trading and data); Ctrl-C to stop", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"stopped at {datetime.now(UTC).isoformat()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
