"""The retry decorator: keyed on exception type, exponential backoff, injectable sleep."""

from __future__ import annotations

import pytest
from helpers import make_settings

from tbot_bot.config.retry import RetryPolicy, retrier
from tbot_bot.errors import BrokerError, LogicError, MarketDataError, NetworkError


class Flaky:
    def __init__(self, failures: list[BaseException], result: str = "ok") -> None:
        self.failures = list(failures)
        self.calls = 0
        self.result = result

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def test_retries_network_errors_with_exponential_backoff() -> None:
    sleeps: list[float] = []
    fn = Flaky([NetworkError("a"), NetworkError("b"), NetworkError("c")])
    policy = RetryPolicy(retries=3, base_delay=0.5, max_delay=1.5, sleep=sleeps.append)
    assert policy.call(fn) == "ok"
    assert fn.calls == 4
    assert sleeps == [0.5, 1.0, 1.5]  # doubled each time, capped at max_delay


def test_gives_up_after_the_limit_and_reraises_the_last_error() -> None:
    sleeps: list[float] = []
    fn = Flaky([NetworkError(str(i)) for i in range(10)])
    with pytest.raises(NetworkError, match="^2$"):
        RetryPolicy(retries=2, sleep=sleeps.append).call(fn)
    assert fn.calls == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("error", "calls"),
    [
        (NetworkError("x"), 4),  # temporary: retried API_RETRY_LIMIT times
        (MarketDataError("x"), 4),  # a NetworkError subclass: retried too
        (BrokerError("refused", code="403"), 1),  # a refusal: never retried
        (LogicError("bug"), 1),
        (ValueError("x"), 1),
    ],
)
def test_keyed_on_exception_type(error: Exception, calls: int) -> None:
    fn = Flaky([error] * 10)
    with pytest.raises(type(error)):
        RetryPolicy(retries=3, sleep=lambda s: None).call(fn)
    assert fn.calls == calls


def test_never_on_excludes_a_subclass() -> None:
    fn = Flaky([MarketDataError("refused")] * 3)
    policy = RetryPolicy(retries=3, never_on=(MarketDataError,), sleep=lambda s: None)
    with pytest.raises(MarketDataError):
        policy.call(fn)
    assert fn.calls == 1


def test_decorator_reports_each_retry_to_its_hook() -> None:
    seen: list[tuple[int, str, float]] = []
    state = Flaky([NetworkError("x"), MarketDataError("y")])

    @retrier(
        retries=5,
        base_delay=0.5,
        sleep=lambda s: None,
        on_retry=lambda n, e, w: seen.append((n, type(e).__name__, w)),
    )
    def fetch(tag: str) -> str:
        return state() + tag

    assert fetch("!") == "ok!"
    assert seen == [(1, "NetworkError", 0.5), (2, "MarketDataError", 1.0)]
    assert fetch.retry_policy.retries == 5  # type: ignore[attr-defined]


def test_zero_retries_means_one_attempt() -> None:
    fn = Flaky([NetworkError("x")])
    with pytest.raises(NetworkError):
        RetryPolicy(retries=0, sleep=lambda s: pytest.fail("must not sleep")).call(fn)
    assert fn.calls == 1


def test_from_settings_uses_api_retry_limit() -> None:
    settings = make_settings(API_RETRY_LIMIT=5)
    sleeps: list[float] = []
    policy = RetryPolicy.from_settings(settings, sleep=sleeps.append)
    assert policy.retries == 5
    fn = Flaky([NetworkError("x")] * 9)
    with pytest.raises(NetworkError):
        policy.call(fn)
    assert fn.calls == 6
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
