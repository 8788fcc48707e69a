"""Read-only figures from a ledger for reports: fees posted apart from fills, account balances.

Reports never recompute PnL: they read the value the ledger stored at ingestion (DESIGN §6 "one PnL").
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.support.utils_bot import from_minor

BROKER_FEES = "5010"


# a correction (t) of an entry dated in a closed month (through the lock's instant, the one parameter): reported
# once, as a prior-period adjustment of its posting day, never as that day's own figures
_CORRECTS_CLOSED = (
    "t.is_correction = 1 AND EXISTS (SELECT 1 FROM transactions o WHERE o.fitid = t.correction_of "
    "AND o.dtposted <= ?)"
)


def account_fees(ledger_path: Path, day: str | None = None, *, since: str | None = None) -> Decimal:
    """Net Dr 5010 of the fees the broker posted apart from fills (FITID `<broker>-ACT-<id>`): regulatory fees and
    pass-through charges, less refunds, with their corrections (a reversal and its replacement), those dated `day`
    (YYYY-MM-DD), on or after `since`, or all of them. A correction of a closed month's fee is not the day's: it is
    a prior-period adjustment (prior_period_adjustments), counted there once."""
    from tbot_bot.accounting.ledger_period import closed_through

    where, args = "", [BROKER_FEES]
    if day is not None:
        where, args = " AND substr(t.dtposted, 1, 10) = ?", [*args, day]
    elif since is not None:
        where, args = " AND substr(t.dtposted, 1, 10) >= ?", [*args, since]
    with open_ledger(ledger_path, readonly=True) as conn:
        lock = closed_through(conn)
        row = conn.execute(
            "SELECT coalesce(sum(s.debit) - sum(s.credit), 0) FROM splits s JOIN transactions t "
            "ON t.id = s.transaction_id WHERE s.account_code = ? AND t.trntype IN ('FEE', 'CORRECTION') "
            f"AND t.fitid LIKE '%-ACT-%' AND NOT ({_CORRECTS_CLOSED})" + where,
            [args[0], lock[1] if lock else "", *args[1:]],
        ).fetchone()
    return from_minor(int(row[0]))


def prior_period_adjustments(ledger_path: Path, day: str) -> tuple[Decimal, Decimal]:
    """(gross PnL, fees) the corrections posted on `day` (YYYY-MM-DD) bring to entries of a closed month: a closed
    day's reports stay as they were closed, so the posting day's summary carries the change (else no summary
    would, and `tbot summary` would disagree with the ledger by it). Income is 4xxx credit, fees 5xxx debit."""
    from tbot_bot.accounting.ledger_period import closed_through

    with open_ledger(ledger_path, readonly=True) as conn:
        lock = closed_through(conn)
        if lock is None:
            return Decimal(0), Decimal(0)
        pnl, fees = conn.execute(
            "SELECT coalesce(sum(CASE WHEN s.account_code LIKE '4%' THEN s.credit - s.debit END), 0), "
            "coalesce(sum(CASE WHEN s.account_code LIKE '5%' THEN s.debit - s.credit END), 0) "
            "FROM splits s JOIN transactions t ON t.id = s.transaction_id "
            f"WHERE substr(t.dtposted, 1, 10) = ? AND {_CORRECTS_CLOSED}",
            (day, lock[1]),
        ).fetchone()
    return from_minor(int(pnl)), from_minor(int(fees))


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
