"""`tbot rotate-key NAME` for every purpose key; env re-encrypts env_bot.versioned/; killed rotations (issue 14)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from rigd_tbot.cli import main
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.config.key_rotation import protected_files, rotate
from tbot_bot.config.security_bot import decrypt_file, load_key
from tbot_bot.config.settings_bot import load_settings, update_env_values
from tbot_bot.reporting.auto_backup import create_backup
from tbot_bot.reporting.backup_restore import restore_backup
from tbot_bot.runtime.preflight import ledger_problems
from tbot_bot.support.decrypt_secrets import load_secret_json, save_secret_json
from tbot_bot.support.path_resolver import KEY_PURPOSES, BotHome

SECRETS = {
    "smtp_credentials": {"SMTP_HOST": "127.0.0.1", "SMTP_FROM": "a@b.c", "SMTP_TO": "d@e.f"},
    "screener_api": {"FINNHUB_API_KEY": "k"},
    "acct_api_credentials": {"ACCT_API_URL": "https://acct.example.test", "ACCT_API_TOKEN": "t"},
    "alert_channels": {"SLACK_WEBHOOK_URL": "https://hooks.example.test/x"},
    "backup_upload_credentials": {"RSYNC_PASSWORD": "p"},
    "network_config": {"HOST": "127.0.0.1"},
}


def _full_home(root: Path) -> BotHome:
    home = BotHome(root)
    for name, values in SECRETS.items():
        save_secret_json(home, name, values)
    update_env_values(home, {"MAX_TRADES": "2", "WEIGHTS": "0.6,0.4"}, actor="test")
    update_env_values(home, {"MAX_TRADES": "1", "WEIGHTS": "1"}, actor="test")  # two versioned copies now
    binding = load_binding(home)
    create_backup(home, [binding.ledger_path], now=datetime(2026, 11, 16, tzinfo=UTC))
    return home


def _all_readable(home: BotHome) -> None:
    for purpose in KEY_PURPOSES:
        files, raw = protected_files(home, purpose)
        for path in files:
            decrypt_file(path, home.key_file(purpose))
    assert load_settings(home).MAX_TRADES == 1
    assert ledger_problems(home, load_binding(home)) == []


def test_every_purpose_key_rotates_and_everything_it_protects_still_reads(provisioned_home: Path) -> None:
    home = _full_home(provisioned_home)
    versioned = sorted(home.versioned_env_dir.iterdir())
    assert len(versioned) >= 2
    [archive] = sorted(home.backups_dir.iterdir())
    for purpose in KEY_PURPOSES:
        before = load_key(home.key_file(purpose))
        report = rotate(home, purpose)
        assert load_key(home.key_file(purpose)) != before, purpose
        assert not home.key_file(purpose).with_name(f"{purpose}.key.prev").exists()
        if purpose == "env":
            assert set(versioned) <= set(report.reencrypted)
        if purpose == "ledger":
            assert any("re-signed" in n for n in report.notes)
    _all_readable(home)
    for name, values in SECRETS.items():
        assert load_secret_json(home, name) == values
    for path in versioned:  # the config history still decrypts after `rotate-key env`
        assert b"MAX_TRADES" in decrypt_file(path, home.key_file("env"))
    # the archive was re-encrypted with the new backup key; the retired key is kept for off-site copies
    target = BotHome(provisioned_home.parent / "restored")
    assert restore_backup(archive, target, key_path=home.key_file("backup"), new_keys=True)  # only read here
    assert list(home.keys_dir.glob("backup.key.retired-*"))


def test_cli_names_every_key_and_refuses_an_unknown_one(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _full_home(provisioned_home)
    assert main(["rotate-key", "env", "--home", str(provisioned_home)]) == 0
    out = capsys.readouterr().out
    assert "rotated env.key" in out and "env_bot.versioned/" in out
    with pytest.raises(SystemExit):
        main(["rotate-key", "envv", "--home", str(provisioned_home)])
    assert "invalid choice: 'envv'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("purpose", "point"),
    [
        ("env", "rotate_after_key"),
        ("env", "rotate_after_file:2"),
        ("env", "rotate_before_cleanup"),
        ("ledger", "rotate_after_key"),
        ("backup", "rotate_after_file:2"),
    ],
)
def test_a_killed_rotation_leaves_every_file_readable_and_a_rerun_finishes_it(
    tmp_path: Path, purpose: str, point: str, _rotation_home: Path
) -> None:
    root = tmp_path / "home"
    shutil.copytree(_rotation_home, root, symlinks=True)
    home = BotHome(root)
    cmd = [sys.executable, "-m", "rigd_tbot", "rotate-key", purpose, "--home", str(root)]
    killed = subprocess.run(cmd, env={**os.environ, "TBOT_CRASH_AT": point}, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert home.key_file(purpose).with_name(f"{purpose}.key.prev").exists()
    _all_readable(home)  # killed mid-way: every file still decrypts, the bot still boots its config
    if purpose == "backup":
        from tbot_bot.reporting.auto_backup import decrypt_archive

        for archive in sorted(home.backups_dir.iterdir()):
            assert decrypt_archive(archive, home, None)  # old or new key: found via backup.key.prev
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not home.key_file(purpose).with_name(f"{purpose}.key.prev").exists()
    _all_readable(home)


@pytest.fixture(scope="module")
def _rotation_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import _provision

    root = tmp_path_factory.mktemp("rotation") / "home"
    _provision(root)
    home = _full_home(root)
    create_backup(home, [load_binding(home).ledger_path], now=datetime(2026, 11, 17, tzinfo=UTC))
    return root


# ---------------------------------------------------------------- restore into a provisioned home (issue 14, item 9)
def _ledger_rows(path: Path) -> list[tuple[object, ...]]:
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT fitid, trntype FROM transactions ORDER BY id").fetchall()


def test_restore_into_a_reprovisioned_home_of_the_same_bot_replaces_after_archiving(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import _provision

    from tbot_bot.accounting.float_injection import inject_float
    from tbot_bot.runtime.preflight import preflight

    home = BotHome(provisioned_home)
    binding = load_binding(home)
    inject_float(binding, Decimal("500"), posted_at=datetime(2026, 11, 16, tzinfo=UTC), home=home)  # anchored
    assert main(["backup", "create", "--home", str(provisioned_home)]) == 0
    [archive] = sorted(home.backups_dir.iterdir())
    before = _ledger_rows(binding.ledger_path)
    capsys.readouterr()

    fresh = tmp_path / "reprovisioned"  # the disk was lost: same bot provisioned again
    _provision(fresh)
    other = BotHome(fresh)
    fresh_rows = _ledger_rows(load_binding(other).ledger_path)
    assert fresh_rows != before
    key = str(home.key_file("backup"))
    argv = ["backup", "restore", "--home", str(fresh), "--archive", str(archive), "--key-file", key]
    # provisioned again with new keys: the archive's signed ledger heads cannot be checked with them (a forged
    # archive could not be told apart): refused, naming the key backup and --new-keys (a backup review)
    assert main(argv) == 2
    assert "put storage/keys/ back from the key backup, or pass --new-keys" in capsys.readouterr().err
    assert _ledger_rows(load_binding(other).ledger_path) == fresh_rows
    assert main([*argv, "--new-keys"]) == 0
    out = capsys.readouterr().out
    assert "archived the state it replaces first" in out and "re-anchored" in out
    assert _ledger_rows(load_binding(other).ledger_path) == before
    preflight(other)  # boots: the restored ledgers are its anchored heads now
    [safety] = [p for p in other.backups_dir.iterdir()]
    saved = restore_backup(
        safety, BotHome(tmp_path / "inspect"), key_path=other.key_file("backup"), new_keys=True
    )  # only read here
    [old_ledger] = [p for p in saved if p.name.endswith("_BOT_ledger.db")]
    assert _ledger_rows(old_ledger) == fresh_rows


def test_restore_into_another_bots_home_is_refused_naming_both(
    provisioned_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.support.provision import ProvisionRequest, provision

    home = BotHome(provisioned_home)
    assert main(["backup", "create", "--home", str(provisioned_home)]) == 0
    [archive] = sorted(home.backups_dir.iterdir())
    other = BotHome(tmp_path / "tb02")
    provision(other, ProvisionRequest(broker="sim", entity="RGL", jurisdiction="USA", account="main", bot_id="TB02", float_amount="100"))  # fmt: skip
    ledger = load_binding(other).ledger_path
    before = ledger.read_bytes()
    key = str(home.key_file("backup"))
    assert (
        main(["backup", "restore", "--home", str(other.root), "--archive", str(archive), "--key-file", key])
        == 2
    )
    err = capsys.readouterr().err
    assert "belongs to bot RGL/USA/main/SIM/TB01" in err and "is bot RGL/USA/main/SIM/TB02" in err
    assert ledger.read_bytes() == before and not list(other.backups_dir.iterdir())


def test_a_bare_archive_name_is_found_in_backups_and_a_restore_without_secrets_says_what_is_next(
    provisioned_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = BotHome(provisioned_home)
    assert main(["backup", "create", "--home", str(provisioned_home)]) == 0
    [archive] = sorted(home.backups_dir.iterdir())
    key = str(home.key_file("backup"))
    monkeypatch.chdir(tmp_path)  # the name `backup list` prints, typed from anywhere
    capsys.readouterr()
    assert (
        main(
            [
                "backup",
                "restore",
                "--home",
                str(provisioned_home),
                "--archive",
                archive.name,
                "--key-file",
                key,
            ]
        )
        == 0
    )
    assert "archived the state it replaces first" in capsys.readouterr().out
    # an empty home restored with new keys: the archive holds no identity or injection, and the output says so
    empty = tmp_path / "empty"
    assert main(["backup", "restore", "--home", str(empty), "--archive", str(archive), "--key-file", key,
                 "--new-keys"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert (
        "next: storage/secrets/bot_identity.json.enc and storage/secrets/accounting_injection.json.enc" in out
    )
    assert f"`tbot check --home {empty}`" in out


def test_a_backup_key_rotated_with_no_local_archive_is_still_kept(provisioned_home: Path) -> None:
    """Copies off-site (or restored on another machine) were made with the old backup key: it is kept as
    backup.key.retired-* whether or not this home holds an archive to re-encrypt (it was thrown away then)."""
    home = BotHome(provisioned_home)
    assert not home.backups_dir.exists() or not list(home.backups_dir.glob("*.enc"))
    old = load_key(home.key_file("backup"))
    report = rotate(home, "backup")
    [retired] = home.keys_dir.glob("backup.key.retired-*")
    assert load_key(retired) == old and any("kept as" in n for n in report.notes)


def test_a_lost_key_is_not_taken_for_an_unused_one(provisioned_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """With env.key deleted, `rotate-key env` said "nothing to rotate (the key is created when first used)" although
    .env_bot.enc was encrypted with it (a CLI review): the key is lost, and the answer says to restore it."""
    home = BotHome(provisioned_home)
    home.key_file("env").unlink()
    before = home.env_bot_enc.read_bytes()
    assert main(["rotate-key", "env", "--home", str(provisioned_home)]) == 2
    err = capsys.readouterr().err
    assert "env.key is missing, yet" in err and ".env_bot.enc" in err and "restore the key" in err
    assert home.env_bot_enc.read_bytes() == before and not home.key_file("env").exists()
    home.key_file("ledger").unlink()  # it signs the chain-head anchors of LEDGER_STATUS.db (a diff review)
    assert main(["rotate-key", "ledger", "--home", str(provisioned_home)]) == 2
    assert "ledger.key is missing, yet" in capsys.readouterr().err


def test_an_archive_made_before_a_ledger_key_rotation_still_restores(provisioned_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`rotate-key ledger` dropped the old key, so every archive made before it (its ledger heads signed with that
    key) was refused by a restore as altered (a diff review): the retired key is kept and checked."""
    home = BotHome(provisioned_home)
    assert main(["backup", "create", "--home", str(provisioned_home)]) == 0
    [archive] = sorted(home.backups_dir.iterdir())
    assert main(["rotate-key", "ledger", "--home", str(provisioned_home)]) == 0
    assert list(home.keys_dir.glob("ledger.key.retired-*"))
    capsys.readouterr()
    assert main(["backup", "restore", "--home", str(provisioned_home), "--archive", str(archive)]) == 0, (
        capsys.readouterr().err
    )
