"""Issue 26: every command ends in its result or in a message naming the file, key or value at fault, with an
exit code from the README's table (2 = refused, 75 = transient worth a restart, 1 = a bug). The repros of the
issue, walked in-process through the CLI's main: never "Unexpected error", "Internal error" or a traceback."""

from __future__ import annotations

import errno
import io
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from rigd_tbot.cli import main
from rigd_tbot.error_report import describe
from tbot_bot.broker.brokers.alpaca_translate import MarketDataRefused
from tbot_bot.core import users as users_mod
from tbot_bot.errors import NetworkError
from tbot_bot.support.path_resolver import BotHome

PROVISION = [
    "--broker",
    "sim",
    "--entity",
    "RGL",
    "--jurisdiction",
    "USA",
    "--account",
    "main",
    "--bot-id",
    "TB01",
]


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Unexpected error" not in err and "Internal error" not in err and "Traceback" not in err, err
    return code, err


def test_broker_check_on_a_sim_home_says_there_is_nothing_to_connect_to(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["broker-check", "--home", str(provisioned_home)], capsys)
    assert code == 2 and "BROKER_NAME=SIM" in err and "tbot check" in err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("[1, 2]", "holds a JSON list, not the status object"), ("{trunc", "is not a JSON status file"),
     ('{"windows": 5}', "does not hold the fields a status has"), (None, "is a directory, not the status file")],
)  # fmt: skip
def test_status_names_what_is_wrong_with_status_json(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], content: str | None, fragment: str
) -> None:
    status = provisioned_home / "output" / "status.json"
    status.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        status.mkdir()
    else:
        status.write_text(content)
    code, err = run_cli(["status", "--home", str(provisioned_home)], capsys)
    assert code == 2 and str(status) in err and fragment in err


def test_users_add_with_a_password_that_is_not_utf8(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = io.TextIOWrapper(io.BytesIO(b"\xff\xfepassword-long\n"), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr("sys.stdin", raw)
    argv = ["users", "add", "--home", str(provisioned_home), "--username", "bob", "--role", "viewer"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "not UTF-8 text" in err and "nothing was saved" in err
    assert users_mod.get_user(BotHome(provisioned_home), "bob") is None


@pytest.mark.parametrize("amount", ["1e400", "-5", "0", "nan", "0.00001", "1e13", "２５００"])
def test_refused_provision_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], amount: str
) -> None:
    home = tmp_path / "new-home"
    code, err = run_cli(["provision", "--home", str(home), *PROVISION, "--float", amount], capsys)
    assert code == 2 and "--float" in err and "at most 4 decimal places" in err
    assert sorted(os.listdir(tmp_path)) == []


def test_a_float_dated_in_the_future_is_refused_and_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--float-date 2099-01-01` booked the opening float in 2099 while replays of 2011 spent it (a CLI review)."""
    home = tmp_path / "new-home"
    code, err = run_cli(["provision", "--home", str(home), *PROVISION, "--float", "2500", "--float-date", "2099-01-01"],
                        capsys)  # fmt: skip
    assert code == 2 and "--float-date 2099-01-01 is in the future" in err
    assert sorted(os.listdir(tmp_path)) == []


def test_a_provision_failing_midway_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.support import provision as provision_mod

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "ledger.db")

    monkeypatch.setattr(provision_mod, "_store_broker_credentials", disk_full)  # the very last step
    home = tmp_path / "new-home"
    code, err = run_cli(["provision", "--home", str(home), *PROVISION, "--float", "2500"], capsys)
    assert code == 75 and err.startswith("Disk full")
    assert os.listdir(tmp_path) == []


def test_provision_builds_a_working_home_in_place_of_an_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert main(["provision", "--home", str(home), *PROVISION, "--float", "2500.50"]) == 0
    assert os.listdir(tmp_path) == ["home"]
    assert main(["ledger", "verify", "--home", str(home)]) == 0


def test_web_refuses_an_unresolvable_host_a_busy_port_and_a_non_home(
    provisioned_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a label longer than 63 characters cannot be a host name; refused without asking any resolver
    code, err = run_cli(["web", "--home", str(provisioned_home), "--host", "x" * 70 + ".invalid"], capsys)
    assert code == 2 and "cannot be resolved" in err and "--host" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_cli(["web", "--home", str(provisioned_home), "--port", str(port)], capsys)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err
    code, err = run_cli(["web", "--home", "/nonexistent/home", "--port", "1"], capsys)
    assert code == 2 and "is not a bot home" in err
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TBOT_HOME", raising=False)
    code, err = run_cli(["web", "--port", "1"], capsys)
    assert code == 2 and "is not a bot home" in err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [(["--start", "2030-01-02", "--end", "2030-01-31"], "reaches beyond the XNYS calendar"),
     (["--start", "2011-01-05", "--end", "2011-01-03"], "is before --start")],
)  # fmt: skip
def test_backtest_dates_outside_the_calendar(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    code, err = run_cli(["backtest", "--home", str(provisioned_home), "--strategy", "mid", *extra], capsys)
    assert code == 2 and fragment in err


@pytest.mark.parametrize("command", [["backtest"], ["optimize", "run"]])
def test_a_negative_seed_is_a_usage_error(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    argv = [*command, "--home", str(provisioned_home), "--strategy", "mid", "--start", "2011-01-03",
            "--end", "2011-01-05", "--seed", "-1"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "--seed: -1 is outside 0..4294967295" in capsys.readouterr().err


def test_optimize_beyond_the_calendar_is_refused(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["optimize", "run", "--home", str(provisioned_home), "--strategy", "mid", "--start", "2030-01-02",
            "--end", "2030-03-29"]  # fmt: skip
    code, err = run_cli(argv, capsys)
    assert code == 2 and "reaches beyond the XNYS calendar" in err


def _encrypted(home: Path, plaintext: bytes, name: str) -> Path:
    key = (home / "storage" / "keys" / "backup.key").read_bytes().strip()
    archive = home / "backups" / name
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(Fernet(key).encrypt(plaintext))
    return archive


def _gzip_tar(members: dict[str, bytes]) -> bytes:
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(
    ("plaintext", "fragment"),
    [(b"", "does not hold a gzip tar archive"), (b"plain text, not gzip", "does not hold a gzip tar archive"),
     (b"\x1f\x8b\x08\x00truncated", "does not hold a gzip tar archive"),
     (_gzip_tar({"MANIFEST.json": b"{not json"}), "MANIFEST.json is not JSON"),
     (_gzip_tar({"MANIFEST.json": b'{"files": {"a": 5}}', "a": b"x"}), "does not list the files"),
     (_gzip_tar({"output/x.txt": b"x"}), "MANIFEST.json is missing")],
)  # fmt: skip
def test_backup_restore_of_a_right_key_archive_with_wrong_content(
    provisioned_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    plaintext: bytes,
    fragment: str,
) -> None:
    archive = _encrypted(provisioned_home, plaintext, "odd.tar.gz.enc")
    empty = tmp_path / "restored"
    key = provisioned_home / "storage" / "keys" / "backup.key"
    argv = ["backup", "restore", "--home", str(empty), "--archive", str(archive), "--key-file", str(key)]
    code, err = run_cli(argv, capsys)
    assert code == 2 and archive.name in err and fragment in err
    assert not empty.exists() or not any(empty.rglob("*.db"))


@pytest.mark.parametrize("name", ["storage/state/journal.db", "storage/databases/SYSTEM_USERS.db"])
def test_a_database_overwritten_with_garbage_is_named(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    from tbot_bot.runtime.order_journal import OrderJournal

    target = provisioned_home / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(range(256)) * 16)
    if name.endswith("journal.db"):
        from tbot_bot.errors import ConfigError

        with pytest.raises(ConfigError, match=rf"{target} is not a readable SQLite database"):
            OrderJournal(target)
        return
    code, err = run_cli(["users", "list", "--home", str(provisioned_home)], capsys)
    assert code == 2 and f"{target} is not a readable SQLite database" in err and "tbot backup restore" in err


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [(OSError(errno.ENOSPC, "No space left on device", "/h/output/status.json"), 75, "Disk full: cannot write /h/output/status.json"),
     (OSError(errno.EROFS, "Read-only file system", "/h/storage/supervisor.lock"), 2, "Read-only file system: cannot write /h/storage/supervisor.lock"),
     (PermissionError(errno.EACCES, "Permission denied", "/h/.env_bot.enc"), 2, "Permission error: cannot access /h/.env_bot.enc"),
     (IsADirectoryError(errno.EISDIR, "Is a directory", "/h/output/status.json"), 2, "/h/output/status.json is a directory"),
     (NetworkError("broker unreachable"), 75, "Network error: broker unreachable"),
     (MarketDataRefused("HTTP 401 unauthorized"), 2, "Refused by the service: HTTP 401"),
     (ZeroDivisionError("bug"), 0, "")],
)  # fmt: skip
def test_exit_code_table(exc: BaseException, code: int, fragment: str) -> None:
    message, exit_code = describe(exc)
    assert exit_code == code and fragment in message


def test_unit_prevents_restart_on_refusal_only() -> None:
    unit = (Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "tbot.service").read_text()
    assert "RestartPreventExitStatus=2\n" in unit and "Restart=on-failure" in unit
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("## Exit codes") :]
    assert all(f"| {c} |" in table for c in ("0", "1", "2", "75"))


# ---------------------------------------------------------------- a real full disk and a read-only home (root)


@pytest.fixture
def tiny_mount(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs; skipped where mounting is not allowed (not root, no mount namespace)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _core_home(root: Path) -> Path:
    from tbot_bot.core import init_all_core_databases

    init_all_core_databases(BotHome(root))
    return root


def _fill(mount: Path) -> Path:
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # to the last block
        while os.write(fd, b"\0" * 65536 if os.statvfs(mount).f_bavail > 16 else b"\0" * 512):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("command", ["check", "start"])
def test_check_and_start_on_a_full_disk_are_transient_and_on_a_read_only_home_refused(
    tiny_mount: Path, provisioned_home: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """What check names, start names too: the supervisor passes a machine fault on with its file (exit 75 / 2)."""
    home = tiny_mount / "home"
    shutil.copytree(provisioned_home, home, symlinks=True)
    filler = _fill(tiny_mount)
    code, err = run_cli([command, "--home", str(home), "--replay", "2011-01-26"], capsys)
    assert code == 75 and "Disk full" in err and "Internal error" not in err
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_mount)], check=True)
    code, err = run_cli([command, "--home", str(home), "--replay", "2011-01-26"], capsys)
    assert code == 2 and "Read-only file system: cannot write" in err and str(home) in err


def test_full_disk_and_read_only_home_on_a_real_file_system(
    tiny_mount: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _core_home(tiny_mount / "home")
    filler = _fill(tiny_mount)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    argv = ["users", "add", "--home", str(home), "--username", "carol", "--role", "viewer"]
    code, err = run_cli(argv, capsys)
    assert code == 75 and err.startswith("Disk full") and "SYSTEM_USERS.db" in err
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_mount)], check=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    code, err = run_cli(argv, capsys)
    assert code == 2 and err.startswith("Read-only file system") and "SYSTEM_USERS.db" in err


@pytest.mark.parametrize("name", ["storage/state/ticker_blocklist.db", "storage/databases/LEDGER_STATUS.db"])
def test_check_and_start_name_the_damaged_database_itself(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A damaged blocklist or LEDGER_STATUS.db is named by check and start alike (the status database was
    reported as both ledgers being unreadable; the blocklist as an internal error)."""
    target = provisioned_home / name
    target.parent.mkdir(parents=True, exist_ok=True)
    for extra in ("-wal", "-shm"):
        Path(f"{target}{extra}").unlink(missing_ok=True)
    target.write_bytes(bytes(range(256)) * 32)
    for command in ("check", "start"):
        code, err = run_cli([command, "--home", str(provisioned_home), "--replay", "2011-01-26"], capsys)
        assert code == 2 and f"{target} is not a readable SQLite database" in err, (command, err)
        assert "_ledger.db: cannot be read" not in err and "Internal error" not in err
    if name.endswith("LEDGER_STATUS.db"):
        code, err = run_cli(["ledger", "verify", "--home", str(provisioned_home)], capsys)
        assert code == 2 and f"{target} is not a readable SQLite database" in err


def test_the_journal_on_a_full_disk_or_locked_mid_session_is_named(tiny_mount: Path) -> None:
    """A write of the day's journal that meets a full disk, or a lock another process holds, is the machine's
    fault with the journal's file (exit 75), not an internal error."""
    import sqlite3

    from tbot_bot.errors import MachineFault
    from tbot_bot.runtime.order_journal import OrderJournal

    journal = OrderJournal(tiny_mount / "journal.db")
    filler = _fill(tiny_mount)
    with pytest.raises(MachineFault, match=r"Disk full.*journal\.db") as full:
        journal.set_value("k", "v" * 4_000_000)
    assert full.value.transient
    filler.unlink()
    journal.set_value("k", "v")  # the disk has room again: the journal goes on
    other = sqlite3.connect(tiny_mount / "journal.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MachineFault, match=r"journal\.db is locked by another process") as locked:
            journal.set_value("k", "w")
        assert locked.value.transient
    finally:
        other.execute("ROLLBACK")
        other.close()
    journal.close()


@pytest.mark.parametrize("folder", ["control directory", "ledger backup directory"])
def test_a_read_only_folder_refuses_check_and_start_alike(
    tiny_mount: Path, provisioned_home: Path, capsys: pytest.CaptureFixture[str], folder: str
) -> None:
    """A self-check that fails on the machine is a person's to fix (exit 2, not restarted), never "Internal error"
    (exit 1, which systemd restarts in a loop). The ledger's backup folder is checked too: a booking backs the
    ledger up there first (start traded, then failed to book)."""
    from tbot_bot.accounting.accounting_config import load_binding

    control = (
        provisioned_home / "control"
        if folder.startswith("control")
        else load_binding(BotHome(provisioned_home)).backup_dir
    )
    control.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(tiny_mount), str(control)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(control)], check=True)
        for command in ("check", "start"):
            code, err = run_cli([command, "--home", str(provisioned_home), "--replay", "2011-01-26"], capsys)
            assert code == 2 and "Internal error" not in err, (command, err)
            assert f"{folder} not writable" in err and "Read-only file system" in err
    finally:
        subprocess.run(["umount", "-l", str(control)], check=False)


@pytest.mark.parametrize("damage", ["garbage sim_exchange.db", "status.json a folder"])
def test_check_refuses_what_start_refuses_with_the_same_words(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """`tbot check` said "ready" where `tbot start` then refused: the simulated exchange's book damaged, a folder
    where status.json goes."""
    if damage.startswith("garbage"):
        target = provisioned_home / "storage" / "state" / "sim_exchange.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(range(256)) * 32)
    else:
        target = provisioned_home / "output" / "status.json"
        target.unlink(missing_ok=True)
        target.mkdir(parents=True)
    results = [
        run_cli([command, "--home", str(provisioned_home), "--replay", "2011-01-26"], capsys)
        for command in ("check", "start")
    ]
    assert results[0] == results[1] and results[0][0] == 2, results
    assert str(target) in results[0][1]


def test_a_sqlite_fault_no_caller_named_is_the_machines_not_a_bug(provisioned_home: Path) -> None:
    """A full disk met by a SQLite write that no caller maps to its file still ends the run as the machine's fault
    (exit 75, status halted), not "Internal error" (exit 1)."""
    import json
    import sqlite3

    from tbot_bot.errors import MachineFault
    from tbot_bot.runtime.main import Supervisor

    def full_disk_at_the_first_order(broker):  # type: ignore[no-untyped-def]
        def submit_order(request):  # type: ignore[no-untyped-def]
            raise sqlite3.OperationalError("database or disk is full")

        broker.submit_order = submit_order
        return broker

    sup = Supervisor(
        BotHome(provisioned_home), replay_day=date(2011, 1, 26), broker_wrapper=full_disk_at_the_first_order
    )
    with pytest.raises(MachineFault, match="Database error in .*database or disk is full") as caught:
        sup.run()
    assert caught.value.transient
    status = json.loads((provisioned_home / "output" / "status.json").read_text())
    assert status["state"] == "halted" and "database or disk is full" in status["message"]


def test_a_ledger_this_user_may_not_read_is_named_with_its_path(provisioned_home: Path) -> None:
    """A ledger whose mode keeps the bot's user out (root without the DAC capabilities here): `backup create`
    said "a SQLite database of the bot home failed", verify "not a readable SQLite ledger"."""
    import sys

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("dropping the DAC capabilities needs root and setpriv")
    (ledger,) = (provisioned_home / "entities").rglob("*_BOT_ledger.db")
    ledger.chmod(0)
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    for argv, code in ((["backup", "create"], 2), (["ledger", "verify"], 1)):
        done = subprocess.run(
            [*drop, sys.executable, "-m", "rigd_tbot", *argv, "--home", str(provisioned_home)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        said = done.stdout + done.stderr
        assert done.returncode == code and str(ledger) in said and "ermission denied" in said, (argv, said)
        assert "Internal error" not in said and "a SQLite database of the bot home failed" not in said
    ledger.chmod(0o600)


def test_config_set_on_a_full_disk_leaves_no_empty_version(
    tiny_mount: Path, provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config set` on a full disk exited 75 but left a 0-byte `env_bot.versioned/.env_bot.enc.<stamp>` that `config
    history` listed and `config rollback` failed on (a CLI review): a version is written whole or not at all."""
    home = tiny_mount / "home"
    shutil.copytree(provisioned_home, home, symlinks=True)
    versions = BotHome(home).versioned_env_dir
    before = sorted(versions.glob("*")) if versions.exists() else []
    filler = _fill(tiny_mount)
    try:
        code, err = run_cli(["config", "set", "--home", str(home), "MAX_OPEN_POSITIONS=3"], capsys)
    finally:
        filler.unlink()
    assert code == 75 and "Disk full" in err, err
    after = sorted(versions.glob("*")) if versions.exists() else []
    assert [p for p in after if p not in before and p.stat().st_size == 0] == []


def test_a_backup_on_a_full_disk_names_the_homes_file_not_its_temporary_copy(
    tiny_mount: Path, provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbot backup create` on a full disk said "Database error on /tmp/tmpXXXX/0.db: disk I/O error" with exit 2
    (a CLI review): the home's file and exit 75 (a full disk is transient)."""
    home = tiny_mount / "home"
    shutil.copytree(provisioned_home, home, symlinks=True)
    filler = _fill(tiny_mount)
    try:
        code, err = run_cli(["backup", "create", "--home", str(home)], capsys)
    finally:
        filler.unlink()
    assert code == 75 and "Disk full" in err and str(home) in err and "/tmp/tmp" not in err, err
