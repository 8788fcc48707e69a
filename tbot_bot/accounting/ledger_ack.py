"""The off-machine anchor: the chain head the accounting system acknowledged after a sync.

Every anchor the bot writes itself (LEDGER_STATUS.db, the sidecar, backup manifests in backups/) lives on the same
disk, so rolling back all of them together with the ledger is invisible to them. After each sync the ledger's
chain head (audit rows and last row hash, transaction and split counts, last FITID) is sent to the accounting
system (`POST ledger/head`) and recorded as acknowledged. `tbot ledger verify`, `tbot check` and boot ask for it
again (`GET ledger/head`) and refuse a ledger that is behind it or whose chain differs at it, naming the head.
When the accounting API is not configured or does not answer (one try, ACCT_API_TIMEOUT), verify says it could not
consult it and the last sync's record in storage/state/acct_sync.json is compared instead.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tbot_bot.accounting.ledger_anchor import ChainHead, read_head
from tbot_bot.accounting.ledger_schema import open_ledger


def head_document(ledger: Path) -> dict[str, Any]:
    """The ledger's chain head as sent to the accounting system."""
    with open_ledger(ledger, readonly=True) as conn:
        return {"ledger": ledger.name, **asdict(read_head(conn))}


def behind_acknowledged(ledger: Path, acknowledged: dict[str, Any], where: str) -> list[str]:
    """Problems when `ledger` is not a continuation of the acknowledged head (one per case, naming the head)."""
    try:
        want = ChainHead(**{k: acknowledged[k] for k in ChainHead.__slots__})  # type: ignore[attr-defined]
    except (KeyError, TypeError):
        return [f"the acknowledged head from {where} is malformed: {json.dumps(acknowledged)[:200]}"]
    named = (
        f"the head {where} acknowledged{' at ' + str(acknowledged['acknowledged_at']) if acknowledged.get('acknowledged_at') else ''} "
        f"({want.transactions} transactions, {want.audit_rows} audit rows, last FITID {want.last_fitid!r})"
    )
    with open_ledger(ledger, readonly=True) as conn:
        actual = read_head(conn)
        row = conn.execute("SELECT row_hash FROM audit_log WHERE id = ?", (want.audit_rows,)).fetchone()
        fitid = (
            conn.execute("SELECT 1 FROM transactions WHERE fitid = ?", (want.last_fitid,)).fetchone()
            if want.last_fitid
            else (1,)
        )
    if actual.audit_rows < want.audit_rows or actual.transactions < want.transactions or fitid is None:
        return [
            f"the ledger ({actual.transactions} transactions, {actual.audit_rows} audit rows) is behind {named}: "
            f"it was rolled back (with its local anchors) to before the last acknowledged sync"
        ]
    if row is None or str(row[0]) != want.last_hash:
        return [f"audit_log row id={want.audit_rows} differs from {named}: the chain was rewritten"]
    return []


def last_sync_head(state_file: Path) -> dict[str, Any] | None:
    """The head acknowledged at the last sync, as recorded in storage/state/acct_sync.json (None if none)."""
    try:
        doc = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    head = doc.get("acknowledged_head") if isinstance(doc, dict) else None
    return head if isinstance(head, dict) else None


def acknowledged_problems(home: Any, binding: Any, *, ask: bool) -> tuple[list[str], list[str]]:
    """(problems, notes) comparing the bot ledger with its acknowledged head: asked of the accounting API when
    `ask` (verify, check and start), else, or when it cannot answer, from the last sync's local record."""
    from tbot_bot.accounting.acct_client import AccountingClient
    from tbot_bot.accounting.ledger_sync import STATE_FILE
    from tbot_bot.config.retry import RetryPolicy
    from tbot_bot.errors import TbotError

    notes: list[str] = []
    if ask:
        client = AccountingClient.from_home(home, binding.identity, retry=RetryPolicy(retries=0))
        if client is None:
            notes.append("off-machine anchor not consulted: the accounting API is not configured (acct_api)")
        else:
            try:
                remote = client.acknowledged_head()
            except (TbotError, sqlite3.Error) as exc:
                notes.append(f"off-machine anchor not consulted: the accounting API did not answer ({exc})")
            else:
                if remote is None:
                    notes.append("the accounting system has acknowledged no chain head yet")
                    return [], notes
                return behind_acknowledged(binding.ledger_path, remote, "the accounting system"), notes
            finally:
                client.close()
    local = last_sync_head(home.state_dir / STATE_FILE)
    if local is None:
        return [], notes
    return behind_acknowledged(binding.ledger_path, local, "the last accounting sync (local record)"), notes
