"""A backup is a whole bot (issue 23): three replayed January days, a backup, the home lost, a restore into an
empty home with the key file (keys and identity come back from the operator's key backup and the accounting
system), then a fourth day that continues every record; kills during create and restore leave nothing that
looks whole; the manifest lists every file with its size and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from integration_test_runner import run_session

from rigd_tbot.cli import main
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.reporting.ledger_trades import read_trades
from tbot_bot.support.path_resolver import BotHome

DAYS = [date(2011, 1, 4), date(2011, 1, 5), date(2011, 1, 6)]
FOURTH = date(2011, 1, 7)


def _journal_ids(home: BotHome) -> list[str]:
    conn = sqlite3.connect(f"file:{home.state_dir / 'journal.db'}?mode=ro", uri=True)
    try:
        return [str(r[0]) for r in conn.execute("SELECT client_order_id FROM intents")]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def three_days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home after three replayed days and a `tbot backup create`; the archive and key kept apart."""
    from tbot_bot.support.provision import ProvisionRequest, provision

    base = tmp_path_factory.mktemp("whole")
    home = BotHome(base / "home")
    provision(
        home,
        ProvisionRequest(
            broker="sim", entity="RGL", jurisdiction="USA", account="main", bot_id="TB01", float_amount="25000",
            config_overrides={"STRAT_CLOSE_ENABLED": "false"},
        ),
        now=datetime(2011, 1, 3, 12, tzinfo=UTC),
    )  # fmt: skip
    for day in DAYS:
        assert run_session(home, day) == 0, day
    assert main(["backup", "create", "--home", str(home.root)]) == 0
    (archive,) = sorted(home.backups_dir.glob("tbot_backup_*.tar.gz.enc"))
    safe = base / "offsite"
    safe.mkdir()
    shutil.copy2(archive, safe / archive.name)
    shutil.copy2(home.key_file("backup"), safe / "backup.key")
    # the operator's key backup (README: back up storage/keys/) and the accounting system's identity
    shutil.copytree(home.keys_dir, safe / "keys")
    shutil.copytree(home.secrets_dir, safe / "secrets")
    return {
        "home": home,
        "archive": safe / archive.name,
        "key": safe / "backup.key",
        "safe": safe,
        "ids": _journal_ids(home),
        "trades": read_trades(load_binding(home).ledger_path),
    }


def _fresh_home(root: Path, safe: Path) -> BotHome:
    home = BotHome(root)
    shutil.copytree(safe / "keys", home.keys_dir)
    shutil.copytree(safe / "secrets", home.secrets_dir)
    return home


def test_manifest_lists_every_file_with_size_and_sha256_and_no_key_or_secret(
    three_days: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.reporting.auto_backup import read_manifest

    home = three_days["home"]
    manifest = read_manifest(three_days["archive"], home)
    files = manifest["files"]
    scope = load_binding(home).scope
    for expected in (
        "storage/state/journal.db",
        ".env_bot.enc",
        "storage/databases/LEDGER_STATUS.db",
        "storage/databases/SYSTEM_USERS.db",
        f"output/{scope}/trades/{scope}_BOT_trade_history.json",
        f"output/{scope}/summaries/daily_summary_2011-01-05.json",
    ):
        assert expected in files, expected
    assert files["storage/state/journal.db"]["kind"] == "sqlite"
    assert files[".env_bot.enc"]["kind"] == "config"
    assert any(n.endswith("_BOT_ledger.db") for n in files)
    assert not any(n.startswith(("storage/keys/", "storage/secrets/", "backups/")) for n in files)
    assert not any(n.endswith(("-wal", "-shm", ".bak.db")) for n in files)
    log = home.logs_dir(scope) / "open.log"
    entry = files[home.relative(log)]
    # a plain file is archived byte for byte: its size and digest are the file's own
    assert entry["size"] == log.stat().st_size
    assert entry["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["backup", "list", "--verbose", "--home", str(home.root)]) == 0
    out = capsys.readouterr().out
    assert "storage/state/journal.db" in out and entry["sha256"] in out


def test_restore_into_an_empty_home_continues_every_record(
    three_days: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _fresh_home(tmp_path / "restored", three_days["safe"])
    args = ["--archive", str(three_days["archive"]), "--key-file", str(three_days["key"])]
    assert main(["backup", "restore", *args, "--home", str(home.root)]) == 0
    assert main(["check", "--replay", FOURTH.isoformat(), "--home", str(home.root)]) == 0
    binding = load_binding(home)
    assert read_trades(binding.ledger_path) == three_days["trades"]
    assert run_session(home, FOURTH) == 0
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0

    ledger = read_trades(binding.ledger_path)
    history = json.loads(
        (home.trades_dir(binding.scope) / f"{binding.scope}_BOT_trade_history.json").read_text()
    )
    days = {t.session for t in ledger}
    assert {d.isoformat() for d in (*DAYS, FOURTH)} >= days and len(days) == 4, days
    # the trade history is the ledger's round trips, every day, to the last 1/10,000
    assert sorted((r["entry_time"], r["ticker"], r["PnL"], r["fees"]) for r in history) == sorted(
        (t.as_row()["entry_time"], t.ticker, t.as_row()["pnl"], t.as_row()["fees"]) for t in ledger
    )
    index = json.loads((home.summaries_dir(binding.scope) / "daily_summary_index.json").read_text())
    assert [s["session_date"] for s in index["sessions"]] == [d.isoformat() for d in (*DAYS, FOURTH)]
    ids = _journal_ids(home)
    assert len(ids) == len(set(ids))
    assert set(three_days["ids"]) < set(ids)  # the journal continued, no id reused
    assert all(FOURTH.isoformat().replace("-", "") in i for i in set(ids) - set(three_days["ids"]))


def _tbot(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TBOT_CRASH_AT"}
    if crash_at:
        env["TBOT_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "rigd_tbot", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_kill_during_create_or_restore_leaves_nothing_that_looks_whole(
    three_days: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = three_days["home"]
    before = sorted(home.backups_dir.iterdir())
    killed = _tbot("backup", "create", "--home", str(home.root), crash_at="backup_create")
    assert killed.returncode == -9, killed.stderr
    assert sorted(home.backups_dir.iterdir()) == before  # no archive, not even a partial one

    target = _fresh_home(tmp_path / "half", three_days["safe"])
    args = ["--archive", str(three_days["archive"]), "--key-file", str(three_days["key"])]
    killed = _tbot("backup", "restore", *args, "--home", str(target.root), crash_at="restore_file:5")
    assert killed.returncode == -9, killed.stderr
    capsys.readouterr()
    assert main(["check", "--replay", FOURTH.isoformat(), "--home", str(target.root)]) == 2
    assert "did not finish" in capsys.readouterr().err
    assert main(["backup", "restore", *args, "--home", str(target.root)]) == 0
    assert main(["check", "--replay", FOURTH.isoformat(), "--home", str(target.root)]) == 0
    assert read_trades(load_binding(target).ledger_path) == three_days["trades"]
