"""`tbot backup restore`: an archive back into a home, all or nothing as far as boot is concerned.

Every member is checked against the manifest's SHA-256; config members are re-encrypted with the home's env key;
every restored ledger must verify and equal the head its manifest recorded, then it is re-anchored here (a restore
is an authenticated, deliberate rollback). A marker under storage/state makes boot and `tbot check` refuse the
home until the restore has finished; the same restore run again after a kill completes it.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from tbot_bot.errors import ConfigError, LedgerError, TbotError
from tbot_bot.reporting.auto_backup import (
    MANIFEST,
    READABLE_FORMATS,
    create_backup,
    decrypt_archive,
    is_ledger_file,
    ledger_copy_problems,
    safe_member_name,
    sha256_hex,
)
from tbot_bot.reporting.trade_history import utc_iso
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, atomic_write_json, parse_json, readonly_uri

IDENTITY_FIELDS = ("ENTITY_CODE", "JURISDICTION_CODE", "account_name", "BROKER_CODE", "BOT_ID")
_LEDGER_NAME = re.compile(
    r"([A-Z0-9]{2,12})_([A-Z0-9]{2,12})_([A-Za-z0-9-]{1,32})_([A-Z0-9]{2,12})_([A-Z0-9]{2,12})_BOT_ledger\.db$"
)


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


def _ledger_members(manifest: dict[str, Any], names: list[str]) -> set[str]:
    """The archive's ledgers: the manifest's list, and (archives made before it had one) the bot ledger by its
    file name."""
    listed = manifest.get("ledgers")
    held = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    return held | {n for n in names if _LEDGER_NAME.search(n)}


def _home_identity(home: BotHome) -> str | None:
    from tbot_bot.support.decrypt_secrets import secret_exists

    if not home.root.is_dir() or not secret_exists(home, "bot_identity"):
        return None
    from tbot_bot.accounting.accounting_config import load_identity

    ident = load_identity(home).to_json()
    return "/".join(ident[k] for k in IDENTITY_FIELDS)


def restore_problems(home: BotHome) -> list[str]:
    """Boot and `tbot check` refuse a home whose restore did not finish (killed, or its ledgers failed)."""
    marker = home.restore_marker
    if not marker.exists():
        return []
    try:
        archive = str(json.loads(marker.read_text(encoding="utf-8")).get("archive"))
    except (OSError, ValueError, AttributeError):
        archive = "an archive"
    return [
        f"the restore of {archive} into {home.root} did not finish ({home.relative(marker)} is present): the "
        f"home is incomplete; run `tbot backup restore --archive {archive} --home {home.root}` again"
    ]


def _read_archive(archive: Path, home: BotHome, key_path: Path | None) -> dict[str, bytes]:
    """The files of the decrypted archive; a ConfigError naming the archive when it is not a gzip tar."""
    data = decrypt_archive(archive, home, key_path)
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
                contents[safe_member_name(member.name)] = extracted.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error):  # gzip.BadGzipFile is an OSError
        raise ConfigError(not_an_archive) from None
    return contents


def _read_manifest(archive: Path, raw: bytes | None) -> dict[str, Any]:
    """MANIFEST.json of an archive: an object whose `files` maps each member to its sha256, size and kind."""
    where = f"backup archive {archive.name}: {MANIFEST}"
    if raw is None:
        raise ConfigError(f"{where} is missing; this is not an archive `tbot backup create` made")
    try:
        manifest = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"{where} is not JSON (damaged archive); nothing was restored") from None
    if isinstance(manifest, dict) and manifest.get("format") not in READABLE_FORMATS:
        readable = ", ".join(f for f in READABLE_FORMATS if f)
        raise ConfigError(
            f"{where}: format {manifest.get('format')!r} is not one this version restores ({readable}); a newer "
            "tbot made it: restore it with that version; nothing was restored"
        )
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(info, dict) and isinstance(info.get("sha256"), str) and isinstance(info.get("kind"), str)
        for info in files.values()
    ):
        raise ConfigError(f"{where} does not list the files with their sha256 and kind; nothing was restored")
    return manifest  # type: ignore[no-any-return]


def _current_plain(target: Path, kind: str, home: BotHome) -> bytes | None:
    """What `target` holds now, comparable with the archive's copy (config decrypted), None if unreadable."""
    if kind != "config":
        return target.read_bytes()
    from tbot_bot.config.security_bot import decrypt_file

    try:
        return decrypt_file(target, home.key_file("env"))
    except ConfigError:
        return None


def restore_backup(
    archive: Path,
    home: BotHome,
    *,
    key_path: Path | None = None,
    now: datetime | None = None,
    new_keys: bool = False,
    accept_unsigned: bool = False,
) -> RestoreResult:
    """Restore an archive into `home`; LedgerError if a restored ledger fails verify.

    Into a home with no bot identity nothing is overwritten (an existing file is refused). Into a provisioned
    home of the SAME identity (e.g. re-provisioned after a disk loss) files are replaced, after the current state
    was archived first (a normal `tbot backup create` archive, named in the result). A home of ANOTHER
    identity is refused, naming both: restoring there would mix two bots' books. Config members are encrypted
    with this home's env key (created when missing). While files are written, a marker makes boot and `tbot check`
    refuse the home; running the same restore again after a kill completes it. The home's env key (for an archive
    with config) and ledger key (for one whose ledger heads are signed) must be back from the key backup first:
    made anew here, they would not be the ones the secrets and the off-machine anchors were made with; `new_keys`
    (--new-keys) restores with new ones deliberately (a key backup that is lost).
    """
    contents = _read_archive(archive, home, key_path)
    manifest = _read_manifest(archive, contents.pop(MANIFEST, None))
    if set(manifest["files"]) != set(contents):
        raise ConfigError(f"backup archive {archive.name}: manifest does not match its contents")
    theirs, ours = archive_identity(manifest, list(contents)), _home_identity(home)
    if ours is not None and theirs != ours:
        raise ConfigError(
            f"backup archive {archive.name} belongs to bot {theirs or 'unknown (no ledger in it)'}, this home "
            f"{home.root} is bot {ours}: refusing to restore another bot's books into it"
        )
    kinds = _kinds(manifest)
    missing = [] if new_keys else _missing_keys(home, manifest, kinds)
    if missing:
        raise ConfigError(
            f"{home.root} has no {' or '.join(missing)}: put back storage/keys/ and storage/secrets/ from the key "
            "backup first (README, Restoring a bot), then run this again; or pass --new-keys to restore with new "
            "keys (the broker secrets are then entered again); nothing was restored"
        )
    for name, blob in contents.items():
        if sha256_hex(blob) != manifest["files"][name]["sha256"]:
            raise ConfigError(
                f"backup archive {archive.name}: {name} fails its sha256 check; nothing was restored"
            )
    _refuse_unauthentic(archive, home, manifest, new_keys=new_keys, accept_unsigned=accept_unsigned)
    # the archive's ledgers are verified as copies before anything is written: a failing one leaves the home as
    # it was (written first, it would make the home unusable and the archive impossible to restore)
    with tempfile.TemporaryDirectory() as tmp:
        ledgers = _ledger_members(manifest, list(contents))
        if not ledgers:
            # every archive `tbot backup create` makes holds the bot's ledger: one without is no bot's whole state
            raise LedgerError(
                f"backup archive {archive.name} holds no ledger (not an archive `tbot backup create` made of a bot); "
                "nothing was restored"
            )
        problems = [
            p
            for name, kind in kinds.items()
            if kind == "sqlite" or name in ledgers
            for p in ledger_copy_problems(name, contents[name], Path(tmp), ledger=name in ledgers)
        ]
        # each ledger is the head its (verified) manifest recorded, checked on the copy: a ledger swapped for another
        # valid chain was found only after it was written, leaving the home marked half restored
        problems += _head_problems(manifest, {n: contents[n] for n in ledgers}, Path(tmp))
    if problems:
        # a ledger of another schema version was made by another version of the bot: said first, not only as columns
        older = any("schema_version=" in p for p in problems)
        why = (
            "it was made by another version of the bot (its ledger schema differs from this version's, and a ledger "
            "is never migrated in place): restore it with the version that made it"
            if older
            else "its ledgers or databases fail verification"
        )
        raise LedgerError(
            f"backup archive {archive.name}: {why}; nothing was restored:\n  - " + "\n  - ".join(problems)
        )
    from tbot_bot.runtime.control import SupervisorLock

    # the supervisor's lock, held while files are written: a running bot would keep writing to the files a restore
    # replaces (its journal of the day lost), and a start during the restore would read half a bot
    try:
        lock = SupervisorLock.acquire(home, mode="restore")
    except ConfigError as exc:
        raise ConfigError([*exc.problems[:-1], f"{exc.problems[-1]}; nothing was restored"]) from None
    try:
        result = _restore_locked(archive, home, contents, manifest, kinds, ours, now, key_path)
        return replace(result, closed_after=closed_month(home))
    finally:
        lock.release()


def closed_month(home: BotHome) -> str | None:
    """The latest closed month of the home's bot ledger (None: none closed, or no ledger yet)."""
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_period import closed_through
    from tbot_bot.accounting.ledger_schema import open_ledger

    try:
        binding = load_binding(home, check_files=False)
        if not binding.ledger_path.is_file():
            return None
        with open_ledger(binding.ledger_path, readonly=True) as conn:
            lock = closed_through(conn)
    except TbotError:
        return None
    return lock[0] if lock else None


def _head_problems(manifest: dict[str, Any], ledgers: dict[str, bytes], tmp: Path) -> list[str]:
    """The archived ledgers whose chain head is not the one the manifest records (none recorded: none checked)."""
    from tbot_bot.accounting.ledger_anchor import ChainHead, read_head

    anchors = manifest.get("anchors")
    heads = anchors.get("heads") if isinstance(anchors, dict) else None
    problems = []
    for name, blob in ledgers.items():
        recorded = heads.get(name) if isinstance(heads, dict) else None
        if not isinstance(recorded, dict):
            continue
        copy = tmp / "head-check.db"
        copy.write_bytes(blob)
        conn = sqlite3.connect(copy)
        try:
            head = read_head(conn)
        except sqlite3.DatabaseError:
            continue  # no ledger to read a head from: the copy's own verification names it
        finally:
            conn.close()
            copy.unlink()
        try:
            same = head == ChainHead(**recorded)
        except TypeError:
            same = False
        if not same:
            problems.append(f"{name}: the archived ledger differs from the chain head its manifest recorded")
    return problems


def _refuse_unauthentic(
    archive: Path, home: BotHome, manifest: dict[str, Any], *, new_keys: bool, accept_unsigned: bool
) -> None:
    """The backup key only seals the archive; the ledger heads its manifest records are signed with the ledger key
    (HMAC), which whoever holds the backup key alone cannot forge: a restore re-anchors the books on those heads,
    so they must verify. Unsigned heads (an older format, or a home without a ledger key) are restored only when
    asked (--accept-unsigned), into any home; with --new-keys the key that signed them is gone and nothing can be
    checked (the operator's deliberate choice, said in the README)."""
    from tbot_bot.reporting.auto_backup import manifest_files_signed, manifest_heads

    if new_keys:
        return
    anchors = manifest.get("anchors")
    signed = isinstance(anchors, dict) and bool(anchors.get("hmac"))
    if signed and manifest_heads(home, manifest) is None:
        raise ConfigError(
            f"backup archive {archive.name}: the ledger heads its manifest records do not verify under this home's "
            "ledger key: the archive was altered, or this home has another ledger key than the one it was made with "
            "(re-provisioned: put storage/keys/ back from the key backup, or pass --new-keys to restore it "
            "unchecked); nothing was restored"
        )
    # every member's digest is signed too (tbot.backup/3): a member changed (the .env's upload target, the config,
    # the journal) is refused as an altered ledger is; an archive signed before that is restored only when asked
    whole = manifest_files_signed(home, manifest) if signed else None
    if whole is False:
        raise ConfigError(
            f"backup archive {archive.name}: its members' digests do not verify under this home's ledger key (the "
            "archive was altered): nothing was restored"
        )
    if signed and whole is None and not accept_unsigned:
        raise ConfigError(
            f"backup archive {archive.name} signs its ledgers but not its other files (made before tbot.backup/3, or "
            "that signature was removed): its configuration and journal cannot be told from altered ones; if you "
            "made it yourself, restore it with --accept-unsigned; nothing was restored"
        )
    if not signed and not accept_unsigned:
        raise ConfigError(
            f"backup archive {archive.name} carries no signature of its ledgers (made before tbot.backup/2, by a "
            "home without a ledger key, or its signature was removed): its books cannot be told from a forgery; if "
            "you made it yourself, restore it with --accept-unsigned; nothing was restored"
        )


def _missing_keys(home: BotHome, manifest: dict[str, Any], kinds: dict[str, str]) -> list[str]:
    """The keys this archive needs that the home does not have yet (as home-relative paths)."""
    needed = []
    if "config" in kinds.values():
        needed.append("env")
    anchors = manifest.get("anchors")
    if isinstance(anchors, dict) and anchors.get("hmac"):
        needed.append("ledger")
    return [str(home.relative(home.key_file(k))) for k in needed if not home.key_file(k).is_file()]


def _kinds(manifest: dict[str, Any]) -> dict[str, str]:
    return {name: str(info.get("kind", "file")) for name, info in manifest["files"].items()}


def _restore_locked(
    archive: Path,
    home: BotHome,
    contents: dict[str, bytes],
    manifest: dict[str, Any],
    kinds: dict[str, str],
    ours: str | None,
    now: datetime | None,
    key_path: Path | None = None,
) -> RestoreResult:
    from tbot_bot.config.security_bot import encrypt_bytes, ensure_key
    from tbot_bot.domain.crashpoints import crashpoint

    marker = home.restore_marker
    archive_digest = sha256_hex(archive.read_bytes())
    started: dict[str, Any] = {}
    if marker.exists():
        started = json.loads(marker.read_text(encoding="utf-8"))
        if started.get("sha256") != archive_digest:
            raise ConfigError(restore_problems(home)[0] + " (not another archive)")
    # the same restore, killed half-way: its own partly written files are overwritten, and what it reports (what
    # it replaced, the archive of the state before it, the months closed before it) is what the first run found,
    # kept in the marker: the home it looks at now is half restored
    resuming = bool(started)
    before = started.get("closed_before") if resuming else closed_month(home)
    targets: dict[Path, tuple[bytes, str]] = {}
    replacing: list[Path] = []
    kept: list[Path] = []
    if resuming:  # the first run's decision (the home it judged is half restored now)
        keep_own = {_member_path(home, r) for r in started.get("kept") or []}
    else:
        # a rollback (this bot's ledger was already here) of the books is not one of access control: a user
        # disabled, a password changed or a reset token used since the archive stay so, and the record of who did
        # what stays whole. A new machine (keys and identity put back, no ledger yet) takes the archive's people
        rollback = ours is not None and any(
            _member_path(home, n).is_file() for n in _ledger_members(manifest, list(contents))
        )
        keep_own = {p for p in (home.core_db(n) for n in KEPT_ON_ROLLBACK) if rollback and _worth_keeping(p)}
        # the record of who did what (config changes, dashboard access) is not cut back either
        keep_own |= {p for p in _audit_logs(home) if rollback}
        # an archived config that did not decrypt when it was archived (damaged then) never replaces one that does
        from tbot_bot.reporting.backup_members import config_plaintext

        if kinds.get(".env_bot.enc") == "file" and config_plaintext(home, home.env_bot_enc) is not None:
            keep_own.add(home.env_bot_enc)
    for name, blob in contents.items():
        target = _member_path(home, name)
        if target in keep_own:
            if resuming or _current_plain(target, kinds[name], home) != blob:
                kept.append(target)
            continue
        if target.exists() and not resuming:
            if ours is None:
                raise ConfigError(
                    f"restore would overwrite {target}; restore into an empty home or move it away"
                )
            if _current_plain(target, kinds[name], home) != blob:
                replacing.append(target)
        targets[target] = (blob, kinds[name])
    # files derived from the books (summaries, OFX exports, trade history) that the archive does not hold were
    # made after it, of days the restored ledger no longer has: left, they would disagree with it
    stale = [] if ours is None else [p for p in _derived_files(home) if p not in targets]
    safety: Path | None = None
    if resuming:
        replacing = [_member_path(home, r) for r in started.get("replaced") or []]
        stale = sorted({*stale, *(_member_path(home, r) for r in started.get("removed") or [])})
        safety = Path(started["safety"]) if started.get("safety") else None
    elif replacing or stale:  # what a restore replaces or removes is archived first
        safety = _archive_current(home, now or datetime.now(UTC), key_path)
    if not resuming:
        atomic_write_json(
            marker,
            {
                "archive": str(archive), "sha256": archive_digest, "started_at": utc_iso(now or datetime.now(UTC)),
                "closed_before": before, "safety": str(safety) if safety else None,
                "replaced": [str(home.relative(p)) for p in replacing], "kept": [str(home.relative(p)) for p in kept],
                "removed": [str(home.relative(p)) for p in stale],
            },
        )  # fmt: skip
    env_key = ensure_key(home.key_file("env")) if "config" in kinds.values() else b""
    for target, (blob, kind) in targets.items():
        for suffix in ("-wal", "-shm", "-journal"):
            # a replaced SQLite file must not meet the old file's write-ahead log
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        if kind == "config":
            if target == home.env_bot_enc and target.is_file() and not resuming and target in replacing:
                # the config live before the restore stays reachable by `tbot config rollback`, as every save's
                stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
                home.versioned_env_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(
                    home.versioned_env_dir / f".env_bot.enc.{stamp}", target.read_bytes(), 0o600
                )
            atomic_write_bytes(target, encrypt_bytes(env_key, blob), 0o600)
        else:
            atomic_write_bytes(target, blob, 0o600)  # every restored file the bot's user's alone, as archived
        crashpoint(
            "restore_file"
        )  # test seam: a kill between files leaves the marker, so the home is refused
    for path in stale:
        path.unlink(missing_ok=True)
    _reanchor(home, manifest)  # the ledgers and their heads were verified before anything was written
    marker.unlink()
    return RestoreResult(
        sorted(targets), sorted(replacing), safety, sorted(stale), closed_before=before, kept=sorted(kept)
    )


# the people's databases and the system log: on a restore into the same bot's home the home's own are kept
# (architecture.md)
KEPT_ON_ROLLBACK = ("SYSTEM_USERS", "PASSWORD_RESET_TOKENS", "USER_ACTIVITY_MONITORING", "SYSTEM_LOGS")


def _audit_logs(home: BotHome) -> list[Path]:
    """The home's audit log files a rollback keeps: config changes (who, which keys) and the dashboard's access."""
    logs = home.root / "logs"
    return [p for p in [logs / "config_audit.log", *sorted((logs / "web").glob("*"))] if p.is_file()]


def _worth_keeping(path: Path) -> bool:
    """A people's database of the home that a rollback keeps: whole (quick_check) and, for the users, holding
    one; a missing, damaged or empty one is taken from the archive."""
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True)
    except sqlite3.Error:
        return False
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            return False
        if path.stem == "SYSTEM_USERS":
            return int(conn.execute("SELECT count(*) FROM system_users").fetchone()[0]) > 0
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _member_path(home: BotHome, name: str) -> Path:
    """Where an archive member (a home-relative POSIX path, as the manifest and the restore marker name it) lives."""
    return home.path(*PurePosixPath(name).parts)


def _derived_files(home: BotHome) -> list[Path]:
    """Every file a bot derives from its ledger: per-session summaries, OFX exports and the trade history."""
    if not home.output_dir.is_dir():
        return []
    return [
        p
        for folder in ("summaries", "exports", "trades")
        for p in home.output_dir.glob(f"*/{folder}/*")
        if p.is_file() and not p.is_symlink()
    ]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    files: list[Path]  # every file written
    replaced: list[Path]  # existing files whose content changed (same-identity restore only)
    safety_archive: Path | None  # the archive of the state before the restore, when something was replaced
    # derived files of days after the archive (same bot only)
    removed: list[Path] = field(default_factory=list)
    # the home's latest closed month before and after (a rollback to before a close opens that month again)
    closed_before: str | None = None
    closed_after: str | None = None
    # the home's own databases of people kept instead of the archive's (same bot only; KEPT_ON_ROLLBACK)
    kept: list[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[Path]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, item: object) -> bool:
        return item in self.files


def _archive_current(home: BotHome, now: datetime, key_path: Path | None = None) -> Path:
    from tbot_bot.accounting.accounting_config import load_binding

    binding = load_binding(home, check_files=False)
    current = [p for p in (binding.ledger_path, binding.float_ledger_path) if p.exists()]
    # the state a restore replaces is kept as it is, a ledger that fails verification too (the restore may be
    # its repair)
    # sealed with this home's backup key; lost (the archives beside it need it), with the key the restore was given
    sealing = key_path if key_path is not None and not home.key_file("backup").exists() else None
    return create_backup(
        home, current, now=now, identity=binding.identity.to_json(), injected_backup_dirs=[binding.backup_dir],
        check=False, coa_files=[binding.coa_path] if binding.coa_path.exists() else [], key_path=sealing,
    )  # fmt: skip


def _reanchor(home: BotHome, manifest: dict[str, object]) -> None:
    """Anchor each restored ledger in this home (a restore is an authenticated, deliberate rollback: the new
    anchor's seq is above any older one). Each was checked to be the head its manifest recorded before anything
    was written (`_head_problems`)."""
    from tbot_bot.accounting.ledger_anchor import AnchorStore, new_anchor, read_head
    from tbot_bot.accounting.ledger_period import closed_through

    anchors_doc = manifest.get("anchors")
    files = manifest.get("files")
    if isinstance(anchors_doc, dict):
        recorded_heads = dict(anchors_doc.get("heads") or {})
    else:
        # an archive from before anchors: nothing to compare with; the restored (verified) ledgers are anchored
        recorded_heads = {
            name: None
            for name, info in (files.items() if isinstance(files, dict) else [])
            if info.get("kind") == "sqlite" and is_ledger_file(_member_path(home, name))
        }
    store = AnchorStore.for_home(home)
    backup_dir = _injected_backup_dir(home)
    for name in recorded_heads:
        path = _member_path(home, name)
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            head = read_head(conn)
            lock = closed_through(conn)
        finally:
            conn.close()
        seq = store.next_seq(path, backup_dir)
        store.write(new_anchor(path, seq, head, None), backup_dir, path)
        store.forget_lock(path)
        if lock is not None:
            store.record_lock(path, lock[0], by="tbot backup restore", at=datetime.now(UTC))
    store.close()


def _injected_backup_dir(home: BotHome) -> Path | None:
    try:
        from tbot_bot.accounting.accounting_config import load_binding

        return load_binding(home, check_files=False).backup_dir
    except ConfigError:
        return None  # identity not (yet) in this home: LEDGER_STATUS.db alone carries the anchor
