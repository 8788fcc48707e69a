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
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from integration_test_runner import run_session
from test_backup_restore import _rewrite_manifest

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
    # every restored file is the bot's user's alone, as archived (logs, reports, .env were written 0644)
    opened = [p for p in home.root.rglob("*") if p.is_file() and p.stat().st_mode & 0o077]
    assert opened == []
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
    # what the ledger does not hold came from the journal when each row was first written, and stays
    assert all(r["signal_time"] for r in history)
    index = json.loads((home.summaries_dir(binding.scope) / "daily_summary_index.json").read_text())
    assert [s["session_date"] for s in index["sessions"]] == [d.isoformat() for d in (*DAYS, FOURTH)]
    ids = _journal_ids(home)
    assert len(ids) == len(set(ids))
    assert set(three_days["ids"]) < set(ids)  # the journal continued, no id reused
    assert all(FOURTH.isoformat().replace("-", "") in i for i in set(ids) - set(three_days["ids"]))

    # the same archive over the same bot rolls the fourth day back: what was derived from it goes too (a summary
    # or OFX of a day the ledger no longer holds would disagree with it), archived first with the rest
    fourth_files = [
        home.summaries_dir(binding.scope) / f"daily_summary_{FOURTH}.json",
        home.bot_output_dir(binding.scope) / "exports" / f"{binding.scope}_{FOURTH}.ofx",
    ]
    assert all(p.is_file() for p in fourth_files)
    capsys.readouterr()
    assert main(["backup", "restore", *args, "--home", str(home.root)]) == 0
    said = capsys.readouterr().out
    assert "archived the state it replaces first" in said
    assert all(f"removed {home.relative(p)}" in said for p in fourth_files)
    assert not any(p.exists() for p in fourth_files)
    assert read_trades(binding.ledger_path) == three_days["trades"]
    index = json.loads((home.summaries_dir(binding.scope) / "daily_summary_index.json").read_text())
    assert [s["session_date"] for s in index["sessions"]] == [d.isoformat() for d in DAYS]


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
    # nothing that writes runs in the half-restored mix (a backup of it would look whole; a user or a config change
    # would be lost by the restore run again), what reads it does
    for argv in (["backup", "create"], ["config", "set", "MAX_OPEN_POSITIONS=2"], ["rotate-key", "env"],
                 ["trades", "--rebuild"], ["ledger", "close", "--period", "2011-01"]):  # fmt: skip
        assert main([*argv, "--home", str(target.root)]) == 2, argv
        err = capsys.readouterr().err
        assert f"`tbot {argv[0]}" in err and "refused: the restore of" in err, err
        assert "did not finish" in err
    assert not target.backups_dir.exists() or not list(target.backups_dir.glob("*.enc"))
    for argv in (["ledger", "verify"], ["positions", "--replay", FOURTH.isoformat()], ["db", "verify"],
                 ["optimize", "list"], ["secrets", "list"], ["config", "history"]):  # fmt: skip
        main([*argv, "--home", str(target.root)])
        assert "refused" not in capsys.readouterr().err, argv  # what only reads still runs
    assert main(["backup", "restore", *args, "--home", str(target.root)]) == 0
    assert main(["check", "--replay", FOURTH.isoformat(), "--home", str(target.root)]) == 0
    assert read_trades(load_binding(target).ledger_path) == three_days["trades"]


def _rows(ledger: Path, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.fixture
def copied(three_days: dict[str, Any], tmp_path: Path) -> BotHome:
    home = BotHome(tmp_path / "copy")
    shutil.copytree(three_days["home"].root, home.root, symlinks=True)
    return home


def test_trade_history_and_summaries_come_from_the_ledger_without_the_journal(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.reporting.ledger_history import refresh_trade_history

    binding = load_binding(copied)
    scope = binding.scope
    summaries = copied.summaries_dir(scope)
    before = {p.name: json.loads(p.read_text()) for p in summaries.glob("daily_summary_2011-*.json")}
    (copied.state_dir / "journal.db").unlink()  # the journal is lost; the ledger is the record
    for path in copied.trades_dir(scope).iterdir():
        path.unlink()
    for path in summaries.glob("daily_summary_2011-*.json"):
        path.write_text('{"totals": {"total_pnl": "999"}}')  # damaged figures
    assert main(["trades", "--rebuild", "--format", "json", "--home", str(copied.root)]) == 0
    listed = json.loads(capsys.readouterr().out)
    history = json.loads((copied.trades_dir(scope) / f"{scope}_BOT_trade_history.json").read_text())
    assert [(r["entry_time"], r["PnL"], r["fees"]) for r in history] == [
        (t["entry_time"], t["pnl"], t["fees"]) for t in listed["trades"]
    ]
    assert {r["entry_time"][:10] for r in history} == {d.isoformat() for d in DAYS}
    for name, doc in before.items():
        rebuilt = json.loads((summaries / name).read_text())
        for key in ("total_trades", "total_pnl", "total_fees", "net_pnl", "wins", "losses"):
            assert rebuilt["totals"][key] == doc["totals"][key], (name, key)
    # nothing new in the ledger: the refresh recomputes nothing
    again = refresh_trade_history(
        binding.ledger_path, copied.trades_dir(scope), scope, broker="SIM", mode="paper"
    )
    assert again.recomputed_from is None and again.rows == len(history)


def test_a_rebuild_after_output_was_lost_takes_what_the_ledger_lacks_from_the_journal(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """output/ lost, the journal kept: signal times, signal counts and denials come back from the journal (they
    were written as null and 0 next to the ledger's trades)."""
    scope = load_binding(copied).scope
    summaries = copied.summaries_dir(scope)
    before = {p.name: json.loads(p.read_text()) for p in summaries.glob("daily_summary_2011-*.json")}
    assert any(doc["totals"]["denials"] for doc in before.values())  # the days deny some entries
    shutil.rmtree(copied.trades_dir(scope))
    shutil.rmtree(summaries)
    assert main(["trades", "--rebuild", "--home", str(copied.root)]) == 0
    capsys.readouterr()
    history = json.loads((copied.trades_dir(scope) / f"{scope}_BOT_trade_history.json").read_text())
    assert history and all(r["signal_time"] for r in history)
    for name, doc in before.items():
        rebuilt = json.loads((summaries / name).read_text())
        for key in ("signals_triggered", "denials"):
            assert rebuilt["totals"][key] == doc["totals"][key], (name, key)
        assert rebuilt.get("denials_by_filter") == doc.get("denials_by_filter"), name
    # a damaged journal costs only what it would add: the ledger's history is rebuilt, with a note
    journal = copied.state_dir / "journal.db"
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)
    journal.write_bytes(bytes(range(256)) * 16)
    assert main(["trades", "--rebuild", "--home", str(copied.root)]) == 0
    assert "is not a readable SQLite database" in capsys.readouterr().err
    assert json.loads((copied.trades_dir(scope) / f"{scope}_BOT_trade_history.json").read_text())


def test_corrections_amount_account_reversal_and_closed_period(
    copied: BotHome, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from decimal import Decimal

    from ofxtools.Parser import OFXTree

    home = str(copied.root)
    binding = load_binding(copied)
    ledger = binding.ledger_path
    exits = _rows(ledger, "SELECT * FROM transactions WHERE trntype = 'SELL' AND pnl IS NOT NULL ORDER BY id")
    fees = _rows(ledger, "SELECT fitid FROM transactions WHERE trntype = 'FEE' ORDER BY id")
    assert len(exits) >= 3 and fees
    first, second, third = exits[0], exits[1], exits[2]
    (cash,) = _rows(
        ledger, "SELECT debit FROM splits WHERE transaction_id = ? AND account_code = '1030'", first["id"]
    )
    before = {t.client_order_id: t for t in read_trades(ledger)}

    # without --yes and without a terminal nothing is posted
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is not a confirmation
    base = ["ledger", "correct", "--home", home, "--reason", "broker statement shows 1.00 more"]
    assert main([*base, "--fitid", first["fitid"], "--amount", "1.5x"]) == 2
    assert main([*base, "--fitid", first["fitid"], "--amount", str(Decimal(cash["debit"]) / 10000 + 1)]) == 1
    assert "not confirmed" in capsys.readouterr().out
    assert not _rows(ledger, "SELECT 1 FROM transactions WHERE is_correction = 1")

    # amount: the cash leg +1.00, the gain leg absorbs it, the trade's PnL follows
    assert (
        main([*base, "--yes", "--fitid", first["fitid"], "--amount", str(Decimal(cash["debit"]) / 10000 + 1)])
        == 0
    )
    (cor,) = _rows(ledger, "SELECT * FROM transactions WHERE fitid = ?", f"{first['fitid']}-COR")
    assert (cor["is_correction"], cor["correction_of"], cor["dtposted"]) == (
        1,
        first["fitid"],
        first["dtposted"],
    )
    assert cor["pnl"] == first["pnl"] + 10000
    # account: a fee moved from 5010 to 5020; reversal: an exit reversed, nothing in its place
    assert main(["ledger", "correct", "--home", home, "--yes", "--fitid", fees[0]["fitid"], "--account", "5020",
                 "--reason", "execution loss, not a commission"]) == 0  # fmt: skip
    (moved,) = _rows(ledger, "SELECT s.account_code FROM splits s JOIN transactions t ON t.id = s.transaction_id "
                     "WHERE t.fitid = ? AND s.account_code != '1030'", f"{fees[0]['fitid']}-COR")  # fmt: skip
    assert moved["account_code"] == "5020"
    assert main(["ledger", "correct", "--home", home, "--yes", "--fitid", second["fitid"], "--reverse",
                 "--reason", "duplicate fill"]) == 0  # fmt: skip
    assert main(["ledger", "correct", "--home", home, "--yes", "--fitid", second["fitid"], "--reverse",
                 "--reason", "again"]) == 2  # fmt: skip
    assert "already reversed" in capsys.readouterr().err

    # a closed period is never changed: the correction goes into the open one, naming the original date
    assert main(["ledger", "close", "--period", "2011-01", "--home", home]) == 0
    summary_before_close = (
        copied.summaries_dir(binding.scope) / f"daily_summary_{third['dtposted'][:10]}.json"
    ).read_bytes()
    assert main(["ledger", "correct", "--home", home, "--yes", "--fitid", third["fitid"], "--amount",
                 "1", "--reason", "late broker adjustment"]) == 0  # fmt: skip
    status_db = copied.core_db("LEDGER_STATUS")
    (status,) = _rows(status_db, "SELECT * FROM ledger_status WHERE ledger_name = ?", ledger.name)
    assert (status["status"], status["reason"]) == ("locked", "closed through 2011-01")
    (late,) = _rows(ledger, "SELECT * FROM transactions WHERE fitid = ?", f"{third['fitid']}-COR")
    assert late["dtposted"] == "2011-02-01T00:00:00.000000Z"
    # the closed month's reports stay as its books were closed: its summary is not rewritten
    third_summary = copied.summaries_dir(binding.scope) / f"daily_summary_{third['dtposted'][:10]}.json"
    assert third_summary.read_bytes() == summary_before_close
    assert f"original dated {third['dtposted'][:10]}, period 2011-01 closed" in late["memo"]
    (audit,) = _rows(ledger, "SELECT actor, memo FROM audit_log WHERE fitid = ?", f"{third['fitid']}-REV")
    assert "via tbot ledger correct" in audit["actor"] and "late broker adjustment" in audit["memo"]
    assert main(["ledger", "verify", "--home", home]) == 0

    # tbot trades: corrected figures on the trade's own day, the correction named; the reversed exit is open
    capsys.readouterr()
    assert main(["trades", "--home", home]) == 0
    assert f"{first['fitid']} -> {first['fitid']}-COR" in capsys.readouterr().out
    after = {t.client_order_id: t for t in read_trades(ledger)}
    (entry_of_first,) = [
        k
        for k, t in before.items()
        if t.exit_time and t.exit_time.isoformat().startswith(first["dtposted"][:19])
    ]
    assert after[entry_of_first].pnl == before[entry_of_first].pnl + 1
    assert after[entry_of_first].session == before[entry_of_first].session
    assert any(t.exit_time is None and t.correction is None for t in after.values())
    history = json.loads(
        (copied.trades_dir(binding.scope) / f"{binding.scope}_BOT_trade_history.json").read_text()
    )
    assert sum(1 for r in history if r["correction"]) == sum(1 for t in after.values() if t.correction)

    # the session statement of the corrected day (what the accountant imports) was written again with them
    from tbot_bot.runtime.reports import report_paths

    session_ofx = Path(report_paths(copied, binding, date.fromisoformat(first["dtposted"][:10]))["ofx"])
    assert f"{first['fitid']}-COR" in session_ofx.read_text()
    import re

    def ids(text: str) -> set[tuple[str, str]]:
        return set(re.findall(r"<BROKERID>([^<]*)</BROKERID>\s*<ACCTID>([^<]*)</ACCTID>", text))

    session_ids = ids(session_ofx.read_text())

    # OFX: the corrections are in the statement and it parses
    out = copied.root / "all.ofx"
    assert main(["ofx", "export", "--all", "--out", str(out), "--home", home]) == 0
    text = out.read_text()
    assert (
        f"{second['fitid']}-REV" in text and f"{first['fitid']}-COR" in text and "Manual Adjustments" in text
    )
    # one account in the accountant's books: the daily statement and the export name it alike
    assert session_ids and session_ids == ids(text), (session_ids, ids(text))
    tree = OFXTree()
    tree.parse(str(out))
    statement = tree.convert().statements[0]
    assert {t.fitid for t in statement.transactions if hasattr(t, "fitid")} | {
        t.invtran.fitid for t in statement.transactions if hasattr(t, "invtran")
    } >= {f"{second['fitid']}-REV", f"{first['fitid']}-COR"}

    # the triggers still refuse an UPDATE of a posted row
    conn = sqlite3.connect(ledger)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            conn.execute("UPDATE transactions SET pnl = 0 WHERE fitid = ?", (first["fitid"],))
    finally:
        conn.close()


def test_dates_are_the_datas_dates(three_days: dict[str, Any], tmp_path: Path) -> None:
    from ofxtools.Parser import OFXTree

    # a sim home replays recorded days: its opening float is booked on the sample's first day, not today
    root = tmp_path / "sim"
    assert main(["provision", "--home", str(root), "--broker", "sim", "--entity", "RGL", "--jurisdiction",
                 "USA", "--account", "main", "--bot-id", "TB02", "--float", "1000"]) == 0  # fmt: skip
    (opening,) = _rows(load_binding(BotHome(root)).ledger_path, "SELECT fitid, dtposted FROM transactions")
    assert opening["dtposted"] == "2011-01-03T00:00:00.000000Z", opening["fitid"]
    # the replayed home's statement and summaries are stamped in 2011, the replayed days' time
    home = three_days["home"]
    out = tmp_path / "all.ofx"
    assert main(["ofx", "export", "--all", "--out", str(out), "--home", str(home.root)]) == 0
    tree = OFXTree()
    tree.parse(str(out))
    statement = tree.convert().statements[0]
    assert statement.dtasof.year == statement.dtstart.year == statement.dtend.year == 2011
    scope = load_binding(home).scope
    for day in DAYS:
        doc = json.loads((home.summaries_dir(scope) / f"daily_summary_{day.isoformat()}.json").read_text())
        assert doc["generated_at"].startswith(day.isoformat()), doc["generated_at"]


def test_a_ledger_whose_period_lock_is_behind_ledger_status_is_refused(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(copied.root)
    assert main(["ledger", "close", "--period", "2011-01", "--home", home]) == 0
    # as if the ledger had been rolled back from a state in which February was closed too
    conn = sqlite3.connect(copied.core_db("LEDGER_STATUS"))
    with conn:
        conn.execute("UPDATE ledger_status SET reason = 'closed through 2011-02'")
    conn.close()
    capsys.readouterr()
    assert main(["ledger", "verify", "--home", home]) == 1
    assert "closed through 2011-02" in capsys.readouterr().out
    assert main(["check", "--replay", FOURTH.isoformat(), "--home", home]) == 2
    assert "rolled back to before that close" in capsys.readouterr().err


def test_a_backup_taken_while_a_replay_runs_restores_to_a_consistent_home(
    copied: BotHome, three_days: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    env = {k: v for k, v in os.environ.items() if k != "TBOT_CRASH_AT"}
    replay = subprocess.Popen(
        [sys.executable, "-m", "rigd_tbot", "start", "--replay", FOURTH.isoformat(), "--speed", "2500",
         "--home", str(copied.root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    archives: list[Path] = []
    try:
        while replay.poll() is None and len(archives) < 3:
            time.sleep(1)
            assert main(["backup", "create", "--home", str(copied.root)]) == 0
            archives = sorted(copied.backups_dir.glob("tbot_backup_*.tar.gz.enc"))
    finally:
        _, err = replay.communicate(timeout=300)
    assert replay.returncode == 0, err
    taken = [a for a in archives if a.name != three_days["archive"].name]
    assert len(taken) >= 2, "the replay ended before two backups were taken during it"
    for n, archive in enumerate(taken):
        target = _fresh_home(tmp_path / f"r{n}", three_days["safe"])
        assert main(["backup", "restore", "--archive", str(archive), "--home", str(target.root),
                     "--key-file", str(three_days["key"])]) == 0  # fmt: skip
        assert main(["ledger", "verify", "--home", str(target.root)]) == 0
        assert main(["check", "--replay", "2011-01-10", "--home", str(target.root)]) == 0
        binding = load_binding(target)
        ledger_ids = {t.client_order_id for t in read_trades(binding.ledger_path)}
        # every order the restored ledger booked is in the restored journal (ledgers are copied first)
        assert ledger_ids <= set(_journal_ids(target))


def test_a_correction_that_zeroes_the_gain_leaves_no_gain_leg(copied: BotHome) -> None:
    from decimal import Decimal

    ledger = load_binding(copied).ledger_path
    (exit_,) = _rows(
        ledger, "SELECT * FROM transactions WHERE trntype = 'SELL' AND pnl != 0 ORDER BY id LIMIT 1"
    )
    legs = {r["account_code"]: (r["debit"], r["credit"]) for r in _rows(
        ledger, "SELECT account_code, debit, credit FROM splits WHERE transaction_id = ?", exit_["id"])}  # fmt: skip
    cash = Decimal(legs["1030"][0]) / 10000
    flat = cash - Decimal(exit_["pnl"]) / 10000  # the proceeds that would have made the trade break even
    argv = ["ledger", "correct", "--home", str(copied.root), "--yes", "--fitid", exit_["fitid"], "--amount"]
    assert main([*argv, str(flat), "--reason", "filled at the entry price"]) == 0
    (cor,) = _rows(ledger, "SELECT * FROM transactions WHERE fitid = ?", f"{exit_['fitid']}-COR")
    accounts = [r["account_code"] for r in _rows(ledger, "SELECT account_code FROM splits WHERE transaction_id = ?", cor["id"])]  # fmt: skip
    assert cor["pnl"] == 0 and sorted(accounts) == ["1030", "1110"]
    assert main(["ledger", "verify", "--home", str(copied.root)]) == 0


def test_caches_the_bot_needs_are_archived_the_optimizers_recorded_bars_are_not(copied: BotHome) -> None:
    from tbot_bot.reporting.auto_backup import list_backups, read_manifest

    (copied.cache_dir / "bars").mkdir(parents=True, exist_ok=True)
    (copied.cache_dir / "bars" / "bars_2011-01-06.csv.gz").write_bytes(b"recorded bars")
    (copied.cache_dir / "vix.csv").write_text("date,close\n2011-01-05,17.02\n")
    for folder, name in (("prepared", "0123.prep"), ("optuna", "empty-study.db")):  # the optimizer's, rebuilt
        (copied.cache_dir / folder).mkdir(parents=True, exist_ok=True)
        (copied.cache_dir / folder / name).write_bytes(b"rebuilt by the next study")
    copied.universe_file.write_text("SPY\nSH\n")
    # an alert this machine has yet to deliver is its own, never re-sent days later from an archive
    (copied.state_dir / "alert_outbox").mkdir(parents=True, exist_ok=True)
    (copied.state_dir / "alert_outbox" / "00000000000000000001-1-0.json").write_text("{}")
    # the scheduled optimizer's search space is the operator's configuration (a backup review: it was left out)
    (copied.root / "optimizer").mkdir(exist_ok=True)
    (copied.root / "optimizer" / "space_open.toml").write_text(
        "[STRAT_OPEN_BUFFER]\nvalues = [0.001, 0.002]\n"
    )
    for archive in list_backups(copied):
        archive.unlink()
    assert main(["backup", "create", "--home", str(copied.root)]) == 0
    files = read_manifest(list_backups(copied)[-1], copied)["files"]
    assert "data/cache/vix.csv" in files and "data/universe.txt" in files
    assert "optimizer/space_open.toml" in files
    assert not [
        n
        for n in files
        if n.startswith(
            ("data/cache/bars/", "data/cache/prepared/", "data/cache/optuna/", "storage/state/alert")
        )
    ]
    assert "storage/state/journal.db" in files


def test_months_close_in_order(copied: BotHome, capsys: pytest.CaptureFixture[str]) -> None:
    """February cannot be closed while January, which traded, is open: its profit would be booked as February's."""
    home = str(copied.root)
    assert main(["ledger", "close", "--period", "2011-02", "--home", home]) == 2
    assert (
        "period 2011-01 has income or expenses and is not closed: close it first" in capsys.readouterr().err
    )
    assert main(["ledger", "close", "--period", "2011-01", "--home", home]) == 0
    assert main(["ledger", "close", "--period", "2011-02", "--home", home]) == 0  # nothing traded: no entry


def test_corrected_trades_keep_the_statements_positions_and_gains_the_ledgers(
    copied: BotHome, tmp_path: Path
) -> None:
    """A sell corrected by amount, and a buy reversed: the reversal was a cash movement only, so the statement
    held a phantom short of the sold units, twice the sale's gain, and the replacement at the old price."""
    from decimal import Decimal

    from ofxtools.Parser import OFXTree

    home = str(copied.root)
    ledger = load_binding(copied).ledger_path
    (sell,) = _rows(
        ledger, "SELECT * FROM transactions WHERE trntype = 'SELL' AND pnl IS NOT NULL ORDER BY id LIMIT 1"
    )
    (cash,) = _rows(
        ledger, "SELECT debit FROM splits WHERE transaction_id = ? AND account_code = '1030'", sell["id"]
    )
    amount = Decimal(cash["debit"]) / 10000 + 5
    base = ["ledger", "correct", "--home", home, "--yes", "--reason", "broker statement"]
    assert main([*base, "--fitid", sell["fitid"], "--amount", str(amount)]) == 0
    out = tmp_path / "all.ofx"
    assert main(["ofx", "export", "--home", home, "--all", "--out", str(out)]) == 0
    tree = OFXTree()
    tree.parse(str(out))
    stmt = tree.convert().invstmtmsgsrsv1[0].invstmtrs
    # the ledger holds no open position: neither does the statement
    assert [p.invpos.secid.uniqueid for p in (stmt.invposlist or [])] == []
    gains = sum(
        (tx.invsell.gain or Decimal(0)) for tx in stmt.invtranlist if getattr(tx, "invsell", None) is not None
    )
    (realised,) = _rows(
        ledger,
        "SELECT sum(credit) - sum(debit) AS g FROM splits WHERE account_code LIKE '4%' AND account_code != '4900'",
    )
    assert gains == Decimal(realised["g"]) / 10000
    # the reversal is the sale mirrored; the replacement is at the price its amount was at
    by_fitid = {
        tx.invsell.invtran.fitid: tx.invsell
        for tx in stmt.invtranlist
        if getattr(tx, "invsell", None) is not None
    }
    rev, cor = by_fitid[f"{sell['fitid']}-REV"], by_fitid[f"{sell['fitid']}-COR"]
    original = by_fitid[sell["fitid"]]
    # (the original's fee is folded into its total as COMMISSION; the reversal takes back the trade, not its fee)
    assert rev.units == -original.units and rev.total == -(original.total + (original.commission or 0))
    assert cor.total == amount and abs(cor.unitprice * -cor.units - amount) < Decimal("0.01")
    trades = {t.client_order_id: t for t in read_trades(ledger)}
    assert any(
        t.exit_price is not None and abs(t.exit_price * t.size - amount) < Decimal("0.01")
        for t in trades.values()
    )


def test_trades_follow_a_corrected_correction_and_an_entry_is_not_reversed_from_under_its_exit(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    from decimal import Decimal

    home = str(copied.root)
    ledger = load_binding(copied).ledger_path
    base = ["ledger", "correct", "--home", home, "--yes", "--reason", "broker statement"]
    (fee,) = _rows(
        ledger, "SELECT fitid FROM transactions WHERE trntype = 'FEE' AND fitid LIKE '%-FEE' LIMIT 1"
    )
    # the fee corrected, then its correction corrected (the only way once an entry has been corrected)
    assert main([*base, "--fitid", fee["fitid"], "--amount", "0.05"]) == 0
    assert main([*base, "--fitid", f"{fee['fitid']}-COR", "--amount", "0.04"]) == 0
    (fees,) = _rows(ledger, "SELECT sum(debit) - sum(credit) AS f FROM splits WHERE account_code LIKE '5%'")
    assert sum((t.fees for t in read_trades(ledger)), Decimal(0)) == Decimal(fees["f"]) / 10000
    # the entry of a round trip whose exit stands: reversing it alone is refused, by name
    (entry,) = _rows(ledger, "SELECT * FROM transactions WHERE trntype = 'BUY' ORDER BY id LIMIT 1")
    (exit_,) = _rows(
        ledger, "SELECT * FROM transactions WHERE trntype = 'SELL' AND ticker = ? AND strategy = ? AND id > ? "
        "ORDER BY id LIMIT 1", entry["ticker"], entry["strategy"], entry["id"],
    )  # fmt: skip
    capsys.readouterr()
    assert main([*base, "--fitid", entry["fitid"], "--reverse"]) == 2
    assert f"it opened a position that {exit_['fitid']!r} closed" in capsys.readouterr().err
    # an exit corrected by amount is still the exit: its replacement keeps the entry from being reversed alone
    assert main([*base, "--fitid", exit_["fitid"], "--amount", "400"]) == 0
    assert main([*base, "--fitid", entry["fitid"], "--reverse"]) == 2
    assert f"it opened a position that '{exit_['fitid']}-COR' closed" in capsys.readouterr().err
    # the exit first, then the entry: both reversed, the trade gone from the reports and its gain from the books
    assert main([*base, "--fitid", f"{exit_['fitid']}-COR", "--reverse"]) == 0
    assert main([*base, "--fitid", entry["fitid"], "--reverse"]) == 0
    assert not [t for t in read_trades(ledger) if t.client_order_id == entry["client_order_id"]]


def _net(ledger: Path, account: str) -> Decimal:
    (row,) = _rows(
        ledger,
        "SELECT coalesce(sum(debit) - sum(credit), 0) AS n FROM splits WHERE account_code = ?",
        account,
    )
    return Decimal(row["n"]) / 10000


def test_an_entry_corrected_after_its_exit_moves_the_trades_pnl_and_leaves_no_position(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """An entry corrected by amount moved the position's cost (1110) and nothing else: with the position closed,
    1110 kept the difference as a phantom holding and the trade's PnL stayed. The exit is now corrected with it,
    in the same batch: its cost leg follows, its gain leg takes the difference, the trade's PnL with it."""
    home = str(copied.root)
    binding = load_binding(copied)
    ledger = binding.ledger_path
    base = ["ledger", "correct", "--home", home, "--yes", "--reason", "broker statement"]
    buys = _rows(ledger, "SELECT * FROM transactions WHERE trntype = 'BUY' ORDER BY id")
    entry, other = buys[0], buys[1]
    (exit_,) = _rows(
        ledger, "SELECT * FROM transactions WHERE trntype = 'SELL' AND ticker = ? AND strategy = ? AND id > ? "
        "ORDER BY id LIMIT 1", entry["ticker"], entry["strategy"], entry["id"],
    )  # fmt: skip
    (paid,) = _rows(
        ledger, "SELECT credit FROM splits WHERE transaction_id = ? AND account_code = '1030'", entry["id"]
    )
    trade = {t.client_order_id: t for t in read_trades(ledger)}
    before = trade[entry["client_order_id"]]
    held, cash, gains = _net(ledger, "1110"), _net(ledger, "1030"), _net(ledger, "4010")
    # what the dashboard shows before its confirmation names the exit too
    from tbot_bot.accounting.ledger_correction import plan_correction, plan_text

    planned = plan_correction(
        ledger, entry["fitid"], reason="r", user="u", source="dashboard", amount=Decimal(1)
    )
    assert f"; and its exit {exit_['fitid']}: reverse " in plan_text(planned)
    capsys.readouterr()
    assert (
        main(
            [
                *base,
                "--fitid",
                entry["fitid"],
                "--amount",
                str(Decimal(paid["credit"]) / 10000 + Decimal("2.5")),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"its exit {exit_['fitid']}" in out and f"post {exit_['fitid']}-COR:" in out
    # no phantom holding; the cash paid and the realised gain moved by the difference, the trade's PnL with them
    assert _net(ledger, "1110") == held
    assert _net(ledger, "1030") == cash - Decimal("2.5") and _net(ledger, "4010") == gains + Decimal("2.5")
    after = {t.client_order_id: t for t in read_trades(ledger)}[entry["client_order_id"]]
    assert before.pnl is not None and after.pnl == before.pnl - Decimal("2.5")
    # the entry's price is the corrected amount's (its size x price is what was paid), the exit's unchanged
    paid_now = Decimal(paid["credit"]) / 10000 + Decimal("2.5")
    assert after.entry_price == (paid_now / after.size).quantize(Decimal("0.0001"))
    assert after.exit_price == before.exit_price
    assert f"{entry['fitid']} -> {entry['fitid']}-COR" in str(after.correction)
    assert f"{exit_['fitid']} -> {exit_['fitid']}-COR" in str(after.correction)
    # a position leg moved to another account is closed on that account, with no gain moved
    assert main([*base, "--fitid", other["fitid"], "--account", "1120"]) == 0
    assert (
        _net(ledger, "1120") == 0
        and _net(ledger, "1110") == held
        and _net(ledger, "4010") == gains + Decimal("2.5")
    )
    assert main(["ledger", "verify", "--home", home]) == 0
    # the statement an accountant imports holds no position either, and its gains are the books'
    from ofxtools.Parser import OFXTree

    out_file = copied.root / "all.ofx"
    assert main(["ofx", "export", "--home", home, "--all", "--out", str(out_file)]) == 0
    tree = OFXTree()
    tree.parse(str(out_file))
    stmt = tree.convert().invstmtmsgsrsv1[0].invstmtrs
    assert [p.invpos.secid.uniqueid for p in (stmt.invposlist or [])] == []
    sold = [tx.invsell for tx in stmt.invtranlist if getattr(tx, "invsell", None) is not None]
    assert sum((tx.gain or Decimal(0) for tx in sold), Decimal(0)) == -_net(ledger, "4010")


def _only_archive(home: BotHome) -> Path:
    """The home's one archive, made now (earlier ones removed)."""
    for old in home.backups_dir.glob("*.enc"):
        old.unlink()
    assert main(["backup", "create", "--home", str(home.root)]) == 0
    (archive,) = home.backups_dir.glob("*.enc")
    return archive


def test_a_restore_that_reopens_a_closed_month_says_so_and_is_logged(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rollback to an archive made before a month's close opens that month again: it said nothing, and the
    system log held no trace of the restore."""
    home = str(copied.root)
    archive = _only_archive(copied)
    assert main(["ledger", "close", "--period", "2011-01", "--home", home]) == 0
    assert main(["config", "set", "MAX_OPEN_POSITIONS=3", "--home", home]) == 0
    capsys.readouterr()
    assert main(["backup", "restore", "--home", home, "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "note: the books are now closed through no month (they were closed through 2011-01)" in out
    # the config version replaced after the archive is listed with what is known of it ("by ?: ?" before)
    assert main(["config", "history", "--home", home]) == 0
    listed = capsys.readouterr().out
    assert "not in logs/config_audit.log" in listed and "by ?" not in listed
    conn = sqlite3.connect(copied.core_db("SYSTEM_LOGS"))
    try:
        rows = conn.execute("SELECT level, actor, detail FROM system_logs WHERE event = 'restore'").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1 and rows[0][0] == "warning" and rows[0][1].startswith("cli:")
    assert archive.name in rows[0][2] and "closed through no month (was 2011-01)" in rows[0][2]
    # the other way (an archive that closed more months than the home): no month is reopened, and none is said to be
    (safety,) = (a for a in copied.backups_dir.glob("*.enc") if a != archive)
    assert main(["backup", "restore", "--home", home, "--archive", str(safety)]) == 0
    out = capsys.readouterr().out
    assert "open again" not in out
    assert (
        "note: the books are now closed through 2011-01 (they were closed through no month): the archive closed"
        in out
    )


def test_a_closed_months_correction_reaches_the_summaries_and_the_closed_day_stays(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """A correction to a closed month is posted in the open one: the closed day's reports stay as closed, so the
    posting day's summary must carry it, or `tbot summary` disagrees with the ledger by it. `trades --rebuild`
    rewrote the closed day instead."""
    from decimal import Decimal

    home = str(copied.root)
    binding = load_binding(copied)
    ledger, summaries = binding.ledger_path, copied.summaries_dir(binding.scope)
    (fee,) = _rows(
        ledger,
        "SELECT fitid, dtposted FROM transactions WHERE trntype = 'FEE' AND fitid LIKE '%-FEE' LIMIT 1",
    )
    closed_day = summaries / f"daily_summary_{fee['dtposted'][:10]}.json"
    before = closed_day.read_text()
    assert main(["ledger", "close", "--period", "2011-01", "--home", home]) == 0
    assert main(["ledger", "correct", "--home", home, "--yes", "--fitid", fee["fitid"], "--amount", "0.50",
                 "--reason", "broker statement"]) == 0  # fmt: skip
    posted = json.loads((summaries / "daily_summary_2011-02-01.json").read_text())["totals"]
    assert posted["prior_period_adjustments"]["total_fees"] != "0" and closed_day.read_text() == before
    # every surface: `tbot summary`'s TOTAL is the ledger's net
    capsys.readouterr()
    assert main(["summary", "--home", home]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines() if "TOTAL" in line)
    (books,) = _rows(
        ledger,
        "SELECT sum(CASE WHEN account_code LIKE '4%' THEN credit - debit ELSE 0 END) - "
        "sum(CASE WHEN account_code LIKE '5%' THEN debit - credit ELSE 0 END) AS net FROM splits s JOIN "
        "transactions t ON t.id = s.transaction_id WHERE t.trntype != 'CLOSE'",
    )
    net = (Decimal(books["net"]) / 10000).quantize(Decimal("0.01"))
    from tbot_bot.domain.results import cents_text

    assert cents_text(net) in total.split(), (total, net)
    # the posting day's own table: its rows add up to its TOTAL (the adjustment is a row, not only in the TOTAL)
    assert main(["summary", "--date", "2011-02-01", "--home", home]) == 0
    lines = capsys.readouterr().out.splitlines()
    adjustment = next(line for line in lines if "prior-period adjustment" in line)
    day_total = next(line for line in lines if "TOTAL" in line)
    fee = cents_text(Decimal(posted["prior_period_adjustments"]["total_fees"]))
    assert fee in adjustment.split() and fee in day_total.split(), (adjustment, day_total)
    # a rebuild leaves the closed day as it was closed, but repairs a damaged one
    assert main(["trades", "--rebuild", "--home", home]) == 0
    assert closed_day.read_text() == before
    closed_day.write_text('{"totals": {"total_pnl": "999"}}')
    assert main(["trades", "--rebuild", "--home", home]) == 0
    assert (
        json.loads(closed_day.read_text())["totals"]["total_pnl"] == json.loads(before)["totals"]["total_pnl"]
    )


def test_a_restore_into_the_same_bot_keeps_its_users_and_an_empty_home_gets_the_archives(
    copied: BotHome, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rolling back the books is not rolling back access control: a user disabled after the archive was made came
    back active (with sessions the disable had revoked). The same bot's home keeps its people's databases; a new
    home (a lost machine) gets the archive's."""
    from tbot_bot.core import users as users_mod

    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    home = str(copied.root)
    users_mod.add_user(copied, "bob", "a-long-password-1", "viewer")
    archive = _only_archive(copied)
    assert main(["users", "disable", "--home", home, "--username", "bob"]) == 0
    assert main(["config", "set", "MAX_OPEN_POSITIONS=3", "--home", home]) == 0
    live_config = copied.env_bot_enc.read_bytes()
    audit = (copied.root / "logs" / "config_audit.log").read_text()
    capsys.readouterr()
    assert main(["backup", "restore", "--home", home, "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert (
        "kept storage/databases/SYSTEM_USERS.db of this home (users, sign-ins and their record are not rolled back)"
        in out
    )
    bob = users_mod.get_user(copied, "bob")
    assert bob is not None and not bob.is_active
    # the record of who did what is not cut back (a backup review): the system log keeps the disable, the config
    # audit log its change, and the config live before the restore is a version `config rollback` reaches
    conn = sqlite3.connect(copied.core_db("SYSTEM_LOGS"))
    try:
        events = [r[0] for r in conn.execute("SELECT event FROM system_logs ORDER BY id")]
    finally:
        conn.close()
    assert "user_disabled" in events and events[-1] == "restore"
    assert (copied.root / "logs" / "config_audit.log").read_text().startswith(audit)
    assert live_config in [p.read_bytes() for p in copied.versioned_env_dir.iterdir()]
    # a restore into a new machine's home brings the archive's users: keys and identity put back as README's
    # "Restoring a bot" says, even with the core databases made there first (empty: no user, no ledger yet)
    fresh = BotHome(tmp_path / "fresh")
    shutil.copytree(copied.keys_dir, fresh.keys_dir)
    shutil.copytree(copied.root / "storage" / "secrets", fresh.root / "storage" / "secrets")
    assert main(["db", "init", "--home", str(fresh.root)]) == 0
    capsys.readouterr()
    assert main(["backup", "restore", "--home", str(fresh.root), "--archive", str(archive)]) == 0
    assert "kept storage/databases" not in capsys.readouterr().out
    restored = users_mod.get_user(fresh, "bob")
    assert restored is not None and restored.is_active


def test_a_killed_rollback_run_again_reports_what_the_first_run_found(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rollback killed part-way and run again: the second run looked at the half-restored home, so it listed no
    replaced file, never said the closed month was reopened, and named an archive of the mixed state as the state
    replaced. It reports what the first run found (kept in the restore's marker)."""
    home = str(copied.root)
    archive = _only_archive(copied)
    assert main(["ledger", "close", "--period", "2011-01", "--home", home]) == 0
    killed = _tbot("backup", "restore", "--home", home, "--archive", str(archive), crash_at="restore_file:3")
    assert killed.returncode == -9, killed.stderr
    (safety,) = (a for a in copied.backups_dir.glob("*.enc") if a != archive)  # made by the killed run
    capsys.readouterr()
    assert main(["backup", "restore", "--home", home, "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert f"archived the state it replaces first: {safety}" in out
    assert "replaced " in out and "ledgers/bot/" in out
    assert "note: the books are now closed through no month (they were closed through 2011-01)" in out
    assert len(list(copied.backups_dir.glob("*.enc"))) == 2  # no archive of the half-restored mix
    conn = sqlite3.connect(copied.core_db("SYSTEM_LOGS"))
    try:
        (detail,) = conn.execute("SELECT detail FROM system_logs WHERE event = 'restore'").fetchone()
    finally:
        conn.close()
    assert safety.name in detail and "closed through no month (was 2011-01)" in detail


def test_a_restore_refuses_ledger_heads_that_do_not_verify_or_carry_no_signature(
    copied: BotHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever holds only the backup key could rewrite a ledger, its hash chain (plain SHA-256) and the manifest's
    heads, keep the old HMAC (or drop it, posing as an older archive), and the restore re-anchored the forged books
    with the real ledger key (a backup review). The heads must verify under the ledger key; unsigned ones are
    restored only when asked."""
    home, key = str(copied.root), copied.key_file("backup")
    archive = _only_archive(copied)
    ledger = str(load_binding(copied).ledger_path)

    def moved_head(manifest: dict[str, Any]) -> None:
        (name, head), *_ = manifest["anchors"]["heads"].items()
        head["transactions"] = int(head["transactions"]) + 1

    before = hashlib.sha256(Path(ledger).read_bytes()).hexdigest()
    forged = _rewrite_manifest(archive, key, moved_head, target=tmp_path / "forged.tar.gz.enc")
    assert main(["backup", "restore", "--home", home, "--archive", str(forged)]) == 2
    assert "do not verify under this home's ledger key" in capsys.readouterr().err
    stripped = _rewrite_manifest(
        archive, key, lambda m: m.pop("anchors"), target=tmp_path / "stripped.tar.gz.enc"
    )
    assert main(["backup", "restore", "--home", home, "--archive", str(stripped)]) == 2
    assert "carries no signature of its ledgers" in capsys.readouterr().err
    assert hashlib.sha256(Path(ledger).read_bytes()).hexdigest() == before  # nothing was restored
    assert main(["backup", "restore", "--home", home, "--archive", str(stripped), "--accept-unsigned"]) == 0
    assert main(["backup", "restore", "--home", home, "--archive", str(archive)]) == 0  # the genuine one
    capsys.readouterr()

    # a member other than a ledger changed (the .env's upload target pointed elsewhere), its digest updated in the
    # manifest: every member's digest is signed (a second diff review)
    env = (copied.root / ".env").read_bytes() + b'BACKUP_UPLOAD_TO="ssh://elsewhere.example/loot"\n'

    def elsewhere(manifest: dict[str, Any]) -> None:
        manifest["files"][".env"].update(sha256=hashlib.sha256(env).hexdigest(), size=len(env))

    moved = _rewrite_manifest(
        archive, key, elsewhere, members={".env": env}, target=tmp_path / "moved.tar.gz.enc"
    )
    assert main(["backup", "restore", "--home", home, "--archive", str(moved)]) == 2
    assert "its members' digests do not verify under this home's ledger key" in capsys.readouterr().err
    assert b"elsewhere.example" not in (copied.root / ".env").read_bytes()
    unsigned_files = _rewrite_manifest(
        archive, key, lambda m: m["anchors"].pop("files_hmac"), target=tmp_path / "old.tar.gz.enc"
    )
    assert main(["backup", "restore", "--home", home, "--archive", str(unsigned_files)]) == 2
    assert "signs its ledgers but not its other files" in capsys.readouterr().err


def test_a_damaged_config_is_said_at_backup_and_never_restored_over_a_good_one(
    copied: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """`.env_bot.enc` truncated: `backup create` archived it as it was with exit 0, and restoring that archive over
    the repaired home replaced its good config ("restored", exit 0), after which `config show` failed (a CLI
    review)."""
    home = str(copied.root)
    good = copied.env_bot_enc.read_bytes()
    for archive in copied.backups_dir.glob("*.enc"):
        archive.unlink()
    copied.env_bot_enc.write_bytes(good[:100])
    assert main(["backup", "create", "--home", home]) == 2
    assert "but .env_bot.enc does not decrypt with this home's env key" in capsys.readouterr().err
    (archive,) = copied.backups_dir.glob("*.enc")  # written all the same: the books are in it
    copied.env_bot_enc.write_bytes(good)  # repaired
    assert main(["backup", "restore", "--home", home, "--archive", str(archive)]) == 0
    assert "kept .env_bot.enc of this home (the archive's did not decrypt" in capsys.readouterr().out
    assert copied.env_bot_enc.read_bytes() == good
    assert main(["config", "show", "--home", home]) == 0


def test_a_rollback_with_the_key_file_works_when_the_home_lost_its_backup_key(
    copied: BotHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With storage/keys/backup.key lost and archives in backups/, a restore given `--key-file` was refused by its
    own safety archive ("back up again"), to someone restoring (a diff review): that archive is sealed with the key
    the restore was given."""
    archive = _only_archive(copied)
    kept = tmp_path / "backup.key"
    shutil.copy2(copied.key_file("backup"), kept)
    copied.key_file("backup").unlink()
    argv = [
        "backup",
        "restore",
        "--home",
        str(copied.root),
        "--archive",
        str(archive),
        "--key-file",
        str(kept),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "archived the state it replaces first" in capsys.readouterr().out
