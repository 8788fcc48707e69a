"""Dashboard users in SYSTEM_USERS.db: bcrypt hashes, roles, login lockout.

bcrypt 5 refuses passwords over 72 bytes instead of truncating them, so length is checked first and the
user gets a readable ConfigError rather than a ValueError from bcrypt.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import bcrypt

from tbot_bot.core import login_guard
from tbot_bot.core.databases import connect
from tbot_bot.errors import ConfigError, UsageError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

DB = "SYSTEM_USERS"
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_BYTES = 72  # bcrypt's hard limit
BCRYPT_ROUNDS = 12  # tests lower this; stored hashes carry their own cost
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,31}$")


class Role(StrEnum):
    VIEWER = "viewer"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    ADMIN = "admin"


# each role can do everything the roles below it can
ROLE_RANK: dict[Role, int] = {Role.VIEWER: 0, Role.AUDITOR: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


def role_at_least(role: Role, minimum: Role) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    is_active: bool
    failed_attempts: int
    locked_until: datetime | None
    password_changed_at: str
    last_login_at: str | None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


@dataclass(frozen=True, slots=True)
class LoginResult:
    """Outcome of one login attempt. `reason` is for logs only; never show it to the person logging in."""

    user: User | None
    reason: str  # ok, unknown_user, bad_password, locked, inactive
    locked_now: bool = False


def parse_role(role: str) -> Role:
    try:
        return Role(role.strip().lower())
    except ValueError:
        raise UsageError(
            f"role {role!r} is not allowed; use one of {', '.join(r.value for r in Role)}"
        ) from None


def validate_username(username: str) -> str:
    name = username.strip()
    if not _USERNAME.match(name):
        raise UsageError(
            f"username {username!r} is not allowed: 2-32 characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def password_problems(password: str, username: str | None = None) -> list[str]:
    """Every reason a password is refused (empty list when it is acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_CHARS:
        problems.append(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        problems.append(f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)")
    if username and password.strip().lower() == username.strip().lower():
        problems.append("password must not equal the username")
    return problems


def validate_password(password: str, username: str | None = None) -> None:
    problems = password_problems(password, username)
    if problems:
        raise UsageError(problems)


def hash_password(password: str) -> str:
    validate_password(password)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode("ascii")


def _check_hash(password: str, password_hash: str) -> bool:
    raw = password.encode("utf-8")
    if len(raw) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except ValueError:
        return False


_dummy_hash: str | None = None


def _burn_time(password: str) -> None:
    """Spend one bcrypt check on unknown users so response time does not reveal which names exist."""
    global _dummy_hash
    # the dummy costs what a stored hash costs now (the cost is the 2 digits after "$2b$")
    if _dummy_hash is None or int(_dummy_hash[4:6]) != BCRYPT_ROUNDS:
        _dummy_hash = bcrypt.hashpw(b"not-a-real-password", bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
    _check_hash(password, _dummy_hash)


def _row_to_user(row: sqlite3.Row) -> User:
    locked = row["locked_until"]
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        is_active=bool(row["is_active"]),
        failed_attempts=row["failed_attempts"],
        locked_until=datetime.fromisoformat(locked) if locked else None,
        password_changed_at=row["password_changed_at"],
        last_login_at=row["last_login_at"],
    )


def get_user(home: BotHome, username: str) -> User | None:
    with connect(home, DB, readonly=True) as con:
        row = con.execute("SELECT * FROM system_users WHERE username = ?", (username.strip(),)).fetchone()
    return _row_to_user(row) if row else None


def get_user_for_session(home: BotHome, username: str) -> tuple[User | None, int]:
    """The user and their session generation in one query (the dashboard asks on every request)."""
    with connect(home, DB, readonly=True) as con:
        try:
            row = con.execute(
                "SELECT u.*, COALESCE(g.generation, 0) AS session_generation FROM system_users u"
                " LEFT JOIN session_generations g ON g.username = u.username WHERE u.username = ?",
                (username.strip(),),
            ).fetchone()
        except sqlite3.OperationalError:  # a home created before session generations existed
            row = con.execute(
                "SELECT *, 0 AS session_generation FROM system_users WHERE username = ?", (username.strip(),)
            ).fetchone()
    return (_row_to_user(row), int(row["session_generation"])) if row else (None, 0)


def list_users(home: BotHome) -> list[User]:
    with connect(home, DB, readonly=True) as con:
        rows = con.execute("SELECT * FROM system_users ORDER BY username COLLATE NOCASE").fetchall()
    return [_row_to_user(r) for r in rows]


def add_user(
    home: BotHome,
    username: str,
    password: str,
    role: str | Role,
    *,
    created_by: str = "cli",
    now: datetime | None = None,
) -> User:
    """Create a user; every problem with the input is reported at once as a ConfigError."""
    problems: list[str] = []
    name = username
    try:
        name = validate_username(username)
    except ConfigError as exc:
        problems += exc.problems
    try:
        parsed_role = parse_role(str(role))
    except ConfigError as exc:
        problems += exc.problems
    problems += password_problems(password, name)
    if problems:
        raise UsageError(problems)
    stamp = (now or utc_now()).isoformat()
    password_hash = hash_password(password)
    try:
        with connect(home, DB) as con:
            con.execute(
                "INSERT INTO system_users (username, password_hash, role, password_changed_at, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, password_hash, parsed_role.value, stamp, stamp, created_by),
            )
    except sqlite3.IntegrityError:
        raise UsageError(f"user {name!r} already exists") from None
    user = get_user(home, name)
    if user is None:  # pragma: no cover - just inserted
        raise ConfigError(f"user {name!r} could not be created")
    return user


def _require(home: BotHome, username: str) -> User:
    user = get_user(home, username)
    if user is None:
        raise UsageError(f"no user named {username!r}")
    return user


def _other_active_admins(con: sqlite3.Connection, username: str) -> int:
    row = con.execute(
        "SELECT COUNT(*) FROM system_users WHERE role = 'admin' AND is_active = 1 AND username <> ?",
        (username,),
    ).fetchone()
    return int(row[0])


def set_role(home: BotHome, username: str, role: str | Role) -> User:
    user = _require(home, username)
    new_role = parse_role(str(role))
    with connect(home, DB) as con:
        if (
            user.role is Role.ADMIN
            and new_role is not Role.ADMIN
            and _other_active_admins(con, user.username) == 0
        ):
            raise UsageError(f"{user.username} is the last active admin; make another admin first")
        con.execute("UPDATE system_users SET role = ? WHERE id = ?", (new_role.value, user.id))
    if new_role is not user.role:
        login_guard.end_all_sessions(home, user.username)
    return _require(home, username)


def set_active(home: BotHome, username: str, active: bool) -> User:
    user = _require(home, username)
    with connect(home, DB) as con:
        if not active and user.role is Role.ADMIN and _other_active_admins(con, user.username) == 0:
            raise UsageError(f"{user.username} is the last active admin; it cannot be disabled")
        con.execute("UPDATE system_users SET is_active = ? WHERE id = ?", (int(active), user.id))
    if not active:
        login_guard.end_all_sessions(home, user.username)
    return _require(home, username)


def set_password(home: BotHome, username: str, password: str, *, now: datetime | None = None) -> User:
    """Replace the password; clears any lockout. Existing dashboard sessions of the user become invalid."""
    user = _require(home, username)
    validate_password(password, user.username)
    stamp = (now or utc_now()).isoformat()
    with connect(home, DB) as con:
        con.execute(
            "UPDATE system_users SET password_hash = ?, password_changed_at = ?, failed_attempts = 0,"
            " locked_until = NULL WHERE id = ?",
            (hash_password(password), stamp, user.id),
        )
    login_guard.end_all_sessions(home, user.username)
    return _require(home, username)


def authenticate(
    home: BotHome,
    username: str,
    password: str,
    *,
    now: datetime,
    attempt_limit: int,
    lockout_minutes: int,
    client: str = "-",
) -> LoginResult:
    """One login attempt with lockout per (name, client): `attempt_limit` consecutive failures of one name from
    one client lock that pair for `lockout_minutes` (doubling on each further lockout); a locked pair refuses
    even the right password until the lock expires. Every path does one bcrypt check and one database write,
    so the time taken does not tell a locked, unknown or wrong-password attempt apart."""
    name = username.strip()
    with connect(home, DB, readonly=True) as con:
        row = con.execute("SELECT * FROM system_users WHERE username = ?", (name,)).fetchone()
    if row is None:
        _burn_time(password)
        password_ok = False
    else:
        password_ok = _check_hash(password, row["password_hash"])
    user = _row_to_user(row) if row is not None else None
    if login_guard.failure_state(home, name, client).locked_at(now):
        login_guard.touch_locked(home, name, client, now=now)
        return LoginResult(user, "locked")
    locked_now = login_guard.record_attempt(
        home,
        name,
        client,
        failed=not password_ok,
        now=now,
        attempt_limit=attempt_limit,
        lockout_minutes=lockout_minutes,
    )
    if user is None:
        return LoginResult(None, "unknown_user", locked_now=locked_now)
    if not password_ok:
        return LoginResult(user, "bad_password", locked_now=locked_now)
    if not user.is_active:
        return LoginResult(user, "inactive")
    with connect(home, DB) as con:
        con.execute(
            "UPDATE system_users SET failed_attempts = 0, locked_until = NULL, last_login_at = ? WHERE id = ?",
            (now.isoformat(), user.id),
        )
    return LoginResult(_require(home, name), "ok")
