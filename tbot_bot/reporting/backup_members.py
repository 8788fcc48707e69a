"""What a backup archive holds: everything needed to continue a bot elsewhere, except its keys and identity.

Members, in the order they are copied (ledgers first, so any fill a ledger holds is already in the journal copied
after it; the journal's recovery re-ingests the other way round idempotently):
  1. the injected ledger, float ledger and COA (SQLite online backup);
  2. every other SQLite database of the home (order journal, simulated exchange, core databases) — online backup;
  3. the configuration (`.env`, `.env_bot.enc` and `env_bot.versioned/`), the encrypted ones stored decrypted
     (kind `config`) so that the backup key alone recovers them; restore re-encrypts them with the home's env key;
  4. plain files: `output/`, `logs/`, `storage/state/`, `entities/` (except the pre-batch ledger copies), the
     universe and the data caches under `data/`.
Never archived: `storage/keys/` and `storage/secrets/` (keys, credentials, identity and injection come back from
the key backup and the accounting system), `backups/`, `control/` (requests), research data (`backtest_results/`,
the bar store `data/bars/`, recorded bars `data/cache/bars/`, the optimizer's `data/cache/prepared/` and
`data/cache/optuna/`: imported or fetched again, rebuilt on the next run), SQLite `-wal`/`-shm`/`-journal` side
files (the online copy already holds their content) and atomic-write debris.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tbot_bot.errors import TbotError
from tbot_bot.support.machine_faults import (
    database_fault,
    is_damage,
    is_file_fault,
    source_side_fault,
    unreadable,
)
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import is_atomic_temp, readonly_uri

SQLITE_MAGIC = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm", "-journal")
# home-relative folders whose files a restored bot continues from
ARCHIVED_DIRS = (
    "entities",
    "storage/databases",
    "storage/state",
    "env_bot.versioned",
    "output",
    "logs",
    "data",
    "optimizer",  # the scheduled studies' search spaces (optimizer/space_<strategy>.toml): operator configuration
)
CONFIG_FILES = (".env", ".env_bot.enc", ".env_bot")
# data/cache/bars: minute bars recorded for the after-session optimizer, research data that grows by the day and
# `tbot data fetch` gets again; an archive is built in memory, so they would dominate it. data/bars: the bar store
# (tbot data import / fetch), research data re-imported from its sources. data/cache/prepared and
# data/cache/optuna: the optimizer's study preparations (a hundred megabytes each) and its empty study file,
# rebuilt by the next study. storage/state/alert_outbox: alerts not yet delivered by the processes of this
# machine (trading/notifier_bot.py Outbox), never re-sent from an archive days later by another
NEVER_ARCHIVED = (
    "storage/state/alert_outbox",
    "storage/keys",
    "storage/secrets",
    "backups",
    "control",
    "backtest_results",
    "data/cache/bars",
    "data/bars",
    "data/cache/prepared",
    "data/cache/optuna",
)
# a restore's own progress marker (BotHome.restore_marker) describes this home, never the archived bot
RESTORE_MARKER_NAME = "storage/state/restore_in_progress.json"


@dataclass(frozen=True, slots=True)
class Member:
    name: str  # home-relative POSIX path
    data: bytes
    kind: str  # sqlite | config (decrypted; re-encrypted on restore) | file


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


LOCKED_WAIT_S = 30.0  # how long a backup waits for a database another process holds locked


def sqlite_snapshot(source: Path, tmp_dir: Path) -> bytes:
    """A consistent copy of a live SQLite database (online backup API from a read-only connection)."""
    copy = tmp_dir / f"{len(list(tmp_dir.iterdir()))}.db"
    src = dst = None
    try:
        # opened inside: a source this user may not read fails here, at the connect, and is named below
        src = sqlite3.connect(readonly_uri(source), uri=True, timeout=LOCKED_WAIT_S)
        dst = sqlite3.connect(copy)
        # sqlite3's backup retries a busy or locked source for ever: a writer holding it past the wait fails the
        # backup by name (it hung the daily backup service with no word)
        deadline = time.monotonic() + LOCKED_WAIT_S

        def give_up_when_held(status: int, remaining: int, total: int) -> None:
            if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked")

        src.backup(dst, progress=give_up_when_held)
        dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.DatabaseError as exc:  # the copy's disk full, the source damaged or locked: named
        if not is_file_fault(exc):
            raise
        # a damaged or locked source is the source's fault, and so is a home that cannot take the -shm a read of a
        # WAL database writes beside it (read-only, full): the home's file is named, not the temporary copy
        own = (
            any(w in str(exc).lower() for w in ("not a database", "malformed", "encrypted", "locked"))
            or unreadable(source) is not None
            or source_side_fault(source)
        )
        raise database_fault(exc, source if own else copy) from exc
    finally:
        for conn in (dst, src):
            if conn is not None:
                conn.close()
    data = copy.read_bytes()
    copy.unlink()
    return data


def _excluded(name: str, injected_backup_dirs: Sequence[str]) -> bool:
    if name == RESTORE_MARKER_NAME or any(name == d or name.startswith(d + "/") for d in NEVER_ARCHIVED):
        return True
    # the writer's pre-batch ledger copies: a restore starts a fresh series (the anchor sidecar is rewritten)
    if any(name.startswith(d + "/") for d in injected_backup_dirs):
        return True
    parts = name.split("/")
    return len(parts) >= 3 and parts[0] == "entities" and parts[2] == "backups"


def _candidates(home: BotHome) -> Iterable[Path]:
    for name in CONFIG_FILES:
        path = home.root / name
        if path.is_file():
            yield path
    for folder in ARCHIVED_DIRS:
        root = home.root / folder
        if root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())


def config_plaintext(home: BotHome, path: Path) -> bytes | None:
    """The decrypted config (`.env_bot.enc`, a versioned copy), or None when it is not env-key encrypted
    or cannot be read with this home's env key (then it is archived as it is)."""
    from tbot_bot.config.security_bot import HEADER_PREFIX, decrypt_file
    from tbot_bot.errors import ConfigError

    if path != home.env_bot_enc and path.parent != home.versioned_env_dir:
        return None
    with path.open("rb") as fh:
        if fh.read(len(HEADER_PREFIX)) != HEADER_PREFIX:
            return None
    try:
        return decrypt_file(path, home.key_file("env"))
    except ConfigError:
        return None


def _database(home: BotHome, path: Path, tmp_dir: Path, as_is: bool) -> Member:
    """A database's member: its online-backup snapshot; with `as_is`, a file that is no SQLite database any more
    (damaged, truncated) is taken as its bytes (kind "file"), as it is."""
    name = home.relative(path)
    try:
        return Member(name, sqlite_snapshot(path, tmp_dir), "sqlite")
    except TbotError as exc:
        cause = exc.__cause__
        if not (as_is and isinstance(cause, sqlite3.Error) and is_damage(cause)):
            raise
        return Member(name, path.read_bytes(), "file")


def collect_members(
    home: BotHome,
    ledger_files: Sequence[Path],
    tmp_dir: Path,
    injected_backup_dirs: Sequence[Path] = (),
    *,
    as_is: bool = False,
) -> list[Member]:
    """Every member of a whole-bot archive, ledgers first (see the module docstring). `as_is`: a damaged database
    is archived as its bytes (the safety archive of a restore, which may be its repair), else it is refused."""
    members: dict[str, Member] = {}
    for ledger in ledger_files:
        member = _database(home, ledger, tmp_dir, as_is)
        members[member.name] = member
    skip_dirs = [home.relative(d) for d in injected_backup_dirs if d.resolve().is_relative_to(home.root)]
    files: list[Path] = []
    for path in _candidates(home):
        name = home.relative(path)
        if name in members or _excluded(name, skip_dirs) or path.is_symlink() or is_atomic_temp(path):
            continue
        if path.name.endswith(SIDE_FILES) or path.name.endswith(".lock"):
            continue
        if is_sqlite(path):
            members[name] = _database(home, path, tmp_dir, as_is)
        else:
            files.append(path)
    for path in files:
        name = home.relative(path)
        plain = config_plaintext(home, path)
        try:
            data = plain if plain is not None else path.read_bytes()
        except FileNotFoundError:
            continue  # removed while we were copying (a rotated log, a replaced temp): not part of the snapshot
        members[name] = Member(name, data, "config" if plain is not None else "file")
    return list(members.values())
