"""Audit rows: system events (SYSTEM_LOGS.db) and dashboard user activity (USER_ACTIVITY_MONITORING.db)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from tbot_bot.core.databases import connect
from tbot_bot.errors import TbotError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now


def log_system_event(
    home: BotHome,
    *,
    source: str,
    event: str,
    level: str = "info",
    actor: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> None:
    with connect(home, "SYSTEM_LOGS") as con:
        con.execute(
            "INSERT INTO system_logs (timestamp, source, level, actor, event, detail) VALUES (?, ?, ?, ?, ?, ?)",
            ((now or utc_now()).isoformat(), source, level, actor, event, detail),
        )


def log_done_event(home: BotHome, **row: Any) -> str | None:
    """The system-log row of something already done (a posted correction, a user created, a flatten): a system log
    that cannot take it (locked, damaged) must not make the deed read as failed: the caller reports success and
    says this returned text too. None when the row was written."""
    try:
        log_system_event(home, **row)  # the same row (source, event, level, actor, detail, now)
    except (TbotError, sqlite3.Error, OSError) as exc:
        return f"done, but the system log (SYSTEM_LOGS.db) did not record it ({row.get('event')}): {exc}"
    return None


def record_user_activity(
    home: BotHome,
    *,
    event: str,
    username: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    session_id: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> None:
    with connect(home, "USER_ACTIVITY_MONITORING") as con:
        con.execute(
            "INSERT INTO user_activity (timestamp, username, event, ip, user_agent, session_id, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (now or utc_now()).isoformat(),
                username,
                event,
                ip,
                (user_agent or "")[:300],
                session_id,
                detail,
            ),
        )


def recent_user_activity(home: BotHome, limit: int = 50) -> list[dict[str, Any]]:
    with connect(home, "USER_ACTIVITY_MONITORING", readonly=True) as con:
        rows = con.execute("SELECT * FROM user_activity ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(r) for r in rows]
