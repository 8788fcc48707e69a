"""Risk gate: the owner's weights table, every cap, defense mode, DISABLE_ALL_TRADES, HALTED."""

from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import make_settings

from tbot_bot.broker.capabilities import BrokerCapabilities, capabilities_for
from tbot_bot.domain.vocab import DenialCode
from tbot_bot.errors import ConfigError
from tbot_bot.trading.kill_switch import KillSwitch
from tbot_bot.trading.risk_bot import (
    Candidate,
    Denied,
    InstrumentKind,
    RiskLimits,
    RiskManager,
    RiskState,
    Sized,
    defense_max_trades,
    plan_entries,
    weights_for,
)

D = Decimal
SIM = capabilities_for("SIM")
WHOLE_SHARES = BrokerCapabilities(
    fractional=False, short_sell=True, options=True, trailing_stop=False, imbalance_data=False
)


def cand(ticker: str, strength: float, price: str = "50", **kw: object) -> Candidate:
    base: dict[str, object] = {"prev_volume": 2_000_000, "spread_pct": 0.001}
    base.update(kw)
    return Candidate(ticker=ticker, strength=strength, price=D(price), **base)  # type: ignore[arg-type]


def sized(decisions: list[Sized | Denied]) -> list[Sized]:
    return [d for d in decisions if isinstance(d, Sized)]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, ["1"]), (2, ["0.6", "0.4"]), (3, ["0.4", "0.3", "0.3"]), (4, ["0.4", "0.2", "0.2", "0.2"])],
)
def test_owner_weights_table(n: int, expected: list[str]) -> None:
    w = weights_for(n, (D("0.4"), D("0.2"), D("0.2"), D("0.2")))
    assert w == [D(x) for x in expected]
    assert sum(w) == 1


def test_weights_more_signals_than_slots_and_none() -> None:
    weights = (D("0.4"), D("0.2"), D("0.2"), D("0.2"))
    assert weights_for(9, weights) == [D("0.4"), D("0.2"), D("0.2"), D("0.2")]
    assert weights_for(0, weights) == []


def test_weights_strongest_gets_largest_even_if_first_weight_small() -> None:
    w = weights_for(2, (D("0.1"), D("0.3"), D("0.6")))
    assert w == [D("0.9"), D("0.1")]


def test_session_cap_example_from_spec() -> None:
    # float 2500, TOTAL_ALLOCATION 0.02 -> session cap 50
    rm = RiskManager(make_settings(), D(2500), SIM)
    assert rm.session_cap() == D("50.00")


def test_notional_follows_weights_and_ranks_by_strength() -> None:
    s = make_settings(MAX_RISK_PER_TRADE="1")  # per-trade cap out of the way
    rm = RiskManager(s, D(10_000), SIM)  # session cap 200
    out = rm.size_signals("open", [cand("BBB", 0.1), cand("AAA", 0.9), cand("CCC", 0.5)], 0)
    got = [(d.ticker, d.rank, d.weight, d.notional) for d in sized(out)]
    assert got == [
        ("AAA", 1, D("0.4"), D("80")),
        ("CCC", 2, D("0.3"), D("60")),
        ("BBB", 3, D("0.3"), D("60")),
    ]
    assert sized(out)[0].qty == D("1.6")  # 80 / 50, fractional


def test_max_risk_per_trade_caps_notional() -> None:
    s = make_settings(MAX_RISK_PER_TRADE="0.005")  # 10_000 * 0.005 = 50 < 0.6 * 200
    out = plan_entries([cand("A", 2), cand("B", 1)], RiskLimits.from_settings(s, SIM), D(10_000))
    assert [d.notional for d in sized(out)] == [D("50.000"), D("50.000")]


def test_whole_shares_floor_and_zero_is_skipped_with_reason() -> None:
    s = make_settings(MAX_RISK_PER_TRADE="1")
    limits = RiskLimits.from_settings(s, WHOLE_SHARES)
    assert not limits.fractional
    out = plan_entries([cand("A", 2, price="30"), cand("B", 1, price="100")], limits, D(10_000))
    a, b = out
    assert isinstance(a, Sized) and a.qty == 4  # 120 / 30
    assert isinstance(b, Denied) and b.code is DenialCode.ZERO_QUANTITY and "zero shares" in b.reason


def test_short_sales_are_whole_shares_unless_the_broker_allows_fractional_shorts() -> None:
    from dataclasses import replace

    from tbot_bot.trading.risk_bot import InstrumentKind

    s = make_settings(MAX_RISK_PER_TRADE="1")  # session cap 200 -> one signal takes all of it
    short = cand("TSLA", 1, price="30", kind=InstrumentKind.SHORT_SALE)
    long_ = cand("TSLA", 1, price="30")
    limits = RiskLimits.from_settings(s, SIM)
    assert limits.fractional and not limits.fractional_short  # the sim declares no fractional shorts
    assert sized(plan_entries([long_], limits, D(10_000)))[0].qty == D("6.6666")
    assert sized(plan_entries([short], limits, D(10_000)))[0].qty == D(6)
    allowing = RiskLimits.from_settings(s, replace(SIM, fractional_short=True))
    assert sized(plan_entries([short], allowing, D(10_000)))[0].qty == D("6.6666")


def test_fractional_off_by_setting() -> None:
    limits = RiskLimits.from_settings(make_settings(FRACTIONAL="false"), SIM)
    assert not limits.fractional


def test_long_put_contracts() -> None:
    s = make_settings(MAX_RISK_PER_TRADE="1")
    limits = RiskLimits.from_settings(s, SIM)
    put = cand("SPY110121P00127000", 1, price="127", kind=InstrumentKind.LONG_PUT, premium=D("0.55"))
    (d,) = plan_entries([put], limits, D(10_000))  # notional 200 -> floor(200 / 55) = 3
    assert isinstance(d, Sized) and d.qty == 3
    pricey = cand("X", 1, price="127", kind=InstrumentKind.LONG_PUT, premium=D("2.50"))
    (z,) = plan_entries([pricey], limits, D(10_000))
    assert isinstance(z, Denied) and z.code is DenialCode.ZERO_QUANTITY and "contracts" in z.reason


def test_max_trades_denies_the_weakest() -> None:
    s = make_settings(MAX_TRADES=2, WEIGHTS="0.5,0.5")
    out = plan_entries(
        [cand(t, st) for t, st in [("A", 3), ("B", 2), ("C", 1)]], RiskLimits.from_settings(s, SIM), D(10_000)
    )
    assert [type(d).__name__ for d in out] == ["Sized", "Sized", "Denied"]
    assert isinstance(out[2], Denied) and out[2].code is DenialCode.MAX_TRADES


def test_max_open_positions_across_strategies() -> None:
    s = make_settings(MAX_OPEN_POSITIONS=5)
    out = plan_entries(
        [cand("A", 3), cand("B", 2), cand("C", 1)],
        RiskLimits.from_settings(s, SIM),
        D(10_000),
        open_positions=4,
    )
    assert len(sized(out)) == 1 and sized(out)[0].weight == 1
    assert [d.code for d in out if isinstance(d, Denied)] == [DenialCode.MAX_OPEN_POSITIONS] * 2


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"price": "4.99"}, DenialCode.PRICE_OUT_OF_RANGE),
        ({"price": "200.01"}, DenialCode.PRICE_OUT_OF_RANGE),
        ({"prev_volume": 999_999}, DenialCode.VOLUME_TOO_LOW),
        ({"spread_pct": 0.0151}, DenialCode.SPREAD_TOO_WIDE),
        ({"prev_volume": None}, DenialCode.MISSING_MARKET_DATA),
        ({"spread_pct": None}, DenialCode.MISSING_MARKET_DATA),
    ],
)
def test_pretrade_filters(kw: dict[str, object], code: DenialCode) -> None:
    (d,) = plan_entries([cand("A", 1, **kw)], RiskLimits.from_settings(make_settings(), SIM), D(10_000))  # type: ignore[arg-type]
    assert isinstance(d, Denied) and d.code is code and d.reason


def test_filter_edges_pass() -> None:
    limits = RiskLimits.from_settings(make_settings(), SIM)
    edge = [cand("A", 2, price="5", prev_volume=1_000_000, spread_pct=0.015), cand("B", 1, price="200")]
    assert len(sized(plan_entries(edge, limits, D(10_000)))) == 2


def test_filtered_candidates_do_not_take_slots() -> None:
    s = make_settings(MAX_TRADES=2, WEIGHTS="0.5,0.5", MAX_RISK_PER_TRADE="1")
    out = plan_entries(
        [cand("BAD", 9, price="1"), cand("A", 2), cand("B", 1)], RiskLimits.from_settings(s, SIM), D(10_000)
    )
    assert [d.ticker for d in sized(out)] == ["A", "B"]


def test_disable_all_trades() -> None:
    rm = RiskManager(make_settings(DISABLE_ALL_TRADES="true"), D(10_000), SIM)
    out = rm.size_signals("open", [cand("A", 1), cand("B", 2)], 0)
    assert all(isinstance(d, Denied) and d.code is DenialCode.TRADES_DISABLED for d in out)
    assert [d.ticker for d in out] == ["B", "A"]


def test_defense_mode_active_setting() -> None:
    s = make_settings(
        DEFENSE_MODE_ACTIVE="true", MAX_RISK_PER_TRADE="1"
    )  # 4 * 66% -> 2 trades, 1% allocation
    rm = RiskManager(s, D(10_000), SIM)
    assert rm.defense_mode and rm.limits().max_trades == 2 and rm.session_cap() == D("100.00")
    out = rm.size_signals("mid", [cand("A", 3), cand("B", 2), cand("C", 1)], 0)
    assert [(d.ticker, d.notional) for d in sized(out)] == [("A", D("60.0000")), ("B", D("40.0000"))]
    denied = [d for d in out if isinstance(d, Denied)]
    assert denied[0].code is DenialCode.MAX_TRADES and denied[0].context["defense_mode"]


@pytest.mark.parametrize(
    ("max_trades", "pct", "expected"), [(4, 66, 2), (3, 66, 1), (1, 66, 1), (4, 100, 4), (5, 50, 2)]
)
def test_defense_trade_limit_rounds_down_at_least_one(max_trades: int, pct: int, expected: int) -> None:
    assert defense_max_trades(max_trades, pct) == expected


def test_defense_mode_automatic_triggers() -> None:
    off = RiskManager(make_settings(), D(10_000), SIM)
    assert not off.observe_performance(drawdown=0.9, win_rate=0.0)  # both triggers disabled
    dd = RiskManager(make_settings(DEFENSE_MODE_TRIGGER_DRAWDOWN="0.03"), D(10_000), SIM)
    assert not dd.observe_performance(drawdown=0.029, win_rate=None)
    assert dd.observe_performance(drawdown=0.03, win_rate=None)
    assert dd.observe_performance(drawdown=0.0, win_rate=None)  # stays on for the day
    assert "DRAWDOWN" in (dd.defense_reason or "")
    wr = RiskManager(make_settings(DEFENSE_MODE_TRIGGER_WIN_RATE="0.4"), D(10_000), SIM)
    assert not wr.observe_performance(drawdown=None, win_rate=None)
    assert not wr.observe_performance(drawdown=None, win_rate=0.4)
    assert wr.observe_performance(drawdown=None, win_rate=0.39)
    assert wr.limits().total_allocation == D("0.01")


def test_window_usage_limits_later_batches() -> None:
    s = make_settings(MAX_TRADES=2, WEIGHTS="0.5,0.5", MAX_RISK_PER_TRADE="1")
    rm = RiskManager(s, D(10_000), SIM)  # session cap 200
    first = rm.size_signals("open", [cand("A", 1)], 0)
    assert sized(first)[0].notional == D("200.00")  # alone it takes 100%
    second = rm.size_signals("open", [cand("B", 1)], 1)
    assert isinstance(second[0], Denied) and second[0].code is DenialCode.SESSION_CAP_USED
    rm.release("open", sized(first)[0].notional)  # the broker rejected A: its slot and notional come back
    assert sized(rm.size_signals("open", [cand("B", 1)], 0))[0].notional == D("200.00")
    rm.start_window("mid")
    assert sized(rm.size_signals("mid", [cand("C", 1)], 1))


def test_halt_denies_everything_with_reason() -> None:
    rm = RiskManager(make_settings(), D(10_000), SIM)
    assert rm.state is RiskState.ACTIVE
    rm.halt("watchdog: broker API down")
    rm.halt("second reason is ignored")
    (d,) = rm.size_signals("open", [cand("A", 1)], 0)
    assert rm.state is RiskState.HALTED and isinstance(d, Denied) and d.code is DenialCode.HALTED
    assert "broker API down" in d.reason
    assert not rm.self_check().ok


def test_kill_switch_halts_risk_manager() -> None:
    s = make_settings()
    ks = KillSwitch(s, D(2500))
    rm = RiskManager(s, D(2500), SIM, kill_switch=ks)
    ks.record_realised(D("-125.01"))
    assert rm.state is RiskState.HALTED and "DAILY_LOSS_LIMIT" in (rm.halt_reason or "")


def test_self_check_ok_and_failures() -> None:
    assert RiskManager(make_settings(), D(2500), SIM).self_check().ok
    no_float = RiskManager(make_settings(), D(0), SIM).self_check()
    assert not no_float.ok and "float" in no_float.reason
    # refused when the configuration is saved or loaded (a cross-key rule); the self-check stays a second line
    with pytest.raises(ConfigError, match="DEFENSE_MODE_TOTAL_ALLOCATION=0.5 exceeds TOTAL_ALLOCATION=0.02"):
        make_settings(DEFENSE_MODE_TOTAL_ALLOCATION="0.5")
    unchecked = make_settings().model_copy(update={"DEFENSE_MODE_TOTAL_ALLOCATION": D("0.5")})
    bad_defense = RiskManager(unchecked, D(2500), SIM).self_check()
    assert not bad_defense.ok and "DEFENSE_MODE_TOTAL_ALLOCATION" in bad_defense.reason
