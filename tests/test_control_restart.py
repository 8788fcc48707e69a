"""Control files and restarts mean what they say (issue 10 items 3 and 4): a stop request belongs to the run it
stops, `tbot stop`/`tbot confirm` refuse what cannot happen, status.json is true after a re-run, and temp files
of interrupted atomic writes are removed at start and never archived."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.runtime.control import SupervisorLock, request_stop
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome


def _status(home: BotHome) -> dict[str, Any]:
    return json.loads(home.status_json.read_text())


def _journal_times(home: BotHome, strategy: str) -> tuple[str | None, str | None]:
    journal = sqlite3.connect(home.state_dir / "journal.db")
    try:
        row = journal.execute(
            "SELECT actual_start, actual_end FROM windows WHERE strategy = ? AND session_date = ?",
            (strategy, DEMO_DAY.isoformat()),
        ).fetchone()
    finally:
        journal.close()
    return (row[0], row[1]) if row else (None, None)


def _window_view(status: dict[str, Any]) -> list[tuple[str, str, str | None, str | None]]:
    return [(w["strategy"], w["status"], w["actual_start"], w["actual_end"]) for w in status["windows"]]


class _Spy:
    """Delegates to the real sim broker; runs a hook before the named call."""

    def __init__(self, inner: Any, method: str, hook: Any) -> None:
        self._inner, self._method, self._hook = inner, method, hook

    def __getattr__(self, item: str) -> Any:
        target = getattr(self._inner, item)
        if item != self._method:
            return target

        def call(*a: Any, **k: Any) -> Any:
            self._hook()
            return target(*a, **k)

        return call


def test_stale_stop_and_debris_are_cleared(tmp_path: Path) -> None:
    home = provision_demo_home(tmp_path / "home")
    # a stop requested while nothing ran, an hour ago
    request_stop(home, "cli:someone")
    hour_ago = time.time() - 3600
    os.utime(home.control_stop, (hour_ago, hour_ago))
    # temp files of atomic writes killed mid-way (status, trade history, an old one at the home's top)
    trades = home.trades_dir("RGL_USA_SIM_TB01")
    trades.mkdir(parents=True, exist_ok=True)
    debris = [
        home.output_dir / ".status.json.k2j4_9xa",
        trades / ".RGL_USA_SIM_TB01_BOT_trade_history.csv.a1b2c3d4",
        home.root / ".env_bot.enc.zz99yy88",
    ]
    for p in debris:
        p.write_text("half-written")
    os.utime(debris[-1], (hour_ago, hour_ago))
    fresh_elsewhere = home.control_dir / ".control_start.txt.qq11ww22"  # may be the web mid-write: kept
    fresh_elsewhere.write_text("x")

    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    first = _status(home)
    assert first["message"] == "session complete", first["message"]
    assert [w[1] for w in _window_view(first)] == ["done", "done", "done"]
    assert all(w[2] and w[3] for w in _window_view(first))
    assert not home.control_stop.exists()
    assert len(list(home.control_dir.glob("control_stop.*.stale"))) == 1
    assert not any(p.exists() for p in debris) and fresh_elsewhere.exists()
    logs = "".join(p.read_text() for p in home.logs_dir("RGL_USA_SIM_TB01").glob("*.log"))
    assert "stale_stop_ignored" in logs and ".status.json.k2j4_9xa" in logs


def test_a_stop_file_is_consumed_by_the_run_it_stops(tmp_path: Path) -> None:
    home = provision_demo_home(tmp_path / "home")
    asked: list[bool] = []

    def stop_once() -> None:
        if not asked:
            asked.append(True)
            request_stop(home, "test")

    sup = Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Spy(b, "submit_order", stop_once))
    assert sup.run() == 0
    assert _status(home)["message"] == "stopped by request"
    # the window the stop interrupted reads `stopped`, with the journal's start and the time it stopped
    stopped = [w for w in _window_view(_status(home)) if w[1] == "stopped"]
    assert len(stopped) == 1 and stopped[0][2] and stopped[0][3]
    assert stopped[0][2:] == _journal_times(home, stopped[0][0])
    assert not home.control_stop.exists()
    assert len(list(home.control_dir.glob("control_stop.*.done"))) == 1
    # the next start is not stopped by it: it finishes the day
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert _status(home)["message"] == "session complete"
    assert {w["status"] for w in _status(home)["windows"]} == {"done"}


def test_expired_confirmations_leave_the_status(tmp_path: Path) -> None:
    home = provision_demo_home(tmp_path / "home")
    from tbot_bot.config.settings_bot import update_env_values

    update_env_values(home, {"TRADE_CONFIRMATION_REQUIRED": "true"}, actor="test")
    seen: list[set[str]] = []

    def record() -> None:
        data = json.loads(home.status_json.read_text()) if home.status_json.exists() else {}
        seen.append({p["client_order_id"] for p in data.get("pending_confirmations") or []})

    sup = Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Spy(b, "get_bars", record))
    assert sup.run() == 0
    waited = set().union(*seen)
    assert waited, "no order ever waited for confirmation"
    assert _status(home)["pending_confirmations"] == []
    # `tbot confirm` of one of them now: expired, exit 1 naming it
    expired_id = sorted(waited)[0]
    assert main(["confirm", expired_id, "--home", str(home.root)]) == 1


def test_stop_and_confirm_refuse_what_cannot_happen(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = BotHome(provisioned_home)
    assert main(["stop", "--home", str(home.root)]) == 1
    assert "no supervisor is running" in capsys.readouterr().err
    assert not home.control_stop.exists()
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-25")
    try:
        assert main(["stop", "--home", str(home.root)]) == 0
        assert f"pid {os.getpid()}" in capsys.readouterr().out
        assert home.control_stop.exists()
    finally:
        lock.release()

    assert main(["confirm", "TB01-20110125-open-SPY-1", "--home", str(home.root)]) == 1
    assert "unknown order id TB01-20110125-open-SPY-1" in capsys.readouterr().err
    pending = [
        {"client_order_id": "TB01-A-1", "symbol": "SPY", "strategy": "open", "expires_at": "2011-01-25T15:00:00+00:00"},
        {"client_order_id": "TB01-B-1", "symbol": "SPY", "strategy": "mid", "expires_at": "2999-01-01T00:00:00+00:00"},
    ]  # fmt: skip
    home.status_json.write_text(json.dumps({"state": "trading", "pending_confirmations": pending}))
    assert main(["confirm", "TB01-A-1", "--home", str(home.root)]) == 1
    assert "order TB01-A-1 expired" in capsys.readouterr().err
    assert not (home.control_dir / "confirm" / "TB01-A-1").exists()
    assert main(["confirm", "TB01-B-1", "--home", str(home.root)]) == 0
    assert (home.control_dir / "confirm" / "TB01-B-1").exists()
    # a replay's window runs on the replay clock: TB01-A-1's 15:00 window is open at the replay's 14:55
    replay = {"state": "trading", "pending_confirmations": pending, "bot": {"mode": "replay"},
              "updated_at": "2011-01-25T14:55:00+00:00"}  # fmt: skip
    home.status_json.write_text(json.dumps(replay))
    assert main(["confirm", "TB01-A-1", "--home", str(home.root)]) == 0
    assert (home.control_dir / "confirm" / "TB01-A-1").exists()


def test_backup_archives_never_hold_temp_files(provisioned_home: Path) -> None:
    from datetime import UTC, datetime

    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.reporting.auto_backup import create_backup

    home = BotHome(provisioned_home)
    home.output_dir.mkdir(exist_ok=True)
    (home.output_dir / "status.json").write_text("{}")
    (home.output_dir / ".status.json.ab12cd34").write_text("half")
    (home.output_dir / ".summary.json.tmp").write_text("half")
    binding = load_binding(home)
    archive = create_backup(home, [binding.ledger_path], now=datetime(2026, 11, 24, tzinfo=UTC))
    key = home.key_file("backup").read_bytes().strip()
    with tarfile.open(fileobj=io.BytesIO(Fernet(key).decrypt(archive.read_bytes()))) as tar:
        names = tar.getnames()
    assert "output/status.json" in names
    # hidden names the archive holds on purpose (the config) are not debris; the two temp files are left out
    assert not [n for n in names if Path(n).name.startswith(".") and n not in (".env", ".env_bot.enc")], names


def _killed_atomic_write(target: Path, text: str) -> subprocess.CompletedProcess[str]:
    """A process SIGKILLed inside atomic_write_text, after its temp file is written, before the rename."""
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from tbot_bot.support import utils_bot\n"
        "utils_bot.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "utils_bot.atomic_write_text(Path(sys.argv[1]), sys.argv[2])\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(target), text], capture_output=True, timeout=60)


def test_restart_after_kill_9_shows_finished_windows_and_clears_killed_writes(tmp_path: Path) -> None:
    home = provision_demo_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if k != "TBOT_CRASH_AT"}
    # killed while booking the MID window (the day's second booking): OPEN is finished, MID is not
    crashed = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home.root), "--replay", DEMO_DAY.isoformat()],
        env={**env, "TBOT_CRASH_AT": "before_ingest:2"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    trades = home.trades_dir("RGL_USA_SIM_TB01") / "RGL_USA_SIM_TB01_BOT_trade_history.csv"
    for target in (home.status_json, trades):
        assert _killed_atomic_write(target, "half-written").returncode == -signal.SIGKILL
    debris = sorted(p for d in (home.output_dir, trades.parent) for p in d.glob(".*") if p.is_file())
    assert {p.name.rsplit(".", 1)[0] for p in debris} == {".status.json", f".{trades.name}"}

    snapshots: list[list[tuple[str, str, str | None, str | None]]] = []
    restarted = Supervisor(
        home,
        replay_day=DEMO_DAY,
        broker_wrapper=lambda b: _Spy(
            b, "get_positions", lambda: snapshots.append(_window_view(_status(home)))
        ),
    )
    assert restarted.run() == 0
    journal = sqlite3.connect(home.state_dir / "journal.db")
    try:
        row = journal.execute(
            "SELECT actual_start, actual_end FROM windows WHERE strategy = 'open' AND session_date = ?",
            (DEMO_DAY.isoformat(),),
        ).fetchone()
    finally:
        journal.close()
    # from the restarted run's first status on, OPEN is done with the times the crashed run recorded
    assert snapshots[0][0] == ("open", "done", row[0], row[1]) and row[0] and row[1]
    assert snapshots[0][1][1] in ("interrupted", "running")  # MID was cut short; it resumes
    assert [w[1] for w in _window_view(_status(home))] == ["done", "done", "done"]
    assert not any(p.exists() for p in debris)


@pytest.mark.parametrize(
    "crash_at",
    # a kill in OPEN (journal, send, monitoring), while MID is booked (before and inside the ledger
    # transaction) and in CLOSE (its entry)
    ["after_journal:1", "after_send:3", "monitoring:5", "before_ingest:2", "mid_ingest:2", "after_send:6"],
)
def test_window_times_after_a_kill_are_the_journals(tmp_path: Path, crash_at: str) -> None:
    """Issue 26: a kill inside a window (or while it is booked) does not move its start or end in status.json."""
    home = provision_demo_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if k != "TBOT_CRASH_AT"}
    crashed = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home.root), "--replay", DEMO_DAY.isoformat()],
        env={**env, "TBOT_CRASH_AT": crash_at}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    view = _window_view(_status(home))
    assert [w[1] for w in view] == ["done", "done", "done"]
    for strategy, _, start, end in view:
        assert (start, end) == _journal_times(home, strategy)
    assert (
        view[0][2] == "2011-01-25T14:30:00+00:00"
    )  # OPEN began at the 09:30 New York open, not at the restart
