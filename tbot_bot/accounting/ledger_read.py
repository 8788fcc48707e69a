"""Read-only figures from a ledger for reports: fees posted apart from fills, account balances.

Reports never recompute PnL: they read the value the ledger stored at ingestion (DESIGN §6 "one PnL").
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.support.utils_bot import from_minor

BROKER_FEES = "5010"


def account_balances(ledger_path: Path, *, through: str | None = None) -> dict[str, Decimal]:
    """account -> debit minus credit, over postings dated on or before `through` (dtposted text) if given."""
    sql = (
        "SELECT s.account_code, sum(s.debit) - sum(s.credit) FROM splits s JOIN transactions t "
        "ON t.id = s.transaction_id"
    )
    args: tuple[str, ...] = ()
    if through is not None:
        sql += " WHERE t.dtposted <= ?"
        args = (through,)
    with open_ledger(ledger_path, readonly=True) as conn:
        rows = conn.execute(sql + " GROUP BY s.account_code", args).fetchall()
    return {str(code): from_minor(int(bal)) for code, bal in rows}


def account_fees(ledger_path: Path, day: str) -> Decimal:
    """Net Dr 5010 of the fees the broker posted apart from fills (FITID `<broker>-ACT-<id>`) dated `day`
    (YYYY-MM-DD): regulatory fees and pass-through charges, less refunds."""
    with open_ledger(ledger_path, readonly=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(s.debit) - sum(s.credit), 0) FROM splits s JOIN transactions t "
            "ON t.id = s.transaction_id WHERE s.account_code = ? AND t.trntype = 'FEE' "
            "AND t.fitid LIKE '%-ACT-%' AND substr(t.dtposted, 1, 10) = ?",
            (BROKER_FEES, day),
        ).fetchone()
    return from_minor(int(row[0]))
