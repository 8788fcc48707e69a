"""Encrypted, timestamped archives of a whole bot (`tbot backup create|list`; restore: backup_restore.py).

An archive is a gzip tar of every file a bot needs to continue elsewhere except keys and identity
(backup_members.py: ledgers, journal, core databases, config, output, logs, state, data; every SQLite database
copied with the online backup API) plus MANIFEST.json (size and sha256 of every file, the chain head of every
archived ledger HMAC'd with the ledger key), encrypted with Fernet using storage/keys/backup.key (0600). Restore
checks every digest, verifies every restored ledger against the manifest's chain head and re-anchors it in the
home (LEDGER_STATUS.db) so boot accepts it; a marker refuses the home until the restore has finished.
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
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from tbot_bot.errors import ConfigError, LedgerError
from tbot_bot.reporting.backup_members import collect_members
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, claim_numbered, readonly_uri

ARCHIVE_PREFIX = "tbot_backup_"
ARCHIVE_SUFFIX = ".tar.gz.enc"
MANIFEST = "MANIFEST.json"
FORMAT = "tbot.backup/3"
# what a restore reads: this format and the one before it (no `format` key, no anchors: re-anchored on restore)
READABLE_FORMATS = (FORMAT, "tbot.backup/2", "tbot.backup/1", None)


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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ledger_copy_problems(name: str, data: bytes, tmp_dir: Path, *, ledger: bool = False) -> list[str]:
    """What `tbot ledger verify` finds in an archived SQLite copy, each naming the member; checked on the copy,
    before anything relies on it. `ledger`: the member is a ledger by its place (the manifest's ledger list):
    verified whatever it holds, so an empty or truncated file is named, never taken for "not a ledger"; else only
    a database that is one by content is verified."""
    from tbot_bot.accounting.ledger_verify import verify_ledger

    copy = tmp_dir / PurePosixPath(name).name
    copy.write_bytes(data)
    try:
        if not data:
            return [f"{name}: an empty file, not a ledger"] if ledger else []
        if ledger:
            return [f"{name}: {p}" for p in verify_ledger(copy)]
        try:
            is_ledger = is_ledger_file(copy)
        except sqlite3.DatabaseError as exc:
            # a damaged journal or users database: named by its member, never a bare "database failed"
            return [f"{name}: not a readable SQLite database ({exc})"]
        return [f"{name}: {p}" for p in verify_ledger(copy)] if is_ledger else []
    finally:
        copy.unlink()


def is_ledger_file(path: Path) -> bool:
    """Whether the SQLite file at `path` is a ledger (it has the ledger's meta table); read-only."""
    conn = sqlite3.connect(readonly_uri(path), uri=True)
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_meta'")
        return found.fetchone() is not None
    finally:
        conn.close()


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


def _files_body(files: dict[str, Any], heads: dict[str, Any]) -> bytes:
    """What `files_hmac` signs: every member's SHA-256 and the ledger heads (so no member can change unseen)."""
    digests = {name: info.get("sha256") for name, info in files.items() if isinstance(info, dict)}
    return json.dumps({"files": digests, "heads": heads}, sort_keys=True, separators=(",", ":")).encode()


def _manifest_anchors(
    home: BotHome, heads: dict[str, dict[str, object]], files: dict[str, Any]
) -> dict[str, object]:
    """{"heads": {member: head}, "hmac": HMAC-SHA256 of the heads, "files_hmac": HMAC-SHA256 of every member's
    digest and the heads}, both under storage/keys/ledger.key (None without it): whoever holds only the backup key
    can open an archive but not change one member of it unseen."""
    import hmac as hmac_mod

    body = json.dumps(heads, sort_keys=True, separators=(",", ":"))
    key_path = home.key_file("ledger")
    mac = files_mac = None
    if key_path.is_file():
        from tbot_bot.config.security_bot import load_key

        key = load_key(key_path)
        mac = hmac_mod.new(key, body.encode(), hashlib.sha256).hexdigest()
        files_mac = hmac_mod.new(key, _files_body(files, heads), hashlib.sha256).hexdigest()
    return {"heads": heads, "hmac": mac, "files_hmac": files_mac}


def create_backup(
    home: BotHome,
    ledger_files: Sequence[Path],
    *,
    now: datetime,
    key_path: Path | None = None,
    keep: int | None = None,
    identity: dict[str, str] | None = None,
    injected_backup_dirs: Sequence[Path] = (),
    check: bool = True,
    coa_files: Sequence[Path] = (),
) -> Path:
    """Archive the whole bot (backup_members: ledgers first, every database by online backup, config, output,
    logs, state, data; never keys or secrets) into backups/; returns the archive path. Safe while the supervisor
    runs. `identity` (the bot identity) is recorded in the manifest so a restore can refuse another bot's home.
    `check`: each ledger copy is verified; one that fails is still archived (it is what there is), but no older
    archive is pruned and LedgerError names the archive and the problems (an unattended backup alerts)."""
    from tbot_bot.domain.crashpoints import crashpoint

    books = [
        *ledger_files,
        *coa_files,
    ]  # the ledgers (verified whatever they hold), then their charts of accounts
    for ledger in books:
        if not ledger.is_file():
            raise LedgerError(f"cannot back up {ledger}: it does not exist")
    key_file = key_path or home.key_file("backup")
    earlier = list_backups(home) if not key_file.exists() else []
    if earlier:
        # the key is lost, not new: a fresh one would make every archive before it unreadable, without a word
        raise ConfigError(
            f"backup key {key_file} is missing, yet {len(earlier)} archive(s) in {earlier[0].parent} were encrypted "
            "with it: restore the key from your key backup (support/security_notes.md); if it is lost for good, "
            "move those archives out of the folder and back up again (a new key is made then)"
        )
    key = load_or_create_key(key_file)
    heads: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # the safety archive of a restore (check=False) takes a damaged ledger as it is: the restore is its repair
        members = collect_members(home, books, Path(tmp), injected_backup_dirs, as_is=not check)
        # a config that does not decrypt with the env key is archived as it is (kind "file"): said below
        damaged_config = any(m.name == ".env_bot.enc" and m.kind != "config" for m in members)
        problems: list[str] = []
        for n, m in enumerate(members[: len(books)]):
            head = _snapshot_head(m.data, Path(tmp)) if m.kind == "sqlite" else None
            if head is not None:
                heads[m.name] = head
            if check:
                problems += ledger_copy_problems(m.name, m.data, Path(tmp), ledger=n < len(ledger_files))
    files = {
        m.name: {"sha256": sha256_hex(m.data), "size": len(m.data), "kind": m.kind}
        for m in sorted(members, key=lambda m: m.name)
    }
    manifest = {
        "format": FORMAT,
        "created_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        **({"identity": identity} if identity else {}),
        "files": files,
        "anchors": _manifest_anchors(home, heads, files),
        # which members are ledgers (a restore verifies each whatever it holds)
        "ledgers": [m.name for m in members[: len(ledger_files)]],
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        entries = [(MANIFEST, json.dumps(manifest, indent=2).encode())]
        entries += [(m.name, m.data) for m in sorted(members, key=lambda m: m.name)]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600
            info.mtime = int(now.timestamp())
            tar.addfile(info, io.BytesIO(data))
    home.backups_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{now.astimezone(UTC):%Y%m%dT%H%M%S}Z"
    crashpoint("backup_create")  # test seam: a kill here leaves no archive, never a partial one
    sealed = Fernet(key).encrypt(buf.getvalue())
    # a second archive of the same second is <stamp>-1, -2, ...; the name is taken atomically (two creates at once
    # never write one file)
    target = claim_numbered(
        lambda n: home.backups_dir / f"{ARCHIVE_PREFIX}{stamp}{n}{ARCHIVE_SUFFIX}",
        lambda path: atomic_write_bytes(path, sealed, 0o600, exclusive=True),
    )
    if problems:
        raise LedgerError(
            f"wrote {target}, but its ledgers fail verification (no older archive was pruned; "
            "see `tbot ledger verify`):\n  - " + "\n  - ".join(problems)
        )
    if (
        damaged_config and check
    ):  # the safety archive of a restore takes the home as it is (the restore repairs it)
        raise ConfigError(
            f"wrote {target}, but .env_bot.enc does not decrypt with this home's env key: the archive holds it as "
            "it is, and restoring it would bring a damaged configuration back; repair it (`tbot config history`, "
            "`tbot config rollback VERSION`) and back up again (no older archive was pruned)"
        )
    if keep is not None:
        for old in list_backups(home)[:-keep]:
            old.unlink()
    return target


def read_manifest(archive: Path, home: BotHome, key_path: Path | None = None) -> dict[str, Any]:
    """The MANIFEST.json of an archive (decrypted with the home's backup key, or `key_path`)."""
    data = decrypt_archive(archive, home, key_path)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        extracted = tar.extractfile(MANIFEST)
        if extracted is None:
            raise ConfigError(f"backup archive {archive.name} has no {MANIFEST}")
        manifest = json.loads(extracted.read())
    if not isinstance(manifest, dict):
        raise ConfigError(f"backup archive {archive.name}: {MANIFEST} is not an object")
    return manifest


def manifest_heads(home: BotHome, manifest: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The ledger heads a manifest recorded, when their HMAC verifies under this home's ledger key (or the key a
    rotation in progress kept as `.prev`, or one a rotation retired); None when unsigned or not authentic."""
    anchors = manifest.get("anchors")
    if not isinstance(anchors, dict) or not anchors.get("hmac"):
        return None
    heads = anchors.get("heads") or {}
    body = json.dumps(heads, sort_keys=True, separators=(",", ":")).encode()
    return dict(heads) if _ledger_key_signed(home, body, str(anchors["hmac"])) else None


def manifest_files_signed(home: BotHome, manifest: dict[str, Any]) -> bool | None:
    """Whether the manifest's `files_hmac` (every member's digest and the heads) verifies under this home's ledger
    keys; None when the manifest has none (made before tbot.backup/3)."""
    anchors = manifest.get("anchors")
    if not isinstance(anchors, dict) or not anchors.get("files_hmac"):
        return None
    files = manifest.get("files")
    heads = anchors.get("heads")
    body = _files_body(files if isinstance(files, dict) else {}, heads if isinstance(heads, dict) else {})
    return _ledger_key_signed(home, body, str(anchors["files_hmac"]))


def _ledger_key_signed(home: BotHome, body: bytes, mac: str) -> bool:
    """`mac` is the HMAC-SHA256 of `body` under one of this home's ledger keys: the current one, the one a rotation
    in progress kept (`.prev`) or one a rotation retired (archives made before it)."""
    import hmac as hmac_mod

    from tbot_bot.config.security_bot import load_key

    key_path = home.key_file("ledger")
    retired = sorted(key_path.parent.glob(f"{key_path.name}.retired-*")) if key_path.parent.is_dir() else []
    for candidate in (key_path, key_path.with_name(key_path.name + ".prev"), *retired):
        if candidate.is_file():
            expected = hmac_mod.new(load_key(candidate), body, hashlib.sha256).hexdigest()
            if hmac_mod.compare_digest(expected, mac):
                return True
    return False


def list_backups(home: BotHome) -> list[Path]:
    """Archives in backups/, oldest first (by their stamp, then the -n of a second archive of the same second:
    by name, `<stamp>-1` sorted before `<stamp>.`, so prune took the newer one for the older)."""
    if not home.backups_dir.is_dir():
        return []
    return sorted(
        (
            p
            for p in home.backups_dir.iterdir()
            if p.name.startswith(ARCHIVE_PREFIX) and p.name.endswith(ARCHIVE_SUFFIX)
        ),
        key=archive_order,
    )


def archive_order(path: Path) -> tuple[str, int]:
    """An archive name's place in time: its stamp, then the -n of a later archive of the same second."""
    stem = path.name[len(ARCHIVE_PREFIX) : -len(ARCHIVE_SUFFIX)]
    stamp, _, n = stem.partition("-")
    return stamp, int(n) if n.isdigit() else 0


# an archive never holds keys or secrets (they have their own backup): a member there would replace the key that
# decrypts the configuration, for good
_NEVER_RESTORED = (("storage", "keys"), ("storage", "secrets"))


def safe_member_name(name: str) -> str:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ConfigError(f"backup archive member {name!r} has an unsafe path; refusing to restore")
    if pure.parts[:2] in _NEVER_RESTORED:
        raise ConfigError(
            f"backup archive member {name!r} is under {'/'.join(pure.parts[:2])}/, which an archive never holds "
            "(keys and secrets have their own backup); refusing to restore; nothing was restored"
        )
    return pure.as_posix()


def decrypt_archive(archive: Path, home: BotHome, key_path: Path | None) -> bytes:
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
            key = Fernet(read_key(candidate))
        except ValueError:  # not a Fernet key at all (32 url-safe base64 bytes): say so, not what Fernet says
            if key_path is not None:
                raise ConfigError(
                    f"--key-file {key_path} is not a backup key (a Fernet key: 44 characters of url-safe base64, "
                    "as the home's keys/backup.key holds)"
                ) from None
            continue
        try:
            return key.decrypt(blob)
        except InvalidToken:
            continue
    raise ConfigError(
        f"backup archive {archive.name} cannot be decrypted with "
        + (f"{key_path}" if key_path else "this home's backup key or a retired one")
        + " (wrong key or damaged file)"
    )
