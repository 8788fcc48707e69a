"""Load and save the encrypted JSON secrets under `storage/secrets/`, each with the key of its purpose."""

from __future__ import annotations

import json
from typing import Any

from tbot_bot.config.security_bot import decrypt_file, encrypt_to_file, ensure_key
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

# secret file (storage/secrets/<name>.json.enc) -> key purpose (storage/keys/<purpose>.key)
SECRET_KEY_PURPOSE = {
    "broker_credentials": "broker",
    "smtp_credentials": "smtp",
    "screener_api": "screener_api",
    "acct_api_credentials": "acct_api",
    "alert_channels": "alert",
    "backup_upload_credentials": "backup",
    "network_config": "login",
    "bot_identity": "identity",
    "accounting_injection": "identity",
}


def _purpose(name: str) -> str:
    try:
        return SECRET_KEY_PURPOSE[name]
    except KeyError:
        allowed = ", ".join(sorted(SECRET_KEY_PURPOSE))
        raise ConfigError(f"unknown secret {name!r}; known secrets: {allowed}") from None


def secret_exists(home: BotHome, name: str) -> bool:
    _purpose(name)
    return home.secret_file(name).exists()


def load_secret_json(home: BotHome, name: str) -> dict[str, Any]:
    """Decrypt storage/secrets/<name>.json.enc in memory and parse it as a JSON object."""
    path = home.secret_file(name)
    raw = decrypt_file(path, home.key_file(_purpose(name)))
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} decrypts but is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def broker_credentials(home: BotHome, broker_name: str, required: tuple[str, ...]) -> dict[str, Any]:
    """broker_credentials.json.enc for one adapter; a required key that is absent or blank is a ConfigError."""
    creds = load_secret_json(home, "broker_credentials")
    missing = [k for k in required if not str(creds.get(k) or "").strip()]
    if missing:
        raise ConfigError(f"broker_credentials is missing {', '.join(missing)} for BROKER_NAME={broker_name}")
    return creds


def secret_flag(value: Any, default: bool) -> bool:
    """A yes/no secret value ("true", "1", "yes", "on" are yes); absent means `default`."""
    return default if value is None else str(value).strip().lower() in ("1", "true", "yes", "on")


def save_secret_json(home: BotHome, name: str, data: dict[str, Any]) -> None:
    """Encrypt a JSON object to storage/secrets/<name>.json.enc (0600), creating the purpose key if needed."""
    key_path = home.key_file(_purpose(name))
    ensure_key(key_path)
    encrypt_to_file(home.secret_file(name), key_path, json.dumps(data, indent=2, sort_keys=True).encode())


def operator_secret_status(home: BotHome, name: str) -> tuple[bool, dict[str, Any] | None, str | None]:
    """(file present, its values or None, the reason it cannot be read) for one `tbot secrets` name."""
    from tbot_bot.support.secret_schema import spec

    path = home.secret_file(spec(name).file)
    if not path.exists():
        return False, None, None
    try:
        return True, load_secret_json(home, spec(name).file), None
    except ConfigError as exc:
        return True, None, "; ".join(exc.problems)


def set_operator_secret(
    home: BotHome, name: str, values: dict[str, Any], *, broker_code: str, replace: bool = False
) -> dict[str, Any]:
    """Merge (or, with replace, substitute) values into one secret, validate the result, then save it.

    An empty value removes that key. Nothing is written when the result has a problem.
    """
    from tbot_bot.support.secret_schema import secret_problems, spec

    s = spec(name)
    current: dict[str, Any] = {}
    if not replace and home.secret_file(s.file).exists():
        current = load_secret_json(home, s.file)
    merged = {**current, **values}
    merged = {k: v for k, v in merged.items() if not (isinstance(v, str) and v.strip() == "")}
    problems = secret_problems(s, merged, broker_code)
    if problems:
        raise ConfigError(problems, source=f"tbot secrets set {name}")
    save_secret_json(home, s.file, merged)
    return merged
