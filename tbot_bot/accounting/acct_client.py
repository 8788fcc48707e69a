"""Client of the firm's accounting API: JSON over HTTPS with a bearer token, timeouts, retries, idempotency keys.

Credentials come from `storage/secrets/acct_api_credentials.json.enc` (`ACCT_API_URL`, `ACCT_API_TOKEN`,
optional `ACCT_API_TIMEOUT` seconds); no file means "not configured" and callers fall back to the ledgers.
Every route is under `{ACCT_API_URL}/v1/bots/{BOT_ID}/`:

    GET  float                  -> {"float": "25000.00", "currency": "USD", "as_of": ISO-UTC, "float_id": str}
    POST rebalance-requests     (Idempotency-Key) -> {"request_id": str, "status": "received"}
    GET  ledger/cursor          -> {"last_fitid": str | null}
    POST ledger/transactions    (Idempotency-Key) -> {"last_fitid": str, "accepted": n, "duplicates": n}
    POST ledger/head            (Idempotency-Key) {audit_rows, last_hash, transactions, splits, last_fitid}
                                -> {"acknowledged_at": ISO-UTC, ...the head}
    GET  ledger/head            -> the last acknowledged head, or {} when none

Money travels as decimal strings, never JSON numbers. Timeouts, dropped connections, 429 and 5xx are
NetworkError and are retried (RetryPolicy, API_RETRY_LIMIT); a POST is retried with the same Idempotency-Key,
so a request whose reply was lost is never applied twice. 401/403 are ConfigError (a person must fix the
token); any other refusal is AccountingRefused.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from tbot_bot.accounting.accounting_config import BotIdentity
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.errors import ConfigError, NetworkError, TbotError
from tbot_bot.support.decrypt_secrets import load_secret_json, secret_exists
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.secret_schema import ACCT_API_DEFAULT_TIMEOUT, acct_api_problems

SECRET_NAME = "acct_api_credentials"
DEFAULT_TIMEOUT = ACCT_API_DEFAULT_TIMEOUT
USER_AGENT = "rigd-tbot-acct-client/1"


class AccountingRefused(TbotError):
    """The accounting API answered and refused (4xx other than auth) or sent a reply we cannot read."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class AcctApiConfig:
    url: str  # base URL without trailing slash
    token: str
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class FloatAssignment:
    """The float the accounting system assigns this bot (the rebalance target)."""

    amount: Decimal
    currency: str
    as_of: datetime
    float_id: str  # the accounting system's id of this assignment: the FITID suffix of its injection


def parse_config(data: dict[str, Any], *, source: str = SECRET_NAME) -> AcctApiConfig:
    """Validate the credentials object; every problem at once (the rules live with the other secrets')."""
    problems = acct_api_problems(data)
    if problems:
        raise ConfigError(problems, source=source)
    url = str(data.get("ACCT_API_URL") or "").strip().rstrip("/")
    token = str(data.get("ACCT_API_TOKEN") or "").strip()
    raw_timeout = data.get("ACCT_API_TIMEOUT")
    timeout = DEFAULT_TIMEOUT if raw_timeout in (None, "") else float(raw_timeout)  # type: ignore[arg-type]
    return AcctApiConfig(url, token, timeout)


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, float) or not isinstance(value, str | int):
        raise AccountingRefused(f"{what} must be a decimal string, got {value!r}", code="malformed_reply")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise AccountingRefused(f"{what} {value!r} is not a number", code="malformed_reply") from None
    if not amount.is_finite():
        raise AccountingRefused(f"{what} {value!r} is not finite", code="malformed_reply")
    return amount


class AccountingClient:
    """One bot's view of the accounting API. Thread-unsafe (one per process), like a requests Session."""

    def __init__(
        self,
        config: AcctApiConfig,
        identity: BotIdentity,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self.calls = 0
        self.retries = 0

    @classmethod
    def from_home(
        cls, home: BotHome, identity: BotIdentity, *, retry: RetryPolicy | None = None
    ) -> AccountingClient | None:
        """The configured client, or None when acct_api_credentials does not exist (not configured)."""
        if not secret_exists(home, SECRET_NAME):
            return None
        config = parse_config(load_secret_json(home, SECRET_NAME), source=str(home.secret_file(SECRET_NAME)))
        return cls(config, identity, retry=retry)

    def close(self) -> None:
        self._session.close()

    @property
    def base(self) -> str:
        return f"{self.config.url}/v1/bots/{self.identity.BOT_ID}"

    # ------------------------------------------------------------------ transport
    def request(self, method: str, path: str, *, body: Any = None, idempotency_key: str | None = None) -> Any:
        """One call with retries; POSTs must carry an idempotency key so a retry cannot apply twice."""
        if method != "GET" and not idempotency_key:
            raise ValueError("a non-GET accounting call needs an idempotency key")

        def on_retry(attempt: int, exc: BaseException, wait: float) -> None:
            self.retries += 1

        policy = self.retry.with_(on_retry=on_retry)
        return policy.call(self._once, method, path, body, idempotency_key)

    def _once(self, method: str, path: str, body: Any, idempotency_key: str | None) -> Any:
        self.calls += 1
        headers = {
            "Authorization": f"Bearer {self.config.token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "X-Tbot-Entity": self.identity.ENTITY_CODE,
            "X-Tbot-Jurisdiction": self.identity.JURISDICTION_CODE,
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, sort_keys=True).encode()
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = f"{self.base}/{path}"
        try:
            reply = self._session.request(
                method, url, data=data, headers=headers, timeout=self.config.timeout
            )
        except requests.Timeout as exc:
            raise NetworkError(
                f"accounting API {method} {path}: no answer within {self.config.timeout}s"
            ) from exc
        except requests.RequestException as exc:
            raise NetworkError(f"accounting API {method} {path}: {type(exc).__name__}: {exc}") from exc
        status = reply.status_code
        if status == 429 or status >= 500 or status == 408:
            raise NetworkError(f"accounting API {method} {path}: HTTP {status}")
        if status in (401, 403):
            raise ConfigError(
                f"the accounting API refused ACCT_API_TOKEN (HTTP {status} on {method} {path}); "
                f"store a valid token in {SECRET_NAME}"
            )
        try:
            payload = reply.json() if reply.content else None
        except ValueError:
            raise AccountingRefused(
                f"accounting API {method} {path}: HTTP {status} with a reply that is not JSON",
                status=status,
                code="malformed_reply",
            ) from None
        if status >= 400:
            message = payload.get("message") if isinstance(payload, dict) else None
            code = payload.get("code") if isinstance(payload, dict) else None
            raise AccountingRefused(
                f"accounting API refused {method} {path}: HTTP {status} {message or ''}".strip(),
                status=status,
                code=str(code) if code is not None else None,
            )
        return payload

    # ------------------------------------------------------------------ routes
    def get_float(self) -> FloatAssignment:
        reply = self.request("GET", "float")
        if not isinstance(reply, dict):
            raise AccountingRefused("float reply is not a JSON object", code="malformed_reply")
        amount = _decimal(reply.get("float"), "float")
        if amount <= 0:
            raise AccountingRefused(f"float {amount} is not positive", code="malformed_reply")
        currency = str(reply.get("currency") or "")
        if len(currency) != 3 or not currency.isalpha():
            raise AccountingRefused(f"float currency {currency!r} is not an ISO code", code="malformed_reply")
        try:
            as_of = datetime.fromisoformat(str(reply.get("as_of")).replace("Z", "+00:00"))
        except ValueError:
            raise AccountingRefused(
                f"float as_of {reply.get('as_of')!r} is not a time", code="malformed_reply"
            ) from None
        if as_of.tzinfo is None:
            raise AccountingRefused("float as_of has no time zone", code="malformed_reply")
        float_id = str(reply.get("float_id") or "").strip()
        if not float_id or len(float_id) > 64:
            raise AccountingRefused("float reply lacks a float_id", code="malformed_reply")
        return FloatAssignment(amount, currency.upper(), as_of.astimezone(UTC), float_id)

    def post_rebalance(self, request_body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        reply = self.request("POST", "rebalance-requests", body=request_body, idempotency_key=idempotency_key)
        if not isinstance(reply, dict) or not reply.get("request_id"):
            raise AccountingRefused("rebalance reply lacks request_id", code="malformed_reply")
        return reply

    def ledger_cursor(self) -> str | None:
        reply = self.request("GET", "ledger/cursor")
        if not isinstance(reply, dict) or "last_fitid" not in reply:
            raise AccountingRefused("cursor reply lacks last_fitid", code="malformed_reply")
        last = reply["last_fitid"]
        return None if last in (None, "") else str(last)

    def push_transactions(self, transactions: list[dict[str, Any]], idempotency_key: str) -> dict[str, Any]:
        reply = self.request(
            "POST",
            "ledger/transactions",
            body={"transactions": transactions},
            idempotency_key=idempotency_key,
        )
        if not isinstance(reply, dict) or "last_fitid" not in reply:
            raise AccountingRefused("ingestion reply lacks last_fitid", code="malformed_reply")
        return reply

    def acknowledge_head(self, head: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Send the ledger's chain head after a sync; the reply is the head as the accounting system recorded it."""
        reply = self.request("POST", "ledger/head", body=head, idempotency_key=idempotency_key)
        if not isinstance(reply, dict) or reply.get("last_hash") != head.get("last_hash"):
            raise AccountingRefused(
                "head acknowledgement does not repeat the head sent", code="malformed_reply"
            )
        return reply

    def acknowledged_head(self) -> dict[str, Any] | None:
        """The last chain head the accounting system acknowledged (None before the first)."""
        reply = self.request("GET", "ledger/head")
        if not isinstance(reply, dict):
            raise AccountingRefused("head reply is not an object", code="malformed_reply")
        return reply if reply.get("last_hash") else None


def new_idempotency_key(*parts: str) -> str:
    """A stable key from parts (same parts, same key), so a retry after a crash reuses it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "rigd-tbot:" + "|".join(parts)))
