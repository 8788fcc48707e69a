"""Users API: bcrypt hashing with length checks, roles, lockout, last-admin guard, reset tokens."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from tbot_bot.core import init_all_core_databases
from tbot_bot.core import users as users_mod
from tbot_bot.core.reset_tokens import issue_reset_token, redeem_reset_token
from tbot_bot.core.users import LoginResult, Role, add_user, authenticate, set_active, set_role
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

T0 = datetime(2011, 1, 18, 15, 0, tzinfo=UTC)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    h = BotHome(tmp_path)
    init_all_core_databases(h)
    return h


def sign_in(home: BotHome, username: str, password: str) -> LoginResult:
    return authenticate(home, username, password, now=T0, attempt_limit=5, lockout_minutes=15)


def test_sign_in_checks_the_password(home):
    add_user(home, "Alice", "a-long-password", Role.ADMIN)
    ok = sign_in(home, "alice", "a-long-password")
    assert ok.reason == "ok" and ok.user.username == "Alice"  # names are case-insensitive
    assert sign_in(home, "alice", "wrong-password").reason == "bad_password"
    assert sign_in(home, "nobody", "a-long-password").reason == "unknown_user"


def test_password_limits_checked_before_bcrypt(home):
    with pytest.raises(ConfigError, match="at most 72 bytes"):
        add_user(home, "u1", "x" * 73, "viewer")
    add_user(home, "u2", "x" * 72, "viewer")  # exactly the limit is fine
    assert sign_in(home, "u2", "x" * 72).reason == "ok"
    assert sign_in(home, "u2", "x" * 73).reason == "bad_password"  # never a ValueError from bcrypt 5
    with pytest.raises(ConfigError) as many:
        add_user(home, "bad name!", "short", "root")
    assert len(many.value.problems) == 3  # username, role and password reported together
    with pytest.raises(ConfigError, match="must not equal the username"):
        add_user(home, "samesame12", "samesame12", "viewer")


def test_lockout_after_limit_and_expiry(home):
    add_user(home, "op", "a-long-password", "operator")
    kwargs = {"attempt_limit": 3, "lockout_minutes": 15}
    results = [authenticate(home, "op", "bad-password", now=T0, **kwargs) for _ in range(3)]
    assert [r.locked_now for r in results] == [False, False, True]
    locked = authenticate(home, "op", "a-long-password", now=T0 + timedelta(minutes=14), **kwargs)
    assert locked.reason == "locked"
    ok = authenticate(home, "op", "a-long-password", now=T0 + timedelta(minutes=15, seconds=1), **kwargs)
    assert ok.reason == "ok" and ok.user.failed_attempts == 0 and ok.user.last_login_at


def test_success_resets_failure_count(home):
    add_user(home, "op", "a-long-password", "operator")
    kwargs = {"attempt_limit": 3, "lockout_minutes": 15}
    for _ in range(2):
        authenticate(home, "op", "bad-password", now=T0, **kwargs)
    assert authenticate(home, "op", "a-long-password", now=T0, **kwargs).reason == "ok"
    for _ in range(2):
        assert authenticate(home, "op", "bad-password", now=T0, **kwargs).locked_now is False


def test_inactive_user_cannot_sign_in(home):
    add_user(home, "ad", "a-long-password", "admin")
    add_user(home, "vw", "a-long-password", "viewer")
    set_active(home, "vw", False)
    assert (
        authenticate(home, "vw", "a-long-password", now=T0, attempt_limit=3, lockout_minutes=1).reason
        == "inactive"
    )


def test_last_admin_cannot_be_demoted_or_disabled(home):
    add_user(home, "root1", "a-long-password", "admin")
    with pytest.raises(ConfigError, match="last active admin"):
        set_role(home, "root1", "viewer")
    with pytest.raises(ConfigError, match="last active admin"):
        set_active(home, "root1", False)
    add_user(home, "root2", "a-long-password", "admin")
    assert set_role(home, "root1", "viewer").role is Role.VIEWER


def test_reset_token_is_single_use_hashed_and_expires(home):
    add_user(home, "vw", "a-long-password", "viewer")
    token = issue_reset_token(home, "vw", issued_by="admin", now=T0)
    con = sqlite3.connect(home.core_db("PASSWORD_RESET_TOKENS"))
    stored = [r[0] for r in con.execute("SELECT token_hash FROM password_reset_tokens")]
    con.close()
    assert token not in stored and len(stored[0]) == 64
    with pytest.raises(ConfigError, match="at least 10"):
        redeem_reset_token(home, token, "short", now=T0)
    assert redeem_reset_token(home, token, "a-brand-new-pass", now=T0) == "vw"
    assert sign_in(home, "vw", "a-brand-new-pass").reason == "ok"
    with pytest.raises(ConfigError, match="not valid"):
        redeem_reset_token(home, token, "another-new-pass", now=T0)
    late = issue_reset_token(home, "vw", issued_by="admin", now=T0)
    with pytest.raises(ConfigError, match="not valid"):
        redeem_reset_token(home, late, "another-new-pass", now=T0 + timedelta(hours=25))


def test_new_token_revokes_the_previous_one(home):
    add_user(home, "vw", "a-long-password", "viewer")
    first = issue_reset_token(home, "vw", issued_by="admin", now=T0)
    issue_reset_token(home, "vw", issued_by="admin", now=T0)
    with pytest.raises(ConfigError):
        redeem_reset_token(home, first, "a-brand-new-pass", now=T0)
