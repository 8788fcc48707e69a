"""One trade per ticker per UTC day, across all strategies. Persisted in SQLite under storage/state so the
block survives a supervisor restart after a crash.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tbot_bot.checks import REFUSED, CheckResult, cause_of
from tbot_bot.enhancements.base import FilterDecision
from tbot_bot.support.machine_faults import database_fault, is_file_fault, named_database_faults

if TYPE_CHECKING:
    from tbot_bot.domain.clock import Clock
    from tbot_bot.support.path_resolver import BotHome

NAME = "ticker_blocklist"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS traded (
    day TEXT NOT NULL,
    ticker TEXT NOT NULL,
    strategy TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (day, ticker)
);
"""


class TickerBlocklist:
    def __init__(self, db_path: Path, clock: Clock) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path
        self._clock = clock
        self._lock = threading.Lock()
        with named_database_faults(db_path):  # garbage, a full disk, a lock: named with the file
            self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    @classmethod
    def for_home(cls, home: BotHome, clock: Clock) -> TickerBlocklist:
        return cls(home.state_dir / "ticker_blocklist.db", clock)

    def close(self) -> None:
        self._db.close()

    def _today(self) -> str:
        return self._clock.now().date().isoformat()

    def check(self, ticker: str) -> FilterDecision:
        """Deny a ticker already traded today (by any strategy)."""
        with self._lock:
            row = self._db.execute(
                "SELECT strategy, client_order_id FROM traded WHERE day = ? AND ticker = ?",
                (self._today(), ticker.upper()),
            ).fetchone()
        if row:
            return FilterDecision.deny(
                NAME,
                f"{ticker.upper()} already traded today by {row[0]}",
                ticker=ticker.upper(),
                strategy=row[0],
                client_order_id=row[1],
            )
        return FilterDecision.allow(NAME, f"{ticker.upper()} not traded today", ticker=ticker.upper())

    def record(self, ticker: str, strategy: str, client_order_id: str = "") -> bool:
        """Mark a ticker as traded today; False if it already was (the first record is kept)."""
        now = self._clock.now()
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO traded (day, ticker, strategy, client_order_id, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (now.date().isoformat(), ticker.upper(), strategy, client_order_id, now.isoformat()),
            )
            return cur.rowcount == 1

    def self_check(self) -> CheckResult:
        context = {"db": str(self.db_path)}
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
                self._db.execute("SELECT COUNT(*) FROM traded").fetchone()
        except sqlite3.Error as exc:
            # a full disk or a lock passes (75); a damaged file is a person's to restore (2)
            fault = database_fault(exc, self.db_path) if is_file_fault(exc) else None
            cause = cause_of(fault) if fault is not None else REFUSED
            return CheckResult(False, f"ticker blocklist store not usable: {fault or exc}", context, cause)
        return CheckResult(True, "ok", context)
