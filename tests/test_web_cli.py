"""`tbot web` start-up: waitress, readable config errors, the session key file, and the import boundary."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest
from fixtures_web import build_home

from rigd_tbot.cli import main
from tbot_bot.core import users as users_mod
from tbot_web.py import web_config

WEB_ROOT = Path(__file__).resolve().parents[1] / "tbot_web"
ALLOWED = (
    "tbot_bot.config",
    "tbot_bot.core",
    "tbot_bot.support",
    "tbot_bot.errors",
    "tbot_bot.domain",  # the shared vocabulary and the one PnL/win/cents rule (no trading logic)
    "tbot_bot.accounting.accounting_config",
    "tbot_bot.accounting.ledger_read",  # the trial balance and latest transactions (read-only queries)
    "tbot_bot.reporting.log_rotation",  # the web logs rotate like the bot's (a file utility, no trading logic)
    "tbot_bot.runtime.control",  # the control-file protocol (stop/confirm rules shared with the CLI)
    "tbot_bot.runtime.status_bot",  # status.json's shape and the condition lines people read (no trading logic)
    "tbot_bot.optimizer.proposals",  # the proposal store (config files only; no optimizer or Optuna import)
    "tbot_bot.optimizer.evidence",  # the verdict's text and number format (pure; no optimizer or Optuna import)
    "tbot_bot.accounting.ledger_correction",  # an admin's ledger correction (the CLI's door; no trading logic)
    "tbot_bot.reporting.trade_history",  # the trade history's file form (its net column; no trading logic)
    "tbot_bot.accounting.float_ledger",  # the home's float (read-only) that an approval compares a study's with
)


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


def test_web_never_imports_trading_logic():
    offenders = []
    for path in WEB_ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.startswith("tbot_bot") and not n.startswith(ALLOWED)
            ]
    assert offenders == []


def test_tbot_web_serves_with_waitress(tmp_path, monkeypatch):
    home = build_home(tmp_path / "home")
    calls = {}
    import waitress

    monkeypatch.setattr(waitress, "serve", lambda app, **kw: calls.update(kw, app=app))
    assert main(["web", "--home", str(home.root), "--host", "127.0.0.1", "--port", "8099"]) == 0
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8099
    assert calls["app"].config["SESSION_COOKIE_HTTPONLY"] is True


def test_bad_env_limit_is_a_readable_error(tmp_path, capsys):
    home = build_home(tmp_path / "home", env="LOGIN_ATTEMPT_LIMIT=lots\n")
    assert main(["web", "--home", str(home.root)]) == 2
    err = capsys.readouterr().err
    assert "LOGIN_ATTEMPT_LIMIT='lots'" in err and "Traceback" not in err


def test_env_defaults_when_keys_absent(tmp_path):
    home = build_home(tmp_path / "home", env="ENVIRONMENT=development\n")
    limits = web_config.load_web_limits(home)
    assert (limits.login_attempt_limit, limits.login_lockout_minutes, limits.session_timeout_minutes) == (
        10,
        15,
        120,
    )


def test_session_key_created_private_and_loose_key_refused(tmp_path):
    home = build_home(tmp_path / "home")
    secret = web_config.session_secret(home)
    key = home.key_file("login")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert web_config.session_secret(home) == secret  # stable across restarts
    assert key.read_bytes() not in secret
    os.chmod(key, 0o644)
    with pytest.raises(Exception, match="readable by group or others"):
        web_config.session_secret(home)


def test_the_proposals_module_the_web_uses_imports_no_optimizer_or_trading_code():
    import tbot_bot.optimizer.proposals as proposals_mod

    tree = ast.parse(Path(proposals_mod.__file__).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    inside = {m for m in modules if m.startswith("tbot_bot")}
    assert inside and all(
        m.startswith(("tbot_bot.config", "tbot_bot.errors", "tbot_bot.support")) for m in inside
    )
