"""What each purpose key protects, and rotating it (`tbot rotate-key NAME`) with every file kept readable.

| key | protects |
|---|---|
| env | `.env_bot.enc` and every copy under `env_bot.versioned/` (config history and rollback) |
| broker, smtp, screener_api, acct_api, alert, identity | their `storage/secrets/*.json.enc` |
| login | `network_config.json.enc`; it also derives the web session secret (rotation signs everyone out) |
| backup | `backup_upload_credentials.json.enc` and the local archives in `backups/` (raw Fernet); the old key is kept
  as `backup.key.retired-<fingerprint>` so copies already off-site stay restorable with `--key-file` |
| ledger | no file: the HMAC of the ledgers' chain-head anchors (LEDGER_STATUS.db + backup sidecars), re-signed |

The mechanics (`.prev` kept until the end, crash points, resuming an interrupted rotation) are in
security_bot.rotate_key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tbot_bot.config.security_bot import HEADER_PREFIX, decrypt_file, key_fingerprint, load_key, rotate_key
from tbot_bot.config.settings_bot import config_lock
from tbot_bot.errors import ConfigError
from tbot_bot.support.decrypt_secrets import SECRET_KEY_PURPOSE
from tbot_bot.support.path_resolver import KEY_PURPOSES, BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, readonly_uri


@dataclass(slots=True)
class RotationReport:
    purpose: str
    fingerprint: str = ""
    reencrypted: list[Path] = field(default_factory=list)
    skipped: list[str] = field(
        default_factory=list
    )  # files already unreadable before the rotation, left as is
    notes: list[str] = field(default_factory=list)


def _secret_files(home: BotHome, purpose: str) -> list[Path]:
    return [home.secret_file(name) for name, p in sorted(SECRET_KEY_PURPOSE.items()) if p == purpose]


def protected_files(home: BotHome, purpose: str) -> tuple[list[Path], list[Path]]:
    """(files with the fingerprint header, raw Fernet files) that this key encrypts, existing ones only."""
    if purpose not in KEY_PURPOSES:
        raise ConfigError(f"unknown key {purpose!r}; rotatable keys: {', '.join(KEY_PURPOSES)}")
    files = _secret_files(home, purpose)
    raw: list[Path] = []
    if purpose == "env":
        files = [home.env_bot_enc]
        if home.versioned_env_dir.is_dir():
            files += sorted(p for p in home.versioned_env_dir.iterdir() if p.is_file() and _has_header(p))
    if purpose == "backup":
        from tbot_bot.reporting.auto_backup import list_backups

        raw = list_backups(home)
    return [p for p in files if p.exists()], raw


def _has_anchors(home: BotHome) -> bool:
    """LEDGER_STATUS.db holds a chain-head anchor (signed with the ledger key)."""
    import sqlite3

    path = home.core_db("LEDGER_STATUS")
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            return conn.execute("SELECT count(*) FROM ledger_anchor").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _has_header(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(HEADER_PREFIX)) == HEADER_PREFIX


def rotate(home: BotHome, purpose: str) -> RotationReport:
    if purpose == "env":
        # the config writer's lock: no save can encrypt with the old key while the files move to the new one
        with config_lock(home):
            return _rotate(home, purpose)
    return _rotate(home, purpose)


def _rotate(home: BotHome, purpose: str) -> RotationReport:
    key_path = home.key_file(purpose)
    if not key_path.exists():
        files, raw = protected_files(home, purpose)
        # the ledger key signs the chain-head anchors (LEDGER_STATUS.db), which no file list above holds
        anchors = [home.core_db("LEDGER_STATUS")] if purpose == "ledger" and _has_anchors(home) else []
        if files or raw or anchors:
            # the key is lost, not unused: a rotation cannot read what it protects, and a new key would not either
            held = [*files, *raw, *anchors]
            shown = ", ".join(str(home.relative(f)) for f in held[:3]) + (" ..." if len(held) > 3 else "")
            raise ConfigError(
                f"{key_path} is missing, yet {len(held)} file(s) were encrypted with it ({shown}): restore the key "
                "from your key backup (support/security_notes.md); nothing was rotated"
            )
        raise ConfigError(
            f"{key_path} does not exist: nothing to rotate (the {purpose} key is created when first used)"
        )
    report = RotationReport(purpose)
    files, raw = protected_files(home, purpose)
    readable: list[Path] = []
    for path in files:
        try:
            decrypt_file(path, key_path)
            readable.append(path)
        except ConfigError as exc:
            if path.parent == home.versioned_env_dir:
                # an old copy encrypted with a key that no longer exists: nothing can read it; do not block
                report.skipped.append(f"{home.relative(path)} ({exc})")
                continue
            raise
    old_key = load_key(key_path)
    on_new_key = None
    if purpose == "ledger":
        on_new_key = lambda: _resign_anchors(home, report)  # noqa: E731
    # kept even with no local archive to re-encrypt: copies off-site (or on another machine) were made with it
    # (the backup key seals them; the ledger key signed their ledger heads, which a restore checks)
    if purpose in ("backup", "ledger"):
        retired = key_path.with_name(f"{key_path.name}.retired-{key_fingerprint(old_key)}")
        if not retired.exists():
            atomic_write_bytes(retired, old_key + b"\n", mode=0o600)
        report.notes.append(
            f"archives made before now were made with the old key: kept as {home.relative(retired)}"
            + (
                " (`tbot backup restore --key-file` it)"
                if purpose == "backup"
                else " (a restore checks them with it)"
            )
        )
    if purpose == "login":
        report.notes.append(
            "the web session secret derives from login.key: every dashboard session has ended"
        )
    report.fingerprint = rotate_key(key_path, readable, raw_files=raw, on_new_key=on_new_key)
    report.reencrypted = readable + list(raw)
    return report


def _resign_anchors(home: BotHome, report: RotationReport) -> None:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_anchor import AnchorStore

    binding = load_binding(home, check_files=False)
    store = AnchorStore.for_home(home)
    for ledger in (binding.ledger_path, binding.float_ledger_path):
        if store.resign(ledger, binding.backup_dir):
            report.notes.append(f"re-signed the chain-head anchor of {ledger.name}")
