"""Trade history and per-session summaries derived from the bot ledger, the book of record.

The history files (`{scope}_BOT_trade_history.csv|json`) hold one row per round trip of the ledger (ledger_trades:
corrections applied), so no restore, crash or lost journal can make them disagree with the books. They are
kept up to date incrementally: `{scope}_BOT_trade_history.state.json` records the last ledger transaction (id and
FITID) the files reflect; a refresh recomputes only the sessions from the earliest one that new transactions
touch (a correction touches its original's session) and keeps the rows before it. A state that does not match
the ledger (another ledger restored, rows rolled back), or files that are missing or unreadable, mean a full
rebuild; `tbot trades --rebuild` forces one and also rewrites the per-session summaries from the ledger.
What the ledger does not hold (a rejected order, a signal's time) comes from the journal when the caller has it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tbot_bot.errors import LedgerError
from tbot_bot.reporting.ledger_trades import LedgerTrade, read_trades
from tbot_bot.reporting.trade_history import (
    TradeRecord,
    record_dict,
    trade_history_paths,
    write_trade_history,
)
from tbot_bot.support.utils_bot import atomic_write_json, readonly_uri

STATE_FORMAT = "tbot.trade_history_state/1"


def ledger_record(
    trade: LedgerTrade, *, broker: str, mode: str, signal_time: datetime | None = None
) -> TradeRecord:
    """The trade-history row of one ledger round trip (money and times exactly as booked)."""
    return TradeRecord(
        timestamp=trade.exit_time or trade.entry_time or datetime(1970, 1, 1, tzinfo=UTC),
        strategy_name=trade.strategy,
        ticker=trade.ticker,
        signal_ticker=trade.signal_ticker,
        side=trade.side,
        size=trade.size,
        entry_price=trade.entry_price,
        exit_price=trade.exit_price,
        PnL=trade.pnl,
        broker=broker,
        signal_time=signal_time,
        entry_time=trade.entry_time,
        exit_time=trade.exit_time,
        exit_reason=trade.exit_reason,
        mode=mode,
        tag=trade.tag,
        direction=trade.direction,
        fees=trade.fees,
        correction=trade.correction,
        defense_mode=trade.defense_mode,
        adopted=trade.adopted,
    )


def ledger_records(
    ledger: Path,
    *,
    broker: str,
    mode: str,
    day: date | None = None,
    since: date | None = None,
    signal_times: Mapping[str, datetime] | None = None,
    without: frozenset[int] = frozenset(),
) -> list[TradeRecord]:
    """Round trips of the ledger (entered on `day`, or on/after `since`) as trade-history records; `without`:
    transaction ids read as if never posted (read_trades)."""
    times = signal_times or {}
    return [
        ledger_record(t, broker=broker, mode=mode, signal_time=times.get(t.client_order_id))
        for t in read_trades(ledger, day=day, since=since, without=without)
    ]


@dataclass(frozen=True, slots=True)
class HistoryRefresh:
    paths: list[Path]
    rows: int  # rows in the files now
    recomputed_from: str | None  # first session recomputed (None: nothing new, or the whole history rebuilt)
    rebuilt: bool  # the whole history was recomputed


def _state_path(trades_dir: Path, scope: str) -> Path:
    return trades_dir / f"{scope}_BOT_trade_history.state.json"


def _load(trades_dir: Path, scope: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    try:
        state = json.loads(_state_path(trades_dir, scope).read_text(encoding="utf-8"))
        rows = json.loads(trade_history_paths(trades_dir, scope)["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or not isinstance(rows, list):
        return None
    if not trade_history_paths(trades_dir, scope)["csv"].exists():
        return None
    return state, [r for r in rows if isinstance(r, dict)]


def _previous_rows(trades_dir: Path, scope: str) -> list[dict[str, Any]]:
    """The rows in the JSON file now, whatever their state (a rebuild keeps the signal times they carry)."""
    try:
        rows = json.loads(trade_history_paths(trades_dir, scope)["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _row_day(row: Mapping[str, Any]) -> str:
    return str(row.get("entry_time") or row.get("timestamp") or "")[:10]


def _touched_since(conn: sqlite3.Connection, after_id: int) -> str | None:
    """The earliest UTC day whose trades transactions after `after_id` change (a correction: its original's)."""
    row = conn.execute(
        "SELECT min(day) FROM (SELECT substr(dtposted, 1, 10) AS day FROM transactions WHERE id > ?1 "
        "UNION ALL SELECT substr(o.dtposted, 1, 10) FROM transactions c JOIN transactions o "
        "ON o.fitid = c.correction_of WHERE c.id > ?1)",
        (after_id,),
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def refresh_trade_history(
    ledger: Path,
    trades_dir: Path,
    scope: str,
    *,
    broker: str,
    mode: str,
    signal_times: Mapping[str, datetime] | None = None,
    rebuild: bool = False,
) -> HistoryRefresh:
    """Bring the trade history files up to date with the ledger (see the module docstring)."""
    try:
        conn = sqlite3.connect(readonly_uri(Path(ledger)), uri=True)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open the ledger {ledger}: {exc}") from None
    try:
        last = conn.execute("SELECT id, fitid FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
        last_id, last_fitid = (int(last[0]), str(last[1])) if last else (0, "")
        loaded = None if rebuild else _load(trades_dir, scope)
        since: str | None = None
        keep: list[dict[str, Any]] = []
        if loaded is not None:
            state, rows = loaded
            seen_id = int(state.get("last_transaction_id") or 0)
            at = conn.execute("SELECT fitid FROM transactions WHERE id = ?", (seen_id,)).fetchone()
            if seen_id > last_id or (seen_id and (at is None or at[0] != state.get("last_fitid"))):
                loaded = None  # not this ledger's history (restored or rolled back): start over
            else:
                since = _touched_since(conn, seen_id)
                if since is None:
                    return HistoryRefresh(
                        list(trade_history_paths(trades_dir, scope).values()), len(rows), None, False
                    )
                # a trade still open in the files may be closed by the new rows
                open_days = [_row_day(r) for r in rows if not r.get("exit_time")]
                since = min([since, *open_days])
                keep = [r for r in rows if _row_day(r) < since]
    finally:
        conn.close()
    start = None if loaded is None else date.fromisoformat(since) if since else None
    fresh = ledger_records(ledger, broker=broker, mode=mode, since=start, signal_times=signal_times)
    previous_times = {
        (r.get("entry_time"), r.get("ticker")): r.get("signal_time")
        for r in _previous_rows(trades_dir, scope)
    }
    records = []
    for rec in fresh:
        earlier = previous_times.get((record_dict(rec)["entry_time"], rec.ticker))
        if rec.signal_time is None and earlier:
            # a signal's time is not in the ledger: keep what the journal gave when the row was first written
            rec = replace(rec, signal_time=datetime.fromisoformat(str(earlier).replace("Z", "+00:00")))
        records.append(rec)
    records.sort(key=lambda r: (r.entry_time or r.timestamp, r.strategy_name, r.ticker))
    paths = write_trade_history(trades_dir, scope, records, kept_rows=keep)
    merged = len(keep) + len(records)
    atomic_write_json(
        _state_path(trades_dir, scope),
        {
            "format": STATE_FORMAT,
            "ledger": ledger.name,
            "last_transaction_id": last_id,
            "last_fitid": last_fitid,
        },
    )
    return HistoryRefresh(paths, merged, since, loaded is None)


def rebuild_summaries(
    ledger: Path,
    summaries_dir: Path,
    scope: str,
    *,
    broker: str,
    mode: str,
    days: Sequence[date] = (),
    journal_counts: Callable[[str], tuple[dict[str, int], dict[str, dict[str, int]]]] | None = None,
) -> list[Path]:
    """Rewrite the per-session summaries of `days` (default: every session the ledger traded or an existing
    summary names) from the ledger. Signal, denial and error counts are not in the ledger: an existing summary's
    are kept; a day without one takes them from `journal_counts(day)` (signals and denials by filter per strategy,
    the order journal's) when given; `generated_at` stays the summary's own (the session's time, also for a
    replayed day)."""
    from tbot_bot.accounting.ledger_period import closed_through
    from tbot_bot.accounting.ledger_read import account_fees, prior_period_adjustments, prior_period_ids
    from tbot_bot.accounting.ledger_schema import open_ledger
    from tbot_bot.reporting.daily_summary import build_daily_summary, summary_path, write_daily_summary

    records = ledger_records(ledger, broker=broker, mode=mode)
    by_day: dict[str, list[TradeRecord]] = {}
    for rec in records:
        by_day.setdefault(_row_day(record_dict(rec)), []).append(rec)
    existing = {
        p.name[len("daily_summary_") : -len(".json")]
        for p in summaries_dir.glob("daily_summary_????-??-??.json")
    }
    with open_ledger(ledger, readonly=True) as conn:
        lock = closed_through(conn)
    as_closed: dict[str, list[TradeRecord]] | None = None  # the closed days' records as they were closed

    def closed_records() -> dict[str, list[TradeRecord]]:
        # read once, only when a closed day is rebuilt: without the corrections posted after the close
        nonlocal as_closed
        if as_closed is None:
            with open_ledger(ledger, readonly=True) as conn:
                later = frozenset(prior_period_ids(conn))
            as_closed = {}
            for rec in ledger_records(ledger, broker=broker, mode=mode, without=later):
                as_closed.setdefault(_row_day(record_dict(rec)), []).append(rec)
        return as_closed

    wanted_days = {d.isoformat() for d in days} or (set(by_day) | existing)
    if not days and lock is not None:
        # a closed day whose trades were all reversed after the close is in no corrected record, yet it had them
        wanted_days |= {d for d in closed_records() if d <= lock[1][:10]}
        # the days prior-period adjustments were posted on carry them (often no trading day: the first instant
        # after a close): a rebuild without them left `tbot summary` short of the ledger by the adjustments
        with open_ledger(ledger, readonly=True) as conn:
            ids = sorted(prior_period_ids(conn))
            wanted_days |= {
                str(row[0])[:10]
                for row in conn.execute(
                    f"SELECT dtposted FROM transactions WHERE id IN ({', '.join('?' * len(ids))})", ids
                )
            }
    wanted = sorted(wanted_days)
    written = []
    for day_text in wanted:
        day = date.fromisoformat(day_text)
        try:
            old = json.loads(summary_path(summaries_dir, day).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        whole = (
            isinstance(old, dict)
            and isinstance(old.get("totals"), dict)
            and isinstance(old.get("strategies"), dict)
        )
        if lock is not None and day_text <= lock[1][:10] and whole:
            continue  # a closed day's summary stays as it was closed (a later correction is its posting day's)
        if not whole:
            old = {}  # a damaged summary is rebuilt from the ledger
        day_records = by_day.get(day_text, [])
        if lock is not None and day_text <= lock[1][:10]:
            # a closed day rebuilt (its summary lost or damaged) is rebuilt as it was closed: the corrections
            # posted since are its posting days' prior-period adjustments, so counting them here too counts twice
            day_records = closed_records().get(day_text, [])
        strategies = old.get("strategies") or {}
        signals = {k: int(v.get("signals_triggered") or 0) for k, v in strategies.items()}
        denials = {k: int(v.get("denials") or 0) for k, v in strategies.items()}
        if not old and journal_counts is not None:  # the summary was lost: what the journal kept of the day
            signals, by_filter = journal_counts(day_text)
            denials = {k: sum(v.values()) for k, v in by_filter.items()}
            old = {"denials_by_filter": by_filter} if by_filter else {}
        summary = build_daily_summary(
            day_records, signals, denials, account_fees(ledger, day_text),
            prior_period_adjustments(ledger, day_text),
        )  # fmt: skip
        for name, figures in [*summary["strategies"].items(), ("totals", summary["totals"])]:
            before = old.get("totals") if name == "totals" else strategies.get(name)
            figures["errors"] = int((before or {}).get("errors") or 0)
        summary["mode"] = mode  # paper, live or replay (support/trading_mode.py)
        for key in ("denials_by_filter", "kill_switch"):
            if key in old:
                summary[key] = old[key]
        last = day_records
        generated = old.get("generated_at") or (
            record_dict(last[-1])["timestamp"] if last else f"{day_text}T23:59:59Z"
        )
        written.append(
            write_daily_summary(
                summaries_dir,
                scope,
                summary,
                generated_at=datetime.fromisoformat(str(generated).replace("Z", "+00:00")),
                session_date=day,
            )
        )
    return written
