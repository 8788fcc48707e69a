"""Encrypted backups of output/ and ledgers: create, list, restore into an empty home, refusals."""

from __future__ import annotations

import io
import stat
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_ledger_fixtures import day_of_fills

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.ledger_schema import create_ledger
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import ConfigError, MachineFault
from tbot_bot.reporting.auto_backup import create_backup, list_backups
from tbot_bot.reporting.backup_restore import restore_backup
from tbot_bot.support.path_resolver import BotHome

NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def populated_home(root: Path) -> tuple[BotHome, Path]:
    home = BotHome(root)
    ledger = home.entity_dir("RIGD", "USA") / "ledgers" / "bot" / "RIGD_USA_main_ALPACA_TB01_BOT_ledger.db"
    create_ledger(ledger, currency_code="USD")
    LedgerWriter(ledger, home.entity_dir("RIGD", "USA") / "backups", 5).ingest(
        [e for f in day_of_fills() for e in entries_for_fill(f)]
    )
    logs = home.logs_dir("RIGD_USA_ALPACA_TB01")
    logs.mkdir(parents=True)
    (logs / "open.log").write_text('{"event": "entry"}\n')
    return home, ledger


def test_restore_into_an_empty_home_reproduces_a_verified_ledger(tmp_path: Path) -> None:
    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    assert archive.name == "tbot_backup_20261124T210000Z.tar.gz.enc"
    assert list_backups(home) == [archive]
    key = home.key_file("backup")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"RIGD_USA" not in archive.read_bytes()  # encrypted, not just compressed

    target = BotHome(tmp_path / "b")
    restored = restore_backup(archive, target, key_path=key, accept_unsigned=True)
    new_ledger = target.root / ledger.relative_to(home.root)
    assert new_ledger in restored
    assert verify_ledger(new_ledger) == []
    assert (target.logs_dir("RIGD_USA_ALPACA_TB01") / "open.log").read_text() == '{"event": "entry"}\n'

    def rows(path: Path) -> list[tuple[object, ...]]:
        import sqlite3

        conn = sqlite3.connect(path)
        try:
            return conn.execute("SELECT * FROM splits ORDER BY id").fetchall()
        finally:
            conn.close()

    assert rows(new_ledger) == rows(ledger)


def test_restore_refuses_overwrite_wrong_key_and_loose_key(tmp_path: Path) -> None:
    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    with pytest.raises(ConfigError, match="overwrite"):
        restore_backup(archive, home, accept_unsigned=True)
    other = BotHome(tmp_path / "c")
    wrong = tmp_path / "wrong.key"
    from cryptography.fernet import Fernet

    wrong.write_bytes(Fernet.generate_key())
    wrong.chmod(0o600)
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        restore_backup(archive, other, key_path=wrong, accept_unsigned=True)
    wrong.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        restore_backup(archive, other, key_path=wrong, accept_unsigned=True)
    with pytest.raises(ConfigError, match="does not exist"):
        restore_backup(archive, other, accept_unsigned=True)


def test_keep_prunes_old_archives(tmp_path: Path) -> None:
    home, ledger = populated_home(tmp_path / "a")
    for minute in range(4):
        create_backup(home, [ledger], now=NOW.replace(minute=minute), keep=2)
    assert [p.name for p in list_backups(home)] == [
        "tbot_backup_20261124T210200Z.tar.gz.enc",
        "tbot_backup_20261124T210300Z.tar.gz.enc",
    ]


def test_archives_of_one_second_are_ordered_and_never_written_over(tmp_path: Path) -> None:
    """A second archive of the same second is `<stamp>-1`: by name it sorted before `<stamp>.`, so it was listed
    as the oldest and `prune --keep 1` deleted it, the newest. The name is also taken atomically."""
    home, ledger = populated_home(tmp_path / "a")
    first = create_backup(home, [ledger], now=NOW)
    second = create_backup(home, [ledger], now=NOW)
    third = create_backup(home, [ledger], now=NOW, keep=2)
    assert [p.name for p in (first, second, third)] == [
        "tbot_backup_20261124T210000Z.tar.gz.enc",
        "tbot_backup_20261124T210000Z-1.tar.gz.enc",
        "tbot_backup_20261124T210000Z-2.tar.gz.enc",
    ]
    assert list_backups(home) == [second, third]  # the oldest went
    assert not [p for p in home.backups_dir.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("links", [True, False], ids=["hard links", "no hard links"])
def test_an_exclusive_write_never_replaces_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    """Two archives of one second made at once: the second never writes over the first, also on a file system
    without hard links (FAT, some network mounts), where os.link fails with EPERM."""
    import os

    from tbot_bot.support.utils_bot import atomic_write_bytes

    if not links:

        def no_link(*_: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "a.enc"
    atomic_write_bytes(target, b"first", 0o600, exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"second", 0o600, exclusive=True)
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["a.enc"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)


def test_cli_backup_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rigd_tbot.cli import main

    home = tmp_path / "home"
    args = [
        "--broker",
        "sim",
        "--entity",
        "RIGD",
        "--jurisdiction",
        "USA",
        "--account",
        "main",
        "--bot-id",
        "TB01",
        "--float",
        "2500",
        "--environment",
        "development",
    ]
    assert main(["provision", "--home", str(home), *args]) == 0
    assert main(["backup", "create", "--home", str(home)]) == 0
    assert main(["backup", "list", "--home", str(home)]) == 0
    archive = home / "backups" / capsys.readouterr().out.strip().splitlines()[-1].split("\t")[0]
    empty = tmp_path / "empty"
    key = home / "storage" / "keys" / "backup.key"
    restore = ["backup", "restore", "--home", str(empty), "--archive", str(archive), "--key-file", str(key)]
    # the keys come back first (README): made anew, they would not open the secrets or match the anchors
    capsys.readouterr()
    assert main(restore) == 2
    said = capsys.readouterr().err
    assert "has no storage/keys/env.key or storage/keys/ledger.key: put back storage/keys/" in said
    assert "nothing was restored" in said and not empty.exists()
    import shutil

    shutil.copytree(home / "storage" / "keys", empty / "storage" / "keys")
    assert main(restore) == 0
    restored = list((empty / "entities" / "RIGD_USA" / "ledgers" / "bot").glob("*_BOT_ledger.db"))
    assert len(restored) == 1 and verify_ledger(restored[0]) == []


def _rewrite_manifest(  # type: ignore[no-untyped-def]
    archive: Path, key: Path, change, *, members: dict[str, bytes] | None = None, target: Path | None = None
) -> Path:
    """The archive with `members` replaced and its manifest edited by `change`, sealed again with the backup key
    (what someone holding only that key can do), written over it or to `target`."""
    import io
    import json
    import tarfile

    from cryptography.fernet import Fernet

    fernet = Fernet(key.read_bytes().strip())
    src = tarfile.open(fileobj=io.BytesIO(fernet.decrypt(archive.read_bytes())), mode="r:gz")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            data = (members or {}).get(member.name) or src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "MANIFEST.json":
                manifest = json.loads(data)
                change(manifest)
                data = json.dumps(manifest).encode()
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    written = target or archive
    written.write_bytes(fernet.encrypt(out.getvalue()))
    return written


def test_manifest_records_each_ledger_head_and_restore_reanchors_it(tmp_path: Path) -> None:
    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.errors import LedgerError

    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    key = home.key_file("backup")
    target = BotHome(tmp_path / "b")
    new_ledger = target.root / ledger.relative_to(home.root)
    restore_backup(archive, target, key_path=key, accept_unsigned=True)
    # restored into an empty home: anchored there, so verify (and boot) accept it
    assert verify_ledger(new_ledger, anchors=AnchorStore.for_home(target)) == []
    seen: dict[str, object] = {}
    _rewrite_manifest(archive, key, lambda m: seen.update(m["anchors"]["heads"]))
    (head,) = seen.values()
    assert head["transactions"] == 13 and head["last_fitid"] == "P1-CLOSE-FEE"  # type: ignore[index]

    def fewer(manifest: dict) -> None:  # type: ignore[type-arg]
        (name,) = manifest["anchors"]["heads"]
        manifest["anchors"]["heads"][name]["transactions"] = 14

    _rewrite_manifest(archive, key, fewer)
    other = BotHome(tmp_path / "c")
    with pytest.raises(LedgerError, match="differs from the chain head its manifest recorded"):
        restore_backup(archive, other, key_path=key, accept_unsigned=True)
    # found on the copy, before anything was written: no half-restored home marked (a diff review)
    assert not other.restore_marker.exists() and not list(other.root.rglob("*_ledger.db"))


def test_an_archive_from_before_anchors_restores_anchored(tmp_path: Path) -> None:
    from tbot_bot.accounting.ledger_anchor import AnchorStore

    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    key = home.key_file("backup")
    _rewrite_manifest(archive, key, lambda m: m.pop("anchors"))
    target = BotHome(tmp_path / "b")
    restore_backup(archive, target, key_path=key, accept_unsigned=True)
    new_ledger = target.root / ledger.relative_to(home.root)
    assert verify_ledger(new_ledger, anchors=AnchorStore.for_home(target)) == []


def _tamper(ledger: Path) -> None:
    """What an edit outside the ledger API does: its immutability trigger dropped and a posted row changed."""
    import sqlite3

    conn = sqlite3.connect(ledger)
    try:
        conn.execute("DROP TRIGGER trg_transactions_no_update")
        conn.execute("UPDATE transactions SET memo = 'tampered' WHERE id = 1")
        conn.commit()
    finally:
        conn.close()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_backup_of_a_ledger_that_fails_verification_is_kept_but_prunes_nothing(tmp_path: Path) -> None:
    from tbot_bot.errors import LedgerError

    home, ledger = populated_home(tmp_path / "a")
    good = create_backup(home, [ledger], now=NOW)
    _tamper(ledger)
    with pytest.raises(LedgerError, match="fail verification .no older archive was pruned") as caught:
        create_backup(home, [ledger], now=NOW.replace(hour=22), keep=1)
    assert "row altered" in str(caught.value) or "trigger" in str(caught.value)
    written = list_backups(home)
    assert len(written) == 2 and good in written  # the faithful copy is written, the good one kept
    # a restore refuses that archive before writing anything: the empty home stays empty
    target = BotHome(tmp_path / "b")
    target.root.mkdir()
    with pytest.raises(LedgerError, match="fail verification; nothing was restored"):
        restore_backup(written[-1], target, key_path=home.key_file("backup"), accept_unsigned=True)
    assert _files(target.root) == {}


def test_a_restore_is_refused_while_a_supervisor_runs_and_writes_nothing(tmp_path: Path) -> None:
    from tbot_bot.runtime.control import SupervisorLock

    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    target = BotHome(tmp_path / "b")
    running = SupervisorLock.acquire(target, mode="live")
    try:
        before = _files(target.root)
        with pytest.raises(
            ConfigError,
            match="a supervisor is already running .*end that process first.*nothing was restored",
        ) as refused:
            restore_backup(archive, target, key_path=home.key_file("backup"), accept_unsigned=True)
        assert str(refused.value).count("Configuration error") == 1  # it read "Configuration error:" twice
        assert _files(target.root) == before
    finally:
        running.release()
    assert restore_backup(
        archive, target, key_path=home.key_file("backup"), accept_unsigned=True
    )  # once it has stopped


def test_an_archive_of_a_newer_format_is_refused_by_name(tmp_path: Path) -> None:
    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    key = home.key_file("backup")
    _rewrite_manifest(archive, key, lambda manifest: manifest.update(format="tbot.backup/9"))
    target = BotHome(tmp_path / "b")
    with pytest.raises(
        ConfigError, match=r"format .tbot.backup/9. is not one this version restores \(tbot.backup/3"
    ):
        restore_backup(archive, target, key_path=key, accept_unsigned=True)
    assert not target.root.exists() or _files(target.root) == {}


def _add_member(archive: Path, key: Path, name: str, data: bytes) -> None:
    """An archive made with the backup key that carries one member more (or replaced), manifest included."""
    import hashlib
    import io
    import json
    import tarfile

    from cryptography.fernet import Fernet

    fernet = Fernet(key.read_bytes().strip())
    src = tarfile.open(fileobj=io.BytesIO(fernet.decrypt(archive.read_bytes())), mode="r:gz")
    members = {m.name: src.extractfile(m).read() for m in src.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(members.pop("MANIFEST.json"))
    members[name] = data
    manifest["files"][name] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "kind": "sqlite",
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member_name, blob in [("MANIFEST.json", json.dumps(manifest).encode()), *members.items()]:
            info = tarfile.TarInfo(member_name)
            info.size = len(blob)
            dst.addfile(info, io.BytesIO(blob))
    archive.write_bytes(fernet.encrypt(out.getvalue()))


def test_an_empty_ledger_is_never_archived_as_good_nor_restored_over_books(tmp_path: Path) -> None:
    """A 0-byte ledger (what a disk-full truncation leaves) was taken for "not a ledger": archived without a word,
    then restored over a healthy ledger of the same bot, with "ledgers verify" printed."""
    from tbot_bot.errors import LedgerError

    home, ledger = populated_home(tmp_path / "a")
    good = create_backup(home, [ledger], now=NOW)
    healthy = ledger.read_bytes()
    ledger.write_bytes(b"")
    with pytest.raises(LedgerError, match="BOT_ledger.db: table ledger_meta is missing"):
        create_backup(home, [ledger], now=NOW.replace(hour=22))
    assert good in list_backups(home)
    # an archive whose ledger member is empty (made by an older version, or by hand) is refused: nothing written
    ledger.write_bytes(healthy)
    key = home.key_file("backup")
    _add_member(good, key, str(ledger.relative_to(home.root)), b"")
    before = _files(home.root)
    with pytest.raises(LedgerError, match="an empty file, not a ledger"):
        restore_backup(good, home, key_path=key, accept_unsigned=True)
    assert _files(home.root) == before and ledger.read_bytes() == healthy


def test_an_archive_member_under_keys_or_secrets_is_refused(tmp_path: Path) -> None:
    """An archive never holds keys or secrets: a member at storage/keys/env.key would replace the key that
    decrypts the configuration, for good."""
    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    key = home.key_file("backup")
    _add_member(archive, key, "storage/keys/env.key", b"AAAA")
    target = BotHome(tmp_path / "b")
    with pytest.raises(
        ConfigError, match=r"'storage/keys/env.key' is under storage/keys/.*nothing was restored"
    ):
        restore_backup(archive, target, key_path=key, accept_unsigned=True)
    assert not target.root.exists() or _files(target.root) == {}


def test_a_damaged_database_member_is_named_not_a_bare_database_failure(tmp_path: Path) -> None:
    """An archive whose journal (or users database) is not a database was refused with "Database error: a SQLite
    database of the bot home failed ...; 'tbot check' names the file", naming neither the archive nor the member."""
    from tbot_bot.reporting.auto_backup import ledger_copy_problems

    problems = ledger_copy_problems("storage/state/journal.db", b"not a database at all" * 100, tmp_path)
    assert len(problems) == 1 and problems[0].startswith(
        "storage/state/journal.db: not a readable SQLite database"
    )
    assert list(tmp_path.iterdir()) == []  # the copy it checked is gone


def test_an_archive_without_a_ledger_is_refused(tmp_path: Path) -> None:
    """An archive holding no ledger (made without one, or by hand with the backup key) restored with exit 0 and
    said "ledgers verify and are re-anchored": no bot's whole state, refused before anything is written."""
    from tbot_bot.errors import LedgerError

    home = BotHome(tmp_path / "a")
    logs = home.logs_dir("RIGD_USA_ALPACA_TB01")
    logs.mkdir(parents=True)
    (logs / "open.log").write_text('{"event": "entry"}\n')
    archive = create_backup(home, [], now=NOW)
    target = BotHome(tmp_path / "b")
    with pytest.raises(LedgerError, match="holds no ledger .*nothing was restored"):
        restore_backup(archive, target, key_path=home.key_file("backup"), accept_unsigned=True)
    assert not target.root.exists() or not any(target.root.rglob("*.log"))


def test_a_backup_of_a_database_held_locked_fails_by_name_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `sqlite3` shell holding a write lock on the ledger made `tbot backup create` wait for ever, without a word
    (sqlite3's backup retries a busy source endlessly): the daily backup service hung (a CLI review)."""
    import sqlite3

    from tbot_bot.core.databases import init_core_database
    from tbot_bot.reporting import backup_members

    home, ledger = populated_home(tmp_path / "a")
    logs = init_core_database(home, "SYSTEM_LOGS")
    monkeypatch.setattr(backup_members, "LOCKED_WAIT_S", 0.3)
    holder = sqlite3.connect(logs, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("CREATE TABLE held_open (x)")
        with pytest.raises(MachineFault, match=r"SYSTEM_LOGS.db is locked by another process"):
            create_backup(home, [ledger], now=NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert list_backups(home) == []


def test_a_lost_backup_key_is_not_replaced_while_archives_need_it(tmp_path: Path) -> None:
    """With storage/keys/backup.key deleted, `tbot backup create` made a new key and went on: every earlier archive
    became unreadable without a word (a CLI review)."""
    home, ledger = populated_home(tmp_path / "a")
    first = create_backup(home, [ledger], now=NOW)
    home.key_file("backup").unlink()
    with pytest.raises(
        ConfigError, match=r"backup.key is missing, yet 1 archive\(s\) in .* were encrypted with it"
    ):
        create_backup(home, [ledger], now=NOW.replace(hour=22))
    assert not home.key_file("backup").exists() and list_backups(home) == [first]
    # lost for good: the archives moved away, a new key starts a new series
    first.rename(tmp_path / first.name)
    assert (
        create_backup(home, [ledger], now=NOW.replace(hour=22)).exists() and home.key_file("backup").exists()
    )


def test_restore_of_an_archive_name_not_found_names_where_it_looked(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`backup restore --archive NAME` not found said "File error: <cwd>/NAME: No such file", without the home's
    backups/ or what it holds (a CLI review)."""
    from rigd_tbot.cli import main

    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    (home.root / ".env_bot.enc").write_bytes(b"")  # a home by the marker (restore checks the archive first)
    assert (
        main(["backup", "restore", "--home", str(home.root), "--archive", "tbot_backup_2099.tar.gz.enc"]) == 2
    )
    err = capsys.readouterr().err
    assert "not a file here" in err and str(home.backups_dir) in err and archive.name in err


def test_an_archive_of_the_books_only_says_the_home_cannot_start_yet(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """An archive made before the whole bot was archived (the books only, no configuration) restored as a plain
    success; `tbot start` then failed with "no configuration found" (a backup review)."""
    from rigd_tbot.cli import main

    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    target = tmp_path / "b"
    argv = ["backup", "restore", "--home", str(target), "--archive", str(archive), "--key-file",
            str(home.key_file("backup")), "--accept-unsigned"]  # fmt: skip
    assert main(argv) == 0
    assert "note: the archive holds no configuration (.env_bot.enc)" in capsys.readouterr().out


def test_an_unsigned_archive_needs_accept_unsigned_in_any_home(tmp_path: Path) -> None:
    """An archive without its ledger-key signature (a forger holding only the backup key strips it) was restored
    without a word into a home that had no ledger key yet, and its books anchored under a new one (a diff review)."""
    home, ledger = populated_home(tmp_path / "a")  # no ledger key: its archives are unsigned
    archive = create_backup(home, [ledger], now=NOW)
    target = BotHome(tmp_path / "b")
    with pytest.raises(ConfigError, match="carries no signature of its ledgers"):
        restore_backup(archive, target, key_path=home.key_file("backup"))
    assert not target.root.exists() or not any(target.root.rglob("*.db"))


def test_an_archive_of_another_ledger_schema_says_it_was_made_by_another_version(tmp_path: Path) -> None:
    """An archive whose ledger has another schema version was refused with a list of column mismatches "failing
    verification", not told apart from a damaged one (a backup review)."""
    import hashlib
    import io
    import sqlite3
    import tarfile

    from cryptography.fernet import Fernet

    from tbot_bot.errors import LedgerError

    home, ledger = populated_home(tmp_path / "a")
    archive = create_backup(home, [ledger], now=NOW)
    key = home.key_file("backup")
    name = str(ledger.relative_to(home.root))
    with tarfile.open(
        fileobj=io.BytesIO(Fernet(key.read_bytes().strip()).decrypt(archive.read_bytes()))
    ) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        old = tmp_path / "old.db"
        old.write_bytes(extracted.read())
    with sqlite3.connect(old) as conn:
        conn.execute("UPDATE ledger_meta SET value = '1' WHERE key = 'schema_version'")
    blob = old.read_bytes()

    def digest(manifest: dict) -> None:  # type: ignore[type-arg]
        manifest["files"][name].update(sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))

    _rewrite_manifest(archive, key, digest, members={name: blob})
    with pytest.raises(LedgerError, match="made by another version of the bot"):
        restore_backup(archive, BotHome(tmp_path / "b"), key_path=key, accept_unsigned=True)


def test_a_damaged_ledger_is_repaired_by_a_restore(tmp_path: Path) -> None:
    """`ledger verify` tells the owner of a damaged ledger to restore it from a backup; the restore then refused
    with the same sentence (its safety archive of the home could not snapshot the damaged file). The safety
    archive takes it as it is, and the restore repairs it."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.reporting.auto_backup import decrypt_archive

    home = provision_demo_home(tmp_path / "home")
    assert main(["backup", "create", "--home", str(home.root)]) == 0
    (archive,) = list_backups(home)
    ledger = load_binding(home).ledger_path
    damaged = ledger.read_bytes()[:1000]
    ledger.write_bytes(damaged)
    assert main(["ledger", "verify", "--home", str(home.root)]) == 1
    assert main(["backup", "restore", "--home", str(home.root), "--archive", str(archive)]) == 0
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0
    # the state replaced is kept: the safety archive holds the damaged file byte for byte
    safety = [a for a in list_backups(home) if a != archive]
    assert safety
    with tarfile.open(fileobj=io.BytesIO(decrypt_archive(safety[-1], home, None)), mode="r:gz") as tar:
        held = tar.extractfile(home.relative(ledger))
        assert held is not None and held.read() == damaged
