"""Bot ledger schema (SQLAlchemy Core), its immutability triggers, and ledger creation / schema checks.

`tradebot_ledger_schema.sql` is the reference DDL; it must equal `schema_ddl()` (a test compares them).
Money columns are INTEGER ten-thousandths of the currency unit; quantities are canonical decimal TEXT.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from tbot_bot.accounting.ledger_entry import AUDIT_FIELDS, GENESIS_HASH, audit_row_hash
from tbot_bot.errors import DamagedLedger, LedgerError, MachineFault
from tbot_bot.support.machine_faults import damaged_text, database_fault, is_damage, is_file_fault, unreadable
from tbot_bot.support.utils_bot import MINOR_UNITS_PER_UNIT, utc_now

SCHEMA_VERSION = "2"  # 2: transactions.direction; shorts on 2030; anchors
PAGE_SIZE = 16384  # fewer, larger pages: the pre-batch online backup copies the ledger faster
SCHEMA_SQL_FILE = Path(__file__).with_name("tradebot_ledger_schema.sql")

metadata = MetaData()

transactions = Table(
    "transactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fitid", Text, nullable=False, unique=True),
    Column("trntype", Text, nullable=False),
    Column("dtposted", Text, nullable=False),  # UTC ISO-8601, e.g. 2026-11-25T14:31:02.000000Z
    Column("strategy", Text),
    Column("ticker", Text),
    Column("signal_ticker", Text),
    Column("side", Text),  # position held: long | short
    Column("direction", Text),  # the signal's view: bullish | bearish (inverse ETF / put: long + bearish)
    Column("size", Text),  # canonical decimal string (shares or contracts)
    Column("entry_price", Integer),  # ten-thousandths
    Column("exit_price", Integer),  # ten-thousandths
    Column("pnl", Integer),  # ten-thousandths, realized, before fees
    Column("broker", Text),
    Column("client_order_id", Text),
    Column("tag", Text),
    Column("leverage_multiplier", Text),  # canonical decimal string
    Column("exit_reason", Text),
    Column("session_id", Text),
    Column("currency_code", Text, nullable=False),
    Column("instrument", Text, nullable=False),
    Column("contract_multiplier", Text),  # shares per option contract, canonical decimal string
    Column("memo", Text),
    Column("is_correction", Integer, nullable=False),
    Column("correction_of", Text),  # FITID of the entry this one corrects
    CheckConstraint("side IS NULL OR side IN ('long', 'short')", name="ck_transactions_side"),
    CheckConstraint(
        "direction IS NULL OR direction IN ('bullish', 'bearish')", name="ck_transactions_direction"
    ),
    CheckConstraint("length(currency_code) = 3", name="ck_transactions_currency"),
    CheckConstraint("instrument IN ('equity', 'option', 'cash')", name="ck_transactions_instrument"),
    CheckConstraint("is_correction IN (0, 1)", name="ck_transactions_is_correction"),
    sqlite_autoincrement=False,
)

splits = Table(
    "splits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("transaction_id", Integer, ForeignKey("transactions.id"), nullable=False),
    Column("account_code", Text, nullable=False),
    Column("debit", Integer, nullable=False),  # ten-thousandths
    Column("credit", Integer, nullable=False),  # ten-thousandths
    Column("currency_code", Text, nullable=False),
    Column("memo", Text),
    CheckConstraint("debit >= 0 AND credit >= 0 AND (debit = 0) <> (credit = 0)", name="ck_splits_one_side"),
    CheckConstraint("length(currency_code) = 3", name="ck_splits_currency"),
)
Index("ix_splits_transaction_id", splits.c.transaction_id)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("logged_at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),  # create | post | batch | correction
    Column("transaction_id", Integer, ForeignKey("transactions.id")),
    Column("fitid", Text),
    Column("account_code", Text),  # e.g. 9320 on a correction memo
    Column("memo", Text),
    Column("payload_sha256", Text),  # digest of the transaction and its splits as written
    Column("prev_hash", Text, nullable=False),
    Column("row_hash", Text, nullable=False),
)
Index("ix_audit_log_transaction_id", audit_log.c.transaction_id)

ledger_meta = Table(
    "ledger_meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

IMMUTABLE_TABLES = ("transactions", "splits", "audit_log")
TRIGGER_NAMES = tuple(f"trg_{t}_no_{op.lower()}" for t in IMMUTABLE_TABLES for op in ("UPDATE", "DELETE"))


def _trigger_ddl() -> list[str]:
    return [
        f"CREATE TRIGGER trg_{table}_no_{op.lower()} BEFORE {op} ON {table}\n"
        f"BEGIN\n    SELECT RAISE(ABORT, '{table} is append-only: {op} refused');\nEND"
        for table in IMMUTABLE_TABLES
        for op in ("UPDATE", "DELETE")
    ]


def schema_ddl() -> list[str]:
    """Every DDL statement of a bot ledger, in creation order (tables, indexes, triggers)."""
    dialect = sqlite_dialect.dialect()
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    statements.extend(_trigger_ddl())
    return statements


@contextmanager
def open_ledger(path: Path, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection with the ledger pragmas (WAL, synchronous=FULL, foreign keys); autocommit off by hand."""
    if not path.is_file():
        raise LedgerError(f"ledger {path} does not exist")
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        yield conn
    except sqlite3.DatabaseError as exc:
        fault = database_fault(exc, path) if is_file_fault(exc) else None
        if isinstance(fault, MachineFault):
            raise fault from exc  # a full disk or a read-only home, named as such
        if is_damage(exc):
            # damaged: a ledger error naming the file (SQLite's own message names none), which verify reports
            raise DamagedLedger(damaged_text(exc, path)) from exc
        raise
    finally:
        conn.close()


def create_ledger(path: Path, *, currency_code: str, kind: str = "bot") -> None:
    """Create an empty ledger with the schema, triggers and meta; refuses if the file already exists."""
    if path.exists():
        raise LedgerError(f"ledger {path} already exists; refusing to overwrite it")
    if len(currency_code) != 3 or not currency_code.isalpha() or not currency_code.isupper():
        raise LedgerError(f"currency_code {currency_code!r} is not an ISO 4217 code like USD")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        for stmt in schema_ddl():
            conn.execute(stmt)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "currency_code": currency_code,
            "created_at": utc_now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "minor_units_per_unit": str(MINOR_UNITS_PER_UNIT),
            "ledger_kind": kind,
        }
        conn.executemany("INSERT INTO ledger_meta (key, value) VALUES (?, ?)", sorted(meta.items()))
        genesis = {
            "id": 1,
            "logged_at": meta["created_at"],
            "actor": "create_ledger",
            "action": "create",
            "transaction_id": None,
            "fitid": None,
            "account_code": None,
            "memo": f"ledger created: kind={kind} schema_version={SCHEMA_VERSION} currency={currency_code}",
            "payload_sha256": None,
        }
        conn.execute(
            f"INSERT INTO audit_log ({', '.join(AUDIT_FIELDS)}, prev_hash, row_hash) VALUES ({', '.join('?' * (len(AUDIT_FIELDS) + 2))})",
            [*(genesis[k] for k in AUDIT_FIELDS), GENESIS_HASH, audit_row_hash(GENESIS_HASH, genesis)],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        path.unlink(missing_ok=True)
        raise
    conn.close()


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM ledger_meta")}


def _meta_problems(conn: sqlite3.Connection, meta: dict[str, str]) -> list[str]:
    """ledger_meta has no trigger of its own (outside tools read it): its money scale, currency and kind are
    checked against the constant and the hash-chained genesis record, which an edit of the table cannot change."""
    problems = []
    if meta.get("minor_units_per_unit") != str(MINOR_UNITS_PER_UNIT):
        problems.append(
            f"ledger_meta minor_units_per_unit={meta.get('minor_units_per_unit')!r}, expected "
            f"{str(MINOR_UNITS_PER_UNIT)!r} (every amount would read at another scale)"
        )
    genesis = conn.execute("SELECT memo FROM audit_log WHERE id = 1 AND action = 'create'").fetchone()
    found = re.search(r"kind=(\S+) .*currency=(\S+)", str(genesis[0])) if genesis else None
    if found:
        for key, recorded in (("ledger_kind", found.group(1)), ("currency_code", found.group(2))):
            if meta.get(key) != recorded:
                problems.append(
                    f"ledger_meta {key}={meta.get(key)!r}, but the ledger was created with {recorded!r} "
                    "(audit_log's first record)"
                )
    return problems


def check_ledger_schema(path: Path) -> list[str]:
    """Problems with the ledger's structure (tables, columns, triggers, schema version); empty = ok."""
    problems: list[str] = []
    try:
        with open_ledger(path, readonly=True) as conn:
            objects = {
                (str(t), str(n))
                for t, n in conn.execute(
                    "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger')"
                )
            }
            for table in metadata.sorted_tables:
                if ("table", table.name) not in objects:
                    problems.append(f"table {table.name} is missing")
                    continue
                have = [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table.name})")]
                want = [c.name for c in table.columns]
                if have != want:
                    problems.append(f"table {table.name}: columns {have} != expected {want}")
            for trigger in TRIGGER_NAMES:
                if ("trigger", trigger) not in objects:
                    problems.append(f"immutability trigger {trigger} is missing")
            if ("table", "ledger_meta") in objects:
                meta = read_meta(conn)
                version = meta.get("schema_version")
                if version != SCHEMA_VERSION:
                    problems.append(f"ledger_meta schema_version={version!r}, expected {SCHEMA_VERSION!r}")
                if ("table", "audit_log") in objects:
                    problems += _meta_problems(conn, meta)
    except DamagedLedger as exc:  # open_ledger's own words, the file named
        problems.append(str(exc))
    except sqlite3.DatabaseError as exc:
        denied = unreadable(path)
        problems.append(
            f"{path} cannot be read ({denied.strerror or denied}): its owner or mode keeps this user out"
            if denied is not None
            else f"{path} is not a readable SQLite ledger: {exc}"
        )
    return problems
