"""Issue 22 point 4 (an outage between windows is probed and healed too) and issue 24 Build 5 (scheduled broker
maintenance is a planned pause, not an outage alarm; after any reconnect the supervisor reconciles before the next
entry). The demo day replayed in process against the simulated exchange: without faults OPEN enters at 14:59 UTC,
MID buys SH at 15:46, CLOSE enters at 19:36.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from broker_faults import Faults, alerts, at, entries, logged_events, maintenance, named, no_retries, when
from helpers import template_text
from integration_test_runner import check_outputs, provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.broker.broker_api import OrderRequest
from tbot_bot.config.env_bot import settings_from_text
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import ConfigError
from tbot_bot.runtime.main import Supervisor


def test_an_outage_at_the_start_is_probed_and_reconciled_before_the_first_entry_and_after_a_reconnect(
    tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    no_retries(home)
    down = (at(14, 0), at(14, 33))  # from the reconcile step (after boot) past OPEN's start
    outage: list[Faults] = []

    def wrap(b: Any) -> Any:
        # and later, inside MID, the adapter reconnects within a call: reconciled again before MID's entry
        outage.append(Faults(b, down=down, armed_by="get_positions", reconnect_at=at(15, 40)))
        return outage[-1]

    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0
    assert outage[0].refused > 0
    events = logged_events(home)
    [gone] = named(events, "broker_outage")
    [back] = named(events, "broker_resumed")
    assert gone["d"]["window"] == "reconcile"
    assert down[1] <= datetime.fromisoformat(back["d"]["at"]) < at(14, 36)  # back-off probing found it soon
    assert len(alerts(caplog, "broker_outage")) == 1 and len(alerts(caplog, "broker_resumed")) == 1
    reconciled = named(events, "reconciled")
    # the start's reconciliation, run late; then one after the adapter's own reconnect
    assert [r["d"].get("after") for r in reconciled] == ["start", "reconnect"]
    assert (
        at(15, 40).isoformat().replace("+00:00", "Z") <= when(reconciled[1]) < when(entries(events, "mid")[0])
    )
    first_entry = entries(events, "open")[0]
    assert when(back) <= when(reconciled[0]) < when(first_entry)
    assert events.index(back) < events.index(reconciled[0])
    status = json.loads(home.status_json.read_text())
    assert status["broker"]["healthy"] is True
    assert status["broker"]["down_since"] == at(14, 29).isoformat()  # the replay's pre-open reconcile minute
    assert status["broker"]["resumed_at"] == back["d"]["at"]
    assert [w["status"] for w in status["windows"]] == ["done", "done", "done"]
    assert check_outputs(home, DEMO_DAY) == []


def test_maintenance_is_a_planned_pause_and_the_reconnect_reconciles_first(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    maintenance(home, "10:40-10:43")  # New York time: 15:40-15:43 UTC on the demo day
    down = (at(15, 40), at(15, 43))
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: Faults(b, down=down)).run() == 0
    events = logged_events(home)
    assert named(events, "broker_outage") == [] and alerts(caplog, "broker_outage") == []
    assert alerts(caplog, "broker_resumed") == []  # a planned pause ends without an alert too
    [pause] = named(events, "broker_maintenance")
    assert pause["d"]["maintenance_window"] == "10:40-10:43 America/New_York"
    [back] = named(events, "broker_resumed")
    assert back["d"]["maintenance"] is True
    # after the reconnect the reconciliation ran, and only then did MID enter
    [again] = [r for r in named(events, "reconciled") if r["d"].get("after") == "reconnect"]
    [mid_entry] = entries(events, "mid")
    assert when(back) <= when(again) < when(mid_entry) and events.index(back) < events.index(again)
    status = json.loads(home.status_json.read_text())
    assert status["broker"]["maintenance"] is False and status["broker"]["resumed_at"] == back["d"]["at"]
    assert status["broker"]["down_since"] == pause["d"]["since"]
    assert check_outputs(home, DEMO_DAY) == []


def test_an_unexplained_position_found_at_the_reconnect_blocks_entries(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    maintenance(home, "10:40-10:43")

    def by_hand(sim: Any) -> None:  # while the bot cannot reach the broker, someone buys there by hand
        sim.submit_order(OrderRequest("by-hand-1", "SYN2", OrderSide.BUY, Decimal("3")))

    faults = {"down": (at(15, 40), at(15, 43)), "on_outage": by_hand}
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: Faults(b, **faults)).run() == 0
    events = logged_events(home)
    [again] = [r for r in named(events, "reconciled") if r["d"].get("after") == "reconnect"]
    assert again["d"]["unknown_positions"] == "SYN2"
    assert named(events[events.index(again) :], "entry_order") == []  # neither MID's SH nor CLOSE's entry
    status = json.loads(home.status_json.read_text())
    assert status["reconciliation"]["blocks_trading"] is True
    assert status["reconciliation"]["summary"] == "SYN2: broker holds 3, journal 0: not the bot's"
    assert len(alerts(caplog, "reconciliation")) == 1
    notes = {w["strategy"]: w["note"] for w in status["windows"]}
    assert notes["mid"].startswith("trading halted: reconciliation: SYN2") and notes["close"] == notes["mid"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("auto", True),
        ("none", True),
        ("", True),
        ("23:45-00:45", True),
        ("05:45-06:45 Europe/Zurich", True),
        ("23:45", False),
        ("24:00-01:00", False),
        ("10:00-10:00", False),
        ("23:45-00:45 Mars/Olympus", False),
    ],
)
def test_maintenance_window_values(value: str, ok: bool) -> None:
    text = "\n".join(
        f"BROKER_MAINTENANCE_WINDOW={value}" if line.startswith("BROKER_MAINTENANCE_WINDOW=") else line
        for line in template_text().splitlines()
    )
    if ok:
        settings_from_text(text)
        return
    with pytest.raises(ConfigError) as err:
        settings_from_text(text)
    assert "BROKER_MAINTENANCE_WINDOW" in str(err.value) and "HH:MM-HH:MM" in str(err.value)


def test_maintenance_that_outlasts_its_window_becomes_an_outage(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    maintenance(home, "10:40-10:42")  # New York time: 15:40-15:42 UTC; the broker stays away until 15:46
    down = (at(15, 40), at(15, 46))
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: Faults(b, down=down)).run() == 0
    events = logged_events(home)
    [pause] = named(events, "broker_maintenance")
    [outage] = named(events, "broker_outage")
    assert outage["d"]["after_maintenance"] is True and outage["d"]["since"] == pause["d"]["since"]
    assert at(15, 42).isoformat() <= when(outage) < at(15, 46).isoformat()
    # the overrun is an outage from the window's end: alerted once, and its end alerted once
    assert len(alerts(caplog, "broker_outage")) == 1 and len(alerts(caplog, "broker_resumed")) == 1
    [back] = named(events, "broker_resumed")
    assert back["d"]["maintenance"] is False
    assert check_outputs(home, DEMO_DAY) == []


def test_a_maintenance_window_across_midnight_contains_the_night_only() -> None:
    from datetime import UTC, time

    from tbot_bot.runtime.broker_pause import MaintenanceWindow

    night = MaintenanceWindow(time(23, 45), time(0, 45), "America/New_York")
    inside = [datetime(2026, 1, 6, 4, 50, tzinfo=UTC), datetime(2026, 1, 6, 5, 0, tzinfo=UTC),
              datetime(2026, 1, 6, 5, 44, tzinfo=UTC)]  # 23:50, 00:00 and 00:44 in New York  # fmt: skip
    outside = [datetime(2026, 1, 6, 4, 44, tzinfo=UTC), datetime(2026, 1, 6, 5, 45, tzinfo=UTC),
               datetime(2026, 1, 6, 11, 0, tzinfo=UTC)]  # 23:44, 00:45 and 06:00  # fmt: skip
    assert all(night.contains(t) for t in inside) and not any(night.contains(t) for t in outside)
