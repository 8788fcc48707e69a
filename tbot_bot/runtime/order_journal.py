"""The order journal: every order intent is written durably BEFORE it is sent (DESIGN §8).

SQLite under `storage/state/journal.db` (WAL, synchronous=FULL). Client order ids are deterministic
(bot, date, strategy, ticker, sequence), so a restarted supervisor that reaches the same decision finds the
intent it already recorded and never sends a second order. Signals, window progress and the replay cursor are
kept here too, so a restart resumes exactly where the crashed process stopped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from tbot_bot.domain.intents import Intent, intent_from_row, intent_to_row
from tbot_bot.domain.vocab import PositionSide, WindowStatus
from tbot_bot.support.machine_faults import named_database_faults

# kv: denials:<day> -> {strategy: {code: n}}, the day's denials so far (DayContext)
DENIALS_PREFIX = "denials:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    client_order_id TEXT PRIMARY KEY,
    session_date TEXT NOT NULL,
    strategy TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('entry', 'exit')),
    symbol TEXT NOT NULL,
    signal_ticker TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('long', 'short')),
    order_side TEXT NOT NULL CHECK (order_side IN ('buy', 'sell')),
    instrument TEXT NOT NULL,
    qty TEXT NOT NULL,
    notional TEXT,
    tag TEXT,
    leverage TEXT,
    option_json TEXT,
    entry_client_order_id TEXT,
    signal_time TEXT,
    exit_reason TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    filled_qty TEXT,
    filled_price TEXT,
    filled_at TEXT,
    fee TEXT,
    broker_order_id TEXT,
    note TEXT,
    defense_mode INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS intents_by_day ON intents (session_date, strategy);
CREATE TABLE IF NOT EXISTS signals (
    session_date TEXT NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    signal_time TEXT NOT NULL,
    direction TEXT NOT NULL,
    strength REAL NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (session_date, strategy, symbol, signal_time)
);
CREATE TABLE IF NOT EXISTS windows (
    session_date TEXT NOT NULL,
    strategy TEXT NOT NULL,
    status TEXT NOT NULL,
    actual_start TEXT,
    actual_end TEXT,
    note TEXT,
    signals INTEGER,
    entries INTEGER,
    exits INTEGER,
    denials TEXT,
    PRIMARY KEY (session_date, strategy)
);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


_WINDOW_OUTCOME_COLUMNS = {"signals": "INTEGER", "entries": "INTEGER", "exits": "INTEGER", "denials": "TEXT"}


class OrderJournal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with named_database_faults(path):  # garbage, a full disk, a read-only home: named with the file
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Journals written before window outcomes were kept gain the outcome columns (NULL = not recorded)."""
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(windows)")}
        for column, decl in _WINDOW_OUTCOME_COLUMNS.items():
            if column not in have:
                self._conn.execute(f"ALTER TABLE windows ADD COLUMN {column} {decl}")
        # journals written before defense-mode entries were tagged: none of their entries was
        if "defense_mode" not in {r[1] for r in self._conn.execute("PRAGMA table_info(intents)")}:
            self._conn.execute("ALTER TABLE intents ADD COLUMN defense_mode INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # a full disk or a lock met mid-session is the machine's fault, named with the journal's file (exit 75)
        with named_database_faults(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    # ---- intents
    def record_intent(self, intent: Intent) -> Intent:
        """Insert, or return the intent already journaled under this client_order_id."""
        existing = self.get(intent.client_order_id)
        if existing is not None:
            return existing
        row = intent_to_row(intent)
        cols = ", ".join(row)
        with self._tx() as c:
            c.execute(
                f"INSERT INTO intents ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            )
        return intent

    def record_intents(self, intents: list[Intent]) -> None:
        """Journal a batch of intents in ONE transaction: a crash leaves all of them or none."""
        fresh = [i for i in intents if self.get(i.client_order_id) is None]
        if not fresh:
            return
        with self._tx() as c:
            for intent in fresh:
                row = intent_to_row(intent)
                c.execute(
                    f"INSERT INTO intents ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )

    def update(self, client_order_id: str, **fields: object) -> Intent:
        current = self.get(client_order_id)
        if current is None:
            raise KeyError(client_order_id)
        updated = replace(current, **fields)  # type: ignore[arg-type]
        row = intent_to_row(updated)
        sets = ", ".join(f"{k} = ?" for k in row if k != "client_order_id")
        with self._tx() as c:
            c.execute(
                f"UPDATE intents SET {sets} WHERE client_order_id = ?",
                [v for k, v in row.items() if k != "client_order_id"] + [client_order_id],
            )
        return updated

    def get(self, client_order_id: str) -> Intent | None:
        r = self._conn.execute(
            "SELECT * FROM intents WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return intent_from_row(r) if r else None

    def intents(self, session_date: str | None = None, strategy: str | None = None) -> list[Intent]:
        q, args = "SELECT * FROM intents WHERE 1=1", list[str]()
        if session_date:
            q, args = q + " AND session_date = ?", [*args, session_date]
        if strategy:
            q, args = q + " AND strategy = ?", [*args, strategy]
        return [
            intent_from_row(r) for r in self._conn.execute(q + " ORDER BY created_at, client_order_id", args)
        ]

    def intents_before(self, session_date: str, since: str) -> list[Intent]:
        """Intents of the session dates since..session_date (exclusive), oldest first."""
        q = "SELECT * FROM intents WHERE session_date >= ? AND session_date < ? ORDER BY created_at, client_order_id"
        return [intent_from_row(r) for r in self._conn.execute(q, (since, session_date))]

    def open_intents(self) -> list[Intent]:
        return [i for i in self.intents() if i.status.is_open]

    def next_seq(self, session_date: str, strategy: str, ticker: str) -> int:
        prefix = f"%-{session_date.replace('-', '')}-{strategy}-{ticker}-%"
        n = self._conn.execute(
            "SELECT COUNT(*) FROM intents WHERE client_order_id LIKE ?", (prefix,)
        ).fetchone()[0]
        return int(n) + 1

    # ---- signals, windows, cursor
    def record_signal(
        self,
        session_date: str,
        strategy: str,
        symbol: str,
        signal_time: datetime,
        direction: PositionSide,
        strength: float,
        outcome: str,
    ) -> None:
        with self._tx() as c:
            c.execute(
                # an entered signal stays entered: a later look at the same minute (a restart) never rewrites it
                "INSERT INTO signals VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET outcome = excluded.outcome "
                "WHERE signals.outcome NOT LIKE 'entered:%'",
                (session_date, strategy, symbol, signal_time.isoformat(), direction, strength, outcome),
            )

    def signal_counts(self, session_date: str) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT strategy, COUNT(*) FROM signals WHERE session_date = ? GROUP BY strategy", (session_date,)
        )
        return {r[0]: int(r[1]) for r in rows}

    def day_counts(self, session_date: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """The day's signals per strategy and denials per strategy and filter (what a summary reports and the
        ledger does not hold)."""
        try:
            kept = json.loads(self.get_value(f"{DENIALS_PREFIX}{session_date}") or "{}")
        except ValueError:
            kept = {}
        denials = (
            {
                str(k): {str(c): int(n) for c, n in v.items() if isinstance(n, int)}
                for k, v in kept.items()
                if isinstance(v, dict)
            }
            if isinstance(kept, dict)
            else {}
        )
        return self.signal_counts(session_date), denials

    def signal_times(self) -> dict[str, datetime]:
        """When each journaled order's signal fired, by client order id (the trade history's signal_time)."""
        return {
            str(r[0]): datetime.fromisoformat(str(r[1]))
            for r in self._conn.execute(
                "SELECT client_order_id, signal_time FROM intents WHERE signal_time IS NOT NULL"
            )
        }

    def signals(self, session_date: str) -> list[sqlite3.Row]:
        return list(
            self._conn.execute(
                "SELECT * FROM signals WHERE session_date = ? ORDER BY signal_time", (session_date,)
            )
        )

    def set_window(
        self,
        session_date: str,
        strategy: str,
        status: WindowStatus,
        *,
        actual_start: str | None = None,
        actual_end: str | None = None,
        note: str | None = None,
        counts: dict[str, int] | None = None,
        denials: dict[str, int] | None = None,
    ) -> None:
        """Record a window's progress; a finished window also records its counts (restart-true status)."""
        c = counts or {}
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO windows (session_date, strategy, status, actual_start, actual_end, note, signals, "
                "entries, exits, denials) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET status = excluded.status, "
                "actual_start = COALESCE(windows.actual_start, excluded.actual_start), "
                "actual_end = COALESCE(excluded.actual_end, windows.actual_end), "
                "note = COALESCE(excluded.note, windows.note), "
                "signals = COALESCE(excluded.signals, windows.signals), "
                "entries = COALESCE(excluded.entries, windows.entries), "
                "exits = COALESCE(excluded.exits, windows.exits), "
                "denials = COALESCE(excluded.denials, windows.denials)",
                (
                    session_date, strategy, status, actual_start, actual_end, note, c.get("signals"),
                    c.get("entries"), c.get("exits"), json.dumps(denials, sort_keys=True) if denials is not None else None,
                ),
            )  # fmt: skip

    def window(self, session_date: str, strategy: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(
            "SELECT * FROM windows WHERE session_date = ? AND strategy = ?", (session_date, strategy)
        ).fetchone()
        return row

    def running_before(self, session_date: str) -> list[tuple[str, str]]:
        """(session date, strategy) of the windows of earlier days still recorded as running (a crash)."""
        return [
            (str(r[0]), str(r[1]))
            for r in self._conn.execute(
                "SELECT session_date, strategy FROM windows WHERE status = ? AND session_date < ? "
                "ORDER BY session_date, strategy",
                (WindowStatus.RUNNING.value, session_date),
            )
        ]

    def mark_day_booked(self, session_date: str, at: str) -> None:
        """The session ran to its end and its books are written (a replay of it is refused from now on)."""
        self.set_value(f"booked:{session_date}", at)

    def day_booked(self, session_date: str) -> str | None:
        """When the session was finished and booked, or None (not run, or interrupted: it may resume)."""
        return self.get_value(f"booked:{session_date}")

    def get_value(self, key: str) -> str | None:
        r = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return str(r[0]) if r else None

    def values_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        rows = self._conn.execute(
            "SELECT k, v FROM kv WHERE substr(k, 1, ?) = ? ORDER BY k", (len(prefix), prefix)
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def delete_value(self, key: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM kv WHERE k = ?", (key,))

    def set_value(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO kv VALUES (?, ?) ON CONFLICT DO UPDATE SET v = excluded.v", (key, value))
