"""Period close (`tbot ledger close --period YYYY-MM`) and the lock it sets.

Closing a month posts one flagged transaction (trntype CLOSE, FITID `CLOSE-YYYY-MM`, dated the month's last
microsecond) that zeroes every income (4xxx) and expense (5xxx) balance into 3040 Accumulated Profit, and an
audit row `period_close` that records the lock: from then on any posting dated on or before the end of that
month is refused. The lock lives in the hash-chained, anchored audit_log, so it cannot be removed quietly.
Months close in order; a month that has not ended, or one already closed, is refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tbot_bot.accounting.coa import ACCOUNTS_BY_CODE, AccountType
from tbot_bot.accounting.ledger_entry import LedgerEntry, LedgerSplit, format_dtposted
from tbot_bot.errors import LedgerError, UsageError
from tbot_bot.support.utils_bot import FIRST_DATE, LAST_DATE, date_problem, from_minor

ACCUMULATED_PROFIT = "3040"
CLOSE_ACTION = "period_close"
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[first instant, last microsecond] of YYYY-MM in UTC; LedgerError naming the allowed form."""
    m = _PERIOD.match(period or "")
    if not m:
        raise LedgerError(f"--period {period!r} must be a month like 2011-01 (YYYY-MM)")
    year, month = int(m.group(1)), int(m.group(2))
    if date_problem(date(max(year, 1), month, 1)):
        raise LedgerError(
            f"--period {period} is outside the months allowed ({FIRST_DATE:%Y-%m} to {LAST_DATE:%Y-%m})"
        )
    start = datetime(year, month, 1, tzinfo=UTC)
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, nxt - timedelta(microseconds=1)


def closed_through(conn: sqlite3.Connection) -> tuple[str, str] | None:
    """(period, last dtposted text) of the latest closed month, or None."""
    row = conn.execute(
        "SELECT memo FROM audit_log WHERE action = ? ORDER BY id DESC LIMIT 1", (CLOSE_ACTION,)
    ).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    return str(data["period"]), str(data["through"])


def check_closed_periods(conn: sqlite3.Connection, batch: Sequence[Any]) -> None:
    """LedgerError naming every entry of `batch` (prepared rows) dated inside a closed period."""
    lock = closed_through(conn)
    if lock is None:
        return
    period, through = lock
    bad = [p.row["fitid"] for p in batch if p.row["dtposted"] <= through]
    if bad:
        raise LedgerError(
            f"period {period} is closed (postings dated on or before {through} are refused), nothing written: "
            + ", ".join(bad[:10])
            + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            + "; post a correction dated in an open period instead"
        )


def closing_entry(
    conn: sqlite3.Connection, period: str, currency_code: str, *, now: datetime
) -> tuple[LedgerEntry | None, dict[str, Any]]:
    """The closing transaction for `period` (None when no income/expense balance) and its lock audit row."""
    start, end = period_bounds(period)
    # a request that cannot be met now (UsageError, exit 2), not a fault of the ledger
    if now <= end:
        raise UsageError(
            f"period {period} has not ended yet (it ends {format_dtposted(end)}); close it afterwards"
        )
    lock = closed_through(conn)
    through = format_dtposted(end)
    if lock is not None and lock[1] >= through:
        raise UsageError(f"period {period} is already closed (closed through {lock[0]})")
    # months close in order: an earlier month with income or expenses still open would have its profit booked
    # as this one's (a month with only balance-sheet postings, a float injection, has none to close)
    first_start, _ = period_bounds(period)
    row = conn.execute(
        "SELECT min(substr(t.dtposted, 1, 7)) FROM splits s JOIN transactions t ON t.id = s.transaction_id "
        "WHERE t.dtposted < ? AND t.dtposted > ? AND t.trntype != 'CLOSE' "
        "AND (s.account_code LIKE '4%' OR s.account_code LIKE '5%')",
        (format_dtposted(first_start), lock[1] if lock is not None else ""),
    ).fetchone()
    if row is not None and row[0] is not None:
        raise UsageError(
            f"period {row[0]} has income or expenses and is not closed: close it first (months close in order)"
        )
    balances: dict[str, int] = {}
    for code, debit, credit in conn.execute(
        "SELECT s.account_code, sum(s.debit), sum(s.credit) FROM splits s JOIN transactions t "
        "ON t.id = s.transaction_id WHERE t.dtposted <= ? AND (s.account_code LIKE '4%' OR s.account_code LIKE '5%') "
        "GROUP BY s.account_code ORDER BY s.account_code",
        (through,),
    ):
        kind = ACCOUNTS_BY_CODE[str(code)].account_type
        if kind in (AccountType.INCOME, AccountType.EXPENSE) and int(debit) != int(credit):
            balances[str(code)] = int(credit) - int(debit)  # income positive = profit
    lock_row = {
        "action": CLOSE_ACTION,
        "transaction_id": None,
        "fitid": f"CLOSE-{period}",
        "account_code": ACCUMULATED_PROFIT,
        "memo": json.dumps({"period": period, "through": through}, sort_keys=True),
        "payload_sha256": None,
    }
    if not balances:
        return None, lock_row
    splits = [
        LedgerSplit(code, debit=from_minor(bal), memo=f"close {period}")
        if bal > 0
        else LedgerSplit(code, credit=from_minor(-bal), memo=f"close {period}")
        for code, bal in balances.items()
    ]
    profit = sum(balances.values())
    if profit > 0:
        splits.append(LedgerSplit(ACCUMULATED_PROFIT, credit=from_minor(profit), memo=f"profit {period}"))
    elif profit < 0:
        splits.append(LedgerSplit(ACCUMULATED_PROFIT, debit=from_minor(-profit), memo=f"loss {period}"))
    entry = LedgerEntry(
        fitid=f"CLOSE-{period}",
        trntype="CLOSE",
        dtposted=end,
        currency_code=currency_code,
        splits=tuple(splits),
        instrument="cash",
        pnl=from_minor(profit),
        memo=f"period close {period}: income and expense into 3040 Accumulated Profit",
    )
    return entry, lock_row
