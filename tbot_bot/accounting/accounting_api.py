"""The ingestion API: the only writer of bot ledgers (DESIGN §6).

A batch is validated in full before anything is touched; then, inside one SQLite write transaction, the
ledger is copied with the online backup API, new entries are appended with hash-chained audit rows, and the
transaction commits. Re-ingesting a FITID is a no-op, so recovery after a crash is idempotent.
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.accounting.coa import MANUAL_ADJUSTMENTS, coa_matches
from tbot_bot.accounting.ledger_anchor import AnchorStore, ChainHead, compare_head, new_anchor, read_head
from tbot_bot.accounting.ledger_backup import backup_ledger
from tbot_bot.accounting.ledger_entry import (
    AUDIT_FIELDS,
    GENESIS_HASH,
    TRANSACTION_FIELDS,
    LedgerEntry,
    LedgerSplit,
    audit_row_hash,
    entry_rows,
    format_dtposted,
    transaction_digest,
)
from tbot_bot.accounting.ledger_period import check_closed_periods, closing_entry
from tbot_bot.accounting.ledger_schema import check_ledger_schema, open_ledger, read_meta
from tbot_bot.domain.crashpoints import crashpoint
from tbot_bot.errors import LedgerError, UsageError
from tbot_bot.support.utils_bot import from_minor, utc_now

log = logging.getLogger(__name__)

_INSERT_TRANSACTION = f"INSERT INTO transactions (id, {', '.join(TRANSACTION_FIELDS)}) VALUES ({', '.join('?' * (len(TRANSACTION_FIELDS) + 1))})"
_SPLIT_FIELDS = ("id", "transaction_id", "account_code", "debit", "credit", "currency_code", "memo")
_INSERT_SPLIT = (
    f"INSERT INTO splits ({', '.join(_SPLIT_FIELDS)}) VALUES ({', '.join('?' * len(_SPLIT_FIELDS))})"
)
_INSERT_AUDIT = f"INSERT INTO audit_log ({', '.join(AUDIT_FIELDS)}, prev_hash, row_hash) VALUES ({', '.join('?' * (len(AUDIT_FIELDS) + 2))})"
_SQL_CHUNK = 500
_tx_values = operator.itemgetter(*TRANSACTION_FIELDS)


@dataclass(frozen=True, slots=True)
class IngestResult:
    written: int
    skipped_duplicates: int
    backup_path: Path | None
    conflicting_fitids: tuple[str, ...] = ()  # already present with different content: skipped, logged


@dataclass(frozen=True, slots=True)
class _Prepared:
    entry: LedgerEntry
    row: dict[str, Any]
    split_rows: list[dict[str, Any]]
    digest: str


def prepare_batch(entries: Sequence[LedgerEntry]) -> list[_Prepared]:
    """Validate every entry; LedgerError listing every problem (by FITID) if any entry is bad."""
    problems: list[str] = []
    prepared: list[_Prepared] = []
    seen: dict[str, str] = {}
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, LedgerEntry):
            problems.append(f"entry {n}: not a LedgerEntry ({type(entry).__name__})")
            continue
        row, split_rows, entry_problems = entry_rows(entry)
        problems += [f"entry {n} fitid={entry.fitid!r}: {p}" for p in entry_problems]
        if entry_problems:
            continue
        digest = transaction_digest(row, split_rows)
        if seen.get(entry.fitid, digest) != digest:
            problems.append(
                f"entry {n} fitid={entry.fitid!r}: appears twice in the batch with different content"
            )
        seen[entry.fitid] = digest
        prepared.append(_Prepared(entry, row, split_rows, digest))
    if problems:
        raise LedgerError("batch refused, nothing written:\n  - " + "\n  - ".join(problems))
    return prepared


def existing_digests(conn: sqlite3.Connection, fitids: Sequence[str]) -> dict[str, str]:
    """FITID -> stored digest, for those of `fitids` the ledger already holds."""
    found: dict[str, str] = {}
    unique = sorted(set(fitids))
    for start in range(0, len(unique), _SQL_CHUNK):
        chunk = unique[start : start + _SQL_CHUNK]
        marks = ", ".join("?" * len(chunk))
        for fitid, digest in conn.execute(
            f"SELECT t.fitid, a.payload_sha256 FROM transactions t LEFT JOIN audit_log a "
            f"ON a.transaction_id = t.id AND a.action IN ('post', 'correction') WHERE t.fitid IN ({marks})",
            chunk,
        ):
            found[str(fitid)] = str(digest)
    return found


def append_prepared(
    conn: sqlite3.Connection,
    batch: Sequence[_Prepared],
    *,
    actor: str,
    moment: datetime,
    batch_memo: dict[str, Any],
    extra_audit: Sequence[dict[str, Any]] = (),
) -> None:
    """Insert transactions, splits and chained audit rows; the caller owns the SQLite transaction."""
    tx_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM transactions").fetchone()[0])
    split_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM splits").fetchone()[0])
    last = conn.execute("SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    audit_id, prev_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)
    logged_at = format_dtposted(moment)
    tx_params: list[tuple[Any, ...]] = []
    split_params: list[list[Any]] = []
    audit_params: list[list[Any]] = []

    def audit(row: dict[str, Any]) -> None:
        nonlocal audit_id, prev_hash
        audit_id += 1
        row = {"id": audit_id, "logged_at": logged_at, "actor": actor, **row}
        row_hash = audit_row_hash(prev_hash, row)
        audit_params.append([*(row[k] for k in AUDIT_FIELDS), prev_hash, row_hash])
        prev_hash = row_hash

    for item in batch:
        tx_id += 1
        tx_params.append((tx_id, *_tx_values(item.row)))
        for split in item.split_rows:
            split_id += 1
            split_params.append(
                [
                    split_id,
                    tx_id,
                    split["account_code"],
                    split["debit"],
                    split["credit"],
                    split["currency_code"],
                    split["memo"],
                ]
            )
        correction = bool(item.row["is_correction"])
        audit(
            {
                "action": "correction" if correction else "post",
                "transaction_id": tx_id,
                "fitid": item.row["fitid"],
                "account_code": MANUAL_ADJUSTMENTS if correction else None,
                "memo": item.row["memo"] if correction else None,
                "payload_sha256": item.digest,
            }
        )
    for row in extra_audit:
        audit(dict(row))
    audit(
        {
            "action": "batch",
            "transaction_id": None,
            "fitid": None,
            "account_code": None,
            "memo": json.dumps(batch_memo, sort_keys=True),
            "payload_sha256": None,
        }
    )
    conn.executemany(_INSERT_TRANSACTION, tx_params)
    conn.executemany(_INSERT_SPLIT, split_params)
    conn.executemany(_INSERT_AUDIT, audit_params)


class LedgerWriter:
    """Writes validated batches to one injected bot ledger, each preceded by a backup."""

    def __init__(
        self,
        ledger_path: Path,
        backup_dir: Path,
        backup_keep: int,
        coa_path: Path | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        anchors: AnchorStore | None = None,
    ) -> None:
        problems = check_ledger_schema(ledger_path)
        if coa_path is not None:
            problems += coa_matches(coa_path)
        if problems:
            raise LedgerError(f"ledger {ledger_path} refused: " + "; ".join(problems))
        if backup_keep < 1:
            raise LedgerError(f"LEDGER_BACKUP_KEEP must be at least 1, got {backup_keep}")
        self.ledger_path = ledger_path
        self.backup_dir = backup_dir
        self.backup_keep = backup_keep  # LEDGER_BACKUP_KEEP: newest copies kept in backup_dir
        self._now = now
        self.anchors = anchors  # chain-head anchors outside the file (None: unit tests of the file alone)
        self._anchored_head: ChainHead | None = None

    @classmethod
    def for_home(cls, home: Any, ledger_path: Path, binding: Any, backup_keep: int) -> LedgerWriter:
        """The writer the daemon uses: the home's anchors, the binding's backup dir and COA."""
        return cls(
            ledger_path, binding.backup_dir, backup_keep, binding.coa_path, anchors=AnchorStore.for_home(home)
        )

    def ingest(
        self,
        entries: Sequence[LedgerEntry],
        *,
        actor: str = "tbot",
        extra_audit: Sequence[dict[str, Any]] = (),
        all_or_none: bool = False,
    ) -> IngestResult:
        """Append a batch in one transaction; LedgerError (nothing written) on any invalid entry or failed backup,
        a posting dated in a closed period, or a ledger that no longer matches its anchor. A FITID already held with
        other content is skipped (and reported); with `all_or_none`, nothing of the batch is written then."""
        prepared = prepare_batch(entries)
        with open_ledger(self.ledger_path) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                existing = existing_digests(conn, [p.row["fitid"] for p in prepared])
                new: list[_Prepared] = []
                conflicts: list[str] = []
                seen: set[str] = set()
                for item in prepared:
                    fitid = item.row["fitid"]
                    if fitid in seen:
                        continue
                    seen.add(fitid)
                    if fitid in existing:
                        if existing[fitid] != item.digest:
                            conflicts.append(fitid)
                        continue
                    new.append(item)
                skipped = len(prepared) - len(new)
                if conflicts:
                    log.warning(
                        "ledger %s: FITIDs already present with different content, skipped: %s",
                        self.ledger_path.name,
                        conflicts,
                    )
                if (not new and not extra_audit) or (conflicts and all_or_none):
                    conn.execute("ROLLBACK")
                    return IngestResult(0, skipped, None, tuple(conflicts))
                moment = self._now()
                check_closed_periods(conn, new)
                seq = self._check_anchor(conn)
                try:
                    # Inside the write lock, so the copy is exactly the ledger before this batch.
                    backup = backup_ledger(self.ledger_path, self.backup_dir, self.backup_keep, moment)
                except LedgerError as exc:
                    log.error(
                        "ledger %s: backup failed, batch of %d not written: %s",
                        self.ledger_path.name,
                        len(new),
                        exc,
                    )
                    raise
                memo = {"written": len(new), "skipped_duplicates": skipped, "backup": backup.name}
                append_prepared(
                    conn, new, actor=actor, moment=moment, batch_memo=memo, extra_audit=extra_audit
                )
                crashpoint("mid_ingest")  # test seam: rows written, COMMIT not yet reached
                head = read_head(conn)
                if self.anchors is not None:
                    self.anchors.write(
                        new_anchor(self.ledger_path, seq, self._anchored_head, head),
                        self.backup_dir,
                        self.ledger_path,
                    )
                conn.execute("COMMIT")
                if self.anchors is not None:
                    self.anchors.write(
                        new_anchor(self.ledger_path, seq, head, None), self.backup_dir, self.ledger_path
                    )
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return IngestResult(len(new), skipped, backup, tuple(conflicts))

    def _check_anchor(self, conn: sqlite3.Connection) -> int:
        """Refuse to extend a ledger that no longer matches its anchor; returns the next anchor seq."""
        self._anchored_head = None
        if self.anchors is None:
            return 0
        anchor, problems = self.anchors.load(self.ledger_path, self.backup_dir)
        head = read_head(conn)
        if anchor is not None:
            problems += compare_head(head, anchor, lambda n: _audit_hash(conn, n))
        elif head.transactions and not problems:
            # anchors deleted (or never written): adopting the file now would launder whatever was done to it
            problems.append(f"no anchor recorded, yet it holds {head.transactions} transactions")
        if problems:
            raise LedgerError(
                f"ledger {self.ledger_path.name} does not match its anchor, nothing written: "
                + "; ".join(problems)
                + " (run `tbot ledger verify`)"
            )
        self._anchored_head = head
        return (anchor.seq if anchor else 0) + 1

    def close_period(self, period: str, *, actor: str = "tbot") -> tuple[IngestResult, LedgerEntry | None]:
        """Close YYYY-MM into 3040 (see ledger_period); returns the ingest result and the closing entry."""
        with open_ledger(self.ledger_path, readonly=True) as conn:
            currency = read_meta(conn)["currency_code"]
            entry, lock_row = closing_entry(conn, period, currency, now=self._now())
        result = self.ingest([entry] if entry else [], actor=actor, extra_audit=[lock_row])
        if self.anchors is not None:
            # after COMMIT: a crash in between leaves the status behind the ledger, never ahead of it
            self.anchors.record_lock(self.ledger_path, period, by=actor, at=self._now())
        return result, entry

    def correct(
        self,
        fitid: str,
        *,
        reason: str,
        posted_at: datetime,
        replacement: LedgerEntry | None = None,
        actor: str = "tbot",
        also: Sequence[tuple[str, str, datetime, LedgerEntry | None]] = (),
    ) -> IngestResult:
        """Reverse a posted entry with a new flagged entry (audit memo on 9320), optionally posting a replacement.
        `also`: more (fitid, reason, posted_at, replacement) corrected in the same batch, all or none (the exit
        corrected with the entry whose position it closed)."""
        if not reason.strip():
            raise LedgerError("a correction needs a reason")
        batch: list[LedgerEntry] = []
        for target, why, at, new in ((fitid, reason, posted_at, replacement), *also):
            batch.append(build_reversal(self.ledger_path, target, reason=why, posted_at=at))
            if new is not None:
                memo = f"9320 Manual Adjustments: replaces {target}: {why}"
                batch.append(replace(new, is_correction=True, correction_of=target, memo=memo))
        # a correction lands whole or not at all: never an entry's reversal without its exit's
        result = self.ingest(batch, actor=actor, all_or_none=True)
        if result.conflicting_fitids:
            # another correction of the same entry was posted between planning and writing (two operators at
            # once): the books hold that one; this one must not report success
            targets = [fitid, *(t for t, *_ in also)]
            named = " and ".join(repr(t) for t in targets) + (" was" if len(targets) == 1 else " were")
            raise UsageError(
                f"{named} corrected meanwhile by another correction: {', '.join(result.conflicting_fitids)} "
                f"already hold{'s' if len(result.conflicting_fitids) == 1 else ''} other content, so this "
                f"correction was not posted ({result.written} of its {len(batch)} entries written): the books "
                "hold the other one; correct again if it is not what was meant"
            )
        return result


def _audit_hash(conn: sqlite3.Connection, audit_id: int) -> str | None:
    row = conn.execute("SELECT row_hash FROM audit_log WHERE id = ?", (audit_id,)).fetchone()
    return None if row is None else str(row[0])


def build_reversal(ledger_path: Path, fitid: str, *, reason: str, posted_at: datetime) -> LedgerEntry:
    """A new entry that reverses every split of `fitid` (debits and credits swapped), flagged as a correction."""
    with open_ledger(ledger_path, readonly=True) as conn:
        conn.row_factory = sqlite3.Row
        original = conn.execute("SELECT * FROM transactions WHERE fitid = ?", (fitid,)).fetchone()
        if original is None:
            raise UsageError(f"cannot correct {fitid!r}: no such FITID in {ledger_path.name}")
        reversed_by = conn.execute(
            "SELECT fitid FROM transactions WHERE correction_of = ? AND trntype = 'CORRECTION'", (fitid,)
        ).fetchone()
        if reversed_by is not None:
            raise UsageError(f"{fitid!r} is already reversed by {reversed_by['fitid']!r}")
        splits = conn.execute(
            "SELECT * FROM splits WHERE transaction_id = ? ORDER BY id", (original["id"],)
        ).fetchall()

    def dec(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    pnl = original["pnl"]
    return LedgerEntry(
        fitid=f"{fitid}-REV",
        trntype="CORRECTION",
        dtposted=posted_at,
        currency_code=original["currency_code"],
        splits=tuple(
            LedgerSplit(
                s["account_code"],
                debit=from_minor(s["credit"]),
                credit=from_minor(s["debit"]),
                memo=f"reverses {fitid}",
            )
            for s in splits
        ),
        strategy=original["strategy"],
        ticker=original["ticker"],
        signal_ticker=original["signal_ticker"],
        side=original["side"],
        direction=original["direction"],
        size=dec(original["size"]),
        pnl=None if pnl is None else -from_minor(pnl),
        broker=original["broker"],
        client_order_id=original["client_order_id"],
        tag=original["tag"],
        session_id=original["session_id"],
        instrument=original["instrument"],
        memo=f"9320 Manual Adjustments: reverses {fitid}: {reason}",
        is_correction=True,
        correction_of=fitid,
    )
