"""Ledger schema, reference DDL file, ledger creation and the chart of accounts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tbot_bot.accounting.coa import (
    ACCOUNTS_BY_CODE,
    POSTING_CODES,
    account_problem,
    coa_matches,
    create_coa_db,
)
from tbot_bot.accounting.ledger_schema import (
    SCHEMA_SQL_FILE,
    SCHEMA_VERSION,
    check_ledger_schema,
    create_ledger,
    metadata,
    schema_ddl,
)
from tbot_bot.errors import LedgerError


def _normalized(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [" ".join(stmt.split()) for stmt in body.split(";") if stmt.strip()]


def test_reference_sql_file_equals_the_code_ddl() -> None:
    # on a schema change, regenerate the file: its header comment, then each statement of schema_ddl() + ";"
    expected = "".join(f"\n{stmt};\n" for stmt in schema_ddl())
    assert _normalized(SCHEMA_SQL_FILE.read_text(encoding="utf-8")) == _normalized(expected)


def test_reference_sql_creates_the_same_schema_as_create_ledger(tmp_path: Path) -> None:
    from_file = tmp_path / "from_file.db"
    conn = sqlite3.connect(from_file)
    conn.executescript(SCHEMA_SQL_FILE.read_text(encoding="utf-8"))
    conn.close()
    from_code = tmp_path / "from_code.db"
    create_ledger(from_code, currency_code="USD")

    def objects(path: Path) -> list[tuple[str, str]]:
        c = sqlite3.connect(path)
        try:
            return sorted((str(t), str(n)) for t, n in c.execute("SELECT type, name FROM sqlite_master"))
        finally:
            c.close()

    assert objects(from_file) == objects(from_code)


def test_required_column_names_are_exact() -> None:
    tx = {c.name for c in metadata.tables["transactions"].columns}
    assert {
        "fitid", "trntype", "dtposted", "strategy", "ticker", "signal_ticker", "side", "size", "entry_price",
        "exit_price", "pnl", "broker", "client_order_id", "tag", "leverage_multiplier", "exit_reason",
        "session_id", "currency_code",
    } <= tx  # fmt: skip
    assert {"transaction_id", "account_code", "debit", "credit", "currency_code"} <= {
        c.name for c in metadata.tables["splits"].columns
    }
    assert set(metadata.tables) == {"transactions", "splits", "audit_log", "ledger_meta"}
    for column in ("debit", "credit"):
        assert str(metadata.tables["splits"].c[column].type) == "INTEGER"
    for column in ("entry_price", "exit_price", "pnl"):
        assert str(metadata.tables["transactions"].c[column].type) == "INTEGER"


def test_create_ledger_refuses_an_existing_file_and_checks_clean(tmp_path: Path) -> None:
    ledger = tmp_path / "x_BOT_ledger.db"
    create_ledger(ledger, currency_code="USD")
    assert check_ledger_schema(ledger) == []
    with pytest.raises(LedgerError, match="already exists"):
        create_ledger(ledger, currency_code="USD")
    conn = sqlite3.connect(ledger)
    assert (
        conn.execute("SELECT value FROM ledger_meta WHERE key='schema_version'").fetchone()[0]
        == SCHEMA_VERSION
    )
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_create_ledger_refuses_a_bad_currency(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="ISO 4217"):
        create_ledger(tmp_path / "l.db", currency_code="usd")
    assert not (tmp_path / "l.db").exists()


def test_schema_check_reports_a_wrong_version_and_missing_trigger(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    create_ledger(ledger, currency_code="USD")
    conn = sqlite3.connect(ledger)
    conn.execute("DROP TRIGGER trg_splits_no_delete")
    conn.execute("DROP TABLE ledger_meta")
    conn.execute("CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO ledger_meta VALUES ('schema_version', '0')")
    conn.commit()
    conn.close()
    problems = check_ledger_schema(ledger)
    assert any("trg_splits_no_delete" in p for p in problems)
    assert any("schema_version='0'" in p for p in problems)


def test_coa_has_the_owners_accounts_and_9xxx_are_non_posting() -> None:
    assert ACCOUNTS_BY_CODE["1030"].name == "Broker Cash Balance"
    assert ACCOUNTS_BY_CODE["4020"].name == "Realized Gains – Options"
    assert {"1010", "1020", "1030", "1110", "1120", "3010", "4010", "4020", "5010"} <= POSTING_CODES
    assert not any(code.startswith("9") for code in POSTING_CODES)
    assert "non-posting" in str(account_problem("9320"))
    assert "non-posting" in str(account_problem("1000"))  # group headers do not post either
    assert "not in the chart" in str(account_problem("1234"))


def test_coa_db_round_trip_and_tamper(tmp_path: Path) -> None:
    coa = tmp_path / "coa.db"
    create_coa_db(coa)
    assert coa_matches(coa) == []
    with pytest.raises(LedgerError):
        create_coa_db(coa)
    conn = sqlite3.connect(coa)
    conn.execute("UPDATE coa_accounts SET is_posting = 1 WHERE code = '9320'")
    conn.execute("INSERT INTO coa_accounts VALUES ('1999', 'Invented', 'asset', '1000', 1)")
    conn.commit()
    conn.close()
    problems = coa_matches(coa)
    assert any(p.startswith("account 9320") for p in problems)
    assert any("1999" in p for p in problems)
    assert coa_matches(tmp_path / "missing.db") != []
