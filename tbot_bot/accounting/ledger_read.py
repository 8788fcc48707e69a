"""Read-only figures from a ledger for reports: fees posted apart from fills, account balances.

Reports never recompute PnL: they read the value the ledger stored at ingestion (DESIGN §6 "one PnL").
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import from_minor

BROKER_FEES = "5010"


def prior_period_ids(conn: sqlite3.Connection, where: str = "", params: Sequence[object] = ()) -> set[int]:
    """The corrections (transaction ids; `where` narrows them, over `transactions t`) that are prior-period
    adjustments: posted after the month their trade was opened in had been closed. A closed day's reports stay
    as they were closed, so such a correction is reported once, by its posting day (prior_period_adjustments),
    never as that day's own figures (account_fees). A trade is judged by its entry's date
    (`ledger_pairs.trade_date`: the exit of a position carried past the month's end is part of it), and a
    correction by the closes before it in the audit log (one posted before the close is in the month's reports)."""
    from tbot_bot.accounting.ledger_pairs import trade_date
    from tbot_bot.accounting.ledger_period import CLOSE_ACTION

    closes = [
        (int(audit_id), str(json.loads(memo)["through"]))
        for audit_id, memo in conn.execute(
            "SELECT id, memo FROM audit_log WHERE action = ? ORDER BY id", (CLOSE_ACTION,)
        )
    ]
    if not closes:
        return set()
    factory = conn.row_factory
    conn.row_factory = sqlite3.Row  # trade_date reads rows by name (the caller's factory is given back)
    try:
        pairings: dict[tuple[str, str], Any] = {}
        found: set[int] = set()
        for row in conn.execute(
            "SELECT t.*, (SELECT min(a.id) FROM audit_log a WHERE a.transaction_id = t.id) AS audit_id "
            f"FROM transactions t WHERE t.is_correction = 1 {where}",
            tuple(params),
        ).fetchall():
            posted = row["audit_id"]
            if posted is None:
                raise LedgerError(
                    f"correction {row['fitid']} has no audit row, so when it was posted is unknown: run "
                    "`tbot ledger verify`"
                )
            # the month closed when it was posted: closes come in order, each through a later instant
            through = None
            for audit_id, instant in closes:
                if audit_id > posted:
                    break
                through = instant
            if through is not None and trade_date(conn, row, pairings) <= through:
                found.add(int(row["id"]))
        return found
    finally:
        conn.row_factory = factory


def account_fees(ledger_path: Path, day: str | None = None, *, since: str | None = None) -> Decimal:
    """Net Dr 5010 of the fees the broker posted apart from fills (FITID `<broker>-ACT-<id>`): regulatory fees and
    pass-through charges, less refunds, with their corrections (a reversal and its replacement), those dated `day`
    (YYYY-MM-DD), on or after `since`, or all of them. A correction that is a prior-period adjustment
    (prior_period_ids) is not the day's: it is counted once, by prior_period_adjustments."""
    where, args = "", []
    if day is not None:
        where, args = " AND substr(t.dtposted, 1, 10) = ?", [day]
    elif since is not None:
        where, args = " AND substr(t.dtposted, 1, 10) >= ?", [since]
    fees = f"t.trntype IN ('FEE', 'CORRECTION') AND t.fitid LIKE '%-ACT-%'{where}"
    with open_ledger(ledger_path, readonly=True) as conn:
        adjustments = prior_period_ids(conn, f"AND {fees}", args)
        total = 0
        for transaction_id, amount in conn.execute(
            "SELECT t.id, coalesce(sum(s.debit) - sum(s.credit), 0) FROM splits s JOIN transactions t "
            f"ON t.id = s.transaction_id WHERE s.account_code = ? AND {fees} GROUP BY t.id",
            [BROKER_FEES, *args],
        ):
            if transaction_id not in adjustments:
                total += int(amount)
    return from_minor(total)


def prior_period_adjustments(ledger_path: Path, day: str) -> tuple[Decimal, Decimal]:
    """(gross PnL, fees) the corrections posted on `day` (YYYY-MM-DD) bring to trades of a month closed before
    they were posted (prior_period_ids): a closed day's reports stay as they were closed, so the posting day's
    summary carries the change (else no summary would, and `tbot summary` would disagree with the ledger by it).
    Income is 4xxx credit, fees 5xxx debit."""
    pnl = fees = 0
    with open_ledger(ledger_path, readonly=True) as conn:
        for transaction_id in sorted(prior_period_ids(conn, "AND substr(t.dtposted, 1, 10) = ?", [day])):
            income, fee = conn.execute(
                "SELECT coalesce(sum(CASE WHEN account_code LIKE '4%' THEN credit - debit END), 0), "
                "coalesce(sum(CASE WHEN account_code LIKE '5%' THEN debit - credit END), 0) "
                "FROM splits WHERE transaction_id = ?",
                (transaction_id,),
            ).fetchone()
            pnl, fees = pnl + int(income), fees + int(fee)
    return from_minor(pnl), from_minor(fees)


def trial_balance(ledger_path: Path) -> list[tuple[str, str, Decimal, Decimal]]:
    """(account, name, debits, credits) of every account with postings, in account order; the totals of the two
    money columns are equal in a balanced ledger (what an accountant reads first)."""
    from tbot_bot.accounting.coa import ACCOUNTS_BY_CODE

    with open_ledger(ledger_path, readonly=True) as conn:
        rows = conn.execute(
            "SELECT account_code, coalesce(sum(debit), 0), coalesce(sum(credit), 0) FROM splits "
            "GROUP BY account_code ORDER BY account_code"
        ).fetchall()
    return [
        (
            str(code),
            ACCOUNTS_BY_CODE[str(code)].name if str(code) in ACCOUNTS_BY_CODE else "(not in the chart)",
            from_minor(int(dr)),
            from_minor(int(cr)),
        )
        for code, dr, cr in rows
    ]


def latest_transactions(ledger_path: Path, limit: int = 20) -> list[dict[str, str | None]]:
    """The newest transactions, newest first: FITID, type, date (UTC), strategy, ticker, amount moved through
    broker cash (1030) and memo."""
    with open_ledger(ledger_path, readonly=True) as conn:
        rows = conn.execute(
            "SELECT t.fitid, t.trntype, t.dtposted, t.strategy, t.ticker, t.memo, "
            "(SELECT coalesce(sum(s.debit) - sum(s.credit), 0) FROM splits s "
            " WHERE s.transaction_id = t.id AND s.account_code = '1030') "
            "FROM transactions t ORDER BY t.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [
        {
            "fitid": fitid, "trntype": trntype, "dtposted": dtposted, "strategy": strategy, "ticker": ticker,
            "memo": memo, "cash": f"{from_minor(int(cash)):.2f}",
        }
        for fitid, trntype, dtposted, strategy, ticker, memo, cash in rows
    ]  # fmt: skip
