"""Read-only views of what the daemon writes: output/status.json, strategy logs, trade history, the ledger
(sqlite `mode=ro`) and OFX exports. Nothing here writes, and nothing imports trading logic."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.accounting.ledger_read import account_fees, latest_transactions, trial_balance
from tbot_bot.domain.clock import stamp_for_people
from tbot_bot.domain.results import cents, closed_result, is_win, net_pnl
from tbot_bot.errors import TbotError
from tbot_bot.runtime.control import pause_in_force, paused_by, running_supervisor, start_command
from tbot_bot.runtime.status_bot import conditions, is_stale
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import readonly_uri

from .status_values_web import clean_status, finite_decimal

STRATEGIES = ("open", "mid", "close")
LEVELS = ("debug", "info", "warning", "error", "critical")
STATUS_JSON_BUDGET = 10_000  # bytes; the operator polls this over a phone link
MAX_POSITIONS = 40
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class BotFiles:
    """Where this home's bot writes; `scope` is None until the bot has been provisioned."""

    scope: str | None
    ledger_path: Path | None


def bot_files(home: BotHome) -> BotFiles:
    """Scope and ledger from the accounting binding; before it exists, the single bot directory in output/."""
    try:
        from tbot_bot.accounting.accounting_config import load_binding

        binding = load_binding(home)
        return BotFiles(scope=str(binding.scope), ledger_path=Path(binding.ledger_path))
    except (ImportError, TbotError, OSError, ValueError):
        pass
    if home.output_dir.is_dir():
        dirs = sorted(p.name for p in home.output_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(dirs) == 1:
            return BotFiles(scope=dirs[0], ledger_path=None)
    return BotFiles(scope=None, ledger_path=None)


# ---------------------------------------------------------------- status.json


def read_status(home: BotHome) -> dict[str, Any]:
    """The daemon's status.json, or a placeholder with an `error` the page can show."""
    try:
        raw = home.status_json.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"state": "unknown", "error": "output/status.json not found: the daemon has not started yet"}
    except OSError as exc:
        return {"state": "unknown", "error": f"output/status.json cannot be read ({exc.strerror})"}
    except UnicodeDecodeError:
        return {"state": "unknown", "error": "output/status.json is not UTF-8 text"}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, a number of thousands of digits, nesting too deep
        return {"state": "unknown", "error": "output/status.json is not valid JSON"}
    if not isinstance(data, dict):
        return {"state": "unknown", "error": "output/status.json is not a JSON object"}
    return data


def badge_mode(home: BotHome, broker_name: Any) -> str:
    """paper, live or replay for the header badge: the running (or last) supervisor's own derivation in
    status.json, else derived from the home's broker settings the same way (support/trading_mode.py)."""
    from tbot_bot.support.trading_mode import TradingMode, trading_mode

    bot = read_status(home).get("bot")
    mode = bot.get("mode") if isinstance(bot, dict) else None
    if mode in tuple(TradingMode):
        return str(mode)
    return str(trading_mode(home, str(broker_name))) if broker_name else "unknown"


def _age_seconds(updated_at: Any, now: datetime) -> float | None:
    try:
        stamp = datetime.fromisoformat(str(updated_at))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return max(0.0, (now - stamp).total_seconds())


def _display(status: dict[str, Any], out: dict[str, Any], now: datetime, written_at: datetime | None) -> None:
    """Strings for people: windows in exchange time and UTC, replay label, staleness from the file's write time."""
    from .time_web import both, exchange_zone, span

    zone = exchange_zone(status)
    out["exchange_tz"] = str(zone) if zone else None
    windows = []
    for w in status.get("windows") or []:
        if not isinstance(w, dict):
            continue
        sched = span(w.get("scheduled_start"), w.get("scheduled_end"), zone)
        actual = span(w.get("actual_start"), w.get("actual_end"), zone)
        windows.append({**w, "sched_exchange": sched[0], "sched_utc": sched[1],
                        "actual_exchange": actual[0], "actual_utc": actual[1]})  # fmt: skip
    out["windows"] = windows
    out["pending_confirmations"] = [
        {**p, "expires_text": both(p.get("expires_at"), zone)}
        for p in status.get("pending_confirmations") or []
        if isinstance(p, dict)
    ]
    bot = status.get("bot") if isinstance(status.get("bot"), dict) else {}
    out["replay_day"] = bot.get("replay_day") if bot.get("mode") == "replay" else None
    out["updated_text"] = both(status.get("updated_at"), zone, with_date=True)
    money = status.get("money") if isinstance(status.get("money"), dict) else {}
    out["account_read_text"] = (
        both(money.get("account_read_at"), zone) if money.get("account_read_at") else None
    )
    out["conditions"] = conditions(status, lambda t: both(t, zone, with_date=True))
    # the Stop and pause stamps ('<UTC time> <who>') as `tbot status` shows them: exchange time and UTC
    for key in ("trading_stopped", "paused"):
        if isinstance(status.get(key), str):
            out[f"{key}_text"] = stamp_for_people(status[key], zone)
    _set_ages(out, status.get("state"), now, written_at)


def _set_ages(out: dict[str, Any], state: Any, now: datetime, written_at: datetime | None) -> None:
    """The parts of the compact status that change with the clock alone."""
    out["age_seconds"] = _age_seconds(out.get("updated_at"), now)
    written_age = max(0.0, (now - written_at).total_seconds()) if written_at else None
    out["written_age_seconds"] = written_age
    out["stale"] = is_stale(state, written_age, None)


def compact_status(
    status: dict[str, Any], now: datetime, *, stop_requested: bool, written_at: datetime | None = None
) -> dict[str, Any]:
    """The fields the status page needs, kept under STATUS_JSON_BUDGET bytes."""
    keys = (
        "state",
        "session_date",
        "active_strategy",
        "windows",
        "counts",
        "realized_pnl",
        "realized_pnl_by_strategy",
        "gross_pnl",
        "fees",
        "net_pnl",
        "trades_by_strategy",
        "broker",
        "api",
        "defense_mode",
        "defense_reason",
        "message",
        "kill_switch",
        "pending_confirmations",
        "paused",
        "trading_stopped",
        "money",
        "version",
        "bot",
        "updated_at",
        "error",
    )
    status = clean_status(status)  # malformed values become "unavailable", never a 500
    out: dict[str, Any] = {k: status[k] for k in keys if k in status}
    positions = status.get("positions") or []
    out["positions"] = positions[:MAX_POSITIONS] if isinstance(positions, list) else []
    out["positions_total"] = len(positions) if isinstance(positions, list) else 0
    out["age_seconds"] = _age_seconds(status.get("updated_at"), now)
    out["stop_requested"] = stop_requested
    _display(status, out, now, written_at)
    while len(json.dumps(out, separators=(",", ":"))) > STATUS_JSON_BUDGET and out["positions"]:
        out["positions"] = out["positions"][: len(out["positions"]) // 2]
    out["truncated"] = len(out["positions"]) < out["positions_total"]
    return out


_status_cache: dict[Path, tuple[tuple[Any, ...], dict[str, Any]]] = {}
_status_lock = threading.Lock()


def current_status(home: BotHome, now: datetime) -> dict[str, Any]:
    """compact_status of status.json, parsed once per version of the file (the page and the API are polled
    by every open browser); only the clock-dependent ages are computed per call."""
    stop_requested = home.control_stop.exists()
    # the lock, not the file: a status.json says nothing about whether a supervisor still runs
    running = running_supervisor(home) is not None
    # with none running, the pause shown is the pause file's (pause_in_force): part of what the cache keys on
    pause = None if running else paused_by(home)
    try:
        st = home.status_json.stat()
        mark: tuple[Any, ...] | None = (st.st_mtime_ns, st.st_size, stop_requested, running, pause)
        written_at: datetime | None = datetime.fromtimestamp(st.st_mtime, UTC)
    except OSError:
        mark, written_at = None, None
    with _status_lock:
        hit = _status_cache.get(home.root)
    if mark is not None and hit is not None and hit[0] == mark:
        out = dict(hit[1])
    else:
        status = pause_in_force(home, read_status(home), running)
        out = compact_status(status, now, stop_requested=stop_requested, written_at=written_at)
        if mark is not None:
            with _status_lock:
                _status_cache[home.root] = (mark, out)
        out = dict(out)
    _set_ages(out, out.get("state"), now, written_at)
    out["supervisor_running"] = running
    if not running:
        out["start_command"] = start_command(home)
    # a running state with no supervisor (killed a minute ago) is as stale as one not written for minutes
    out["stale"] = is_stale(out.get("state"), out.get("written_age_seconds"), out["supervisor_running"])
    return out


def money(value: Any) -> Decimal | None:
    """A finite amount, or None (NaN, infinities and junk included)."""
    return finite_decimal(value)


# ---------------------------------------------------------------- strategy logs


def _tail_lines(path: Path) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if size > TAIL_BYTES else lines


def read_log_entries(
    home: BotHome,
    *,
    strategy: str | None = None,
    level: str | None = None,
    limit: int = 200,
    day: str | None = None,
) -> list[dict[str, Any]]:
    """Newest-last entries from output/<scope>/logs/{open,mid,close}.log (and, for a past `day`, that day's
    rotated `{strategy}.{day}.log`), filtered by strategy, minimum level and UTC day."""
    entries = _log_entries(home, strategy, level, day)
    return entries[-limit:]


def read_log_page(
    home: BotHome, *, strategy: str | None, level: str | None, day: str | None, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of entries, newest first (page 0 = the newest), and how many entries match in total."""
    entries = _log_entries(home, strategy, level, day)
    total = len(entries)
    newest_first = entries[::-1]
    return newest_first[page * per_page : (page + 1) * per_page], total


def _log_entries(
    home: BotHome, strategy: str | None, level: str | None, day: str | None
) -> list[dict[str, Any]]:
    files = bot_files(home)
    if files.scope is None:
        return []
    wanted = [strategy] if strategy in STRATEGIES else list(STRATEGIES)
    entries: list[dict[str, Any]] = []
    for name in wanted:
        paths = [home.logs_dir(files.scope) / f"{name}.log"]
        if day:
            paths.insert(0, home.logs_dir(files.scope) / f"{name}.{day}.log")  # rotated by log_rotation
        for path in paths:
            for line in _tail_lines(path):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError
                except ValueError:
                    record = {"event": line[:500], "level": "info"}
                record.setdefault("strategy", name)
                record["level"] = str(record.get("level", "info")).lower()
                entries.append(record)
    if level in LEVELS:
        floor = LEVELS.index(level)
        entries = [e for e in entries if e["level"] in LEVELS and LEVELS.index(e["level"]) >= floor]
    if day:
        entries = [e for e in entries if str(e.get("timestamp", "")).startswith(day)]
    entries.sort(key=lambda e: str(e.get("timestamp", "")))
    return entries


LOG_COLUMNS = ("timestamp", "strategy", "level", "event", "message")


def set_fields(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields of a log line worth showing: everything beyond the columns that has a value; a JSON `detail`
    is opened into its own fields (the strategy logs write every field, most of them null)."""
    out: list[tuple[str, str]] = []
    for key, value in entry.items():
        if key in LOG_COLUMNS or value is None or value == "" or value == {}:
            continue
        if key == "detail" and isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                out += [(k, _short(v)) for k, v in parsed.items() if v is not None and v != ""]
                continue
        out.append((key, _short(value)))
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------- trade history and ledger (auditor)


def read_trade_history(home: BotHome) -> list[dict[str, Any]]:
    files = bot_files(home)
    if files.scope is None:
        return []
    path = home.trades_dir(files.scope) / f"{files.scope}_BOT_trade_history.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    # unreadable, not JSON, a number of thousands of digits, nesting too deep: no trades to show
    except (OSError, ValueError, RecursionError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def trade_summary(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per strategy: trades, wins and total PnL, net of fees (domain/results.py), in cents."""
    summary: dict[str, dict[str, Any]] = {}
    for record in records:
        name = str(record.get("strategy_name") or record.get("strategy") or "unknown")
        row = summary.setdefault(name, {"trades": 0, "wins": 0, "pnl": Decimal("0")})
        row["trades"] += 1
        gross = money(record.get("PnL", record.get("pnl")))
        fees = money(record.get("fees"))
        if gross is not None:
            row["pnl"] += net_pnl(gross, fees or Decimal(0))
            row["wins"] += int(is_win(closed_result(gross, fees, record.get("exit_time"))))
    for row in summary.values():
        row["pnl"] = cents(row["pnl"])
    return summary


def broker_account_fees(home: BotHome, day: str | None = None) -> Decimal:
    """The fees the broker posted apart from fills (all days, or `day`), in cents; 0 without a readable ledger
    (the page then shows the trades alone, as the ledger page says what is wrong with it)."""
    path = bot_files(home).ledger_path
    if path is None or not path.is_file():
        return Decimal(0)
    try:
        return cents(account_fees(path, day))
    except (sqlite3.DatabaseError, TbotError):
        return Decimal(0)


def ledger_summary(home: BotHome) -> dict[str, Any]:
    """The bot ledger as an accountant reads it, opened read-only: its trial balance, the newest transactions and
    the corrections posted."""
    path = bot_files(home).ledger_path
    if path is None or not path.is_file():
        return {"path": None, "balance": [], "latest": [], "error": "no ledger is bound to this home yet"}
    try:
        con = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            names = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            corrections = _corrections(con) if {"transactions", "audit_log"} <= set(names) else []
        finally:
            con.close()
        balance = trial_balance(path)
        latest = latest_transactions(path)
    except (sqlite3.DatabaseError, TbotError) as exc:
        return {"path": path.name, "balance": [], "latest": [], "error": f"the ledger cannot be read ({exc})"}
    debits = sum((dr for _, _, dr, _ in balance), Decimal(0))
    credits = sum((cr for _, _, _, cr in balance), Decimal(0))
    return {
        "path": path.name,
        "error": None,
        "corrections": corrections,
        # at the ledger's own 1/10,000, not in cents: a trial balance is checked by adding its lines, and lines
        # rounded one by one did not add up to the total rounded once (42,056.03 against 42,056.02)
        "balance": [(code, name, _ledger_units(dr), _ledger_units(cr)) for code, name, dr, cr in balance],
        "totals": (_ledger_units(debits), _ledger_units(credits)),
        "balanced": debits == credits,
        "latest": latest,
    }


def _ledger_units(amount: Decimal) -> str:
    """An amount as the ledger holds it: four decimal places (`1234.5` -> `1234.5000`)."""
    return f"{amount.quantize(Decimal('0.0001')):f}"


def _corrections(con: sqlite3.Connection) -> list[dict[str, Any]]:
    """Entries posted by `tbot ledger correct`: reversals and corrected entries, with who posted them."""
    rows = con.execute(
        "SELECT t.fitid, t.correction_of, t.trntype, t.dtposted, t.memo, a.actor, a.logged_at FROM transactions t "
        "LEFT JOIN audit_log a ON a.transaction_id = t.id AND a.action = 'correction' "
        "WHERE t.is_correction = 1 ORDER BY t.id"
    ).fetchall()
    keys = ("fitid", "correction_of", "trntype", "dtposted", "memo", "actor", "logged_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def ofx_files(home: BotHome) -> dict[str, Path]:
    """OFX exports next to the ledger and under the bot's output directory, by file name."""
    files = bot_files(home)
    roots = [p for p in (files.ledger_path.parent if files.ledger_path else None,) if p is not None]
    if files.scope:
        roots.append(home.bot_output_dir(files.scope))
    found: dict[str, Path] = {}
    for root in roots:
        if root.is_dir():
            for p in sorted(root.rglob("*.ofx")):
                found.setdefault(p.name, p)
    return found
