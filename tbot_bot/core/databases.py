"""The six core system databases (not ledgers): where they live, their schemas, idempotent creation.

Each database is `<home>/storage/databases/NAME.db` (BotHome.core_db) built from `core/schemas/*.sql`.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tbot_bot.errors import ConfigError
from tbot_bot.support.machine_faults import named_database_faults
from tbot_bot.support.path_resolver import BotHome, package_file
from tbot_bot.support.utils_bot import readonly_uri, utc_now

SCHEMA_VERSION = "1"

# name -> schema file under tbot_bot/core/schemas/
CORE_DATABASES: dict[str, str] = {
    "SYSTEM": "system_schema.sql",
    "SYSTEM_LOGS": "system_logs_schema.sql",
    "SYSTEM_USERS": "system_users_schema.sql",
    "LEDGER_STATUS": "ledger_status_schema.sql",
    "PASSWORD_RESET_TOKENS": "password_reset_schema.sql",
    "USER_ACTIVITY_MONITORING": "user_activity_monitoring_schema.sql",
}


def schema_sql(name: str) -> str:
    if name not in CORE_DATABASES:
        raise ConfigError(f"{name!r} is not a core database; known: {', '.join(CORE_DATABASES)}")
    return package_file("core", "schemas", CORE_DATABASES[name]).read_text(encoding="utf-8")


def init_core_database(home: BotHome, name: str) -> Path:
    """Create (or complete) one core database; safe to run any number of times."""
    sql = schema_sql(name)
    path = home.core_db(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # user hashes and audit trails: owner-only, like the key files (group and other bits removed; the owner's are
    # left as they are: a folder made read-only stays so, and the write below says why it fails)
    os.chmod(path.parent, stat.S_IMODE(path.parent.stat().st_mode) & ~0o077)
    con = sqlite3.connect(path)
    try:
        with con:
            con.executescript(sql)
            con.execute(
                "INSERT OR IGNORE INTO schema_meta (key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
            con.execute(
                "INSERT OR IGNORE INTO schema_meta (key, value) VALUES ('created_at', ?)",
                (utc_now().isoformat(),),
            )
    finally:
        con.close()
    os.chmod(path, 0o600)
    return path


def init_all_core_databases(home: BotHome) -> list[Path]:
    """Create every core database under the home (idempotent); returns their paths in a fixed order."""
    return [init_core_database(home, name) for name in CORE_DATABASES]


@contextmanager
def connect(home: BotHome, name: str, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to one core database; commits on success. Missing database -> ConfigError."""
    if name not in CORE_DATABASES:
        raise ConfigError(f"{name!r} is not a core database; known: {', '.join(CORE_DATABASES)}")
    path = home.core_db(name)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; run `tbot db init --home {home.root}` first")
    uri = readonly_uri(path) if readonly else path.resolve().as_uri()
    with named_database_faults(path):
        con = sqlite3.connect(uri, uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        with named_database_faults(path), con:  # garbage, a full disk, a read-only home: named with the file
            yield con
    finally:
        con.close()
