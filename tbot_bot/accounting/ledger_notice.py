"""Memo-only audit entries: events the accountant must see in the ledger's audit trail that move no money
(a rebalance request, its resolution). One hash-chained `audit_log` row, action `notice`, no transaction, no
splits (plus the writer's usual `batch` row); `fitid` holds the notice's key so a notice is recorded once even
when the caller retries after a crash.
The memo is OFX-aligned JSON (TRNTYPE-like `NOTICETYPE`, `DTPOSTED`, `CURDEF`, amounts as decimal strings).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.support.path_resolver import BotHome

NOTICE_ACTION = "notice"


def append_notice(
    home: BotHome,
    binding: LedgerBinding,
    *,
    key: str,
    memo: dict[str, Any],
    actor: str,
    moment: datetime,
    backup_keep: int,
) -> bool:
    """Append one notice row to the bot ledger unless a notice with this key exists; True when written.

    Written through the ingestion API (a batch with no transactions), so it is backed up first and the chain
    head stays anchored like any other write.
    """
    if any(n["key"] == key for n in notices(binding.ledger_path, key)):
        return False
    row = {
        "action": NOTICE_ACTION,
        "transaction_id": None,
        "fitid": key,
        "account_code": None,
        "memo": json.dumps(memo, sort_keys=True, default=str),
        "payload_sha256": None,
    }
    writer = LedgerWriter(
        binding.ledger_path,
        binding.backup_dir,
        backup_keep,
        binding.coa_path,
        now=lambda: moment,
        anchors=AnchorStore.for_home(home),
    )
    writer.ingest([], actor=actor, extra_audit=[row])
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
