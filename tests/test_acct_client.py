"""Accounting API client against the fake accounting server: retries, timeouts, idempotency, refusals (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fakes.accounting_server import FakeAccountingServer

from tbot_bot.accounting.accounting_config import BotIdentity
from tbot_bot.accounting.acct_client import (
    AccountingClient,
    AccountingRefused,
    AcctApiConfig,
    new_idempotency_key,
    parse_config,
)
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.errors import ConfigError, NetworkError

IDENTITY = BotIdentity("RGL", "USA", "main", "SIM", "TB01")
REBALANCE = {"bot_id": "TB01", "target_float": "25000", "actual": {}, "deviation": "-0.2", "reason": "test"}


@pytest.fixture
def server() -> Iterator[FakeAccountingServer]:
    with FakeAccountingServer() as srv:
        yield srv
        srv.wait_idle()


def client_for(srv: FakeAccountingServer, *, retries: int = 3, timeout: float = 0.5) -> AccountingClient:
    sleeps: list[float] = []
    return AccountingClient(
        AcctApiConfig(srv.url, "test-token", timeout),
        IDENTITY,
        retry=RetryPolicy(retries=retries, sleep=sleeps.append),
    )


def test_float_is_read_as_decimal_with_its_id(server: FakeAccountingServer) -> None:
    f = client_for(server).get_float()
    assert (f.amount, f.currency, f.float_id) == (Decimal("25000.00"), "USD", "F1")
    assert f.as_of.tzinfo is not None
    req = server.requests[-1]
    assert req.path == "/v1/bots/TB01/float"
    assert req.headers["authorization"] == "Bearer test-token"


@pytest.mark.parametrize("kind", ["status", "drop", "delay"])
def test_read_fault_once_is_retried_to_success(server: FakeAccountingServer, kind: str) -> None:
    server.inject("GET", "/v1/bots/TB01/float", kind, status=503, delay=0.8)
    client = client_for(server, timeout=0.3)
    assert client.get_float().amount == Decimal("25000.00")
    assert client.retries == 1
    assert server.count("GET", "/v1/bots/TB01/float") == 2


def test_429_forever_gives_network_error_after_the_retry_limit(server: FakeAccountingServer) -> None:
    server.inject("GET", "/v1/bots/TB01/float", "status", status=429, times=99)
    client = client_for(server, retries=2)
    with pytest.raises(NetworkError, match="HTTP 429"):
        client.get_float()
    assert server.count("GET", "/v1/bots/TB01/float") == 3


@pytest.mark.parametrize("kind", ["status_after", "drop_after", "delay_after", "garbage"])
def test_post_whose_reply_is_lost_is_applied_exactly_once(server: FakeAccountingServer, kind: str) -> None:
    server.inject("POST", "/v1/bots/TB01/rebalance-requests", kind, status=502, delay=0.8)
    client = client_for(server, timeout=0.3)
    key = new_idempotency_key("TB01", "breach-1")
    if kind == "garbage":
        # an unreadable 200 is not retried blindly; the same key later returns the recorded answer
        with pytest.raises(AccountingRefused, match="not JSON"):
            client.post_rebalance(REBALANCE, key)
        reply = client.post_rebalance(REBALANCE, key)
    else:
        reply = client.post_rebalance(REBALANCE, key)
    assert reply["request_id"] == "RB-1"
    assert len(server.rebalance_requests) == 1
    keys = {r.headers["idempotency-key"] for r in server.requests if r.method == "POST"}
    assert keys == {key}


def test_refusals_are_not_retried(server: FakeAccountingServer) -> None:
    client = client_for(server)
    with pytest.raises(AccountingRefused, match="HTTP 422.*missing fields") as exc:
        client.post_rebalance({"bot_id": "TB01"}, "k1")
    assert exc.value.status == 422
    assert server.count("POST", "/v1/bots/TB01/rebalance-requests") == 1


def test_bad_token_is_a_config_error_naming_the_secret(server: FakeAccountingServer) -> None:
    client = AccountingClient(
        AcctApiConfig(server.url, "wrong", 1.0), IDENTITY, retry=RetryPolicy(sleep=lambda s: None)
    )
    with pytest.raises(ConfigError, match="ACCT_API_TOKEN.*acct_api_credentials"):
        client.get_float()
    assert server.count("GET", "/v1/bots/TB01/float") == 1


def test_float_sent_as_json_number_is_refused(server: FakeAccountingServer) -> None:
    server.float_amount = 25000.5  # type: ignore[assignment]
    with pytest.raises(AccountingRefused, match="decimal string"):
        client_for(server).get_float()


def test_unreachable_server_is_a_network_error() -> None:
    with FakeAccountingServer() as srv:
        url = srv.url
    client = AccountingClient(
        AcctApiConfig(url, "t", 0.3), IDENTITY, retry=RetryPolicy(retries=1, sleep=lambda s: None)
    )
    with pytest.raises(NetworkError):
        client.get_float()
    assert client.calls == 2


def test_credentials_are_validated_all_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"ACCT_API_URL": "http://accounting.example.com", "ACCT_API_TIMEOUT": "0"})
    text = str(exc.value)
    assert "must use https://" in text and "ACCT_API_TOKEN is missing" in text and "ACCT_API_TIMEOUT" in text
    assert (
        parse_config({"ACCT_API_URL": "https://a.example/api/", "ACCT_API_TOKEN": "x"}).url
        == "https://a.example/api"
    )
    assert parse_config({"ACCT_API_URL": "http://127.0.0.1:9", "ACCT_API_TOKEN": "x"}).timeout == 10.0


def test_ledger_cursor_and_push_deduplicate_by_fitid(server: FakeAccountingServer) -> None:
    client = client_for(server)
    assert client.ledger_cursor() is None
    reply = client.push_transactions([{"fitid": "A"}, {"fitid": "B"}], "k-1")
    assert (reply["accepted"], reply["last_fitid"]) == (2, "B")
    reply = client.push_transactions([{"fitid": "B"}, {"fitid": "C"}], "k-2")
    assert (reply["accepted"], reply["duplicates"]) == (1, 1)
    assert client.ledger_cursor() == "C"
