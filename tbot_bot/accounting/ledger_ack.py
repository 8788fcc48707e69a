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
from tbot_bot.errors import NetworkError

STATE_FILE = "acct_sync.json"  # what the accounting system acknowledged (written by ledger_sync)
OFF_SITE_TRIES = 3  # the newest off-site archives tried, newest first, for the signed ledger head


def head_document(ledger: Path) -> dict[str, Any]:
    """The ledger's chain head as sent to the accounting system."""
    with open_ledger(ledger, readonly=True) as conn:
        return {"ledger": ledger.name, **asdict(read_head(conn))}


def behind_acknowledged(ledger: Path, acknowledged: dict[str, Any], where: str) -> list[str]:
    """Problems when `ledger` is not a continuation of the acknowledged head (one per case, naming the head).
    `where` names the head's keeper, e.g. "the head the accounting system acknowledged"."""
    try:
        want = ChainHead(**{k: acknowledged[k] for k in ChainHead.__slots__})  # type: ignore[attr-defined]
    except (KeyError, TypeError):
        return [f"{where} is malformed: {json.dumps(acknowledged)[:200]}"]
    at = acknowledged.get("acknowledged_at")
    named = (
        f"{where}{' at ' + str(at) if at else ''} "
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
                return behind_acknowledged(
                    binding.ledger_path, remote, "the head the accounting system acknowledged"
                ), notes
            finally:
                client.close()
    local = last_sync_head(home.state_dir / STATE_FILE)
    if local is None:
        return [], notes
    return behind_acknowledged(
        binding.ledger_path, local, "the head acknowledged at the last accounting sync (local record)"
    ), notes


def offsite_problems(home: Any, binding: Any) -> tuple[list[str], list[str]]:
    """(problems, notes) comparing the bot ledger with the head recorded in the newest off-site backup's manifest
    (`BACKUP_UPLOAD_TO`; the archive is downloaded and decrypted with this home's backup key). `tbot ledger
    verify` only: boot and check do not download archives."""
    import tempfile

    from tbot_bot.errors import TbotError
    from tbot_bot.reporting.auto_backup import manifest_heads, read_manifest
    from tbot_bot.reporting.offsite_backup import configured_target, fetch_newest

    configured = configured_target(home)
    if configured is None:
        return [], ["off-site backup manifest not consulted: no BACKUP_UPLOAD_TO in the home's .env"]
    url, endpoint, creds = configured
    unreadable: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        # the newest readable of the last few: a damaged newest copy (or a truncated upload) no longer silenced
        # the check while an older good one was there
        for rank in range(OFF_SITE_TRIES):
            try:
                archive = fetch_newest(url, Path(tmp), endpoint=endpoint, credentials=creds, rank=rank)
                if archive is None:
                    reason = f"no archive at {url} yet" if rank == 0 else f"no older archive at {url}"
                    return [], [f"off-site backup manifest not consulted: {reason}", *unreadable]
                manifest = read_manifest(archive, home)
                break
            except (TbotError, OSError) as exc:
                if rank == 0 and isinstance(exc, OSError | NetworkError):
                    return [], [f"off-site backup manifest not consulted: {exc}"]  # the target itself is down
                unreadable.append(f"off-site backup {rank + 1} (newest first) unreadable: {exc}")
        else:
            return [], [
                f"off-site backup manifest not consulted: the {OFF_SITE_TRIES} newest copies",
                *unreadable,
            ]
    heads = manifest_heads(home, manifest)
    if heads is None:
        return [], [
            f"off-site backup {archive.name}: its manifest's ledger heads are not signed with this ledger key"
        ]
    head = heads.get(home.relative(binding.ledger_path))
    if head is None:
        return [], [f"off-site backup {archive.name} holds no head of {binding.ledger_path.name}"]
    where = f"the head recorded in the newest off-site backup {archive.name} ({url})"
    return behind_acknowledged(binding.ledger_path, head, where), [
        f"consulted the newest {'readable ' if unreadable else ''}off-site backup {archive.name}",
        *unreadable,
    ]
