"""A process killed (SIGKILL) in the middle of an ingest leaves all of the batch or none of it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tbot_bot.accounting.ledger_schema import create_ledger
from tbot_bot.accounting.ledger_verify import verify_ledger

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from decimal import Decimal
    from pathlib import Path

    import tbot_bot.accounting.accounting_api as api
    from tbot_bot.accounting.ledger_entry import LedgerEntry, LedgerSplit

    ledger, backups, mode, batch_size = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

    def batch(n):
        return [
            LedgerEntry(f"B{n}-{i}", "BUY", datetime(2026, 11, 24, 15, tzinfo=UTC), "USD",
                        (LedgerSplit("1110", debit=Decimal("10.5")), LedgerSplit("1030", credit=Decimal("10.5"))))
            for i in range(batch_size)
        ]

    if mode == "hang_before_commit":
        original = api.append_prepared
        def append_then_hang(*args, **kwargs):
            original(*args, **kwargs)
            print("ROWS_INSERTED_NOT_COMMITTED", flush=True)
            time.sleep(60)
        api.append_prepared = append_then_hang
    writer = api.LedgerWriter(ledger, backups, 3)
    print("READY", flush=True)
    for n in range(1, 10_000):
        writer.ingest(batch(n))
    """
)


def run_child(tmp_path: Path, ledger: Path, mode: str, batch_size: int) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(ledger), str(tmp_path / "bk"), mode, str(batch_size)],
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if got.strip() == line:
            return
        if not got and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"child never printed {line}")


def tx_count(ledger: Path) -> int:
    conn = sqlite3.connect(ledger)
    try:
        return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])
    finally:
        conn.close()


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()


def test_kill_after_rows_inserted_but_before_commit_leaves_none_of_the_batch(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    create_ledger(ledger, currency_code="USD")
    proc = run_child(tmp_path, ledger, "hang_before_commit", 200)
    wait_for(proc, "ROWS_INSERTED_NOT_COMMITTED")
    kill(proc)
    assert tx_count(ledger) == 0
    assert verify_ledger(ledger) == []


def test_kill_at_an_arbitrary_moment_leaves_whole_batches_only(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    create_ledger(ledger, currency_code="USD")
    batch_size = 97
    proc = run_child(tmp_path, ledger, "normal", batch_size)
    wait_for(proc, "READY")
    deadline = time.monotonic() + 60
    while tx_count(ledger) == 0 and time.monotonic() < deadline:  # at least one batch committed
        time.sleep(0.05)
    time.sleep(0.3)  # then kill wherever the child is: building, backing up, inserting or committing
    kill(proc)
    written = tx_count(ledger)
    assert written > 0 and written % batch_size == 0
    assert verify_ledger(ledger) == []
