"""strategy_meta (inverse-ETF choice), strategy_router (order and skips) and the strategies' self_check()."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from helpers import make_settings

from tbot_bot.checks import CheckResult
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.errors import ConfigError
from tbot_bot.strategy import strategy_close, strategy_meta, strategy_mid, strategy_open, strategy_router


def test_top20_and_pools_are_all_mapped() -> None:
    assert len(strategy_meta.INVERSE_ETF_TOP20) == 20 == len(set(strategy_meta.INVERSE_ETF_TOP20))
    for pool in strategy_meta.ETF_POOLS.values():
        assert set(pool) <= set(strategy_meta.INVERSE_ETF_TOP20)
    assert set(strategy_meta.INVERSE_ETF_TOP20) <= set(strategy_meta.INVERSE_ETFS)
    assert strategy_meta.leverage_of("SPXU") == 3 and strategy_meta.leverage_of("SDS") == 2


@pytest.mark.parametrize(
    ("ticker", "strategy", "expected"),
    [
        ("SPY", "open", "SH"),  # S&P 500, -1x first
        ("SPY", "mid", "SPXU"),  # the mid pool has only the -3x S&P short
        ("SPY", "close", "SPXU"),
        ("QQQ", "open", "PSQ"),
        ("XLF", "mid", "FAZ"),
        ("SYN1", "open", "MYY"),  # sample mid-cap -> S&P 400 midcap inverse
        ("UNKNOWN", "mid", "SH"),  # no mapping: broad market
        ("SYN8", "mid", "SH"),  # energy: ERY is not in the mid pool -> broad market
    ],
)
def test_inverse_etf_for_a_bearish_signal(ticker: str, strategy: str, expected: str) -> None:
    assert strategy_meta.pick_inverse_etf(ticker, strategy) == expected


def test_filters_move_to_the_next_candidate_then_fail() -> None:
    assert strategy_meta.inverse_etf_candidates("SPY", "open") == ["SH", "SPXU", "PSQ"]
    assert strategy_meta.pick_inverse_etf("SPY", "open", lambda s: s != "SH") == "SPXU"
    assert strategy_meta.pick_inverse_etf("SPY", "open", lambda s: False) is None
    assert strategy_meta.signal_universe(["SPY", "SH", "SYN1", "SPXU"]) == ["SPY", "SYN1"]


def test_router_order_override_and_disabled_with_reasons() -> None:
    r = strategy_router.route(make_settings())
    assert r.run == ("open", "mid", "close") and r.skipped == {}
    r = strategy_router.route(make_settings(STRATEGY_SEQUENCE="close,open", STRAT_OPEN_ENABLED="false"))
    assert r.run == ("close",)
    assert r.skipped == {"mid": "not in STRATEGY_SEQUENCE", "open": "STRAT_OPEN_ENABLED=false"}
    r = strategy_router.route(make_settings(STRATEGY_OVERRIDE="mid"))
    assert r.run == ("mid",) and r.skipped["open"] == "STRATEGY_OVERRIDE=mid"
    # refused when saved or loaded (a cross-key rule), so `config set` cannot save what boot refuses
    with pytest.raises(ConfigError, match="no strategy window would run .*STRAT_OPEN_ENABLED=false"):
        make_settings(STRAT_OPEN_ENABLED="false", STRAT_MID_ENABLED="false", STRAT_CLOSE_ENABLED="false")
    off = make_settings().model_copy(
        update={"STRAT_OPEN_ENABLED": False, "STRAT_MID_ENABLED": False, "STRAT_CLOSE_ENABLED": False}
    )
    check = strategy_router.self_check(off)
    assert not check.ok and check.reason == "no strategy enabled to run"
    assert strategy_router.self_check(make_settings()).ok


@dataclass
class FakeBroker:
    ok: bool = True

    def self_check(self) -> CheckResult:
        return CheckResult(self.ok, "ok" if self.ok else "connection refused", {"broker": "fake"})


NOW = ReplayClock(datetime(2011, 1, 4, 13, 0, tzinfo=UTC))


@pytest.mark.parametrize("module", [strategy_open, strategy_mid, strategy_close])
def test_self_check_passes_on_a_session_day(module) -> None:  # noqa: ANN001
    result = module.self_check(make_settings(), FakeBroker(), Decimal("100000"), NOW)  # type: ignore[arg-type]
    assert result.ok, result.reason


@pytest.mark.parametrize(
    ("settings", "broker", "float_", "clock", "reason"),
    [
        (None, FakeBroker(), Decimal(1), NOW, "no .env_bot settings loaded"),
        ("ok", FakeBroker(ok=False), Decimal(1), NOW, "broker not reachable: connection refused"),
        ("ok", FakeBroker(), None, NOW, "broker_current_float missing or not positive"),
        (
            "ok",
            FakeBroker(),
            Decimal(1),
            ReplayClock(datetime(2011, 1, 17, 13, 0, tzinfo=UTC)),
            "window does not fit",
        ),
    ],
)
def test_self_check_failures_carry_strategy_reason_context_and_time(
    settings, broker, float_, clock, reason
) -> None:  # noqa: ANN001
    s = make_settings() if settings == "ok" else settings
    result = strategy_open.self_check(s, broker, float_, clock)
    assert not result.ok and result.strategy == "open" and result.reason.startswith(reason)
    assert result.checked_at == clock.now() and result.checked_at.tzinfo is not None
