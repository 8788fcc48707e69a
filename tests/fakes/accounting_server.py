"""A real HTTP fake of the firm's accounting API on 127.0.0.1 (routes in tbot_bot/accounting/acct_client.py).

It keeps, per bot: the assigned float, rebalance requests (deduplicated by Idempotency-Key: a repeat returns
the first answer and applies nothing) and ingested ledger transactions (deduplicated by FITID; the cursor is
the last FITID received) and the last chain head acknowledged. Faults come from `FakeJsonServer.inject`.
By hand: `PYTHONPATH=tests .venv/bin/python -m fakes.accounting_server --port 8766 --float 25000`.
"""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime
from typing import Any

from fakes.json_server import ApiError, FakeJsonServer


class FakeAccountingServer(FakeJsonServer):
    def __init__(
        self,
        *,
        float_amount: str = "25000.00",
        currency: str = "USD",
        float_id: str = "F1",
        port: int = 0,
        token: str | None = "test-token",
    ) -> None:
        super().__init__(port=port, token=token)
        self.float_amount = float_amount
        self.currency = currency
        self.float_id = float_id
        self.as_of = datetime(2011, 1, 3, 12, 0, tzinfo=UTC)
        self.rebalance_requests: list[dict[str, Any]] = []  # applied, in order (duplicates excluded)
        self._idempotent: dict[str, Any] = {}
        self.transactions: dict[str, dict[str, Any]] = {}  # fitid -> transaction, in arrival order
        self.ingest_batches = 0
        self.head: dict[str, Any] = {}  # the last chain head acknowledged
        self._state = threading.Lock()

    def set_float(self, amount: str, float_id: str) -> None:
        with self._state:
            self.float_amount, self.float_id = amount, float_id

    def route(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) < 4 or parts[:2] != ["v1", "bots"]:
            raise ApiError(404, f"no route {path}", "not_found")
        bot_id, rest = parts[2], "/".join(parts[3:])
        with self._state:
            if method == "GET" and rest == "float":
                return 200, {
                    "bot_id": bot_id,
                    "float": self.float_amount,
                    "currency": self.currency,
                    "as_of": self.as_of.isoformat().replace("+00:00", "Z"),
                    "float_id": self.float_id,
                }
            if method == "POST" and rest == "rebalance-requests":
                return self._once(headers, lambda: self._rebalance(bot_id, body))
            if method == "GET" and rest == "ledger/cursor":
                return 200, {"last_fitid": self._last_fitid()}
            if method == "POST" and rest == "ledger/transactions":
                return self._once(headers, lambda: self._ingest(body))
            if method == "GET" and rest == "ledger/head":
                return 200, self.head
            if method == "POST" and rest == "ledger/head":
                return self._once(headers, lambda: self._acknowledge(body))
        raise ApiError(404, f"no route {method} {path}", "not_found")

    def _once(self, headers: dict[str, str], apply: Any) -> tuple[int, Any]:
        key = headers.get("idempotency-key")
        if not key:
            raise ApiError(400, "Idempotency-Key header required", "idempotency_key_missing")
        if key not in self._idempotent:
            self._idempotent[key] = apply()
        return self._idempotent[key]

    def _rebalance(self, bot_id: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, "body must be an object", "invalid")
        missing = [k for k in ("bot_id", "target_float", "actual", "deviation", "reason") if k not in body]
        if missing:
            raise ApiError(422, f"missing fields: {', '.join(missing)}", "invalid")
        self.rebalance_requests.append(body)
        return 201, {"request_id": f"RB-{len(self.rebalance_requests)}", "status": "received"}

    def _ingest(self, body: Any) -> tuple[int, Any]:
        txs = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(txs, list):
            raise ApiError(422, "transactions must be a list", "invalid")
        accepted = duplicates = 0
        for tx in txs:
            fitid = tx.get("fitid") if isinstance(tx, dict) else None
            if not fitid:
                raise ApiError(422, "every transaction needs a fitid", "invalid")
            if fitid in self.transactions:
                duplicates += 1
            else:
                self.transactions[fitid] = tx
                accepted += 1
        self.ingest_batches += 1
        return 200, {"last_fitid": self._last_fitid(), "accepted": accepted, "duplicates": duplicates}

    def _acknowledge(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("last_hash"):
            raise ApiError(422, "a head needs last_hash", "invalid")
        self.head = {**body, "acknowledged_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        return 200, self.head

    def _last_fitid(self) -> str | None:
        return next(reversed(self.transactions)) if self.transactions else None


def main() -> None:
    parser = argparse.ArgumentParser(description="fake accounting API on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--float", dest="float_amount", default="25000.00")
    parser.add_argument("--token", default=None, help="accept only this bearer token (default: any)")
    args = parser.parse_args()
    srv = FakeAccountingServer(port=args.port, float_amount=args.float_amount, token=args.token)
    print(f"fake accounting API on {srv.url}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
