"""A change already made is reported as made when the system log (SYSTEM_LOGS.db) cannot record it: a posted
correction, a user created and a flatten each read as failed ("locked ... start again", "Configuration error"),
and the re-run was refused as already done, with no system-log row ever written (a CLI review)."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.core import users as users_mod


def test_a_correction_and_a_new_user_stand_when_the_system_log_is_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    home = provision_demo_home(tmp_path / "home")
    logs = home.core_db("SYSTEM_LOGS")
    logs.write_bytes(b"not a database" * 100)
    monkeypatch.setattr("sys.stdin", io.StringIO("bobs-password-1\n"))
    assert main(["users", "add", "--home", str(home.root), "--username", "bob", "--role", "viewer"]) == 0
    out, err = capsys.readouterr()
    assert "user bob created with role viewer" in out
    assert "warning: done, but the system log (SYSTEM_LOGS.db) did not record it (user_added)" in err
    assert users_mod.get_user(home, "bob") is not None
    ledger = load_binding(home).ledger_path
    with sqlite3.connect(ledger) as conn:
        (fitid,) = conn.execute("SELECT fitid FROM transactions ORDER BY id LIMIT 1").fetchone()
    argv = ["ledger", "correct", "--home", str(home.root), "--fitid", fitid, "--amount", "24000",
            "--reason", "float was 24000", "--yes"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "did not record it (correction)" in err
    with sqlite3.connect(ledger) as conn:
        assert conn.execute(
            "SELECT COUNT(*) FROM transactions WHERE fitid LIKE ?", (f"{fitid}-%",)
        ).fetchone()[0]
