"""Encrypted, timestamped archives of a bot's output/ and ledgers (`tbot backup create|list|restore`).

An archive is a gzip tar (ledgers copied with SQLite's online backup API, plus MANIFEST.json with sha256 of
every file) encrypted with Fernet using storage/keys/backup.key (0600). Restore refuses to overwrite files,
checks every digest and verifies every restored ledger.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from cryptography.fernet import Fernet, InvalidToken

from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import ConfigError, LedgerError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, is_atomic_temp

ARCHIVE_PREFIX = "tbot_backup_"
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
) -> Path:
    """Archive output/ and the given ledger files (all under the home) into backups/; returns the archive path."""
    key = load_or_create_key(key_path or home.key_file("backup"))
    members: dict[str, tuple[bytes, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ledger in ledger_files:
            if not ledger.is_file():
                raise LedgerError(f"cannot back up {ledger}: it does not exist")
            members[home.relative(ledger)] = (_sqlite_snapshot(ledger, Path(tmp)), "sqlite")
    if home.output_dir.is_dir():
        for path in sorted(home.output_dir.rglob("*")):
            # temp files of interrupted atomic writes are debris, not data
            if path.is_file() and not path.is_symlink() and not is_atomic_temp(path):
                members.setdefault(home.relative(path), (path.read_bytes(), "file"))
    manifest = {
        "created_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "files": {
            name: {"sha256": _sha256(data), "kind": kind} for name, (data, kind) in sorted(members.items())
        },
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


def restore_backup(archive: Path, home: BotHome, *, key_path: Path | None = None) -> list[Path]:
    """Restore an archive into `home` (never overwriting a file); LedgerError if a restored ledger fails verify."""
    key = read_key(key_path or home.key_file("backup"))
    try:
        data = Fernet(key).decrypt(archive.read_bytes())
    except InvalidToken as exc:
        raise ConfigError(
            f"backup archive {archive.name} cannot be decrypted with this key (wrong key or damaged file)"
        ) from exc
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        contents: dict[str, bytes] = {}
        for member in tar.getmembers():
            if not member.isfile():
                raise ConfigError(
                    f"backup archive member {member.name!r} is not a regular file; refusing to restore"
                )
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ConfigError(f"backup archive member {member.name!r} cannot be read")
            contents[_safe_name(member.name)] = extracted.read()
    manifest = json.loads(contents.pop(MANIFEST, b"null"))
    if not isinstance(manifest, dict) or set(manifest.get("files", {})) != set(contents):
        raise ConfigError(f"backup archive {archive.name}: manifest does not match its contents")
    targets: dict[Path, bytes] = {}
    for name, blob in contents.items():
        if _sha256(blob) != manifest["files"][name]["sha256"]:
            raise ConfigError(f"backup archive {archive.name}: {name} fails its sha256 check")
        target = home.path(*PurePosixPath(name).parts)
        if target.exists():
            raise ConfigError(f"restore would overwrite {target}; restore into an empty home or move it away")
        targets[target] = blob
    for target, blob in targets.items():
        atomic_write_bytes(target, blob, 0o600 if target.suffix == ".db" else 0o644)
    problems: list[str] = []
    for name, info in manifest["files"].items():
        path = home.path(*PurePosixPath(name).parts)
        if info["kind"] == "sqlite" and _is_ledger(path):
            problems += [f"{name}: {p}" for p in verify_ledger(path)]
    if problems:
        raise LedgerError("restored ledgers fail verification:\n  - " + "\n  - ".join(problems))
    return sorted(targets)


def _is_ledger(path: Path) -> bool:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_meta'").fetchone()
            is not None
        )
    finally:
        conn.close()
