"""`verify_ledger` and `tbot ledger verify`: tampering in a copy is found and named by row."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from test_ledger_fixtures import day_of_fills, new_ledger

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.ledger_schema import TRIGGER_NAMES
from tbot_bot.accounting.ledger_verify import verify_ledger


def booked(tmp_path: Path) -> Path:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([e for f in day_of_fills() for e in entries_for_fill(f)])
    return ledger


def tampered_copy(ledger: Path, tmp_path: Path, *statements: str) -> Path:
    copy = tmp_path / "tampered.db"
    shutil.copyfile(ledger, copy)
    conn = sqlite3.connect(copy)
    for trigger in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {trigger}")
    for stmt in statements:
        conn.execute(stmt)
    conn.commit()
    conn.close()
    return copy


def test_a_clean_ledger_verifies(tmp_path: Path) -> None:
    assert verify_ledger(booked(tmp_path)) == []


def test_changing_one_amount_is_named_by_row(tmp_path: Path) -> None:
    ledger = booked(tmp_path)
    copy = tampered_copy(ledger, tmp_path, "UPDATE splits SET debit = debit + 1 WHERE id = 3")
    problems = verify_ledger(copy)
    assert verify_ledger(ledger) == []  # the original is untouched
    assert any("transactions row id=2 fitid='L1-CLOSE': does not balance" in p for p in problems), problems
    assert any("transactions row id=2 fitid='L1-CLOSE': content differs" in p for p in problems)
    assert any("trigger" in p for p in problems)


def test_a_balanced_edit_is_caught_by_the_audit_digest(tmp_path: Path) -> None:
    copy = tampered_copy(
        booked(tmp_path),
        tmp_path,
        "UPDATE splits SET debit = debit + 10000 WHERE transaction_id = 1 AND debit > 0",
        "UPDATE splits SET credit = credit + 10000 WHERE transaction_id = 1 AND credit > 0",
    )
    problems = [p for p in verify_ledger(copy) if "trigger" not in p]
    assert problems == [
        "transactions row id=1 fitid='L1-OPEN': content differs from what the audit_log recorded at ingestion (row altered)"
    ]


def test_audit_chain_edits_and_deletions_are_named(tmp_path: Path) -> None:
    ledger = booked(tmp_path)
    edited = tampered_copy(ledger, tmp_path, "UPDATE audit_log SET actor = 'mallory' WHERE id = 4")
    assert any("audit_log row id=4: row_hash does not match" in p for p in verify_ledger(edited))
    (tmp_path / "tampered.db").unlink()
    deleted = tampered_copy(ledger, tmp_path, "DELETE FROM audit_log WHERE id = 5")
    problems = verify_ledger(deleted)
    assert any("audit_log row id=6: expected id=5" in p for p in problems)
    assert any("audit_log row id=6: prev_hash does not match" in p for p in problems)


def test_deleted_transaction_and_duplicate_fitid_are_named(tmp_path: Path) -> None:
    ledger = booked(tmp_path)
    copy = tmp_path / "dup.db"
    shutil.copyfile(ledger, copy)
    conn = sqlite3.connect(copy)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = replace(sql, 'UNIQUE (fitid)', 'CHECK (1)') WHERE name = 'transactions'"
    )
    conn.execute(
        "DELETE FROM sqlite_master WHERE type = 'index' AND name LIKE 'sqlite_autoindex_transactions%'"
    )
    conn.commit()
    conn.close()
    conn = sqlite3.connect(copy)
    conn.execute(
        "INSERT INTO transactions SELECT 999, fitid, trntype, dtposted, strategy, ticker, signal_ticker, side, direction, size, entry_price, exit_price, pnl, broker, client_order_id, tag, leverage_multiplier, exit_reason, session_id, currency_code, instrument, contract_multiplier, memo, is_correction, correction_of FROM transactions WHERE id = 1"
    )
    conn.commit()
    conn.close()
    problems = verify_ledger(copy)
    assert any("id=1,999: FITID 'L1-OPEN' is used 2 times" in p for p in problems), problems
    assert any("transactions row id=999 fitid='L1-OPEN': has 0 split(s)" in p for p in problems)


def test_cli_ledger_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_ledger_fixtures import DAY

    from rigd_tbot.cli import main
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.support.path_resolver import BotHome

    home = tmp_path / "home"
    args = [
        "--broker",
        "sim",
        "--entity",
        "RIGD",
        "--jurisdiction",
        "USA",
        "--account",
        "main",
        "--bot-id",
        "TB01",
        "--float",
        "2500",
        "--environment",
        "development",
    ]
    assert main(["provision", "--home", str(home), *args]) == 0
    binding = load_binding(BotHome.resolve(home))
    LedgerWriter.for_home(BotHome.resolve(home), binding.ledger_path, binding, 5).ingest(
        [e for f in day_of_fills() for e in entries_for_fill(f)]
    )
    capsys.readouterr()
    assert main(["ledger", "verify", "--home", str(home)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["ledger", "float", "--home", str(home)]) == 0
    first, usage = capsys.readouterr().out.strip().splitlines()
    assert first == "2500.0000 USD" and usage.startswith("usage: none published yet")
    out = tmp_path / "day.ofx"
    assert (
        main(["ofx", "export", "--home", str(home), "--date", DAY.date().isoformat(), "--out", str(out)]) == 0
    )
    assert "<FITID>S1-OPEN</FITID>" in out.read_text()
    # a re-export replaces the earlier statement; another file, a folder or a missing folder is refused
    assert main(["ofx", "export", "--home", str(home), "--all", "--out", str(out)]) == 0
    other = tmp_path / "bars.csv"
    other.write_text("timestamp,symbol\n")
    capsys.readouterr()
    for target, said in (
        (other, "exists and is not an OFX statement"),
        (tmp_path, "is a folder"),
        (tmp_path / "missing" / "x.ofx", "does not exist; create it first"),
    ):
        assert main(["ofx", "export", "--home", str(home), "--all", "--out", str(target)]) == 2
        assert said in capsys.readouterr().err
    assert other.read_text() == "timestamp,symbol\n" and not (tmp_path / "missing").exists()
    conn = sqlite3.connect(binding.ledger_path)
    conn.execute("DROP TRIGGER trg_splits_no_update")
    conn.execute("UPDATE splits SET credit = credit + 1 WHERE id = 4")  # id 1-2: the opening float
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["ledger", "verify", "--home", str(home)]) == 1
    report = capsys.readouterr().out
    assert "transactions row id=2 fitid='L1-OPEN': does not balance" in report
    assert main(["ofx", "export", "--home", str(home), "--all", "--out", str(tmp_path / "refused.ofx")]) == 1
    assert not (tmp_path / "refused.ofx").exists()
