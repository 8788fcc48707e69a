"""Read-only figures from a ledger for reports: fees posted apart from fills, account balances.

Reports never recompute PnL: they read the value the ledger stored at ingestion (DESIGN §6 "one PnL").
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.support.utils_bot import from_minor

BROKER_FEES = "5010"


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
