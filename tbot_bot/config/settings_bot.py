"""The config API shared by the CLI and the dashboard: read, validate, edit and re-encrypt `.env_bot`.

Plaintext is never written back to disk: edits are validated in memory and saved only as `.env_bot.enc`.
An invalid edit saves nothing. Every saved change is audited (who, when, which keys) in
`logs/config_audit.log` and the previous encrypted file is kept under `env_bot.versioned/`.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from tbot_bot.config.dotenv import environment
from tbot_bot.config.env_bot import BotSettings, parse_env_text, settings_from_text
from tbot_bot.config.security_bot import decrypt_file, encrypt_to_file, ensure_key
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

SECRET_HINTS = ("KEY", "SECRET", "TOKEN", "PASS")


def _regular_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(
            f"{path} is not a regular file (a directory or a device?); it must be the configuration file itself",
            source=str(path),
        )


def decode_config_text(raw: bytes, path: Path) -> str:
    """UTF-8 text of a configuration file (a leading BOM is fine); anything else is a ConfigError naming it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} does not hold UTF-8 text (undecodable byte at offset {exc.start}); re-create it from "
            ".env_bot.template-test and encrypt it with `tbot config encrypt`",
            source=str(path),
        ) from None


def read_env_text(home: BotHome) -> str:
    """The decrypted `.env_bot` text: `.env_bot.enc` when present, else plaintext in development only."""
    if home.env_bot_enc.exists() or home.env_bot_enc.is_symlink():
        _regular_file(home.env_bot_enc)
        return decode_config_text(decrypt_file(home.env_bot_enc, home.key_file("env")), home.env_bot_enc)
    if home.env_bot_plain.exists():
        _regular_file(home.env_bot_plain)
        # ENVIRONMENT=production: a plaintext .env_bot is refused outright
        if environment(home) == "production":
            raise ConfigError(
                f"plaintext {home.env_bot_plain} is refused with ENVIRONMENT=production; "
                f"encrypt it with `tbot config encrypt --home {home.root}` (which deletes the plaintext)"
            )
        print(f"warning: using plaintext {home.env_bot_plain} (development only)", file=sys.stderr)
        return decode_config_text(home.env_bot_plain.read_bytes(), home.env_bot_plain)
    raise ConfigError(f"no configuration found: neither {home.env_bot_enc} nor {home.env_bot_plain} exists")


def config_source(home: BotHome) -> str:
    return str(home.env_bot_enc if home.env_bot_enc.exists() else home.env_bot_plain)


def load_settings(home: BotHome) -> BotSettings:
    return settings_from_text(read_env_text(home), source=config_source(home))


def replace_values(text: str, updates: dict[str, str]) -> str:
    """Set KEY=VALUE in the text, keeping each line's inline comment; unknown keys are appended."""
    for key, value in updates.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"{key!r} is not a valid key name")
        if "\n" in value or "\r" in value:
            raise ConfigError(f"the value for {key} must be a single line")
        pattern = re.compile(rf"^{key}\s*=.*?(\s+#.*)?$", re.MULTILINE)
        line = f"{key}={value}"

        def keep_comment(m: re.Match[str], line: str = line) -> str:
            return line + (m.group(1) or "")

        text, n = pattern.subn(keep_comment, text, count=1)
        if n == 0:
            text = text.rstrip("\n") + f"\n{line}\n"
    return text


def save_env_text(home: BotHome, text: str, *, actor: str) -> BotSettings:
    """Validate then encrypt; nothing is written when the text is invalid."""
    settings = settings_from_text(text, source="the edited configuration")
    old_values: dict[str, str] = {}
    if home.env_bot_enc.exists():
        old_values, _ = parse_env_text(read_env_text(home))
        home.versioned_env_dir.mkdir(parents=True, exist_ok=True)
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
        shutil.copy2(home.env_bot_enc, home.versioned_env_dir / f".env_bot.enc.{stamp}")
    new_values, _ = parse_env_text(text)
    key_path = home.key_file("env")
    ensure_key(key_path)
    encrypt_to_file(home.env_bot_enc, key_path, text.encode("utf-8"))
    changed = sorted(k for k in set(old_values) | set(new_values) if old_values.get(k) != new_values.get(k))
    _audit(home, actor, changed, old_values, new_values)
    return settings


def update_env_values(home: BotHome, updates: dict[str, str], *, actor: str) -> BotSettings:
    return save_env_text(home, replace_values(read_env_text(home), updates), actor=actor)


def _audit(home: BotHome, actor: str, changed: list[str], old: dict[str, str], new: dict[str, str]) -> None:
    log = home.root / "logs" / "config_audit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "timestamp": utc_now().isoformat(),
        "actor": actor,
        "changed": [{"key": k, "old": _mask(k, old.get(k)), "new": _mask(k, new.get(k))} for k in changed],
    }
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def is_secret_key(key: str) -> bool:
    return any(h in key.upper() for h in SECRET_HINTS) and not key.endswith(("_PATH", "_ENABLED"))


def _mask(key: str, value: str | None) -> str | None:
    if value is None:
        return None
    return "********" if is_secret_key(key) and value else value


def masked_items(source: BotSettings | str) -> list[tuple[str, str, bool]]:
    """(key, display value, is_secret) for every key; secret-looking values are masked."""
    if isinstance(source, BotSettings):
        items = [(k, _display(v)) for k, v in source.model_dump().items()]
    else:
        items = list(parse_env_text(source)[0].items())
    return [(k, _mask(k, v) or "", is_secret_key(k)) for k, v in items]


def _display(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%H:%M")  # type: ignore[union-attr]
    return str(value)


def encrypt_plaintext_file(
    home: BotHome, plaintext: Path, *, actor: str, remove_plaintext: bool = True
) -> BotSettings:
    """`tbot config encrypt` (and tools/encrypt_env_bot.py): validate a plaintext .env_bot, encrypt it to
    .env_bot.enc; the plaintext is deleted only once the encrypted file is written."""
    if not plaintext.exists() and not plaintext.is_symlink():
        raise ConfigError(
            f"there is no plaintext {plaintext} to encrypt; copy .env_bot.template-test there, fill it in, "
            "then run this again",
            source=str(plaintext),
        )
    _regular_file(plaintext)
    settings = save_env_text(home, decode_config_text(plaintext.read_bytes(), plaintext), actor=actor)
    if remove_plaintext:
        plaintext.unlink()
    return settings
