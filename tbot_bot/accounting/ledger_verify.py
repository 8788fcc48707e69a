"""Ledger verification (`tbot ledger verify`): schema, balance, hash chain, FITID uniqueness, content digests.

Every problem names the row it concerns, so an accountant can find it. Read-only.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from tbot_bot.accounting.coa import account_problem
from tbot_bot.accounting.ledger_anchor import AnchorStore, compare_head, read_head
from tbot_bot.accounting.ledger_entry import (
    AUDIT_FIELDS,
    GENESIS_HASH,
    TRANSACTION_FIELDS,
    audit_values_hash,
    digest_values,
)
from tbot_bot.accounting.ledger_schema import check_ledger_schema, open_ledger
from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import from_minor


def verify_ledger(
    path: Path, *, anchors: AnchorStore | None = None, backup_dir: Path | None = None
) -> list[str]:
    """All problems found in the ledger at `path`; empty means it verifies.

    With `anchors` (a home's AnchorStore), the ledger must also equal its anchored chain head: a missing anchor
    for a ledger with postings, a forged anchor, truncation and rollback are all named.
    """
    problems = check_ledger_schema(path)
    if any("is missing" in p and p.startswith("table") or "not a readable" in p for p in problems):
        return problems
    try:
        with open_ledger(path, readonly=True) as conn:
            problems += _check_rows(conn)
            if anchors is not None:
                problems += anchor_problems(conn, path, anchors, backup_dir)
    except (sqlite3.DatabaseError, LedgerError) as exc:
        problems.append(f"{path}: cannot be read: {exc}")
    return problems


def anchor_problems(
    conn: sqlite3.Connection, path: Path, anchors: AnchorStore, backup_dir: Path | None
) -> list[str]:
    """Compare the ledger's chain head with its newest authentic anchor (cheap: counts and one hash), and its
    period lock with the one LEDGER_STATUS.db recorded."""
    anchor, problems = anchors.load(path, backup_dir)
    problems += _lock_problems(conn, path, anchors)
    head = read_head(conn)
    if anchor is None:
        if head.transactions and not problems:
            problems.append(
                f"no anchor recorded for this ledger, yet it holds {head.transactions} transactions "
                f"(anchors deleted, or the ledger was not written by the bot)"
            )
        return problems

    def hash_at(audit_id: int) -> str | None:
        row = conn.execute("SELECT row_hash FROM audit_log WHERE id = ?", (audit_id,)).fetchone()
        return None if row is None else str(row[0])

    return problems + [f"anchor: {p}" for p in compare_head(head, anchor, hash_at)]


def _lock_problems(conn: sqlite3.Connection, path: Path, anchors: AnchorStore) -> list[str]:
    from tbot_bot.accounting.ledger_period import closed_through

    recorded = anchors.recorded_lock(path)
    if recorded is None:
        return []
    period, by, at = recorded
    lock = closed_through(conn)
    if lock is None or lock[0] < period:
        return [
            f"LEDGER_STATUS.db records the books closed through {period} (by {by} at {at}), but the ledger's own "
            f"lock is {'absent' if lock is None else 'through ' + lock[0]}: the ledger was rolled back to before "
            f"that close"
        ]
    return []


def _check_rows(conn: sqlite3.Connection) -> list[str]:
    problems: list[str] = []
    for fitid, n, ids in conn.execute(
        "SELECT fitid, count(*), group_concat(id) FROM transactions GROUP BY fitid HAVING count(*) > 1"
    ):
        problems.append(f"transactions rows id={ids}: FITID {fitid!r} is used {n} times")

    legs_by_tx: dict[int, list[list[Any]]] = defaultdict(list)
    checked_accounts: dict[str, str | None] = {}
    for split_id, tx_id, account, debit, credit, currency, memo in conn.execute(
        "SELECT id, transaction_id, account_code, debit, credit, currency_code, memo FROM splits ORDER BY id"
    ):
        legs_by_tx[tx_id].append([account, debit, credit, currency, memo])
        if account not in checked_accounts:
            checked_accounts[account] = account_problem(str(account))
        if checked_accounts[account]:
            problems.append(f"splits row id={split_id} (transaction id={tx_id}): {checked_accounts[account]}")
        if debit < 0 or credit < 0 or (debit == 0) == (credit == 0):
            problems.append(f"splits row id={split_id}: exactly one of debit/credit must be positive")

    audit_digest: dict[int, list[str]] = defaultdict(list)
    audit_fitid: dict[int, tuple[int, str | None]] = {}
    prev_hash = GENESIS_HASH
    expected_id = 1
    tx_pos, digest_pos = AUDIT_FIELDS.index("transaction_id"), AUDIT_FIELDS.index("payload_sha256")
    action_pos, afitid_pos = AUDIT_FIELDS.index("action"), AUDIT_FIELDS.index("fitid")
    for values in conn.execute(
        f"SELECT {', '.join(AUDIT_FIELDS)}, prev_hash, row_hash FROM audit_log ORDER BY id"
    ):
        audit_id, row_prev, row_hash = values[0], values[-2], values[-1]
        if audit_id != expected_id:
            problems.append(
                f"audit_log row id={audit_id}: expected id={expected_id} (rows missing or reordered)"
            )
        expected_id = audit_id + 1
        if row_prev != prev_hash:
            problems.append(
                f"audit_log row id={audit_id}: prev_hash does not match the previous row's hash (chain broken)"
            )
        if audit_values_hash(row_prev, values[:-2]) != row_hash:
            problems.append(f"audit_log row id={audit_id}: row_hash does not match its content (row altered)")
        prev_hash = row_hash
        if values[tx_pos] is not None:
            audit_digest[int(values[tx_pos])].append(str(values[digest_pos]))
            audit_fitid[int(values[tx_pos])] = (audit_id, values[afitid_pos])
        elif values[action_pos] in ("post", "correction"):
            problems.append(
                f"audit_log row id={audit_id}: a {values[action_pos]} record without a transaction"
            )

    tx_ids: set[int] = set()
    fitid_pos, currency_pos = (
        1 + TRANSACTION_FIELDS.index("fitid"),
        1 + TRANSACTION_FIELDS.index("currency_code"),
    )
    for values in conn.execute(f"SELECT id, {', '.join(TRANSACTION_FIELDS)} FROM transactions ORDER BY id"):
        tx_id, currency = int(values[0]), values[currency_pos]
        tx_ids.add(tx_id)
        where = f"transactions row id={tx_id} fitid={values[fitid_pos]!r}"
        legs = legs_by_tx.get(tx_id, [])
        if len(legs) < 2:
            problems.append(f"{where}: has {len(legs)} split(s), needs at least two")
        debits = sum(int(leg[1]) for leg in legs)
        credits = sum(int(leg[2]) for leg in legs)
        if debits != credits:
            problems.append(
                f"{where}: does not balance (debits {from_minor(debits)} != credits {from_minor(credits)})"
            )
        if any(leg[3] != currency for leg in legs):
            problems.append(f"{where}: a split's currency differs from the transaction's {currency}")
        digests = audit_digest.get(tx_id, [])
        if len(digests) != 1:
            problems.append(f"{where}: has {len(digests)} audit_log records, expected exactly one")
        elif digests[0] != digest_values(values[1:], legs):
            problems.append(
                f"{where}: content differs from what the audit_log recorded at ingestion (row altered)"
            )
        elif audit_fitid[tx_id][1] != values[fitid_pos]:
            problems.append(f"{where}: its audit_log row id={audit_fitid[tx_id][0]} names another FITID")
    for tx_id in sorted(set(audit_fitid) - tx_ids):
        audit_id, fitid = audit_fitid[tx_id]
        problems.append(
            f"audit_log row id={audit_id} records transaction id={tx_id} fitid={fitid!r}, which is missing "
            f"from transactions (deleted)"
        )
    for orphan in sorted(set(legs_by_tx) - tx_ids):
        problems.append(f"splits with transaction_id={orphan}: no such transaction")
    return problems
