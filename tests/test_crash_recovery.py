"""Crash recovery: a replay session SIGKILLed at each dangerous point, then restarted, books exactly what an
uninterrupted run books (same FITIDs and amounts), and the sim exchange never holds a duplicate order."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from integration_test_runner import ledger_rows, provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.support.path_resolver import BotHome

_CACHE: dict[str, object] = {}


def _start(home: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TBOT_CRASH_AT"}
    if crash_at:
        env["TBOT_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home), "--replay", DEMO_DAY.isoformat()],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _orders(home: Path) -> list[str]:
    with sqlite3.connect(home / "storage" / "state" / "sim_exchange.db") as conn:
        return [
            str(r[0]) for r in conn.execute("SELECT client_order_id FROM orders ORDER BY client_order_id")
        ]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "pristine"
    provision_demo_home(root)
    return root


@pytest.fixture(scope="module")
def baseline(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[tuple[str, str, int, int]], list[str]]:
    home = tmp_path_factory.mktemp("crash") / "baseline"
    shutil.copytree(pristine, home)
    r = _start(home, None)
    assert r.returncode == 0, r.stderr
    return ledger_rows(BotHome(home)), _orders(home), _denials(home)


def _denials(home: Path) -> tuple[int, dict[str, dict[str, int]]]:
    """The day's summary: its denial count and the denials by filter (kept across a restart of the day)."""
    import json

    (summary,) = (home / "output").glob(f"*/summaries/daily_summary_{DEMO_DAY}.json")
    doc = json.loads(summary.read_text())
    return doc["totals"]["denials"], doc["denials_by_filter"]


@pytest.mark.parametrize(
    "crash_at",
    [
        "after_journal",  # intent journaled, not yet sent
        "after_send",  # sent, fill not yet recorded
        "before_ingest",  # fills recorded, ledger not yet written
        "mid_ingest",  # inside the ledger transaction, before COMMIT
        "monitoring:3",  # a position open, in the middle of monitoring
    ],
)
def test_sigkill_then_restart_books_the_same_ledger(
    crash_at: str, pristine: Path, baseline, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    shutil.copytree(pristine, home)
    crashed = _start(home, crash_at)
    assert crashed.returncode == -signal.SIGKILL, (
        f"expected a SIGKILL at {crash_at}: rc={crashed.returncode} {crashed.stderr[-2000:]}"
    )
    restarted = _start(home, None)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    rows, orders, denials = baseline
    assert denials[0] > 0  # the demo day denies some entries: what a restart must not forget
    assert _denials(home) == denials
    assert ledger_rows(BotHome(home)) == rows
    assert _orders(home) == orders
    assert len(orders) == len(set(orders))
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_verify import verify_ledger

    assert verify_ledger(load_binding(BotHome(home)).ledger_path) == []
