"""The ingestion API: validation before writing, FITID idempotency, triggers, backups, corrections."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from test_ledger_fixtures import at, day_of_fills, fill, new_ledger

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.ledger_backup import list_ledger_backups
from tbot_bot.accounting.ledger_entry import LedgerEntry, LedgerSplit
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import LedgerError, UsageError


def entry(fitid: str, *splits: LedgerSplit, currency: str = "USD") -> LedgerEntry:
    return LedgerEntry(
        fitid=fitid, trntype="BUY", dtposted=at(15, 0), currency_code=currency, splits=splits, ticker="AAPL"
    )


def ok_entry(fitid: str, amount: str = "100") -> LedgerEntry:
    return entry(
        fitid, LedgerSplit("1110", debit=Decimal(amount)), LedgerSplit("1030", credit=Decimal(amount))
    )


def dump(ledger: Path) -> list[str]:
    conn = sqlite3.connect(ledger)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def count(ledger: Path, table: str) -> int:
    conn = sqlite3.connect(ledger)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_unbalanced_batch_is_rejected_and_the_ledger_unchanged(tmp_path: Path) -> None:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([ok_entry("A")])
    before = dump(ledger)
    bad = entry("B", LedgerSplit("1110", debit=Decimal("100")), LedgerSplit("1030", credit=Decimal("99.99")))
    with pytest.raises(LedgerError, match="does not balance"):
        writer.ingest([ok_entry("C"), bad])
    assert dump(ledger) == before
    assert len(list_ledger_backups(ledger, writer.backup_dir)) == 1  # no backup for a refused batch


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (LedgerSplit("1234", credit=Decimal(100)), "not in the chart of accounts"),
        (LedgerSplit("9320", credit=Decimal(100)), "non-posting"),
        (LedgerSplit("9110", credit=Decimal(100)), "non-posting"),
        (LedgerSplit("1000", credit=Decimal(100)), "non-posting"),
    ],
)
def test_unknown_and_non_posting_accounts_are_rejected(
    tmp_path: Path, split: LedgerSplit, message: str
) -> None:
    ledger, writer = new_ledger(tmp_path)
    before = dump(ledger)
    with pytest.raises(LedgerError, match=message):
        writer.ingest([entry("X", LedgerSplit("1110", debit=Decimal(100)), split)])
    assert dump(ledger) == before


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            entry(
                "X",
                LedgerSplit("1110", debit=Decimal(1)),
                LedgerSplit("1030", credit=Decimal(1)),
                currency="",
            ),
            "currency_code",
        ),
        (
            entry("X", LedgerSplit("1110", debit=1.5), LedgerSplit("1030", credit=Decimal("1.5"))),
            "must be a Decimal",
        ),  # type: ignore[arg-type]
        (
            entry(
                "X",
                LedgerSplit("1110", debit=Decimal("0.00001")),
                LedgerSplit("1030", credit=Decimal("0.00001")),
            ),
            "more than 4 decimal",
        ),
        (entry("X", LedgerSplit("1110", debit=Decimal(1))), "at least two splits"),
        (
            entry("X", LedgerSplit("1110", debit=Decimal(1), credit=Decimal(1)), LedgerSplit("1030")),
            "exactly one of debit/credit",
        ),
        (entry("", LedgerSplit("1110", debit=Decimal(1)), LedgerSplit("1030", credit=Decimal(1))), "fitid"),
        (
            LedgerEntry(
                "X",
                "BUY",
                datetime(2026, 11, 24, 15),
                "USD",
                (LedgerSplit("1110", debit=Decimal(1)), LedgerSplit("1030", credit=Decimal(1))),
            ),
            "timezone-aware",
        ),
        (
            LedgerEntry(
                "X",
                "TELEPORT",
                at(15, 0),
                "USD",
                (LedgerSplit("1110", debit=Decimal(1)), LedgerSplit("1030", credit=Decimal(1))),
            ),
            "trntype",
        ),
    ],
)
def test_malformed_entries_are_rejected_before_writing(
    tmp_path: Path, bad: LedgerEntry, message: str
) -> None:
    ledger, writer = new_ledger(tmp_path)
    before = dump(ledger)
    with pytest.raises(LedgerError, match=message):
        writer.ingest([ok_entry("GOOD"), bad])
    assert dump(ledger) == before


def test_duplicate_fitid_is_a_no_op(tmp_path: Path) -> None:
    ledger, writer = new_ledger(tmp_path)
    entries = [e for f in day_of_fills() for e in entries_for_fill(f)]
    first = writer.ingest(entries)
    assert (first.written, first.skipped_duplicates) == (len(entries), 0)
    before = dump(ledger)
    again = writer.ingest(entries)
    assert (again.written, again.skipped_duplicates, again.backup_path) == (0, len(entries), None)
    assert dump(ledger) == before
    mixed = writer.ingest([entries[0], ok_entry("NEW")])
    assert (mixed.written, mixed.skipped_duplicates) == (1, 1)
    assert verify_ledger(ledger) == []


def test_same_fitid_with_other_content_is_skipped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([ok_entry("A", "100")])
    with caplog.at_level(logging.WARNING):
        result = writer.ingest([ok_entry("A", "200")])
    assert (result.written, result.conflicting_fitids) == (0, ("A",))
    assert "different content" in caplog.text
    with pytest.raises(LedgerError, match="twice in the batch"):
        writer.ingest([ok_entry("B", "1"), ok_entry("B", "2")])


@pytest.mark.parametrize("table", ["transactions", "splits", "audit_log"])
def test_update_and_delete_are_refused_by_triggers(tmp_path: Path, table: str) -> None:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest([ok_entry("A")])
    conn = sqlite3.connect(ledger)
    try:
        column = {"transactions": "ticker", "splits": "memo", "audit_log": "memo"}[table]
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
            conn.execute(f"UPDATE {table} SET {column} = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
            conn.execute(f"DELETE FROM {table}")
    finally:
        conn.close()
    assert verify_ledger(ledger) == []


def test_a_backup_precedes_every_batch_and_holds_the_state_before_it(tmp_path: Path) -> None:
    clock = iter(datetime(2026, 11, 24, 15, tzinfo=UTC) + timedelta(seconds=n) for n in range(100))
    ledger, _ = new_ledger(tmp_path)
    writer = LedgerWriter(ledger, tmp_path / "bk", 3, now=lambda: next(clock))
    for n in range(5):
        result = writer.ingest([ok_entry(f"T{n}")])
        assert result.backup_path is not None and result.backup_path.exists()
        assert count(result.backup_path, "transactions") == n  # the copy is the ledger before batch n
        assert verify_ledger(result.backup_path) == []
    backups = list_ledger_backups(ledger, tmp_path / "bk")
    assert len(backups) == 3  # LEDGER_BACKUP_KEEP=3: newest three kept
    assert [count(b, "transactions") for b in backups] == [2, 3, 4]
    assert backups[-1].name == "RIGD_USA_main_ALPACA_01_BOT_ledger.20261124T150004000000Z.bak.db"


def test_a_failed_backup_blocks_the_write_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger, _ = new_ledger(tmp_path)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the backup directory should be")
    writer = LedgerWriter(ledger, blocker, 5)
    before = dump(ledger)
    with caplog.at_level(logging.ERROR), pytest.raises(LedgerError, match="backup"):
        writer.ingest([ok_entry("A")])
    assert dump(ledger) == before
    assert "backup failed" in caplog.text


def test_writer_refuses_a_ledger_that_is_missing_or_a_coa_that_differs(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        LedgerWriter(tmp_path / "none.db", tmp_path / "bk", 5)
    ledger, _ = new_ledger(tmp_path)
    with pytest.raises(LedgerError, match="COA"):
        LedgerWriter(ledger, tmp_path / "bk", 5, coa_path=tmp_path / "no_coa.db")


def test_a_correction_is_a_new_flagged_entry_with_a_9320_memo(tmp_path: Path) -> None:
    ledger, writer = new_ledger(tmp_path)
    writer.ingest(entries_for_fill(fill("F1", fee=Decimal("1.00"))))
    replacement = entries_for_fill(fill("F1-FEE-FIX", fee=Decimal("0.50")))[1]
    result = writer.correct(
        "F1-FEE", reason="broker fee was 0.50", posted_at=at(21, 0), replacement=replacement
    )
    assert result.written == 2
    conn = sqlite3.connect(ledger)
    conn.row_factory = sqlite3.Row
    rows = {r["fitid"]: r for r in conn.execute("SELECT * FROM transactions")}
    assert rows["F1-FEE-REV"]["is_correction"] == 1 and rows["F1-FEE-REV"]["correction_of"] == "F1-FEE"
    assert rows["F1-FEE"]["is_correction"] == 0  # the original is untouched
    audits = conn.execute("SELECT account_code, memo FROM audit_log WHERE action = 'correction'").fetchall()
    assert len(audits) == 2 and all(
        a["account_code"] == "9320" and "broker fee was 0.50" in a["memo"] for a in audits
    )
    fees = conn.execute("SELECT sum(debit) - sum(credit) FROM splits WHERE account_code = '5010'").fetchone()[
        0
    ]
    conn.close()
    assert fees == 5000  # 1.00 posted, reversed, 0.50 posted
    assert verify_ledger(ledger) == []
    # refusals of the request (a person's call, exit 2), not faults of the ledger
    with pytest.raises(UsageError, match="already reversed"):
        writer.correct("F1-FEE", reason="again", posted_at=at(21, 5))
    with pytest.raises(UsageError, match="no such FITID"):
        writer.correct("NOPE", reason="x", posted_at=at(21, 5))


def test_the_loser_of_two_simultaneous_corrections_is_told_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two operators correct the same fee at once: both plan before either writes. The second to write finds the
    first's entries under the same FITIDs; it said "posted 0 correction entries", exit 0, and logged its own."""
    from tbot_bot.accounting import accounting_api

    ledger, writer = new_ledger(tmp_path)
    writer.ingest(entries_for_fill(fill("F1", fee=Decimal("1.00"))))
    planned = accounting_api.build_reversal(ledger, "F1-FEE", reason="second", posted_at=at(21, 1))
    writer.correct("F1-FEE", reason="first", posted_at=at(21, 0))
    # the second operator's writer goes on with what it planned before the first one wrote
    monkeypatch.setattr(accounting_api, "build_reversal", lambda *a, **k: planned)
    with pytest.raises(
        UsageError, match=r"'F1-FEE' was corrected meanwhile by another correction: F1-FEE-REV"
    ):
        writer.correct("F1-FEE", reason="second", posted_at=at(21, 1))
    conn = sqlite3.connect(ledger)
    memos = [r[0] for r in conn.execute("SELECT memo FROM transactions WHERE fitid = 'F1-FEE-REV'")]
    conn.close()
    assert len(memos) == 1 and "first" in memos[0]
    assert verify_ledger(ledger) == []


def test_an_entry_and_its_exit_are_corrected_together_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry's correction carries its exit's (the position's account nets to zero). When someone corrects the
    exit between the plan and the write, the batch is refused whole: it wrote the entry's reversal and replacement
    and skipped the exit's, leaving the phantom holding it exists to prevent."""
    from tbot_bot.accounting import accounting_api
    from tbot_bot.accounting.ledger_correction import plan_correction

    ledger, writer = new_ledger(tmp_path)
    writer.ingest([e for f in day_of_fills()[:2] for e in entries_for_fill(f)])  # L1-OPEN, L1-CLOSE
    plan = plan_correction(
        ledger, "L1-OPEN", reason="broker", user="u", source="test", amount=Decimal("1905")
    )
    follows = plan.follows
    assert follows is not None and follows.fitid == "L1-CLOSE"
    planned = {
        fitid: accounting_api.build_reversal(ledger, fitid, reason=why, posted_at=at(21, 0))
        for fitid, why in (("L1-OPEN", plan.reason), ("L1-CLOSE", follows.reason))
    }
    writer.correct("L1-CLOSE", reason="someone else", posted_at=at(20, 0))
    monkeypatch.setattr(accounting_api, "build_reversal", lambda _ledger, fitid, **_: planned[fitid])
    with pytest.raises(UsageError, match=r"'L1-OPEN' and 'L1-CLOSE' were corrected meanwhile .*\(0 of its 4"):
        writer.correct(
            plan.fitid, reason=plan.reason, posted_at=plan.posted_at, replacement=plan.replacement,
            also=((follows.fitid, follows.reason, follows.posted_at, follows.replacement),),
        )  # fmt: skip
    conn = sqlite3.connect(ledger)
    held = {r[0] for r in conn.execute("SELECT fitid FROM transactions")}
    conn.close()
    assert not {"L1-OPEN-REV", "L1-OPEN-COR"} & held and "L1-CLOSE-REV" in held
    assert verify_ledger(ledger) == []
