"""Tamper evidence (issue 12): one audit row per transaction, and the chain head anchored outside the ledger.

Each case is what an intruder with write access to the ledger file could do; `tbot ledger verify` must fail
naming what is wrong, boot (preflight) must refuse, and OFX export must refuse.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_ledger_fixtures import day_of_fills, fill

from rigd_tbot.cli import main
from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.accounting_config import LedgerBinding, load_binding
from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_backup import list_ledger_backups
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import ConfigError, LedgerError
from tbot_bot.runtime.preflight import preflight
from tbot_bot.support.path_resolver import BotHome


def _book(home: Path) -> tuple[BotHome, LedgerBinding]:
    bh = BotHome(home)
    binding = load_binding(bh)
    writer = LedgerWriter.for_home(bh, binding.ledger_path, binding, 10)
    fills = day_of_fills()
    writer.ingest([e for f in fills[:4] for e in entries_for_fill(f)])  # batch 1: long + inverse ETF
    writer.ingest([e for f in fills[4:] for e in entries_for_fill(f)])  # batch 2: short sale + put
    return bh, binding


def _problems(bh: BotHome, binding: LedgerBinding) -> list[str]:
    return verify_ledger(binding.ledger_path, anchors=AnchorStore.for_home(bh), backup_dir=binding.backup_dir)


def _tamper(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path)
    for trigger in ("transactions", "splits", "audit_log"):
        conn.execute(f"DROP TRIGGER IF EXISTS trg_{trigger}_no_delete")
    for stmt in sql:
        conn.execute(stmt)
    conn.commit()
    # an intruder puts the triggers back so the schema check passes
    from tbot_bot.accounting.ledger_schema import _trigger_ddl

    for ddl in _trigger_ddl():
        if "_no_delete" in ddl:
            conn.execute(ddl)
    conn.commit()
    conn.close()


def _refused_everywhere(
    bh: BotHome, binding: LedgerBinding, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    capsys.readouterr()
    assert main(["ledger", "verify", "--home", str(bh.root)]) == 1
    report = capsys.readouterr().out
    assert "FAILED" in report
    with pytest.raises(ConfigError) as refused:
        preflight(bh)
    assert binding.ledger_path.name in str(refused.value)
    out = tmp_path / "refused.ofx"
    assert main(["ofx", "export", "--home", str(bh.root), "--all", "--out", str(out)]) == 1
    assert not out.exists()
    return report


def test_untouched_ledger_verifies_with_its_anchor(provisioned_home: Path) -> None:
    bh, binding = _book(provisioned_home)
    assert _problems(bh, binding) == []
    assert main(["ledger", "verify", "--home", str(provisioned_home)]) == 0
    sidecar = json.loads((binding.backup_dir / f"{binding.ledger_path.stem}.anchor.json").read_text())
    head = sidecar["anchor"]["head"]
    # opening float + 8 trades + 5 fees = 14 transactions; the last is the put's closing fee
    assert (head["transactions"], head["last_fitid"], sidecar["anchor"]["pending"]) == (
        14,
        "P1-CLOSE-FEE",
        None,
    )


def test_deleting_a_middle_transaction_names_the_orphaned_audit_row(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bh, binding = _book(provisioned_home)
    _tamper(
        binding.ledger_path,
        "DELETE FROM splits WHERE transaction_id = (SELECT id FROM transactions WHERE fitid = 'I1-OPEN')",
        "DELETE FROM transactions WHERE fitid = 'I1-OPEN'",
    )
    problems = _problems(bh, binding)
    assert any("fitid='I1-OPEN', which is missing from transactions (deleted)" in p for p in problems), (
        problems
    )
    assert any("transactions has 13 rows but the anchor recorded 14" in p for p in problems), problems
    report = _refused_everywhere(bh, binding, tmp_path, capsys)
    assert "I1-OPEN" in report


def test_deleting_the_newest_transaction_with_its_audit_rows_is_caught_by_the_anchor(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bh, binding = _book(provisioned_home)
    _tamper(
        binding.ledger_path,
        "DELETE FROM audit_log WHERE id >= (SELECT id FROM audit_log WHERE fitid = 'P1-CLOSE-FEE')",
        "DELETE FROM splits WHERE transaction_id = (SELECT id FROM transactions WHERE fitid = 'P1-CLOSE-FEE')",
        "DELETE FROM transactions WHERE fitid = 'P1-CLOSE-FEE'",
    )
    # the chain inside the file is still perfect: only the anchor can tell
    assert verify_ledger(binding.ledger_path) == []
    problems = _problems(bh, binding)
    assert any(
        "transactions has 13 rows but the anchor recorded 14" in p and "P1-CLOSE-FEE" in p for p in problems
    )
    assert any("rows were deleted or the ledger was rolled back" in p for p in problems), problems
    _refused_everywhere(bh, binding, tmp_path, capsys)


def test_deleting_only_the_last_audit_row_is_caught(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bh, binding = _book(provisioned_home)
    _tamper(binding.ledger_path, "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)")
    problems = _problems(bh, binding)
    assert any(p.startswith("anchor: audit_log has") and "rows were deleted" in p for p in problems), problems
    _refused_everywhere(bh, binding, tmp_path, capsys)


def test_rolling_the_file_back_to_an_earlier_backup_is_caught(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bh, binding = _book(provisioned_home)
    backups = list_ledger_backups(binding.ledger_path, binding.backup_dir)
    newest = backups[-1]  # taken before batch 2: a perfectly valid ledger, just an older one
    assert verify_ledger(newest) == []
    for suffix in ("-wal", "-shm"):
        Path(str(binding.ledger_path) + suffix).unlink(missing_ok=True)
    shutil.copyfile(newest, binding.ledger_path)
    problems = _problems(bh, binding)
    assert any("rolled back" in p for p in problems), problems
    _refused_everywhere(bh, binding, tmp_path, capsys)
    # and the daemon will not write on top of it
    with pytest.raises(LedgerError, match="does not match its anchor"):
        LedgerWriter.for_home(bh, binding.ledger_path, binding, 10).ingest(entries_for_fill(fill("NEW-1")))


def test_rolling_back_ledger_and_ledger_status_together_is_caught_by_the_backup_sidecar(
    provisioned_home: Path,
) -> None:
    bh = BotHome(provisioned_home)
    binding = load_binding(bh)
    status_db = bh.core_db("LEDGER_STATUS")
    old_status = provisioned_home.parent / "status_before.db"
    shutil.copyfile(status_db, old_status)
    old_ledger = provisioned_home.parent / "ledger_before.db"
    shutil.copyfile(binding.ledger_path, old_ledger)
    _book(provisioned_home)
    shutil.copyfile(old_status, status_db)
    for suffix in ("-wal", "-shm"):
        Path(str(binding.ledger_path) + suffix).unlink(missing_ok=True)
        Path(str(status_db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(old_ledger, binding.ledger_path)
    problems = _problems(bh, binding)
    assert any("rolled back" in p for p in problems), problems


def test_a_forged_anchor_fails_authentication(provisioned_home: Path) -> None:
    bh, binding = _book(provisioned_home)
    sidecar = binding.backup_dir / f"{binding.ledger_path.stem}.anchor.json"
    doc = json.loads(sidecar.read_text())
    doc["anchor"]["seq"] += 5
    doc["anchor"]["head"]["transactions"] = 99
    sidecar.write_text(json.dumps(doc))
    problems = _problems(bh, binding)
    assert problems == [
        f"anchor in {sidecar.name} fails authentication (altered, or written with another key)"
    ]


def test_a_ledger_with_postings_but_no_anchor_is_named(provisioned_home: Path) -> None:
    bh, binding = _book(provisioned_home)
    (binding.backup_dir / f"{binding.ledger_path.stem}.anchor.json").unlink()
    conn = sqlite3.connect(bh.core_db("LEDGER_STATUS"))
    conn.execute("DELETE FROM ledger_anchor")
    conn.commit()
    conn.close()
    problems = _problems(bh, binding)
    assert any("no anchor recorded for this ledger, yet it holds 14 transactions" in p for p in problems)
    # and the writer will not adopt (launder) the file by anchoring it now
    with pytest.raises(LedgerError, match="no anchor recorded, yet it holds 14 transactions"):
        LedgerWriter.for_home(bh, binding.ledger_path, binding, 10).ingest(entries_for_fill(fill("NEW-2")))


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE transactions SET pnl = pnl + 10000 WHERE id = (SELECT max(id) FROM transactions WHERE pnl IS NOT NULL)",
        "UPDATE splits SET debit = debit + 1 WHERE id = (SELECT min(id) FROM splits WHERE debit > 0)",
    ],
    ids=["pnl", "amount"],
)
def test_an_in_row_edit_is_refused_by_check_and_start_alike(
    provisioned_home: Path, edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26: what `tbot ledger verify` catches, `tbot check` refuses with start's message and exit code."""
    bh, binding = _book(provisioned_home)
    conn = sqlite3.connect(binding.ledger_path)
    for table in ("transactions", "splits"):
        conn.execute(f"DROP TRIGGER IF EXISTS trg_{table}_no_update")
    conn.execute(edit)
    from tbot_bot.accounting.ledger_schema import _trigger_ddl

    for ddl in _trigger_ddl():  # an intruder puts the triggers back so the schema check passes
        if any(f"trg_{table}_no_update" in ddl for table in ("transactions", "splits")):
            conn.execute(ddl)
    conn.commit()
    conn.close()
    assert _problems(bh, binding)  # verify names it
    capsys.readouterr()
    codes, messages = [], []
    for command in ("check", "start"):
        codes.append(main([command, "--home", str(bh.root)]))
        messages.append(
            [line for line in capsys.readouterr().err.splitlines() if binding.ledger_path.name in line]
        )
    assert codes[0] == codes[1] == 2 and messages[0] and messages[0] == messages[1]
    assert "fails verification" in "\n".join(messages[0])


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("minor_units_per_unit", "100", "ledger_meta minor_units_per_unit='100', expected '10000'"),
        ("currency_code", "EUR", "ledger_meta currency_code='EUR', but the ledger was created with 'USD'"),
    ],
)
def test_an_edit_of_ledger_meta_is_named(provisioned_home: Path, key: str, value: str, said: str) -> None:
    """ledger_meta has no trigger (outside tools read it): an edit of its scale or currency passed verify."""
    bh, binding = _book(provisioned_home)
    conn = sqlite3.connect(binding.ledger_path)
    conn.execute("UPDATE ledger_meta SET value = ? WHERE key = ?", (value, key))
    conn.commit()
    conn.close()
    assert any(said in p for p in _problems(bh, binding))


def test_ledger_float_does_not_show_the_float_of_a_float_ledger_that_fails_verification(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bh, binding = _book(provisioned_home)
    assert main(["ledger", "float", "--home", str(provisioned_home)]) == 0
    _tamper(binding.float_ledger_path, "DELETE FROM splits WHERE id = (SELECT max(id) FROM splits)")
    capsys.readouterr()
    assert main(["ledger", "float", "--home", str(provisioned_home)]) == 1
    out = capsys.readouterr().out
    assert "fails verification, so its float is not shown" in out and " USD" not in out.splitlines()[0]
    # nor does any command that sizes by it: a backtest or a study of the home's float, a rebalance check
    for command in (
        ["backtest", "--strategy", "open", "--start", "2011-01-04", "--end", "2011-01-05", "--no-plots"],
        ["optimize", "run", "--strategy", "open", "--start", "2011-01-04", "--end", "2011-03-31"],
        ["rebalance", "check"],
    ):
        assert main([*command, "--home", str(provisioned_home)]) != 0, command
        err = capsys.readouterr().err
        assert f"{binding.float_ledger_path.name} fails verification, so its float is not used" in err, (
            command
        )
        assert f"run `tbot ledger verify --home {provisioned_home}`" in err
        assert "Traceback" not in err
    # a backtest may still be given its float
    out_dir = provisioned_home / "bt"
    argv = ["backtest", "--strategy", "open", "--start", "2011-01-04", "--end", "2011-01-05", "--no-plots"]
    assert main([*argv, "--float", "25000", "--out", str(out_dir), "--home", str(provisioned_home)]) == 0
