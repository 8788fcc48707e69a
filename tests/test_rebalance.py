"""Float from the accounting API and the rebalance notifier, through the real supervisor (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fakes.accounting_server import FakeAccountingServer
from integration_test_runner import provision_demo_home, unmark_booked

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.accounting.acct_client import AccountingClient, AcctApiConfig
from tbot_bot.accounting.float_bot import session_float
from tbot_bot.accounting.float_ledger import broker_current_float
from tbot_bot.accounting.ledger_notice import notices
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.broker.brokers.sim_store import SimStore
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.reporting.rebalance_notifier import assess, read_state
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import BotHome

REBALANCE_PATH = "/v1/bots/TB01/rebalance-requests"


@pytest.fixture
def acct() -> Iterator[FakeAccountingServer]:
    with FakeAccountingServer(float_amount="25000.00") as srv:
        yield srv
        srv.wait_idle()


def _home(
    tmp_path: Path, srv: FakeAccountingServer | None, *, broker_cash: str | None = None, **config: str
) -> BotHome:
    home = provision_demo_home(tmp_path / "home")  # float ledger: 25,000
    if config:
        from tbot_bot.config.settings_bot import update_env_values

        update_env_values(home, config, actor="test")
    if srv is not None:
        save_secret_json(
            home, "acct_api_credentials", {"ACCT_API_URL": srv.url, "ACCT_API_TOKEN": "test-token"}
        )
    if broker_cash is not None:
        # the broker holds less than the accounting system's target: money the firm has not wired yet
        SimStore(
            home.state_dir / "sim_exchange.db",
            starting_cash=Decimal(broker_cash),
            currency="USD",
            account_id="SIM-PAPER",
        )
    return home


def _log_lines(home: BotHome) -> list[dict]:  # type: ignore[type-arg]
    path = home.logs_dir(load_binding(home).scope) / "rebalance_request.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _strategy_log(home: BotHome) -> str:
    logs = home.logs_dir(load_binding(home).scope)
    return "".join(p.read_text() for p in sorted(logs.glob("*.log")))


def test_forced_float_deviation_gives_one_post_one_log_line_one_audit_entry(
    tmp_path: Path, acct: FakeAccountingServer
) -> None:
    home = _home(tmp_path, acct, broker_cash="20000")  # -20 % against a 10 % band
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    # the check ran at every interval through three windows and once after the session: one breach, one request
    assert acct.count("POST", REBALANCE_PATH) == 1
    [request] = acct.rebalance_requests
    assert request["bot_id"] == "TB01" and request["target_float"] == "25000.00"
    assert Decimal(request["actual"]["broker_equity"]) == Decimal("20000")
    assert request["deviation"] == "-0.200000" and request["identity"]["ENTITY_CODE"] == "RGL"
    [line] = _log_lines(home)
    assert (line["event"], line["posted"], line["request_id"]) == ("rebalance_requested", True, "RB-1")
    binding = load_binding(home)
    [notice] = notices(binding.ledger_path, "REBALANCE-")
    assert notice["memo"]["NOTICETYPE"] == "REBALANCE_REQUEST" and notice["memo"]["REQUESTID"] == "RB-1"
    assert verify_ledger(binding.ledger_path) == []  # a memo-only row keeps the audit chain valid
    # REBALANCE_PAUSE_ENTRIES=true: every signal of the day was refused, exits unaffected (nothing to exit)
    logs = _strategy_log(home)
    assert "risk:entries_paused" in logs and '"entry_order"' not in logs
    assert read_state(home)["open"]["request_id"] == "RB-1"
    # a second run of the same day (a restart) still sends nothing new and keeps entries paused
    unmark_booked(home, DEMO_DAY)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert acct.count("POST", REBALANCE_PATH) == 1 and len(_log_lines(home)) == 1


def test_api_float_is_the_session_float_and_a_disagreement_is_injected_once(
    tmp_path: Path, acct: FakeAccountingServer
) -> None:
    acct.set_float("30000.00", "F2")
    home = _home(tmp_path, acct, broker_cash="30000", STRATEGY_OVERRIDE="open")
    acct.as_of = datetime(2026, 12, 1, 9, tzinfo=UTC)  # a real API stamps its assignment with its own clock
    binding = load_binding(home)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert broker_current_float(binding.float_ledger_path) == Decimal("30000")
    # the replayed day's books: the injection is dated at that session's open, not the API's (2026) time
    import sqlite3

    from tbot_bot.market_time import session_bounds

    with sqlite3.connect(f"file:{binding.ledger_path}?mode=ro", uri=True) as conn:
        (posted,) = conn.execute("SELECT dtposted FROM transactions WHERE fitid = 'FLOAT-API-F2'").fetchone()
    opening = session_bounds(DEMO_DAY, "XNYS")
    assert opening is not None and posted == opening[0].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    logs = _strategy_log(home)
    assert "float_disagreement" in logs and "FLOAT-API-F2" in logs and "float_from_api" in logs
    assert acct.count("POST", REBALANCE_PATH) == 0  # equity 30,000 = target: no breach
    # after the session the ledger was pushed to the accounting system (accounting sync), every FITID once
    import sqlite3

    with sqlite3.connect(f"file:{binding.ledger_path}?mode=ro", uri=True) as conn:
        fitids = [r[0] for r in conn.execute("SELECT fitid FROM transactions ORDER BY id")]
    assert fitids and list(acct.transactions) == fitids
    assert "accounting_synced" in logs
    assert verify_ledger(binding.float_ledger_path) == []
    # the same assignment again: no second injection
    client = AccountingClient(AcctApiConfig(acct.url, "test-token", 1.0), binding.identity)
    again = session_float(home, binding, client, now=acct.as_of, backup_keep=5)
    assert (again.amount, again.source) == (Decimal("30000.00"), "accounting_api")
    assert [n.event for n in again.notices] == ["float_from_api"]


def test_api_down_uses_the_last_known_float_and_says_so(tmp_path: Path, acct: FakeAccountingServer) -> None:
    home = _home(tmp_path, acct)
    binding = load_binding(home)
    acct.inject("GET", "/v1/bots/TB01/float", "status", status=503, times=99)
    client = AccountingClient(
        AcctApiConfig(acct.url, "test-token", 1.0),
        binding.identity,
        retry=RetryPolicy(retries=2, sleep=lambda s: None),
    )
    result = session_float(home, binding, client, now=acct.as_of, backup_keep=5)
    assert (result.amount, result.source) == (Decimal("25000"), "last_known")
    [notice] = result.notices
    assert notice.event == "float_api_unavailable" and notice.level == "warning"
    assert "HTTP 503" in notice.message and "last known float 25000" in notice.message
    assert acct.count("GET", "/v1/bots/TB01/float") == 3


def test_without_credentials_the_float_ledger_decides(tmp_path: Path) -> None:
    home = _home(tmp_path, None)
    binding = load_binding(home)
    result = session_float(home, binding, None, now=binding_now(), backup_keep=5)
    assert (result.amount, result.source, result.notices) == (Decimal("25000"), "float_ledger", ())


def binding_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2011, 1, 10, 14, 0, tzinfo=UTC)


def test_breach_resolves_when_back_inside_and_a_failed_post_is_retried_with_the_same_key(
    tmp_path: Path, acct: FakeAccountingServer
) -> None:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.reporting.rebalance_notifier import RebalanceMonitor

    home = _home(tmp_path, acct)
    binding = load_binding(home)
    equity = {"value": Decimal("21000")}
    events: list[tuple[str, bool]] = []
    client = AccountingClient(
        AcctApiConfig(acct.url, "test-token", 1.0),
        binding.identity,
        retry=RetryPolicy(retries=0, sleep=lambda s: None),
    )
    monitor = RebalanceMonitor(
        load_settings(home), home, binding, session_float=Decimal(25000), equity=lambda: equity["value"],
        client=client, log_dir=tmp_path / "logs", now=binding_now, on_breach=lambda m, o: events.append((m, o)),
    )  # fmt: skip
    acct.inject("POST", REBALANCE_PATH, "status", status=503)
    assert monitor.check("interval").breached  # type: ignore[union-attr]
    assert read_state(home)["open"]["posted"] is False
    monitor.check("interval")  # retried with the same key
    keys = {r.headers["idempotency-key"] for r in acct.requests if r.method == "POST"}
    assert len(keys) == 1 and len(acct.rebalance_requests) == 1
    equity["value"] = Decimal("24000")  # -4 %: inside the band
    monitor.check("after_session")
    assert [o for _, o in events] == [True, False]
    assert [
        json.loads(x)["event"] for x in (tmp_path / "logs" / "rebalance_request.log").read_text().splitlines()
    ] == [
        "rebalance_requested",
        "rebalance_posted",
        "rebalance_resolved",
    ]
    assert [n["memo"]["NOTICETYPE"] for n in notices(binding.ledger_path, "REBALANCE-")] == [
        "REBALANCE_REQUEST",
        "REBALANCE_RESOLVED",
    ]
    assert read_state(home)["open"] is None


def test_assess_takes_the_larger_deviation_and_the_band_is_exclusive() -> None:
    a = assess(Decimal(1000), Decimal(1050), Decimal(880), Decimal("0.10"))
    assert (a.deviation, a.basis, a.breached) == (Decimal("-0.120000"), "ledger_cash", True)
    edge = assess(Decimal(1000), Decimal(1100), None, Decimal("0.10"))
    assert (edge.deviation, edge.breached) == (Decimal("0.100000"), False)
    assert assess(Decimal(1000), None, None, Decimal("0.1")).breached is False


def test_rebalance_keys_must_agree() -> None:
    from helpers import make_settings

    from tbot_bot.errors import ConfigError

    with pytest.raises(ConfigError, match="REBALANCE_TRIGGER_PCT=5.0 .*REBALANCE_THRESHOLD=0.1"):
        make_settings(REBALANCE_TRIGGER_PCT=5)
    assert make_settings(REBALANCE_TRIGGER_PCT=20, REBALANCE_THRESHOLD="0.2").REBALANCE_THRESHOLD == 0.2


def test_cli_check_requests_once_and_status_shows_the_breach(
    provisioned_home: Path, acct: FakeAccountingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from rigd_tbot.cli import main

    home = BotHome(provisioned_home)  # float 2,500
    acct.set_float("2500.00", "F1")
    save_secret_json(home, "acct_api_credentials", {"ACCT_API_URL": acct.url, "ACCT_API_TOKEN": "test-token"})
    SimStore(
        home.state_dir / "sim_exchange.db",
        starting_cash=Decimal("3000"),
        currency="USD",
        account_id="SIM-PAPER",
    )
    assert main(["rebalance", "status", "--home", str(provisioned_home)]) == 0
    assert "last check  never" in capsys.readouterr().out
    assert main(["rebalance", "check", "--home", str(provisioned_home)]) == 1
    out = capsys.readouterr().out
    assert "breach opened: float deviation 0.200000 (broker_equity)" in out and "request RB-1" in out
    assert main(["rebalance", "check", "--home", str(provisioned_home)]) == 1
    assert main(["rebalance", "status", "--home", str(provisioned_home)]) == 1
    out = capsys.readouterr().out
    assert "BREACH      TB01-" in out and "deviation 20.00% (broker_equity), band ±10.00%" in out
    assert acct.count("POST", REBALANCE_PATH) == 1 and len(_log_lines(home)) == 1


def test_live_daemon_checks_on_the_interval_between_windows_too() -> None:
    from datetime import UTC, datetime, timedelta

    from helpers import make_settings

    from tbot_bot.runtime.main import rebalance_trigger

    trigger = rebalance_trigger(make_settings(REBALANCE_CHECK_INTERVAL=900))
    assert trigger is not None
    start = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
    first = trigger.get_next_fire_time(None, start)
    assert trigger.get_next_fire_time(first, first) - first == timedelta(seconds=900)
    assert rebalance_trigger(make_settings(REBALANCE_ENABLED="false")) is None


def test_a_float_assigned_in_a_closed_month_is_posted_in_the_open_one_in_both_ledgers(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The accountant raised the float on Oct 30 and closed October before the next session: the injection is
    dated after the close (it stopped the start, and the float ledger alone had it: two ledgers that disagreed
    while `ledger verify` said OK)."""
    import sqlite3

    from rigd_tbot.cli import main
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.accounting.acct_client import FloatAssignment
    from tbot_bot.accounting.float_bot import inject_float_difference
    from tbot_bot.support.path_resolver import BotHome

    home = BotHome(provisioned_home)
    binding = load_binding(home)
    LedgerWriter.for_home(home, binding.ledger_path, binding, 5).close_period("2026-10")
    before = broker_current_float(binding.float_ledger_path)
    assignment = FloatAssignment(before + 5000, "USD", datetime(2026, 10, 30, 21, tzinfo=UTC), "F9")
    now = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    assert inject_float_difference(home, binding, 5, assignment, before, actor="test", now=now)
    for path in (binding.ledger_path, binding.float_ledger_path):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            (posted,) = conn.execute(
                "SELECT dtposted FROM transactions WHERE fitid = 'FLOAT-API-F9'"
            ).fetchone()
        assert posted.startswith("2026-11-01T00:00:00"), (path.name, posted)
    assert broker_current_float(binding.float_ledger_path) == before + 5000
    capsys.readouterr()
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0
    # a float movement in one ledger only is named by verify (what the old order of writes could leave)
    from tbot_bot.accounting.float_injection import float_movement

    stray = float_movement(
        Decimal(1), currency_code="USD", posted_at=now, fitid="FLOAT-API-F10", returned=False
    )
    LedgerWriter.for_home(home, binding.float_ledger_path, binding, 5).ingest([stray], actor="test")
    assert main(["ledger", "verify", "--home", str(home.root)]) == 1
    assert "float movement FLOAT-API-F10 is in" in capsys.readouterr().out


def test_a_rebalance_pause_shows_in_status_and_ends_when_another_check_closes_the_breach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The broker holds 30,000 against a float of 25,000: the breach pauses new entries, but status.json said
    nothing of it (only `tbot pause` showed); and a breach closed by `tbot rebalance check` in another process left
    the running supervisor paused until a restart."""
    from rigd_tbot.cli import main
    from tbot_bot.reporting.rebalance_notifier import RebalanceMonitor
    from tbot_bot.runtime.status_bot import read_status

    home = _home(tmp_path, None, broker_cash="30000", REBALANCE_CHECK_INTERVAL="600")
    seen: dict[str, object] = {}
    real = RebalanceMonitor.open_breach

    def open_breach(self):  # type: ignore[no-untyped-def]
        held = real.fget(self)  # type: ignore[attr-defined]
        now = self._now()
        if (
            now.hour < 17 and held is not None
        ):  # what status.json says while the breach is open (the last look)
            seen["paused"] = (read_status(home.status_json) or {}).get("rebalance_pause")
        # from 17:00 UTC the breach is closed by another process (`tbot rebalance check`)
        return None if now.hour >= 17 else held

    monkeypatch.setattr(RebalanceMonitor, "open_breach", property(open_breach))
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert str(seen["paused"]).startswith("rebalance: ")
    status = read_status(home.status_json) or {}
    assert status["rebalance_pause"] is None  # lifted by the supervisor that held it
    assert "closed by another check" in _strategy_log(home)
    # while it held, status said so (and `tbot status` prints it as a condition)
    status["rebalance_pause"] = "rebalance: breach TB01-x open"
    home.status_json.write_text(json.dumps(status))
    assert main(["status", "--home", str(home.root)]) in (0, 1)
    assert "new entries paused: rebalance: breach TB01-x open" in capsys.readouterr().out
