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


def save_secret_json(home: BotHome, name: str, data: dict[str, Any]) -> None:
    """Encrypt a JSON object to storage/secrets/<name>.json.enc (0600), creating the purpose key if needed."""
    key_path = home.key_file(_purpose(name))
    ensure_key(key_path)
    encrypt_to_file(home.secret_file(name), key_path, json.dumps(data, indent=2, sort_keys=True).encode())
