"""Issue 22 points 1 and 2: positions three ways, reconciliation that fails closed, adopt / rebuild, flatten.

One replay killed mid-day (`TBOT_CRASH_AT=after_send:5`, a real SIGKILL in a subprocess) is shared; everything after
it runs in process on copies of that home against the simulated exchange.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main as tbot
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.support.path_resolver import BotHome

DAY = DEMO_DAY.isoformat()


def _start_subprocess(home: Path, crash_at: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TBOT_CRASH_AT": crash_at}
    return subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home), "--replay", DAY],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _sim(home: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(home / "storage" / "state" / "sim_exchange.db") as conn:
        return list(conn.execute(sql))


def _held(home: Path) -> dict[str, Decimal]:
    return {
        str(s): Decimal(str(q)) for s, q in _sim(home, "SELECT symbol, qty FROM positions") if Decimal(str(q))
    }


def _fitids(home: Path) -> list[str]:
    from tbot_bot.accounting.accounting_config import load_binding

    with sqlite3.connect(f"file:{load_binding(BotHome(home)).ledger_path}?mode=ro", uri=True) as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT fitid FROM transactions WHERE strategy IS NOT NULL AND fitid NOT LIKE '%-FEE'"
            )
        ]


def _run(home: Path) -> int:
    from tbot_bot.runtime.main import Supervisor

    return Supervisor(BotHome(home), replay_day=DEMO_DAY).run()


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo home whose replay was SIGKILLed right after its fifth order left (a position is held)."""
    home = tmp_path_factory.mktemp("crashed") / "home"
    provision_demo_home(home)
    r = _start_subprocess(home, "after_send:5")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert _held(home), "the crash point must leave a position at the broker"
    return home


@pytest.fixture
def home(crashed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(crashed, copy)
    return copy


def _lose_journal(home: Path, how: str) -> None:
    journal = home / "storage" / "state" / "journal.db"
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)
    if how == "delete":
        journal.unlink()
    elif how == "empty":
        journal.write_bytes(b"")
    else:  # truncated: the first page survives, the rest is gone
        journal.write_bytes(journal.read_bytes()[:1024])


@pytest.mark.parametrize("how", ["delete", "empty", "truncate"])
def test_lost_journal_refuses_the_day_then_rebuild_finishes_it(home: Path, how: str, capsys) -> None:  # type: ignore[no-untyped-def]
    from tbot_bot.errors import ConfigError

    held = _held(home)
    orders_before = _sim(home, "SELECT client_order_id FROM orders ORDER BY client_order_id")
    _lose_journal(home, how)
    with pytest.raises(ConfigError) as refused:
        _run(home)
    # the refusal names the unexplained position; no new order reached the broker
    for symbol in held:
        assert symbol in str(refused.value)
    assert _sim(home, "SELECT client_order_id FROM orders ORDER BY client_order_id") == orders_before
    status = json.loads((home / "output" / "status.json").read_text())
    assert status["state"] == "halted" and next(iter(held)) in status["message"]

    # `tbot positions` says the same and exits 1
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 1
    assert "DIFFERS" in capsys.readouterr().out

    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--rebuild-journal"]) == 0, (
        capsys.readouterr()
    )
    assert "journal rebuilt: 5 orders added" in capsys.readouterr().out

    assert _run(home) == 0
    assert _held(home) == {}
    fitids = _fitids(home)
    filled = {str(r[0]) for r in _sim(home, "SELECT DISTINCT client_order_id FROM fills")}
    assert len(fitids) == len(set(fitids)), "a fill was booked twice"
    assert set(fitids) == filled, "every fill at the broker is booked, once"
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 0
