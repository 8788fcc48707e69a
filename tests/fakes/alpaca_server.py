"""A real HTTP fake of Alpaca's trading and market-data APIs on 127.0.0.1, with fault injection.

Point alpaca-py at it with `url_override=server.url` (trading and data share the port). Faults are queued
with `inject(...)`; every request is recorded in `server.requests` so tests can count what was sent.
By hand: `PYTHONPATH=tests .venv/bin/python -m fakes.alpaca_server --port 8765`.
"""

from __future__ import annotations

import argparse
import base64
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from fakes.alpaca_exchange import ApiReject, FakeAlpacaExchange, PartialPlan, parse_ts
from fakes.json_server import FakeJsonServer
from fakes.vendor_shapes import occ_parts

log = logging.getLogger(__name__)

ALPACA_FAULT_CODE = 50010000  # the code Alpaca's own 500 replies carry


class FakeAlpacaServer(FakeJsonServer):
    """`with FakeAlpacaServer(exchange) as srv:` starts it on a free port; `srv.url` is the url_override.
    The HTTP plumbing, fault kinds and request log are the JSON fake's (`fakes.json_server`); this adds
    Alpaca's key headers, its numeric error codes and its routes."""

    def __init__(
        self,
        exchange: FakeAlpacaExchange | None = None,
        *,
        port: int = 0,
        api_key: str | None = "test-key",
        secret_key: str | None = "test-secret",
        page_size: int = 10_000,
    ) -> None:
        super().__init__(port=port, token=None)
        self.exchange = exchange or FakeAlpacaExchange()
        self.api_key = api_key  # None: any key is accepted (manual runs)
        self.secret_key = secret_key
        self.page_size = page_size

    def authorize(self, headers: dict[str, str]) -> int | None:
        if self.api_key is None:
            return None
        keys = (headers.get("apca-api-key-id"), headers.get("apca-api-secret-key"))
        return None if keys == (self.api_key, self.secret_key) else 401

    def error_body(self, status: int, message: str, code: Any) -> Any:
        """Alpaca's error body: a numeric code (status x 100,000 + 10,000 for its own refusals)."""
        if not isinstance(code, int):
            code = ALPACA_FAULT_CODE if code in (None, "fault") else status * 100_000 + 10_000
        return {"code": code, "message": message}

    # --- test controls ------------------------------------------------------------------------------
    def inject_partial_fill(self, steps: list[str], *, stall: bool = False) -> None:
        """The next market order fills in these fractions (first at once, then one per read of the order);
        with stall=True the rest never fills."""
        self.exchange.partial_plans.append(PartialPlan([Decimal(s) for s in steps], stall=stall))

    # --- routes -------------------------------------------------------------------------------------
    def route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
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
        if path == "/v1beta1/options/quotes/latest" and method == "GET":
            return 200, {
                "quotes": {s: q for s in _symbols(query) if (q := self._option_quote(s)) is not None}
            }
        if path == "/v2/stocks/snapshots" and method == "GET":
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            feed = query.get("feed", "sip")
            return 200, {s: snap for s in symbols if (snap := ex.snapshot(s, feed)) is not None}
        raise ApiReject(404, 40410000, f"endpoint not found: {method} {path}")

    def _option_quote(self, symbol: str) -> dict[str, Any] | None:
        """GET /v1beta1/options/quotes/latest (docs.alpaca.markets/reference/optionlatestquotes; alpaca-py
        tests/data/test_historical_option_data.py): keyed by OCC symbol under `quotes`, a single condition
        string `c`, no tape `z`, OPRA exchange codes; a contract without a quote is simply absent."""
        if occ_parts(symbol) is None:
            return None
        q = self.exchange.quote(symbol)
        if q is None:
            return None
        return {
            "t": q["t"],
            "ax": "N",
            "ap": q["ap"],
            "as": 1593,
            "bx": "N",
            "bp": q["bp"],
            "bs": 1344,
            "c": "B",
        }

    def _bars(self, query: dict[str, str]) -> dict[str, Any]:
        daily = query.get("timeframe") in ("1Day", "1D")
        if query.get("timeframe") not in ("1Min", "1T") and not daily:
            raise ApiReject(
                422, 42210000, f"fake server serves 1Min and 1Day bars only, not {query.get('timeframe')}"
            )
        symbols = [s for s in query.get("symbols", "").split(",") if s]
        start = parse_ts(query["start"]) if query.get("start") else None
        end = parse_ts(query["end"]) if query.get("end") else None
        between = self.exchange.daily_bars_between if daily else self.exchange.bars_between
        rows = between(symbols, start, end)
        offset = int(base64.b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        limit = min(int(query.get("limit") or self.page_size), self.page_size)
        page = rows[offset : offset + limit]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar)
        nxt = offset + limit
        token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(rows) else None
        return {"bars": grouped, "next_page_token": token}


def _symbols(query: dict[str, str]) -> list[str]:
    return [s for s in query.get("symbols", "").split(",") if s]


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
