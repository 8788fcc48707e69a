"""Open each core database read-only and list its tables (`tbot db verify`, or run this module).

Usage: python -m tbot_bot.core.verify_all_core_databases [--home DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

from tbot_bot.core.databases import CORE_DATABASES, SCHEMA_VERSION
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import readonly_uri


def verify_all_core_databases(home: BotHome) -> dict[str, list[str]]:
    """Tables per core database. Raises ConfigError naming every missing or unreadable database."""
    tables: dict[str, list[str]] = {}
    problems: list[str] = []
    for name in CORE_DATABASES:
        path = home.core_db(name)
        if not path.is_file():
            problems.append(f"{name}: {path} is missing")
            continue
        try:
            con = sqlite3.connect(readonly_uri(path), uri=True)
            try:
                rows = con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                ).fetchall()
                version = con.execute("SELECT value FROM schema_meta WHERE key='schema_version'").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            problems.append(f"{name}: {path} cannot be read as SQLite ({exc})")
            continue
        if version is None or version[0] != SCHEMA_VERSION:
            problems.append(
                f"{name}: schema version {version[0] if version else None!r}, expected {SCHEMA_VERSION}"
            )
        tables[name] = [r[0] for r in rows]
    if problems:
        problems.append(f"run `tbot db init --home {home.root}` to create or complete them")
        raise ConfigError(problems, source="core databases")
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None)
    args = parser.parse_args(argv)
    try:
        result = verify_all_core_databases(BotHome.resolve(args.home))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    for name, names in result.items():
        print(f"{name}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
