"""Memo-only audit entries: events the accountant must see in the ledger's audit trail that move no money
(a rebalance request, its resolution). One hash-chained `audit_log` row, action `notice`, no transaction, no
splits; `fitid` holds the notice's key so a notice is recorded once even when the caller retries after a crash.
The memo is OFX-aligned JSON (TRNTYPE-like `NOTICETYPE`, `DTPOSTED`, `CURDEF`, amounts as decimal strings).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tbot_bot.accounting.ledger_entry import AUDIT_FIELDS, GENESIS_HASH, audit_row_hash, format_dtposted
from tbot_bot.accounting.ledger_schema import check_ledger_schema, open_ledger
from tbot_bot.errors import LedgerError

NOTICE_ACTION = "notice"
_INSERT_AUDIT = f"INSERT INTO audit_log ({', '.join(AUDIT_FIELDS)}, prev_hash, row_hash) VALUES ({', '.join('?' * (len(AUDIT_FIELDS) + 2))})"


def append_notice(ledger_path: Path, *, key: str, memo: dict[str, Any], actor: str, moment: datetime) -> bool:
    """Append one notice row unless a notice with this key exists; True when written."""
    problems = check_ledger_schema(ledger_path)
    if problems:
        raise LedgerError(f"ledger {ledger_path} refused: " + "; ".join(problems))
    with open_ledger(ledger_path) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = conn.execute(
                "SELECT 1 FROM audit_log WHERE action = ? AND fitid = ?", (NOTICE_ACTION, key)
            ).fetchone()
            if seen is not None:
                conn.execute("ROLLBACK")
                return False
            last = conn.execute("SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            audit_id, prev_hash = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS_HASH)
            row = {
                "id": audit_id,
                "logged_at": format_dtposted(moment),
                "actor": actor,
                "action": NOTICE_ACTION,
                "transaction_id": None,
                "fitid": key,
                "account_code": None,
                "memo": json.dumps(memo, sort_keys=True, default=str),
                "payload_sha256": None,
            }
            conn.execute(
                _INSERT_AUDIT, [*(row[k] for k in AUDIT_FIELDS), prev_hash, audit_row_hash(prev_hash, row)]
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return True


def notices(ledger_path: Path, prefix: str = "") -> list[dict[str, Any]]:
    """Notice rows (oldest first) whose key starts with prefix, memo decoded."""
    with open_ledger(ledger_path, readonly=True) as conn:
        rows = conn.execute(
            "SELECT id, logged_at, actor, fitid, memo FROM audit_log WHERE action = ? AND substr(fitid, 1, ?) = ? "
            "ORDER BY id",
            (NOTICE_ACTION, len(prefix), prefix),
        ).fetchall()
    return [
        {"id": r[0], "logged_at": r[1], "actor": r[2], "key": r[3], "memo": json.loads(r[4] or "{}")}
        for r in rows
    ]
