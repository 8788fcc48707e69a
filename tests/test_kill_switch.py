"""Kill switch: realised loss today strictly greater than float x DAILY_LOSS_LIMIT trips it, with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import make_settings

from tbot_bot.trading.kill_switch import KillSwitch

D = Decimal


def test_threshold_is_strict() -> None:
    ks = KillSwitch(make_settings(DAILY_LOSS_LIMIT="0.05"), D(2500))  # limit 125
    assert ks.loss_limit == D("125.00")
    assert not ks.record_realised(D("-100"))
    assert not ks.record_realised(D("-25"))  # exactly 125: not greater
    assert ks.self_check().ok
    assert ks.record_realised(D("-0.01"))
    assert ks.tripped and "125.01" in (ks.reason or "") and "DAILY_LOSS_LIMIT" in (ks.reason or "")
    assert not ks.self_check().ok


def test_net_pnl_and_latching() -> None:
    ks = KillSwitch(make_settings(), D(2500))
    ks.record_realised(D("50"))
    assert not ks.record_realised(D("-170"))  # net -120
    assert ks.record_realised(D("-10"))  # net -130
    ks.record_realised(D("1000"))
    assert ks.tripped  # stays tripped for the day


def test_restart_replays_realised_today() -> None:
    ks = KillSwitch(make_settings(), D(2500), realised_today=D("-200"))
    assert ks.tripped and ks.realised_today == D("-200")


def test_refuses_binary_float() -> None:
    ks = KillSwitch(make_settings(), D(2500))
    with pytest.raises(TypeError):
        ks.record_realised(-1.5)  # type: ignore[arg-type]


def test_self_check_needs_float() -> None:
    assert not KillSwitch(make_settings(), D(0)).self_check().ok
