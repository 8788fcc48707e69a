"""The Tradier REST edge: one requests session, bearer token, timeouts, error translation, reply parsing.

Tradier (api.tradier.com, sandbox.tradier.com) has no maintained Python SDK; its API is JSON over HTTPS with
form-encoded POSTs. Translation: timeout, dropped connection, 408, 429, 5xx -> NetworkError (retryable);
401/403 -> ConfigError (the token); other 4xx -> BrokerRejected with Tradier's message; a reply that does not
parse -> BrokerError `malformed_reply`. Tradier's lists come as `{"x": null}`, one object, or a list: `as_list`
normalises them. Market-data times are exchange-local (America/New_York) without an offset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import requests

from tbot_bot.errors import BrokerError, ConfigError, NetworkError

LIVE_URL = "https://api.tradier.com"
SANDBOX_URL = "https://sandbox.tradier.com"
EXCHANGE_TZ = ZoneInfo("America/New_York")
EPOCH_MS_THRESHOLD = 100_000_000_000


class BrokerRejected(BrokerError):
    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        self.status = status
        super().__init__(message, code=code)


class TradierHttp:
    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def close(self) -> None:
        self._session.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        form: dict[str, Any] | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            reply = self._session.request(method, url, params=params, data=form, timeout=self.timeout)
        except requests.Timeout as exc:
            raise NetworkError(f"Tradier {method} {path}: no answer within {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise NetworkError(f"Tradier {method} {path}: {type(exc).__name__}: {exc}") from exc
        status = reply.status_code
        if status in (408, 429) or status >= 500:
            raise NetworkError(f"Tradier {method} {path}: HTTP {status}")
        if status in (401, 403):
            raise ConfigError(
                f"Tradier refused the access token (HTTP {status} on {path}); check TRADIER_ACCESS_TOKEN and "
                "TRADIER_ACCOUNT_ID in broker_credentials"
            )
        try:
            payload = reply.json() if reply.content else None
        except ValueError:
            raise BrokerError(f"Tradier {method} {path}: reply is not JSON", code="malformed_reply") from None
        if status >= 400:
            raise BrokerRejected(
                f"Tradier refused {method} {path}: {error_text(payload)}", code=str(status), status=status
            )
        return payload


def error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, dict):
            return "; ".join(str(e) for e in as_list(errors.get("error")))
        for key in ("fault", "message", "error"):
            if payload.get(key):
                return str(payload[key])
    return str(payload)[:200]


def as_list(value: Any) -> list[Any]:
    if value is None or value == "null":
        return []
    return value if isinstance(value, list) else [value]


def section(payload: Any, outer: str, inner: str | None = None) -> Any:
    """payload[outer][inner] with Tradier's nulls; BrokerError when the shape is wrong."""
    if not isinstance(payload, dict) or outer not in payload:
        raise BrokerError(f"Tradier reply lacks {outer!r}", code="malformed_reply")
    value = payload[outer]
    if inner is None:
        return value
    if value is None or value == "null":
        return None
    if not isinstance(value, dict):
        raise BrokerError(f"Tradier reply {outer!r} is not an object", code="malformed_reply")
    return value.get(inner)


def dec(value: Any, what: str, *, default: Decimal | None = None) -> Decimal:
    if value is None or value == "":
        if default is not None:
            return default
        raise BrokerError(f"Tradier reply lacks {what}", code="malformed_reply")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise BrokerError(f"Tradier {what} {value!r} is not a number", code="malformed_reply") from None
    if not out.is_finite():
        raise BrokerError(f"Tradier {what} {value!r} is not finite", code="malformed_reply")
    return out


def utc_time(value: Any) -> datetime | None:
    """Tradier order times are ISO with Z; market-data times are exchange-local without an offset or epoch
    numbers (seconds or milliseconds)."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # the clock and timesales stamp in epoch seconds, quotes (bid_date, ask_date, trade_date) in epoch
        # milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973, so the size tells which
        seconds = float(value) / 1000 if abs(value) >= EPOCH_MS_THRESHOLD else float(value)
        return datetime.fromtimestamp(seconds, tz=UTC)
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BrokerError(f"Tradier time {value!r} is not ISO-8601", code="malformed_reply") from None
    return (t if t.tzinfo else t.replace(tzinfo=EXCHANGE_TZ)).astimezone(UTC)


def exchange_local(t: datetime) -> str:
    """A UTC time as Tradier's market-data parameters want it: exchange-local 'YYYY-MM-DD HH:MM'."""
    return t.astimezone(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M")
