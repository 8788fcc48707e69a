"""Login lockout per (name, client) and per-user session generations, both in SYSTEM_USERS.db.

Lockout: LOGIN_ATTEMPT_LIMIT failed sign-ins for one name from one client lock that pair for
LOGIN_LOCKOUT_MINUTES, doubling with each further lockout of the pair (capped at a day) until a success. Other
clients are never affected, so guessing from one address cannot lock the admin out. Names are stored as a
keyed hash, never as typed (a password typed into the name box must not land on disk).

Sessions: a dashboard session records the user's generation at sign-in; logout, a password or role change and
disabling bump it, so every session of that user ends on its next request.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from tbot_bot.core.databases import connect
from tbot_bot.support.path_resolver import BotHome

DB = "SYSTEM_USERS"
MAX_LOCKOUT = timedelta(hours=24)

_TABLES = """
CREATE TABLE IF NOT EXISTS login_failures (
    name_key TEXT NOT NULL, client TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
    lockouts INTEGER NOT NULL DEFAULT 0, locked_until TEXT, last_attempt_at TEXT NOT NULL,
    PRIMARY KEY (name_key, client));
CREATE TABLE IF NOT EXISTS session_generations (
    username TEXT PRIMARY KEY COLLATE NOCASE, generation INTEGER NOT NULL DEFAULT 0);
"""


def _ensure_tables(con: sqlite3.Connection) -> None:
    # homes created before these tables existed get them on first write
    con.executescript(_TABLES)


def name_key(name: str) -> str:
    """A short, stable hash of a typed name (case-folded), for storage and for logs of unknown names."""
    return hashlib.sha256(b"tbot-login:" + name.strip().lower().encode("utf-8", "replace")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class FailureState:
    failures: int
    lockouts: int
    locked_until: datetime | None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def failure_state(home: BotHome, name: str, client: str) -> FailureState:
    try:
        with connect(home, DB, readonly=True) as con:
            row = con.execute(
                "SELECT failures, lockouts, locked_until FROM login_failures WHERE name_key = ? AND client = ?",
                (name_key(name), client),
            ).fetchone()
    except sqlite3.OperationalError:
        row = None  # the table does not exist yet: no failures recorded
    if row is None:
        return FailureState(0, 0, None)
    locked = row["locked_until"]
    return FailureState(row["failures"], row["lockouts"], datetime.fromisoformat(locked) if locked else None)


def locked_clients(home: BotHome, name: str, now: datetime) -> list[tuple[str, datetime]]:
    """(client, locked until) of every client the name is locked out from now: what an admin is shown."""
    try:
        with connect(home, DB, readonly=True) as con:
            rows = con.execute(
                "SELECT client, locked_until FROM login_failures WHERE name_key = ? AND locked_until IS NOT NULL",
                (name_key(name),),
            ).fetchall()
    except sqlite3.OperationalError:
        return []  # the table does not exist yet: nobody was ever locked out
    held = [(str(r["client"]), datetime.fromisoformat(r["locked_until"])) for r in rows]
    return sorted((c, until) for c, until in held if now < until)


def record_attempt(
    home: BotHome,
    name: str,
    client: str,
    *,
    failed: bool,
    now: datetime,
    attempt_limit: int,
    lockout_minutes: int,
) -> bool:
    """Record one attempt of a pair that is not locked; True when this failure locks the pair now."""
    state = failure_state(home, name, client)
    key = name_key(name)
    with connect(home, DB) as con:
        _ensure_tables(con)
        if not failed:
            con.execute("DELETE FROM login_failures WHERE name_key = ? AND client = ?", (key, client))
            return False
        failures, lockouts, locked_until = state.failures + 1, state.lockouts, None
        if failures >= attempt_limit:
            lockouts += 1
            # each further lockout of the same pair lasts twice as long (LOGIN_LOCKOUT_MINUTES, then x2, x4...)
            span = min(timedelta(minutes=lockout_minutes) * 2 ** min(lockouts - 1, 16), MAX_LOCKOUT)
            locked_until = (now + span).isoformat()
            failures = 0
        con.execute(
            "INSERT INTO login_failures (name_key, client, failures, lockouts, locked_until, last_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name_key, client) DO UPDATE SET failures = excluded.failures,"
            " lockouts = excluded.lockouts, locked_until = excluded.locked_until,"
            " last_attempt_at = excluded.last_attempt_at",
            (key, client, failures, lockouts, locked_until, now.isoformat()),
        )
    return locked_until is not None


def clear_failures(home: BotHome, name: str) -> int:
    """Lift every lockout and failure count of a name (all clients); the number of client entries cleared."""
    with connect(home, DB) as con:
        _ensure_tables(con)
        cur = con.execute("DELETE FROM login_failures WHERE name_key = ?", (name_key(name),))
    return int(cur.rowcount)


def touch_locked(home: BotHome, name: str, client: str, *, now: datetime) -> None:
    """A refused attempt of a locked pair: the same database write as a failure, so timing reveals nothing."""
    with connect(home, DB) as con:
        _ensure_tables(con)
        con.execute(
            "UPDATE login_failures SET last_attempt_at = ? WHERE name_key = ? AND client = ?",
            (now.isoformat(), name_key(name), client),
        )


def session_generation(home: BotHome, username: str) -> int:
    try:
        with connect(home, DB, readonly=True) as con:
            row = con.execute(
                "SELECT generation FROM session_generations WHERE username = ?", (username,)
            ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def end_all_sessions(home: BotHome, username: str) -> int:
    """Bump the user's generation: every existing dashboard session of the user ends. Returns the new one."""
    with connect(home, DB) as con:
        _ensure_tables(con)
        con.execute(
            "INSERT INTO session_generations (username, generation) VALUES (?, 1)"
            " ON CONFLICT (username) DO UPDATE SET generation = generation + 1",
            (username,),
        )
        row = con.execute(
            "SELECT generation FROM session_generations WHERE username = ?", (username,)
        ).fetchone()
    return int(row[0])
