"""Encrypted, timestamped archives of a bot's output/ and ledgers (`tbot backup create|list|restore`).

An archive is a gzip tar (ledgers copied with SQLite's online backup API, plus MANIFEST.json with sha256 of
every file and the chain head of every archived ledger, HMAC'd with the ledger key) encrypted with Fernet using
storage/keys/backup.key (0600). Restore refuses to overwrite files, checks every digest, verifies every restored
ledger against the manifest's chain head, and re-anchors it in the home (LEDGER_STATUS.db) so boot accepts it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import ConfigError, LedgerError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, is_atomic_temp

ARCHIVE_PREFIX = "tbot_backup_"
IDENTITY_FIELDS = ("ENTITY_CODE", "JURISDICTION_CODE", "account_name", "BROKER_CODE", "BOT_ID")
_LEDGER_NAME = re.compile(
    r"([A-Z0-9]{2,12})_([A-Z0-9]{2,12})_([A-Za-z0-9-]{1,32})_([A-Z0-9]{2,12})_([A-Z0-9]{2,12})_BOT_ledger\.db$"
)
ARCHIVE_SUFFIX = ".tar.gz.enc"
MANIFEST = "MANIFEST.json"


def load_or_create_key(path: Path) -> bytes:
    """The Fernet key at `path`, created with mode 0600 when missing; refuses a group/other-readable key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, Fernet.generate_key(), 0o600)
    return read_key(path)


def read_key(path: Path) -> bytes:
    if not path.is_file():
        raise ConfigError(
            f"backup key {path} does not exist (pass --key-file with the key the archive was made with)"
        )
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ConfigError(f"backup key {path} is readable by group/others; run: chmod 600 {path}")
    return path.read_bytes().strip()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _snapshot_head(data: bytes, tmp_dir: Path) -> dict[str, object] | None:
    """The chain head of an archived ledger copy (None for a non-ledger SQLite file)."""
    from dataclasses import asdict

    from tbot_bot.accounting.ledger_anchor import read_head

    copy = tmp_dir / "head.db"
    copy.write_bytes(data)
    conn = sqlite3.connect(copy)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone() is None:
            return None
        return asdict(read_head(conn))
    finally:
        conn.close()
        copy.unlink()


def _manifest_anchors(home: BotHome, heads: dict[str, dict[str, object]]) -> dict[str, object]:
    """{"heads": {member: head}, "hmac": HMAC-SHA256 of the heads under storage/keys/ledger.key (if present)}."""
    import hmac as hmac_mod

    body = json.dumps(heads, sort_keys=True, separators=(",", ":"))
    key_path = home.key_file("ledger")
    mac = None
    if key_path.is_file():
        from tbot_bot.config.security_bot import load_key

        mac = hmac_mod.new(load_key(key_path), body.encode(), hashlib.sha256).hexdigest()
    return {"heads": heads, "hmac": mac}


def _sqlite_snapshot(source: Path, tmp_dir: Path) -> bytes:
    copy = tmp_dir / f"{len(list(tmp_dir.iterdir()))}.db"
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    return copy.read_bytes()


def create_backup(
    home: BotHome,
    ledger_files: Sequence[Path],
    *,
    now: datetime,
    key_path: Path | None = None,
    keep: int | None = None,
    identity: dict[str, str] | None = None,
) -> Path:
    """Archive output/ and the given ledger files (all under the home) into backups/; returns the archive path.
    `identity` (the bot identity) is recorded in the manifest so a restore can refuse another bot's home."""
    key = load_or_create_key(key_path or home.key_file("backup"))
    members: dict[str, tuple[bytes, str]] = {}
    heads: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ledger in ledger_files:
            if not ledger.is_file():
                raise LedgerError(f"cannot back up {ledger}: it does not exist")
            data = _sqlite_snapshot(ledger, Path(tmp))
            members[home.relative(ledger)] = (data, "sqlite")
            head = _snapshot_head(data, Path(tmp))
            if head is not None:
                heads[home.relative(ledger)] = head
    if home.output_dir.is_dir():
        for path in sorted(home.output_dir.rglob("*")):
            # temp files of interrupted atomic writes are debris, not data
            if path.is_file() and not path.is_symlink() and not is_atomic_temp(path):
                members.setdefault(home.relative(path), (path.read_bytes(), "file"))
    manifest = {
        "created_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        **({"identity": identity} if identity else {}),
        "files": {
            name: {"sha256": _sha256(data), "kind": kind} for name, (data, kind) in sorted(members.items())
        },
        "anchors": _manifest_anchors(home, heads),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode())] + [
            (n, d) for n, (d, _) in sorted(members.items())
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = int(now.timestamp())
            tar.addfile(info, io.BytesIO(data))
    home.backups_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{now.astimezone(UTC):%Y%m%dT%H%M%S}Z"
    target = home.backups_dir / f"{ARCHIVE_PREFIX}{stamp}{ARCHIVE_SUFFIX}"
    n = 0
    while target.exists():
        n += 1
        target = home.backups_dir / f"{ARCHIVE_PREFIX}{stamp}-{n}{ARCHIVE_SUFFIX}"
    atomic_write_bytes(target, Fernet(key).encrypt(buf.getvalue()), 0o600)
    if keep is not None:
        for old in list_backups(home)[:-keep]:
            old.unlink()
    return target


def list_backups(home: BotHome) -> list[Path]:
    """Archives in backups/, oldest first."""
    if not home.backups_dir.is_dir():
        return []
    return sorted(
        p
        for p in home.backups_dir.iterdir()
        if p.name.startswith(ARCHIVE_PREFIX) and p.name.endswith(ARCHIVE_SUFFIX)
    )


def _safe_name(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ConfigError(f"backup archive member {name!r} has an unsafe path; refusing to restore")
    return pure.as_posix()


def _decrypt_archive(archive: Path, home: BotHome, key_path: Path | None) -> bytes:
    """With --key-file only that key; else this home's backup key, then the keys a rotation kept (`.prev` during
    an interrupted rotation, `.retired-*` for archives made before one)."""
    if key_path is not None:
        candidates = [key_path]
    else:
        current = home.key_file("backup")
        candidates = [current, current.with_name(current.name + ".prev")]
        candidates += sorted(current.parent.glob(current.name + ".retired-*"))
    blob = archive.read_bytes()
    for n, candidate in enumerate(candidates):
        if n and not candidate.exists():
            continue
        try:
            return Fernet(read_key(candidate)).decrypt(blob)
        except InvalidToken:
            continue
    raise ConfigError(
        f"backup archive {archive.name} cannot be decrypted with "
        + (f"{key_path}" if key_path else "this home's backup key or a retired one")
        + " (wrong key or damaged file)"
    )


def _archive_members(archive: Path, data: bytes) -> dict[str, bytes]:
    """The files of a decrypted archive; a ConfigError when the plaintext is not a gzip tar (empty, damaged)."""
    not_an_archive = (
        f"backup archive {archive.name} decrypts with the key but does not hold a gzip tar archive "
        "(empty, damaged, or not made by `tbot backup create`); nothing was restored"
    )
    if not data:
        raise ConfigError(not_an_archive)
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    raise ConfigError(
                        f"backup archive member {member.name!r} is not a regular file; refusing to restore"
                    )
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise ConfigError(f"backup archive member {member.name!r} cannot be read")
                contents[_safe_name(member.name)] = extracted.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error):  # gzip.BadGzipFile is an OSError
        raise ConfigError(not_an_archive) from None
    return contents


def _archive_manifest(archive: Path, raw: bytes | None) -> dict[str, Any]:
    """MANIFEST.json of an archive: an object whose `files` maps each member to {sha256, kind}."""
    where = f"backup archive {archive.name}: {MANIFEST}"
    if raw is None:
        raise ConfigError(f"{where} is missing; this is not an archive `tbot backup create` made")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"{where} is not JSON (damaged archive); nothing was restored") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(info, dict) and isinstance(info.get("sha256"), str) and isinstance(info.get("kind"), str)
        for info in files.values()
    ):
        raise ConfigError(f"{where} does not list the files with their sha256 and kind; nothing was restored")
    return manifest  # type: ignore[no-any-return]


def archive_identity(manifest: dict[str, Any], names: list[str]) -> str | None:
    """ENTITY/JURISDICTION/account/BROKER/BOT_ID of an archive: its manifest, else its bot ledger's file name."""
    ident = manifest.get("identity")
    if isinstance(ident, dict) and ident.get("BOT_ID"):
        return "/".join(str(ident.get(k, "?")) for k in IDENTITY_FIELDS)
    for name in names:
        m = _LEDGER_NAME.search(name)
        if m:
            return "/".join(m.groups())
    return None


def _home_identity(home: BotHome) -> str | None:
    from tbot_bot.support.decrypt_secrets import secret_exists

    if not home.root.is_dir() or not secret_exists(home, "bot_identity"):
        return None
    from tbot_bot.accounting.accounting_config import load_identity

    ident = load_identity(home).to_json()
    return "/".join(ident[k] for k in IDENTITY_FIELDS)


def restore_backup(
    archive: Path, home: BotHome, *, key_path: Path | None = None, now: datetime | None = None
) -> RestoreResult:
    """Restore an archive into `home`; LedgerError if a restored ledger fails verify.

    Into a home with no bot identity nothing is overwritten (an existing file is refused). Into a provisioned
    home of the SAME identity (e.g. re-provisioned after a disk loss) files are replaced, after the current state
    was archived first (a normal `tbot backup create` archive, named in the result). A home of ANOTHER
    identity is refused, naming both: restoring there would mix two bots' books.
    """
    data = _decrypt_archive(archive, home, key_path)
    contents = _archive_members(archive, data)
    manifest = _archive_manifest(archive, contents.pop(MANIFEST, None))
    if set(manifest["files"]) != set(contents):
        raise ConfigError(f"backup archive {archive.name}: manifest does not match its contents")
    theirs, ours = archive_identity(manifest, list(contents)), _home_identity(home)
    if ours is not None and theirs != ours:
        raise ConfigError(
            f"backup archive {archive.name} belongs to bot {theirs or 'unknown (no ledger in it)'}, this home "
            f"{home.root} is bot {ours}: refusing to restore another bot's books into it"
        )
    targets: dict[Path, bytes] = {}
    replacing: list[Path] = []
    for name, blob in contents.items():
        if _sha256(blob) != manifest["files"][name]["sha256"]:
            raise ConfigError(f"backup archive {archive.name}: {name} fails its sha256 check")
        target = home.path(*PurePosixPath(name).parts)
        if target.exists():
            if ours is None:
                raise ConfigError(
                    f"restore would overwrite {target}; restore into an empty home or move it away"
                )
            if target.read_bytes() != blob:
                replacing.append(target)
        targets[target] = blob
    safety: Path | None = None
    if replacing:
        safety = _archive_current(home, now or datetime.now(UTC))
    for target, blob in targets.items():
        for suffix in ("-wal", "-shm", "-journal"):
            # a replaced SQLite file must not meet the old file's write-ahead log
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        atomic_write_bytes(target, blob, 0o600 if target.suffix == ".db" else 0o644)
    problems: list[str] = []
    for name, info in manifest["files"].items():
        path = home.path(*PurePosixPath(name).parts)
        if info["kind"] == "sqlite" and _is_ledger(path):
            problems += [f"{name}: {p}" for p in verify_ledger(path)]
    problems += _reanchor(home, manifest)
    if problems:
        raise LedgerError("restored ledgers fail verification:\n  - " + "\n  - ".join(problems))
    return RestoreResult(sorted(targets), sorted(replacing), safety)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    files: list[Path]  # every file written
    replaced: list[Path]  # existing files whose content changed (same-identity restore only)
    safety_archive: Path | None  # the archive of the state before the restore, when something was replaced

    def __iter__(self) -> Iterator[Path]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, item: object) -> bool:
        return item in self.files


def _archive_current(home: BotHome, now: datetime) -> Path:
    from tbot_bot.accounting.accounting_config import load_binding

    binding = load_binding(home, check_files=False)
    current = [p for p in (binding.ledger_path, binding.float_ledger_path, binding.coa_path) if p.exists()]
    return create_backup(home, current, now=now, identity=binding.identity.to_json())


def _reanchor(home: BotHome, manifest: dict[str, object]) -> list[str]:
    """Each restored ledger must be exactly the head the manifest recorded; then it is anchored in this home
    (a restore is an authenticated, deliberate rollback: the new anchor's seq is above any older one)."""
    from tbot_bot.accounting.ledger_anchor import AnchorStore, ChainHead, new_anchor, read_head

    anchors_doc = manifest.get("anchors")
    files = manifest.get("files")
    if isinstance(anchors_doc, dict):
        recorded_heads = dict(anchors_doc.get("heads") or {})
    else:
        # an archive from before anchors: nothing to compare with; the restored (verified) ledgers are anchored
        recorded_heads = {
            name: None
            for name, info in (files.items() if isinstance(files, dict) else [])
            if info.get("kind") == "sqlite" and _is_ledger(home.path(*PurePosixPath(name).parts))
        }
    store = AnchorStore.for_home(home)
    backup_dir = _injected_backup_dir(home)
    problems: list[str] = []
    for name, recorded in recorded_heads.items():
        path = home.path(*PurePosixPath(name).parts)
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            head = read_head(conn)
        finally:
            conn.close()
        if recorded is not None and head != ChainHead(**recorded):
            problems.append(f"{name}: restored ledger differs from the chain head its manifest recorded")
            continue
        seq = store.next_seq(path, backup_dir)
        store.write(new_anchor(path, seq, head, None), backup_dir, path)
    store.close()
    return problems


def _injected_backup_dir(home: BotHome) -> Path | None:
    try:
        from tbot_bot.accounting.accounting_config import load_binding

        return load_binding(home, check_files=False).backup_dir
    except ConfigError:
        return None  # identity not (yet) in this home: LEDGER_STATUS.db alone carries the anchor


def _is_ledger(path: Path) -> bool:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_meta'").fetchone()
            is not None
        )
    finally:
        conn.close()
