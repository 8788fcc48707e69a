"""The owner's chart of accounts for bot ledgers (spec "Ledger Chart of Accounts"), and the COA database.

Headers (x000, x100 groups) and every 9xxx account are non-posting: the ingestion API refuses splits on them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import readonly_uri

COA_VERSION = "2"  # 2: 2030 Securities Sold Short


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    INCOME = "income"
    EXPENSE = "expense"
    CONTROL = "control"  # 9xxx: export, attribution and integrity flags; never posted to


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    name: str
    account_type: AccountType
    parent_code: str | None
    is_posting: bool


def _group(code: str, name: str, kind: AccountType, children: list[tuple[str, str]]) -> list[Account]:
    posting = kind is not AccountType.CONTROL
    out = [Account(code, name, kind, None, False)]
    out += [Account(c, n, kind, code, posting) for c, n in children]
    return out


A, L, E, INC, X, C = (
    AccountType.ASSET,
    AccountType.LIABILITY,
    AccountType.EQUITY,
    AccountType.INCOME,
    AccountType.EXPENSE,
    AccountType.CONTROL,
)

CHART_OF_ACCOUNTS: tuple[Account, ...] = tuple(
    _group(
        "1000",
        "Bank and Cash Accounts",
        A,
        [
            ("1010", "Float Injection – From Parent"),
            ("1020", "Float Returned – To Parent"),
            ("1030", "Broker Cash Balance"),
        ],
    )
    + _group(
        "1100",
        "Assets",
        A,
        [("1110", "Brokerage Account – Equities"), ("1120", "Brokerage Account – Options")],
    )
    + _group(
        "2000",
        "Liabilities",
        L,
        [
            ("2010", "Broker Payables (Accrued Fees)"),
            ("2020", "Market Data Payables"),
            ("2030", "Securities Sold Short"),  # added: the liability of a short sale (DESIGN §6)
        ],
    )
    + _group(
        "3000",
        "Equity",
        E,
        [
            ("3010", "Capital Float Ledger"),
            ("3020", "Float Allocation History"),
            ("3030", "Opening Balance"),
            ("3040", "Accumulated Profit"),
        ],
    )
    + _group(
        "4000",
        "Income",
        INC,
        [
            ("4010", "Realized Gains – Equities"),
            ("4020", "Realized Gains – Options"),
            ("4030", "Qualified Dividends"),
            ("4040", "Short-Term Gains"),
            ("4050", "Long-Term Gains"),
        ],
    )
    + _group(
        "5000",
        "Expenses",
        X,
        [
            ("5010", "Broker Fees"),
            ("5020", "Slippage / Execution Loss"),
            ("5030", "API / Market Data Penalties"),
            ("5040", "Bot Infrastructure"),
        ],
    )
    + _group(
        "9100",
        "Exports",
        C,
        [
            ("9110", "Daily PnL Export – OFX"),
            ("9120", "Trade Log Export (CSV/JSON)"),
            ("9130", "Ledger Backup Archive"),
            ("9140", "Confirm Archive (PDFs)"),
            ("9150", "End-of-Day Snapshot"),
        ],
    )
    + _group(
        "9200",
        "Execution Meta",
        C,
        [
            ("9210", "Trade UUID"),
            ("9220", "Confirm #"),
            ("9230", "Strategy Tag"),
            ("9240", "Source Tag"),
            ("9250", "Sync Confirmation Flag"),
            ("9260", "Reconciliation Success Flag"),
        ],
    )
    + _group(
        "9300",
        "System Integrity",
        C,
        [
            ("9310", "Rejects and Order Failures"),
            ("9320", "Manual Adjustments"),
            ("9330", "Ledger Lock Flag"),
            ("9340", "Ledger Status (ACTIVE / DECOMMISSIONED)"),
            ("9350", "Final Timestamp Written"),
            ("9360", "Debug / Signal Annotations"),
        ],
    )
)

ACCOUNTS_BY_CODE: dict[str, Account] = {a.code: a for a in CHART_OF_ACCOUNTS}
POSTING_CODES: frozenset[str] = frozenset(a.code for a in CHART_OF_ACCOUNTS if a.is_posting)
MANUAL_ADJUSTMENTS = "9320"

_DDL = (
    "CREATE TABLE coa_accounts (code TEXT PRIMARY KEY, name TEXT NOT NULL, account_type TEXT NOT NULL, "
    "parent_code TEXT, is_posting INTEGER NOT NULL)",
    "CREATE TABLE coa_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def account_problem(code: str) -> str | None:
    """Why a split may not post to `code`, or None when it may."""
    account = ACCOUNTS_BY_CODE.get(code)
    if account is None:
        return f"account {code!r} is not in the chart of accounts"
    if not account.is_posting:
        return f"account {code} ({account.name}) is non-posting"
    return None


def create_coa_db(path: Path) -> None:
    """Write the chart of accounts to a new SQLite file; refuses an existing file."""
    if path.exists():
        raise LedgerError(f"COA database {path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for stmt in _DDL:
            conn.execute(stmt)
        conn.executemany(
            "INSERT INTO coa_accounts VALUES (?, ?, ?, ?, ?)",
            [
                (a.code, a.name, str(a.account_type), a.parent_code, int(a.is_posting))
                for a in CHART_OF_ACCOUNTS
            ],
        )
        conn.execute("INSERT INTO coa_meta VALUES ('coa_version', ?)", (COA_VERSION,))
        conn.execute("COMMIT")
    finally:
        conn.close()


def coa_matches(path: Path) -> list[str]:
    """Differences between a COA database and the owner's chart; empty = it matches."""
    if not path.is_file():
        return [f"COA database {path} does not exist"]
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            rows = conn.execute(
                "SELECT code, name, account_type, parent_code, is_posting FROM coa_accounts"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return [f"COA database {path} is unreadable: {exc}"]
    have = {str(r[0]): (str(r[1]), str(r[2]), r[3], bool(r[4])) for r in rows}
    problems: list[str] = []
    for account in CHART_OF_ACCOUNTS:
        got = have.pop(account.code, None)
        want = (account.name, str(account.account_type), account.parent_code, account.is_posting)
        if got is None:
            problems.append(f"account {account.code} ({account.name}) is missing")
        elif got != want:
            problems.append(f"account {account.code}: {got} != expected {want}")
    problems += [f"account {code} is not in the owner's chart" for code in sorted(have)]
    return problems
