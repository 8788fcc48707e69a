"""Issue 22 point 5: kill switch, halt, outage and resume, reconciliation difference, rebalance breach, backup or
upload failure and a failed session booking each reach the operator exactly once (counted on the fake alert
servers: critical alerts go to PagerDuty, routine ones to Slack), not zero times and not once per probe, window,
fill or restart."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes.webhook_server import FakeWebhooks
from integration_test_runner import provision_demo_home
from test_outages import _Outage

from rigd_tbot.cli import main
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.errors import TbotError
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import BotHome

MID_OUTAGE_START = datetime(2011, 1, 25, 15, 40, tzinfo=UTC)  # inside the MID window of the demo day


@pytest.fixture
def hooks() -> Iterator[FakeWebhooks]:
    with FakeWebhooks() as fake:
        yield fake


def _alerting_home(root: Path, hooks: FakeWebhooks, *settings: str) -> BotHome:
    home = provision_demo_home(root)
    save_secret_json(home, "alert_channels", {
        "SLACK_WEBHOOK_URL": hooks.url("/slack"), "PAGERDUTY_ROUTING_KEY": "rk", "PAGERDUTY_URL": hooks.url("/pd"),
    })  # fmt: skip
    # fills and exits are routine chatter: off, so every alert counted is one of the events under test
    for value in ("ROUTINE_ALERT_CHANNEL=slack", "NOTIFY_ON_FILL=false", "NOTIFY_ON_EXIT=false", *settings):
        assert main(["config", "set", "--home", str(home.root), value]) == 0
    return home


def _delivered(hooks: FakeWebhooks) -> tuple[Counter[str], Counter[str]]:
    """(critical, routine) deliveries by trigger, as the receiving servers accepted them."""
    critical = Counter(str(r.body["payload"]["custom_details"]["trigger"]) for r in hooks.on("/pd"))
    routine: Counter[str] = Counter()
    for r in hooks.on("/slack"):
        m = re.search(r"^trigger: (.*)$", r.body["text"], re.M)
        routine[m.group(1) if m else "?"] += 1
    return critical, routine


def _kind(trigger: str) -> str:
    return trigger.split(":", 1)[0]


def _run(home: BotHome, **kwargs: Any) -> int | str:
    try:
        return Supervisor(home, replay_day=DEMO_DAY, **kwargs).run()
    except TbotError as exc:
        return type(exc).__name__


def test_outage_resume_kill_switch_and_reconciliation_each_alert_once(
    tmp_path: Path, hooks: FakeWebhooks
) -> None:
    # a 3-minute outage while OPEN holds its positions; later the first losing exit trips the kill switch (a loss
    # above 25000 x 0.000001), which halts the day and flattens: more exits, no more alerts
    home = _alerting_home(tmp_path / "home", hooks, "DAILY_LOSS_LIMIT=0.000001", "API_RETRY_LIMIT=0")
    start, end = datetime(2011, 1, 25, 15, 10, tzinfo=UTC), datetime(2011, 1, 25, 15, 13, tzinfo=UTC)
    outages: list[_Outage] = []

    def wrap(broker: Any) -> Any:
        outages.append(_Outage(broker, start, end))
        return outages[-1]

    assert _run(home, broker_wrapper=wrap) == 0
    assert outages[0].refused > 1  # probed more than once while it lasted
    critical, routine = _delivered(hooks)
    assert Counter(_kind(t) for t in critical) == {"broker_outage": 1, "kill switch": 1}, critical
    assert routine == {"broker_resumed": 1}, routine
    status = json.loads(home.status_json.read_text())
    assert status["kill_switch"]["tripped"] is True
    # the journal lost after a day of trading: each start refuses and names why; the operator hears it once
    for path in home.state_dir.glob("journal.db*"):
        path.unlink()
    assert _run(home) == "ReconciliationRefused"
    assert _run(home) == "ReconciliationRefused"
    critical, _ = _delivered(hooks)
    assert critical["reconciliation"] == 1, critical


def test_an_outage_that_outlasts_the_day_alerts_the_outage_and_the_halt_once(
    tmp_path: Path, hooks: FakeWebhooks
) -> None:
    home = _alerting_home(tmp_path / "home", hooks, "API_RETRY_LIMIT=0")
    end = datetime(2011, 1, 25, 21, 0, tzinfo=UTC)  # to the end of the day: probed again and again
    wrapped: list[_Outage] = []

    def wrap(broker: Any) -> Any:
        wrapped.append(_Outage(broker, MID_OUTAGE_START, end))
        return wrapped[-1]

    assert _run(home, broker_wrapper=wrap) in (0, 1)
    assert wrapped[0].refused > 3
    windows = {w["strategy"]: w["status"] for w in json.loads(home.status_json.read_text())["windows"]}
    assert windows["mid"] == "halted"
    critical, routine = _delivered(hooks)
    # the outage and the halt it causes; the check after the window that could not ask the broker is the same
    # outage (entries wait for the broker and a reconciliation), not a second event
    assert critical == {"broker_outage": 1, "halted": 1}, critical
    assert routine == {}, routine  # never resumed


def test_a_failed_booking_alerts_once_across_a_restart(tmp_path: Path, hooks: FakeWebhooks) -> None:
    home = _alerting_home(tmp_path / "home", hooks)
    backup_dir = load_binding(home).backup_dir

    def break_backups_at_the_first_order(broker: Any) -> Any:
        # after boot (whose build check refuses a backup folder it cannot write), the folder is lost mid-day:
        # the pre-ingestion backup cannot be written and the booking of the first window fails
        submit = broker.submit_order

        def submit_order(request: Any) -> Any:
            if backup_dir.is_dir():
                shutil.rmtree(backup_dir)
                backup_dir.write_text("not a directory\n")
            return submit(request)

        broker.submit_order = submit_order
        return broker

    assert _run(home, broker_wrapper=break_backups_at_the_first_order) == 1
    critical, _ = _delivered(hooks)
    assert critical == {"booking_failed": 1}, critical  # the shutdown it causes is the same event
    [pd] = hooks.on("/pd")
    assert "ledger backup" in pd.body["payload"]["summary"]
    # the restart is refused at launch, naming the folder, and alerts nothing new: the operator already knows
    assert _run(home) == "BootRefused"
    critical, _ = _delivered(hooks)
    assert critical == {"booking_failed": 1}, critical


def test_backup_upload_and_rebalance_commands_alert_once(
    tmp_path: Path, hooks: FakeWebhooks, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.broker.brokers.sim_store import SimStore

    home = _alerting_home(tmp_path / "home", hooks)
    root = str(home.root)
    shutil.rmtree(home.backups_dir, ignore_errors=True)
    home.backups_dir.write_text("in the way\n")  # archives cannot be written
    assert main(["backup", "create", "--home", root]) != 0
    assert "alert sent via pagerduty" in capsys.readouterr().err
    assert main(["backup", "upload", "--home", root, "--to", "rsync://127.0.0.1:9/nothing"]) != 0
    critical, _ = _delivered(hooks)
    assert critical == {"backup_failed": 1, "backup_upload_failed": 1}, critical
    # money taken out at the broker: equity 15000 against a float of 25000 opens a breach, alerted once
    store = SimStore(
        home.state_dir / "sim_exchange.db",
        starting_cash=Decimal(25000),
        currency="USD",
        account_id="SIM-PAPER",
    )
    with store.transaction() as db:
        store.add_cash(db, Decimal(-10000))
    store.close()
    assert main(["rebalance", "check", "--home", root]) == 1
    assert main(["rebalance", "check", "--home", root]) == 1  # still open: not alerted again
    _, routine = _delivered(hooks)
    assert routine == {"rebalance": 1}, routine


def test_a_kill_switch_tripping_after_a_flatten_alerts_once(
    tmp_path: Path, hooks: FakeWebhooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.runtime import window_runner
    from tbot_bot.runtime.control import request_flatten

    # the operator flattens near the end of OPEN's holding time, when its positions are down (trading is then
    # halted for the day); the flatten's losing exits trip the kill switch, which is alerted on its own, once
    home = _alerting_home(tmp_path / "home", hooks, "DAILY_LOSS_LIMIT=0.000001")
    original = window_runner.WindowRunner._collect_fills
    asked: list[str] = []

    def flatten_after_first_fill(self: Any) -> None:
        original(self)
        late = self.ctx.clock.now() >= datetime(2011, 1, 25, 15, 27, tzinfo=UTC)
        if not asked and late and self.ctx.open_position_count():
            asked.append(self.ctx.clock.now().isoformat())
            request_flatten(home, "cli:ops", symbol=None, strategy=None)

    monkeypatch.setattr(window_runner.WindowRunner, "_collect_fills", flatten_after_first_fill)
    assert _run(home) == 0
    status = json.loads(home.status_json.read_text())
    assert asked and status["kill_switch"]["tripped"] is True
    critical, _ = _delivered(hooks)
    assert critical == {"kill_switch": 1}, critical
    [pd] = hooks.on("/pd")
    assert "trading was already halted: flatten requested by cli:ops" in pd.body["payload"]["summary"]


def test_a_stale_feed_alerts_once_and_planned_maintenance_not_at_all(
    tmp_path: Path, hooks: FakeWebhooks
) -> None:
    from broker_faults import Faults, at

    # MID's feed is silent for four minutes (MARKET_DATA_STALE_SECONDS=180 of replay time), then comes back
    home = _alerting_home(tmp_path / "stale", hooks)
    assert _run(home, broker_wrapper=lambda b: Faults(b, gap=(at(15, 38), at(15, 42)))) == 0
    critical, routine = _delivered(hooks)
    assert critical == {"market_data_stale": 1} and routine == {}, (critical, routine)
    # the broker away inside its maintenance window (10:40-10:43 New York): a planned pause, no page, no "resumed"
    hooks.clear()
    home = _alerting_home(tmp_path / "maintenance", hooks, "BROKER_MAINTENANCE_WINDOW=10:40-10:43")
    assert _run(home, broker_wrapper=lambda b: Faults(b, down=(at(15, 40), at(15, 43)))) == 0
    assert _delivered(hooks) == ({}, {})
    # the same three minutes outside any maintenance window: the outage and its end, once each
    hooks.clear()
    home = _alerting_home(tmp_path / "outage", hooks, "API_RETRY_LIMIT=0")
    assert _run(home, broker_wrapper=lambda b: Faults(b, down=(at(15, 40), at(15, 43)))) == 0
    assert _delivered(hooks) == ({"broker_outage": 1}, {"broker_resumed": 1})
