"""Chain-head anchors: tamper evidence kept OUTSIDE the ledger file (DESIGN §6).

After each ingestion batch the writer records the ledger's chain head — last audit hash, transaction / split /
audit-row counts, last FITID — in two places: `LEDGER_STATUS.db` (table `ledger_anchor`) and a sidecar
`{ledger stem}.anchor.json` in the injected backup_dir (encrypted backup archives copy it into their
MANIFEST.json). Each record is authenticated with HMAC-SHA256 under the bot key `storage/keys/ledger.key`.

A hash chain inside one file proves nothing about rows removed from its end, or about the whole file being
swapped for an older copy; the anchor does. Two-phase write: before COMMIT the anchor names the new head as
`pending`; after COMMIT it becomes the head. A crash between the two leaves a ledger equal to `pending`, which
verifies. `compare_head` names what differs: truncation, rollback, rows added without the bot, a rewritten chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tbot_bot.support.machine_faults import database_fault, is_file_fault
from tbot_bot.support.utils_bot import readonly_uri, utc_now

ANCHOR_KEY_PURPOSE = "ledger"
SIDECAR_SUFFIX = ".anchor.json"
_DDL = (
    "CREATE TABLE IF NOT EXISTS ledger_anchor (ledger_name TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
    "anchor_json TEXT NOT NULL, hmac TEXT NOT NULL, updated_at TEXT NOT NULL)"
)
# as in core/schemas/ledger_status_schema.sql: open/locked per ledger, who, when (period close writes it)
_STATUS_DDL = (
    "CREATE TABLE IF NOT EXISTS ledger_status (ledger_name TEXT PRIMARY KEY, status TEXT NOT NULL CHECK "
    "(status IN ('open', 'locked', 'closed')), locked_by TEXT, reason TEXT, updated_at TEXT NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """What a ledger looks like at the end of a batch: enough to detect any removal or swap."""

    audit_rows: int
    last_hash: str
    transactions: int
    splits: int
    last_fitid: str | None


@dataclass(frozen=True, slots=True)
class Anchor:
    ledger: str  # ledger file name
    seq: int  # +1 per anchored batch (the newer of two anchor copies wins)
    head: ChainHead | None  # None only before the first committed batch
    pending: ChainHead | None  # head being committed (set before COMMIT, cleared after)
    written_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Anchor:
        data = json.loads(text)
        heads = {k: ChainHead(**data[k]) if data.get(k) else None for k in ("head", "pending")}
        return cls(data["ledger"], int(data["seq"]), heads["head"], heads["pending"], data["written_at"])


def read_head(conn: sqlite3.Connection) -> ChainHead:
    """The ledger's actual chain head (counts by COUNT(*), so deleted rows show)."""
    (audit_rows,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    last = conn.execute("SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    (tx,) = conn.execute("SELECT count(*) FROM transactions").fetchone()
    (sp,) = conn.execute("SELECT count(*) FROM splits").fetchone()
    fitid = conn.execute("SELECT fitid FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
    return ChainHead(
        int(audit_rows), str(last[0]) if last else "", int(tx), int(sp), fitid[0] if fitid else None
    )


def _sign(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


class AnchorStore:
    """Reads and writes a home's anchors; the key is the bot's ledger key (created 0600 on first use)."""

    def __init__(self, status_db: Path, key_path: Path) -> None:
        self.status_db = status_db
        self.key_path = key_path
        self._key_cache: bytes | None = None
        self._conn: sqlite3.Connection | None = None  # kept open: closing the last WAL connection checkpoints

    @classmethod
    def for_home(cls, home: Any) -> AnchorStore:
        """`home` is a BotHome: LEDGER_STATUS.db and storage/keys/ledger.key."""
        return cls(home.core_db("LEDGER_STATUS"), home.key_file(ANCHOR_KEY_PURPOSE))

    def _key(self, *, create: bool) -> bytes | None:
        from tbot_bot.config.security_bot import ensure_key, load_key

        if self._key_cache is not None:
            return self._key_cache
        if not self.key_path.exists() and not create:
            return None
        self._key_cache = ensure_key(self.key_path) if create else load_key(self.key_path)
        return self._key_cache

    def _connect(self, *, durable: bool) -> sqlite3.Connection:
        if self._conn is None:
            self.status_db.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.status_db, timeout=30, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_DDL)
                conn.execute(_STATUS_DDL)
            except sqlite3.DatabaseError as exc:
                conn.close()
                # LEDGER_STATUS.db damaged, locked or on a full disk: named itself, never taken for the ledgers
                if not is_file_fault(exc):
                    raise
                raise database_fault(exc, self.status_db) from exc
            self._conn = conn
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        return self._conn

    def record_lock(self, ledger_path: Path, period: str, *, by: str, at: datetime) -> None:
        """ledger_status: the ledger is locked through `period` (YYYY-MM), closed by `by` at `at`."""
        self._connect(durable=True).execute(
            "INSERT OR REPLACE INTO ledger_status (ledger_name, status, locked_by, reason, updated_at) "
            "VALUES (?, 'locked', ?, ?, ?)",
            (ledger_path.name, by, f"closed through {period}", at.astimezone(UTC).isoformat()),
        )

    def forget_lock(self, ledger_path: Path) -> None:
        """A deliberate restore: the restored ledger's own lock is the truth again (record_lock it, if any)."""
        self._connect(durable=True).execute(
            "DELETE FROM ledger_status WHERE ledger_name = ?", (ledger_path.name,)
        )

    def recorded_lock(self, ledger_path: Path) -> tuple[str, str, str] | None:
        """(period, by, at) of the ledger's recorded period lock, None when it is open or nothing is recorded."""
        if not self.status_db.exists():
            return None
        row = (
            self._connect(durable=False)
            .execute(
                "SELECT status, locked_by, reason, updated_at FROM ledger_status WHERE ledger_name = ?",
                (ledger_path.name,),
            )
            .fetchone()
        )
        if row is None or row[0] != "locked" or not str(row[2] or "").startswith("closed through "):
            return None
        return str(row[2])[len("closed through ") :], str(row[1] or "?"), str(row[3])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:
        self.close()

    def write(self, anchor: Anchor, backup_dir: Path | None, ledger_path: Path) -> None:
        """The pending phase (before the ledger commits) is made durable in LEDGER_STATUS.db only; the committed
        phase also goes to the backup sidecar, without waiting for the disk: if a power cut loses it, the durable
        pending record still matches the committed ledger."""
        key = self._key(create=True)
        assert key is not None
        body = anchor.to_json()
        mac = _sign(key, body)
        pending = anchor.pending is not None
        self._connect(durable=pending).execute(
            "INSERT INTO ledger_anchor (ledger_name, seq, anchor_json, hmac, updated_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT(ledger_name) DO UPDATE SET seq=excluded.seq, anchor_json=excluded.anchor_json, "
            "hmac=excluded.hmac, updated_at=excluded.updated_at",
            (anchor.ledger, anchor.seq, body, mac, anchor.written_at),
        )
        if backup_dir is not None and not pending:
            doc = json.dumps({"anchor": json.loads(body), "hmac": mac}, sort_keys=True, indent=1)
            _replace_text(sidecar_path(ledger_path, backup_dir), doc + "\n")

    def records(self, ledger_path: Path, backup_dir: Path | None) -> list[tuple[str, str | None, str]]:
        """(where, anchor body or None, hmac or problem) for each copy found."""
        out: list[tuple[str, str | None, str]] = []
        if self.status_db.is_file():
            try:
                conn = sqlite3.connect(readonly_uri(self.status_db), uri=True, timeout=30)
                try:
                    row = conn.execute(
                        "SELECT anchor_json, hmac FROM ledger_anchor WHERE ledger_name = ?",
                        (ledger_path.name,),
                    ).fetchone()
                finally:
                    conn.close()
            except sqlite3.DatabaseError:
                row = None  # no anchor table yet (home initialised before anchors existed)
            if row is not None:
                out.append(("LEDGER_STATUS.db", str(row[0]), str(row[1])))
        side = sidecar_path(ledger_path, backup_dir) if backup_dir is not None else None
        if side is not None and side.is_file():
            try:
                doc = json.loads(side.read_text(encoding="utf-8"))
                body = json.dumps(doc["anchor"], sort_keys=True, separators=(",", ":"))
                out.append((side.name, body, str(doc["hmac"])))
            except (ValueError, KeyError, TypeError):
                out.append((side.name, None, "is not a readable anchor file"))
        return out

    def load(self, ledger_path: Path, backup_dir: Path | None) -> tuple[Anchor | None, list[str]]:
        """The newest authentic anchor of this ledger, and problems with any copy (forged, unreadable)."""
        problems: list[str] = []
        copies = self.records(ledger_path, backup_dir)
        if not copies:
            return None, problems
        key = self._key(create=False)
        if key is None:
            return None, [
                f"anchor key {self.key_path} is missing: the ledger's anchors cannot be authenticated"
            ]
        best: Anchor | None = None
        for where, body, mac in copies:
            if body is None:
                problems.append(f"anchor in {where} {mac}")
                continue
            if not any(hmac.compare_digest(_sign(k, body), mac) for k in (key, *self._previous_key())):
                problems.append(
                    f"anchor in {where} fails authentication (altered, or written with another key)"
                )
                continue
            anchor = Anchor.from_json(body)
            if best is None or anchor.seq > best.seq:
                best = anchor
        return best, problems

    def _previous_key(self) -> tuple[bytes, ...]:
        """During `tbot rotate-key ledger` (or after one was killed) anchors signed with `<key>.prev` still count."""
        from tbot_bot.config.security_bot import PREVIOUS_SUFFIX, load_key

        prev = self.key_path.with_name(self.key_path.name + PREVIOUS_SUFFIX)
        return (load_key(prev),) if prev.exists() else ()

    def resign(self, ledger_path: Path, backup_dir: Path | None) -> bool:
        """Re-sign this ledger's newest authentic anchor with the current key (key rotation); False if none."""
        anchor, _ = self.load(ledger_path, backup_dir)
        if anchor is None:
            return False
        self.write(anchor, backup_dir, ledger_path)
        return True

    def next_seq(self, ledger_path: Path, backup_dir: Path | None) -> int:
        anchor, _ = self.load(ledger_path, backup_dir)
        return (anchor.seq if anchor else 0) + 1


def _replace_text(path: Path, text: str) -> None:
    """Write to a temp name and rename (never a half-written anchor); no fsync, see AnchorStore.write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def sidecar_path(ledger_path: Path, backup_dir: Path) -> Path:
    return backup_dir / f"{ledger_path.stem}{SIDECAR_SUFFIX}"


def new_anchor(ledger_path: Path, seq: int, head: ChainHead | None, pending: ChainHead | None) -> Anchor:
    return Anchor(ledger_path.name, seq, head, pending, utc_now().isoformat())


def compare_head(actual: ChainHead, anchor: Anchor, audit_hash_at: Any) -> list[str]:
    """Problems when the ledger is not the anchored one. `audit_hash_at(n)` = row_hash of audit row id n or None."""
    if actual == anchor.head or (anchor.pending is not None and actual == anchor.pending):
        return []
    want = anchor.head or anchor.pending
    if want is None:
        return []
    problems: list[str] = []
    if actual.audit_rows < want.audit_rows:
        problems.append(
            f"audit_log has {actual.audit_rows} rows but the anchor (seq {anchor.seq}, {anchor.written_at}) "
            f"recorded {want.audit_rows}: rows were deleted or the ledger was rolled back to an earlier copy"
        )
    if actual.transactions < want.transactions:
        problems.append(
            f"transactions has {actual.transactions} rows but the anchor recorded {want.transactions}: "
            f"transactions were deleted or the ledger was rolled back (anchored last FITID {want.last_fitid!r})"
        )
    if actual.splits < want.splits:
        problems.append(
            f"splits has {actual.splits} rows but the anchor recorded {want.splits}: splits were deleted"
        )
    anchored_hash = audit_hash_at(want.audit_rows)
    if anchored_hash is not None and anchored_hash != want.last_hash:
        problems.append(
            f"audit_log row id={want.audit_rows} has a different hash than the anchored chain head: "
            f"the chain was rewritten"
        )
    if not problems and (actual.audit_rows > want.audit_rows or actual.transactions > want.transactions):
        problems.append(
            f"the ledger has rows beyond its anchored chain head (audit rows {actual.audit_rows} > "
            f"{want.audit_rows}, transactions {actual.transactions} > {want.transactions}): written without the bot's anchor"
        )
    if not problems:
        problems.append(
            f"chain head differs from the anchor (ledger {actual}, anchored {want}): the ledger was altered"
        )
    return problems
