"""`tbot accounting sync` (spec sync_to_accounting.py): push the bot ledger to the accounting system.

The accounting system's cursor (`GET ledger/cursor`, the last FITID it acknowledged) says where to resume:
every transaction written after that FITID (ledger order = transaction id) is sent in batches, each with its
splits, money as decimal strings. Each batch carries a stable Idempotency-Key (bot, first and last FITID), and
the receiver deduplicates by FITID, so a run interrupted anywhere — before a batch, after a batch whose reply was
lost — is finished by running it again, with nothing duplicated. Read-only on the ledger. At the end the ledger's
chain head is acknowledged by the accounting system (ledger_ack: the anchor off the machine).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.acct_client import AccountingClient, AccountingRefused, new_idempotency_key
from tbot_bot.accounting.ledger_ack import STATE_FILE, head_document
from tbot_bot.accounting.ledger_entry import TRANSACTION_FIELDS
from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.errors import LedgerError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text, from_minor

DEFAULT_BATCH = 200
_MONEY = ("entry_price", "exit_price", "pnl")


@dataclass(frozen=True, slots=True)
class SyncResult:
    pushed: int  # transactions the accounting system accepted as new
    duplicates: int  # transactions it already had (a resumed run)
    batches: int
    last_fitid: str | None  # the cursor after the run
    acknowledged_head: dict[str, Any] | None = None  # the chain head the accounting system acknowledged


def _transaction_json(row: sqlite3.Row, splits: list[sqlite3.Row]) -> dict[str, Any]:
    tx: dict[str, Any] = {k: row[k] for k in TRANSACTION_FIELDS}
    for k in _MONEY:
        tx[k] = None if tx[k] is None else str(from_minor(int(tx[k])))
    tx["is_correction"] = bool(tx["is_correction"])
    tx["splits"] = [
        {
            "account_code": s["account_code"],
            "debit": str(from_minor(int(s["debit"]))),
            "credit": str(from_minor(int(s["credit"]))),
            "currency_code": s["currency_code"],
            "memo": s["memo"],
        }
        for s in splits
    ]
    return tx


def transactions_after(ledger_path: Path, last_fitid: str | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` transactions written after `last_fitid` (all from the start when None), ledger order."""
    with open_ledger(ledger_path, readonly=True) as conn:
        conn.row_factory = sqlite3.Row
        after = 0
        if last_fitid is not None:
            found = conn.execute("SELECT id FROM transactions WHERE fitid = ?", (last_fitid,)).fetchone()
            if found is None:
                raise LedgerError(
                    f"the accounting system acknowledges FITID {last_fitid!r}, which {ledger_path.name} does not "
                    "hold: this ledger is not the one it was syncing (wrong home, or a restored older ledger)"
                )
            after = int(found["id"])
        rows = conn.execute(
            f"SELECT id, {', '.join(TRANSACTION_FIELDS)} FROM transactions WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        out = []
        for row in rows:
            splits = conn.execute(
                "SELECT account_code, debit, credit, currency_code, memo FROM splits WHERE transaction_id = ? "
                "ORDER BY id",
                (row["id"],),
            ).fetchall()
            out.append(_transaction_json(row, splits))
    return out


def sync_ledger(
    client: AccountingClient,
    binding: LedgerBinding,
    *,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int, str], None] | None = None,
) -> SyncResult:
    """Push everything after the accounting system's cursor; resumable and idempotent by FITID."""
    if not 1 <= batch_size <= 5000:
        raise ValueError(f"batch size must be 1..5000, got {batch_size}")
    cursor = client.ledger_cursor()
    pushed = duplicates = batches = 0
    while True:
        batch = transactions_after(binding.ledger_path, cursor, batch_size)
        if not batch:
            # the off-machine anchor (ledger_ack): the head of what was just acknowledged
            head = head_document(binding.ledger_path)
            key = new_idempotency_key(
                binding.identity.BOT_ID, "head", binding.ledger_path.name, head["last_hash"]
            )
            acknowledged = None
            if head["last_hash"]:
                try:
                    acknowledged = client.acknowledge_head(head, key)
                except AccountingRefused as exc:
                    if exc.status != 404:
                        raise
                    # an accounting system without the route: synced, but no off-machine anchor (verify says so)
            return SyncResult(pushed, duplicates, batches, cursor, acknowledged)
        first, last = batch[0]["fitid"], batch[-1]["fitid"]
        key = new_idempotency_key(binding.identity.BOT_ID, "ledger", binding.ledger_path.name, first, last)
        reply = client.push_transactions(batch, key)
        if reply.get("last_fitid") != last:
            raise AccountingRefused(
                f"the accounting system acknowledged {reply.get('last_fitid')!r} after a batch ending {last!r}; "
                "stopping so nothing is skipped",
                code="cursor_mismatch",
            )
        pushed += int(reply.get("accepted") or 0)
        duplicates += int(reply.get("duplicates") or 0)
        batches += 1
        cursor = last
        if on_batch is not None:
            on_batch(len(batch), last)


def remember_sync(home: BotHome, result: SyncResult, at: datetime) -> None:
    home.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        home.state_dir / STATE_FILE,
        json.dumps(
            {
                "at": at.isoformat(),
                "last_fitid": result.last_fitid,
                "pushed": result.pushed,
                "duplicates": result.duplicates,
                "batches": result.batches,
                "acknowledged_head": result.acknowledged_head,
            },
            indent=2,
        ),
    )
