"""Fernet secrets: round trip, wrong key, corruption, missing key, loose permissions, production plaintext, rotation."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from helpers import template_text

from tbot_bot.config.security_bot import create_key_file, decrypt_file, encrypt_to_file, load_key, rotate_key
from tbot_bot.config.settings_bot import read_env_text
from tbot_bot.errors import ConfigError
from tbot_bot.support.decrypt_secrets import load_secret_json, save_secret_json
from tbot_bot.support.path_resolver import BotHome


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "env.key"
    create_key_file(path)
    return path


def test_key_file_is_created_private(key: Path) -> None:
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConfigError, match="already exists"):
        create_key_file(key)


def test_round_trip(tmp_path: Path, key: Path) -> None:
    target = tmp_path / "secret.enc"
    encrypt_to_file(target, key, b"MAX_TRADES=4\n")
    assert b"MAX_TRADES" not in target.read_bytes()
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert decrypt_file(target, key) == b"MAX_TRADES=4\n"


def test_wrong_key_names_the_file(tmp_path: Path, key: Path) -> None:
    target = tmp_path / "secret.enc"
    encrypt_to_file(target, key, b"x")
    other = tmp_path / "keys" / "other.key"
    create_key_file(other)
    with pytest.raises(
        ConfigError, match=r"secret\.enc was encrypted with a different key than .*other\.key \(wrong key\)"
    ):
        decrypt_file(target, other)


def test_corrupted_ciphertext_is_not_called_a_wrong_key(tmp_path: Path, key: Path) -> None:
    target = tmp_path / "secret.enc"
    encrypt_to_file(target, key, b"hello world")
    blob = bytearray(target.read_bytes())
    blob[-10] = ord("A") if blob[-10] != ord("A") else ord("B")
    target.write_bytes(bytes(blob))
    with pytest.raises(ConfigError, match=r"secret\.enc is corrupted"):
        decrypt_file(target, key)


def test_missing_key_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key file .*nope\.key is missing"):
        load_key(tmp_path / "nope.key")


def test_loose_key_permissions_refused(key: Path) -> None:
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match=r"env\.key is readable by group or others \(mode 0644\)"):
        load_key(key)


def test_secret_json_round_trip(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    save_secret_json(home, "broker_credentials", {"ALPACA_API_KEY": "k"})
    assert load_secret_json(home, "broker_credentials") == {"ALPACA_API_KEY": "k"}
    assert home.key_file("broker").exists()
    with pytest.raises(ConfigError, match="unknown secret"):
        load_secret_json(home, "nonsense")


def test_plaintext_env_bot_refused_in_production(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    home.env_bot_plain.write_text(template_text())
    home.dotenv.write_text('ENVIRONMENT="production"\n')
    with pytest.raises(ConfigError, match="plaintext .* refused with ENVIRONMENT=production"):
        read_env_text(home)
    home.dotenv.write_text('ENVIRONMENT="development"\n')
    assert "MAX_TRADES" in read_env_text(home)


def test_rotation_keeps_the_file_readable_at_every_step(tmp_path: Path, key: Path) -> None:
    target = tmp_path / "config.enc"
    encrypt_to_file(target, key, b"payload")
    old = load_key(key)
    seen_failures: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                assert decrypt_file(target, key) == b"payload"
            except (ConfigError, OSError, AssertionError) as exc:
                seen_failures.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(5):
            rotate_key(key, [target])
    finally:
        stop.set()
        t.join()
    assert seen_failures == []
    assert load_key(key) != old
    assert not key.with_name("env.key.prev").exists()
    assert decrypt_file(target, key) == b"payload"
