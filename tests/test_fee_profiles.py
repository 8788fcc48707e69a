"""Fee profiles (issue 21): each broker's published schedule, checked against tables worked by hand from the
schedule (sources and dates in support/architecture.md, "Fee profiles (issue 21)"), the one schedule the sim,
the backtest and the optimizer charge, the profile provision picks, and the warning when fees eat the
smallest order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import make_settings
from test_sim_broker import BARS, at

from tbot_bot.backtest.execution import fee_schedule
from tbot_bot.broker.broker_api import OrderRequest
from tbot_bot.broker.brokers.sim import SimBroker
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.provision import ProvisionRequest, provision
from tbot_bot.trading.fees import FeeProfile, FeeSchedule, fee_warning, schedule_for

D = Decimal


@dataclass(frozen=True)
class Order:
    qty: str
    price: str
    sell: bool
    option: bool = False  # qty in contracts, price = premium per share (x 100)


ORDERS = {
    "buy 100 @ 25": Order("100", "25", sell=False),
    "sell 100 @ 25": Order("100", "25", sell=True),
    "buy 1000 @ 25": Order("1000", "25", sell=False),
    "sell 1000 @ 0.25": Order("1000", "0.25", sell=True),
    "sell 20 @ 5": Order("20", "5", sell=True),
    "sell 60000 @ 10": Order("60000", "10", sell=True),
    "buy 2 puts @ 3.15": Order("2", "3.15", sell=False, option=True),
    "sell 3 puts @ 0.075": Order("3", "0.075", sell=True, option=True),
}

# Hand-worked from the published schedules. Regulatory fees on equity sells only: SEC 0.0000278 x proceeds and
# FINRA TAF 0.000166 x shares (at most 8.30), each rounded UP to the cent.
#   sell 100 @ 25:    SEC 2,500 x 0.0000278 = 0.0695 -> 0.07; TAF 100 x 0.000166 = 0.0166 -> 0.02; = 0.09
#   sell 1000 @ 0.25: SEC 250 x 0.0000278 = 0.00695 -> 0.01; TAF 0.166 -> 0.17; = 0.18
#   sell 20 @ 5:      SEC 0.00278 -> 0.01; TAF 0.00332 -> 0.01; = 0.02
#   sell 60000 @ 10:  SEC 600,000 x 0.0000278 = 16.68; TAF 9.96 capped at 8.30; = 24.98
EXPECTED = {
    # Alpaca: no commission on stocks or options; regulatory fees only
    FeeProfile.ALPACA: {
        "buy 100 @ 25": "0", "sell 100 @ 25": "0.09", "buy 1000 @ 25": "0", "sell 1000 @ 0.25": "0.18",
        "sell 20 @ 5": "0.02", "sell 60000 @ 10": "24.98", "buy 2 puts @ 3.15": "0", "sell 3 puts @ 0.075": "0",
    },
    # IBKR Fixed: 0.005/share, min 1.00, max 1% of trade value (IBKR's own examples: 100 @ 25 = 1.00,
    # 1,000 @ 25 = 5.00, 1,000 @ 0.25 = 2.50); options 0.65/contract (0.50 below a 0.10 premium), min 1.00
    #   sell 20 @ 5: 0.10 -> min 1.00 -> capped at 1% of 100 = 1.00, + 0.02 = 1.02
    #   sell 60000 @ 10: 300.00 (cap 6,000 not reached) + 24.98 = 324.98
    #   2 puts @ 3.15: 1.30; 3 puts @ 0.075: 3 x 0.50 = 1.50 (no equity regulatory fees)
    FeeProfile.IBKR_FIXED: {
        "buy 100 @ 25": "1.00", "sell 100 @ 25": "1.09", "buy 1000 @ 25": "5.00", "sell 1000 @ 0.25": "2.68",
        "sell 20 @ 5": "1.02", "sell 60000 @ 10": "324.98", "buy 2 puts @ 3.15": "1.30",
        "sell 3 puts @ 0.075": "1.50",
    },
    # IBKR Tiered (<= 300,000 shares a month): 0.0035/share, min 0.35, max 1% of value; + commission x 0.000738
    # (NYSE 0.000175 + FINRA 0.000563 pass-through) + clearing 0.0002/share; rounded to 1/10,000
    #   100 @ 25:    0.35 (min) + 0.000258 + 0.02 = 0.370258 -> 0.3703; the sale + 0.09 = 0.4603
    #   1000 @ 25:   3.50 + 0.002583 + 0.20 = 3.702583 -> 3.7026
    #   1000 @ 0.25: 3.50 capped at 2.50 + 0.001845 + 0.20 = 2.701845 -> 2.7018; + 0.18 = 2.8818
    #   20 @ 5:      0.35 (min, under the 1.00 cap) + 0.000258 + 0.004 = 0.354258 -> 0.3543; + 0.02 = 0.3743
    #   60000 @ 10:  210.00 + 0.15498 + 12.00 = 222.15498 -> 222.1550; + 24.98 = 247.1350
    FeeProfile.IBKR_TIERED: {
        "buy 100 @ 25": "0.3703", "sell 100 @ 25": "0.4603", "buy 1000 @ 25": "3.7026",
        "sell 1000 @ 0.25": "2.8818", "sell 20 @ 5": "0.3743", "sell 60000 @ 10": "247.1350",
        "buy 2 puts @ 3.15": "1.30", "sell 3 puts @ 0.075": "1.50",
    },
    # Tradier: no commission on stocks; options 0.35/contract, no minimum
    FeeProfile.TRADIER: {
        "buy 100 @ 25": "0", "sell 100 @ 25": "0.09", "buy 1000 @ 25": "0", "sell 1000 @ 0.25": "0.18",
        "sell 20 @ 5": "0.02", "sell 60000 @ 10": "24.98", "buy 2 puts @ 3.15": "0.70",
        "sell 3 puts @ 0.075": "1.05",
    },
    # custom, with the template's SIM_* keys (0.005/share, min 1.00, no cap, per share also per contract)
    FeeProfile.CUSTOM: {
        "buy 100 @ 25": "1.00", "sell 100 @ 25": "1.09", "buy 1000 @ 25": "5.00", "sell 1000 @ 0.25": "5.18",
        "sell 20 @ 5": "1.02", "sell 60000 @ 10": "324.98", "buy 2 puts @ 3.15": "1.00",
        "sell 3 puts @ 0.075": "1.00",
    },
}  # fmt: skip


@pytest.mark.parametrize("profile", list(FeeProfile))
def test_each_profile_charges_its_published_schedule(profile: FeeProfile) -> None:
    schedule = schedule_for(make_settings(SIM_FEE_PROFILE=str(profile)))
    charged = {
        name: schedule.fee(
            D(o.qty), D(o.price), D(100 if o.option else 1), sell=o.sell, option=o.option, first_fill=True
        )
        for name, o in ORDERS.items()
    }
    assert charged == {name: D(v) for name, v in EXPECTED[profile].items()}


def test_the_sim_and_the_backtest_charge_the_profile_in_force(tmp_path: Path) -> None:
    settings = make_settings(SIM_FEE_PROFILE="ibkr_fixed")
    assert fee_schedule(settings) == FeeSchedule.from_settings(settings) == schedule_for(settings)
    clock = ReplayClock(at(5))
    sim = SimBroker.from_settings(
        settings,
        BotHome(tmp_path),
        clock=clock,
        bars=BARS,
        starting_cash=D(100_000),
        db_path=tmp_path / "s.db",
    )
    try:
        buy = sim.submit_order(OrderRequest("b1", "AAA", OrderSide.BUY, D(10)))
        # 10 shares: 0.05 -> the 1.00 minimum, then the 1% cap of the order's value
        assert buy.fills[0].fee == min(D("1.00"), (buy.fills[0].price * 10 * D("0.01")).quantize(D("0.0001")))
    finally:
        sim.close()


def test_provision_picks_the_profile_of_the_home_broker(tmp_path: Path) -> None:
    picked = {}
    for broker in ("sim", "alpaca", "ibkr", "tradier"):
        home = BotHome(tmp_path / broker)
        req = ProvisionRequest(broker, "RGL", "USA", "main", "TB01", "2500")
        provision(home, req, now=datetime(2011, 1, 3, 12, tzinfo=UTC))
        picked[broker] = load_settings(home).SIM_FEE_PROFILE
    assert picked == {"sim": "alpaca", "alpaca": "alpaca", "ibkr": "ibkr_fixed", "tradier": "tradier"}
    # an explicit choice at provisioning wins
    home = BotHome(tmp_path / "chosen")
    req = ProvisionRequest(
        "sim", "RGL", "USA", "main", "TB01", "2500", config_overrides={"SIM_FEE_PROFILE": "custom"}
    )
    provision(home, req, now=datetime(2011, 1, 3, 12, tzinfo=UTC))
    assert load_settings(home).SIM_FEE_PROFILE == "custom"


def test_the_warning_names_the_keys_only_when_fees_eat_the_smallest_order() -> None:
    # float 25,000 x TOTAL_ALLOCATION 0.02 x smallest weight 0.2 = 100: 20 shares at MIN_PRICE 5
    alpaca = make_settings(SIM_FEE_PROFILE="alpaca")
    assert fee_warning(alpaca, D(25_000), fractional=True) is None  # 0.02 = 0.02%
    warning = fee_warning(make_settings(SIM_FEE_PROFILE="ibkr_fixed"), D(25_000), fractional=True)
    assert warning is not None
    # 1.00 to buy, 1.00 + 0.02 to sell = 2.02 on 100.00
    assert (
        "(20 x 5 = 100.00) pays an expected 2.02 in fees buying and selling, 2.02% of its notional" in warning
    )
    for key in ("SIM_FEE_PROFILE", "SIM_COMMISSION_MIN", "TOTAL_ALLOCATION", "WEIGHTS"):
        assert key in warning
    # a larger float makes the same schedule's smallest order big enough: 250,000 -> 1,000 (200 shares):
    # 1.00 + 1.00 + SEC 0.03 + TAF 0.04 = 2.07 = 0.207%
    assert fee_warning(make_settings(SIM_FEE_PROFILE="ibkr_fixed"), D(250_000), fractional=True) is None


def test_an_unknown_or_missing_profile_is_named_with_the_way_out() -> None:
    with pytest.raises(ConfigError) as err:
        make_settings(SIM_FEE_PROFILE="ibkr")
    assert "SIM_FEE_PROFILE='ibkr' is not allowed" in str(err.value) and "ibkr_fixed" in str(err.value)
    from helpers import template_text

    from tbot_bot.config.env_bot import settings_from_text

    old = "\n".join(line for line in template_text().splitlines() if not line.startswith("SIM_FEE_PROFILE="))
    with pytest.raises(ConfigError) as err:
        settings_from_text(old, source="old home")
    assert (
        "SIM_FEE_PROFILE is missing: add SIM_FEE_PROFILE=custom to keep charging the SIM_* fee keys"
        in str(err.value)
    )
