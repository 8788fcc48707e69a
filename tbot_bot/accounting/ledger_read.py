"""Read-only figures from a ledger for reports: the ledger's PnL and fees per order, the day's account fees.

Reports never recompute PnL: they read the value the ledger stored at ingestion (DESIGN §6 "one PnL").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.support.utils_bot import from_minor

BROKER_FEES = "5010"


@dataclass(frozen=True, slots=True)
class OrderFigures:
    pnl: Decimal | None  # realised PnL before fees on a closing fill (None on an opening fill)
    fee: Decimal  # Dr 5010 booked for this order


def order_figures(ledger_path: Path) -> dict[str, OrderFigures]:
    """client_order_id -> the ledger's PnL and fees of that order (corrections included)."""
    pnl: dict[str, int | None] = {}
    fees: dict[str, int] = {}
    with open_ledger(ledger_path, readonly=True) as conn:
        for coid, trntype, value in conn.execute(
            "SELECT client_order_id, trntype, pnl FROM transactions WHERE client_order_id IS NOT NULL"
        ):
            if trntype not in ("FEE", "CORRECTION"):
                pnl[str(coid)] = None if value is None else int(value)
        for coid, debit, credit in conn.execute(
            "SELECT t.client_order_id, sum(s.debit), sum(s.credit) FROM splits s JOIN transactions t "
            "ON t.id = s.transaction_id WHERE s.account_code = ? AND t.client_order_id IS NOT NULL "
            "GROUP BY t.client_order_id",
            (BROKER_FEES,),
        ):
            fees[str(coid)] = int(debit) - int(credit)
    return {
        coid: OrderFigures(None if p is None else from_minor(p), from_minor(fees.get(coid, 0)))
        for coid, p in pnl.items()
    }


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
