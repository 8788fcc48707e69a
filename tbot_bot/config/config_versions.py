"""Versions of the encrypted `.env_bot`: every save keeps the previous ciphertext as
`env_bot.versioned/.env_bot.enc.<UTC stamp>` (settings_bot.save_env_text). `history` lists them with who
changed what (from `logs/config_audit.log`); `rollback` restores one through the same validated, audited,
versioned save, so a rollback can itself be rolled back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tbot_bot.config.env_bot import parse_env_text
from tbot_bot.config.security_bot import decrypt_file
from tbot_bot.config.settings_bot import (
    audit_records,
    config_lock,
    config_version,
    read_env_text,
    save_env_text,
)
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

PREFIX = ".env_bot.enc."


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    version: str  # the UTC stamp in the file name, e.g. 20261129T101500123456Z
    saved_at: datetime  # when it stopped being the live config
    replaced_by: dict[str, Any] | None  # the audit record of the save that replaced it


def _stamp_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def history(home: BotHome) -> list[ConfigVersion]:
    """Kept versions, oldest first, each with the audited save that replaced it (the first audit record
    written at or after the version's stamp)."""
    folder = home.versioned_env_dir
    stamps = sorted(p.name[len(PREFIX) :] for p in folder.glob(PREFIX + "*")) if folder.exists() else []
    records = sorted(audit_records(home), key=lambda r: str(r.get("timestamp", "")))
    out = []
    for stamp in stamps:
        try:
            at = _stamp_time(stamp)
        except ValueError:
            continue
        after = [r for r in records if datetime.fromisoformat(str(r["timestamp"])) >= at]
        out.append(ConfigVersion(stamp, at, after[0] if after else None))
    return out


def rollback(home: BotHome, version: str, *, actor: str) -> list[str]:
    """Make `version` the live config again (validated; the current one is versioned first). Returns the keys
    that changed."""
    path = home.versioned_env_dir / f"{PREFIX}{version}"
    if not path.is_file():
        known = [v.version for v in history(home)]
        hint = f"; known versions: {', '.join(known[-10:])}" if known else "; no version is kept yet"
        raise ConfigError(f"no config version {version!r}{hint} (see `tbot config history`)")
    text = decrypt_file(path, home.key_file("env")).decode("utf-8")
    with config_lock(home):  # the keys reported as changed are the ones this save changed
        live = read_env_text(home)
        current, _ = parse_env_text(live)
        target, _ = parse_env_text(text)
        save_env_text(
            home, text, actor=f"{actor} (rollback to {version})", expected_version=config_version(live)
        )
    return sorted(k for k in set(current) | set(target) if current.get(k) != target.get(k))
