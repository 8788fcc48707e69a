"""The config API shared by the CLI and the dashboard: read, validate, edit and re-encrypt `.env_bot`.

Plaintext is never written back to disk: edits are validated in memory and saved only as `.env_bot.enc`.
An invalid edit saves nothing. Every saved change is audited (who, when, which keys, the new version) in
`logs/config_audit.log` and the previous encrypted file is kept under `env_bot.versioned/`.

`save_env_text` is the one writer of the encrypted config (CLI `config set|edit|rollback`, the web settings
page, proposal approval, provisioning). It holds `config_lock` (an flock on `.env_bot.lock`, which key rotation
holds too) and compares the version its caller read (`config_version`, a hash of the plaintext) with the one on
disk: a stale write is refused with StaleConfigError ("changed by X at T, reload"), never lost.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tbot_bot.config.dotenv import environment
from tbot_bot.config.env_bot import BotSettings, parse_env_text, settings_from_text
from tbot_bot.config.security_bot import decrypt_file, encrypt_to_file, ensure_key
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, utc_now

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
        if home.env_bot_plain.exists():
            _warn_plaintext_ignored(str(home.env_bot_plain), str(home.env_bot_enc))
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


@functools.cache
def _warn_plaintext_ignored(plain: str, enc: str) -> None:
    """Once per process: an edited plaintext beside the encrypted config is not what runs (DESIGN §4: a warning
    whenever plaintext is involved)."""
    print(
        f"warning: {plain} is ignored: {enc} is the configuration; `tbot config encrypt` makes the plaintext the "
        "configuration (validated first), or delete it",
        file=sys.stderr,
    )


def config_source(home: BotHome) -> str:
    return str(home.env_bot_enc if home.env_bot_enc.exists() else home.env_bot_plain)


def load_settings(home: BotHome) -> BotSettings:
    return settings_from_text(read_env_text(home), source=config_source(home))


def _written(key: str, value: str) -> str:
    """`value` as a line must hold it to be read back whole: quoted when it starts with '#' or a quote, has " #"
    (an inline comment) or spaces at an end, in whichever quote it does not contain; refused when neither fits."""
    from tbot_bot.config.env_bot import parse_env_text

    plain = not (value.startswith(("#", '"', "'")) or re.search(r"\s#", value) or value != value.strip())
    for candidate in ([value] if plain else []) + [f'"{value}"', f"'{value}'"]:
        if parse_env_text(f"{key}={candidate}\n")[0].get(key) == value:
            return candidate
    raise ConfigError(
        f"the value for {key} cannot be stored as given: it holds both quote characters and a ' #', which the "
        "file would read as a comment; leave out one of them"
    )


def replace_values(text: str, updates: dict[str, str]) -> str:
    """Set KEY=VALUE in the text, keeping each line's inline comment; unknown keys are appended."""
    for key, value in updates.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"{key!r} is not a valid key name")
        if "\n" in value or "\r" in value:
            raise ConfigError(f"the value for {key} must be a single line")
        # the old value is a quoted string (which may hold " #") or runs up to the line's comment
        pattern = re.compile(rf"""^{key}\s*=\s*(?:"[^"\n]*"|'[^'\n]*'|.*?)(\s+#.*)?$""", re.MULTILINE)
        line = f"{key}={_written(key, value)}"

        def keep_comment(m: re.Match[str], line: str = line) -> str:
            return line + (m.group(1) or "")

        text, n = pattern.subn(keep_comment, text, count=1)
        if n == 0:
            text = text.rstrip("\n") + f"\n{line}\n"
    return text


NO_CONFIG = "none"  # the version of a home that has no encrypted config yet
LOCK_WAIT_SECONDS = 30.0
_held = threading.local()  # lock files this thread holds, so a writer called inside a held lock re-enters it


class StaleConfigError(ConfigError):
    """A write based on a version of the config that is no longer the one on disk."""


def config_version(text: str) -> str:
    """The version of a config text: what a writer read, compared with what is on disk when it saves."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def config_lock_path(home: BotHome) -> Path:
    return home.root / ".env_bot.lock"


@contextmanager
def config_lock(home: BotHome) -> Iterator[None]:
    """Exclusive across processes and threads (flock on a fresh descriptor); re-entrant within a thread."""
    path = config_lock_path(home)
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if str(path) in held:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the config lock {path}: {exc.strerror}; nothing was changed"
        ) from None
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"another change of the configuration has held {path} for {LOCK_WAIT_SECONDS:.0f} s; "
                        "nothing was changed, retry when it has finished"
                    ) from None
                time.sleep(0.01)
        held.add(str(path))
        try:
            yield
        finally:
            held.discard(str(path))
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def disk_version(home: BotHome) -> str:
    """The version of the config on disk now (NO_CONFIG before the first save)."""
    if not (home.env_bot_enc.exists() or home.env_bot_plain.exists()):
        return NO_CONFIG
    return config_version(read_env_text(home))


def _refuse_stale(home: BotHome, read_version: str, on_disk: str) -> None:
    record = next((r for r in reversed(audit_records(home)) if r.get("version") == on_disk), None)
    who = f"{record.get('actor')} at {record.get('timestamp')}" if record else "a change made outside tbot"
    raise StaleConfigError(
        f"the configuration was changed by {who} (now version {on_disk}; you read version {read_version}): "
        "nothing was saved; reload and make your change again"
    )


def save_env_text(
    home: BotHome, text: str, *, actor: str, expected_version: str | None = None
) -> BotSettings:
    """Validate then encrypt, under the config lock; nothing is written when the text is invalid or when
    `expected_version` (the version the caller read) is no longer the one on disk."""
    settings = settings_from_text(text, source="the edited configuration")
    with config_lock(home):
        on_disk = disk_version(home)
        if expected_version is not None and expected_version != on_disk:
            _refuse_stale(home, expected_version, on_disk)
        old_values: dict[str, str] = {}
        if home.env_bot_enc.exists():
            old_values, _ = parse_env_text(read_env_text(home))
        new_values, _ = parse_env_text(text)
        _refuse_unbound(home, settings, {k for k in BOUND_KEYS if old_values.get(k) != new_values.get(k)})
        if home.env_bot_enc.exists():
            home.versioned_env_dir.mkdir(parents=True, exist_ok=True)
            stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
            # whole or not at all: a full disk must not leave an empty version that history lists and rollback fails on
            atomic_write_bytes(
                home.versioned_env_dir / f".env_bot.enc.{stamp}", home.env_bot_enc.read_bytes(), mode=0o600
            )
        key_path = home.key_file("env")
        ensure_key(key_path)
        encrypt_to_file(home.env_bot_enc, key_path, text.encode("utf-8"))
        changed = sorted(
            k for k in set(old_values) | set(new_values) if old_values.get(k) != new_values.get(k)
        )
        _audit(home, actor, changed, old_values, new_values, config_version(text))
    return settings


# keys that must agree with what the accounting system injected (identity, ledger): a change is checked at save
BOUND_KEYS = ("CURRENCY_CODE", "BROKER_NAME")


def _refuse_unbound(home: BotHome, settings: BotSettings, changed: set[str]) -> None:
    """A change of a BOUND_KEYS key that `tbot check` would refuse against this home's identity and ledger is
    refused before it is saved (a home without them yet, as provisioning writes its first config, is not checked)."""
    if not changed:
        return
    from tbot_bot.accounting.accounting_config import config_binding_problems, load_binding

    try:
        binding = load_binding(home, check_files=False)
    except ConfigError:
        return
    problems = config_binding_problems({k: getattr(settings, k) for k in changed}, binding)
    if problems:
        raise ConfigError(problems, source="the edited configuration")


def update_env_values(
    home: BotHome, updates: dict[str, str], *, actor: str, expected_version: str | None = None
) -> BotSettings:
    """Set some keys. Without `expected_version` the read and the write happen under one lock, so no
    concurrent change is lost; with it, the write is refused when the config moved on since that read."""
    with config_lock(home):
        text = read_env_text(home)
        return save_env_text(
            home,
            replace_values(text, updates),
            actor=actor,
            expected_version=expected_version or config_version(text),
        )


def _audit(
    home: BotHome, actor: str, changed: list[str], old: dict[str, str], new: dict[str, str], version: str
) -> None:
    log = home.root / "logs" / "config_audit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "timestamp": utc_now().isoformat(),
        "actor": actor,
        "version": version,
        "changed": [{"key": k, "old": _mask(k, old.get(k)), "new": _mask(k, new.get(k))} for k in changed],
    }
    # created 0600 (a plain open follows the umask): who changed what is read and written by the bot's user alone
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def audit_records(home: BotHome) -> list[dict[str, Any]]:
    """Every readable record of `logs/config_audit.log`, oldest first."""
    log = home.root / "logs" / "config_audit.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


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
