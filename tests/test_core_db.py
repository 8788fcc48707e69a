"""Core system databases: idempotent creation, verification, and the `tbot db` / `tbot users` commands."""

from __future__ import annotations

import io
import sqlite3
import stat

import pytest

from rigd_tbot.cli import main
from tbot_bot.core import CORE_DATABASES, init_all_core_databases, verify_all_core_databases
from tbot_bot.core import users as users_mod
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

EXPECTED_TABLES = {
    "SYSTEM": ["schema_meta"],
    "SYSTEM_LOGS": ["schema_meta", "system_logs"],
    "SYSTEM_USERS": ["login_failures", "schema_meta", "session_generations", "system_users"],
    "LEDGER_STATUS": ["ledger_anchor", "ledger_status", "schema_meta"],
    "PASSWORD_RESET_TOKENS": ["password_reset_tokens", "schema_meta"],
    "USER_ACTIVITY_MONITORING": ["schema_meta", "user_activity"],
}


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


def test_init_creates_every_database_idempotently(tmp_path):
    home = BotHome(tmp_path)
    paths = init_all_core_databases(home)
    assert [p.name for p in paths] == [f"{n}.db" for n in CORE_DATABASES]
    assert all(p.parent == tmp_path / "storage" / "databases" for p in paths)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    users_mod.add_user(home, "alice", "a-long-password", "admin")
    assert init_all_core_databases(home) == paths  # second run keeps the data
    assert users_mod.get_user(home, "alice") is not None
    assert verify_all_core_databases(home) == EXPECTED_TABLES


def test_verify_names_missing_and_corrupt_databases(tmp_path):
    home = BotHome(tmp_path)
    with pytest.raises(ConfigError) as missing:
        verify_all_core_databases(home)
    assert all(name in missing.value.render() for name in CORE_DATABASES)
    init_all_core_databases(home)
    home.core_db("SYSTEM_LOGS").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="SYSTEM_LOGS"):
        verify_all_core_databases(home)


def test_users_password_hash_is_bcrypt_not_plaintext(tmp_path):
    home = BotHome(tmp_path)
    init_all_core_databases(home)
    users_mod.add_user(home, "bob", "plain-text-password", "viewer")
    con = sqlite3.connect(home.core_db("SYSTEM_USERS"))
    (stored,) = con.execute("SELECT password_hash FROM system_users").fetchone()
    con.close()
    assert stored.startswith("$2b$") and "plain-text-password" not in stored


def test_cli_db_init_and_verify(tmp_path, capsys):
    assert main(["db", "init", "--home", str(tmp_path)]) == 0
    assert "storage/databases/SYSTEM_USERS.db" in capsys.readouterr().out
    assert main(["db", "verify", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SYSTEM_USERS: login_failures, schema_meta, session_generations, system_users" in out
    assert out.count("\n") == len(CORE_DATABASES)


def test_cli_db_verify_before_init_exits_2_without_traceback(tmp_path, capsys):
    assert main(["db", "verify", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "tbot db init" in err and "Traceback" not in err


def test_cli_users_add_reads_password_from_stdin(tmp_path, monkeypatch, capsys):
    main(["db", "init", "--home", str(tmp_path)])
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    assert main(["users", "add", "--home", str(tmp_path), "--username", "ops", "--role", "operator"]) == 0
    assert "ops created with role operator" in capsys.readouterr().out
    login = users_mod.authenticate(
        BotHome(tmp_path), "ops", "a-good-password", now=utc_now(), attempt_limit=3, lockout_minutes=1
    )
    assert login.reason == "ok" and login.user is not None and login.user.role == "operator"
    assert main(["users", "list", "--home", str(tmp_path)]) == 0
    assert "ops" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv_extra", "password", "expected"),
    [
        (["--username", "x y", "--role", "viewer"], "a-good-password\n", "username"),
        (["--username", "ok", "--role", "superuser"], "a-good-password\n", "role 'superuser' is not allowed"),
        (["--username", "ok", "--role", "viewer"], "short\n", "at least 10 characters"),
        (["--username", "ok", "--role", "viewer"], "é" * 40 + "\n", "at most 72 bytes"),
    ],
)
def test_cli_users_add_refuses_bad_input_with_exit_2(
    tmp_path, monkeypatch, capsys, argv_extra, password, expected
):
    main(["db", "init", "--home", str(tmp_path)])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO(password))
    assert main(["users", "add", "--home", str(tmp_path), *argv_extra]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert users_mod.list_users(BotHome(tmp_path)) == []


def test_cli_users_add_duplicate_is_a_readable_error(tmp_path, monkeypatch, capsys):
    main(["db", "init", "--home", str(tmp_path)])
    for _ in range(2):
        monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
        code = main(["users", "add", "--home", str(tmp_path), "--username", "dup", "--role", "viewer"])
    assert code == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_users_add_without_db_tells_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
    assert main(["users", "add", "--home", str(tmp_path), "--username", "a1", "--role", "viewer"]) == 2
    assert "tbot db init" in capsys.readouterr().err


def test_init_scripts_run_standalone(tmp_path, capsys):
    from tbot_bot.core.scripts import init_system_users
    from tbot_bot.core.scripts._runner import run_init

    assert run_init("SYSTEM_USERS", init_system_users.init, ["--home", str(tmp_path)]) == 0
    assert (tmp_path / "storage" / "databases" / "SYSTEM_USERS.db").is_file()


def test_cli_users_add_prompts_twice_on_a_terminal(tmp_path, monkeypatch, capsys):
    main(["db", "init", "--home", str(tmp_path)])

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty(""))
    answers = iter(["terminal-password", "different-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["users", "add", "--home", str(tmp_path), "--username", "tty1", "--role", "viewer"]) == 2
    assert "differ" in capsys.readouterr().err
    answers = iter(["terminal-password", "terminal-password"])
    assert main(["users", "add", "--home", str(tmp_path), "--username", "tty1", "--role", "viewer"]) == 0


def test_cli_user_administration(tmp_path, monkeypatch, capsys):
    main(["db", "init", "--home", str(tmp_path)])
    for name, role in (("boss", "admin"), ("pat", "viewer")):
        monkeypatch.setattr("sys.stdin", io.StringIO("a-good-password\n"))
        main(["users", "add", "--home", str(tmp_path), "--username", name, "--role", role])
    home = ["--home", str(tmp_path)]
    assert main(["users", "set-role", *home, "--username", "pat", "--role", "auditor"]) == 0
    assert main(["users", "disable", *home, "--username", "pat"]) == 0
    assert main(["users", "set-role", *home, "--username", "boss", "--role", "viewer"]) == 2  # last admin
    capsys.readouterr()
    assert main(["users", "reset-token", *home, "--username", "pat"]) == 0
    assert "one-time reset token for pat" in capsys.readouterr().out
    user = users_mod.get_user(BotHome(tmp_path), "pat")
    assert user.role == "auditor" and user.is_active is False
