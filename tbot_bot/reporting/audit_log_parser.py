"""The audit log parser (spec audit_log_parser.py): read a bot's logs back and summarise what happened.

Reads every log of one bot's `output/<scope>/logs/` — `{open,mid,close,supervisor}.log`, `unresolved_orders.log`,
`error_tracebacks.log`, `rebalance_request.log`, and their rotated copies `x.YYYY-MM-DD[-n].log` — in either
LOG_FORMAT (a JSON object per line, or CSV with a header; each file is detected on its own, so a LOG_FORMAT
change mid-history reads fine). A line that parses as neither is counted as unreadable, never fatal.

Levels are derived, the logs carry none: `error_tracebacks.log` is error, `unresolved_orders.log` warning, a
strategy event is warning when its name says something failed or was refused (WARNING_EVENTS or a
`_failed`/`_unavailable` suffix), else info.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tbot_bot.domain.results import cents, is_win

LEVELS = ("info", "warning", "error")
WARNING_EVENTS = frozenset(
    {
        "float_disagreement",
        "float_api_unavailable",
        "rebalance_breach",
        "rebalance_requested",
        "window_blocked",
        "stop_requested",
        "stale_stop_ignored",
        "vix_cache_damaged",
        "holiday",
    }
)
_ROTATED = re.compile(r"^(?P<stem>.+)\.\d{4}-\d{2}-\d{2}(?:-\d+)?$")
_SOURCE_LEVEL = {"error_tracebacks": "error", "unresolved_orders": "warning"}


@dataclass(frozen=True, slots=True)
class LogRecord:
    timestamp: datetime | None
    source: str  # the log's stem without a rotation date: open, supervisor, unresolved_orders, ...
    strategy: str | None
    event: str
    level: str
    fields: dict[str, Any]

    def text(self) -> str:
        when = self.timestamp.isoformat().replace("+00:00", "Z") if self.timestamp else "?"
        extras = {
            k: v for k, v in self.fields.items() if v not in (None, "") and k not in ("timestamp", "event")
        }
        detail = " ".join(f"{k}={v}" for k, v in extras.items())
        return f"{when} {self.level.upper():7} {self.source:<18} {self.event} {detail}".rstrip()


def parse_time(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        t = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def source_of(path: Path) -> str:
    stem = path.name[: -len(".log")] if path.name.endswith(".log") else path.stem
    m = _ROTATED.match(stem)
    return m["stem"] if m else stem


def _level(source: str, event: str) -> str:
    if source in _SOURCE_LEVEL:
        return _SOURCE_LEVEL[source]
    if event in WARNING_EVENTS or event.endswith(("_failed", "_unavailable", "_refused")):
        return "warning"
    return "info"


def _rows(text: str) -> Iterator[dict[str, Any] | None]:
    """Rows of one file, in whichever format it was written (None for an unreadable line)."""
    if text.lstrip().startswith("{"):
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                yield None
                continue
            yield row if isinstance(row, dict) else None
        return
    for row in csv.DictReader(io.StringIO(text)):
        yield {k: v for k, v in row.items() if k is not None}


def _record(source: str, row: dict[str, Any]) -> LogRecord:
    fields = dict(row)
    detail = fields.pop("detail", None)
    if isinstance(detail, str) and detail.startswith("{"):
        try:
            fields.update(json.loads(detail))
        except ValueError:
            fields["detail"] = detail
    strategy = fields.get("strategy_name") or fields.get("strategy")
    if source == "error_tracebacks":
        event = "error"
    else:
        event = str(fields.get("event") or fields.get("error_type") or source)
    return LogRecord(
        parse_time(fields.get("timestamp")), source, strategy or None, event, _level(source, event), fields
    )


def log_files(logs_dir: Path) -> list[Path]:
    return sorted(p for p in logs_dir.glob("*.log") if p.is_file()) if logs_dir.is_dir() else []


def read_records(
    logs_dir: Path, *, since: datetime | None = None, until: datetime | None = None
) -> tuple[list[LogRecord], int]:
    """Every record in time order (records without a time last) and the count of unreadable lines."""
    records: list[LogRecord] = []
    unreadable = 0
    for path in log_files(logs_dir):
        source = source_of(path)
        for row in _rows(path.read_text(encoding="utf-8", errors="replace")):
            if row is None:
                unreadable += 1
                continue
            rec = _record(source, row)
            if rec.timestamp is not None:
                if since is not None and rec.timestamp < since:
                    continue
                if until is not None and rec.timestamp >= until:
                    continue
            records.append(rec)
    far = datetime.max.replace(tzinfo=UTC)
    records.sort(key=lambda r: r.timestamp or far)
    return records, unreadable


def select(records: Iterable[LogRecord], *, strategy: str | None, level: str | None) -> list[LogRecord]:
    floor = LEVELS.index(level) if level else 0
    return [
        r for r in records if (strategy is None or r.strategy == strategy) and LEVELS.index(r.level) >= floor
    ]


@dataclass(slots=True)
class StrategyTrades:
    trades: int = 0
    wins: int = 0
    pnl: Decimal = Decimal(0)  # before fees, as logged
    net_pnl: Decimal = Decimal(0)


@dataclass(slots=True)
class Summary:
    records: int = 0
    unreadable: int = 0
    first: datetime | None = None
    last: datetime | None = None
    by_event: Counter[str] = field(default_factory=Counter)
    by_level: Counter[str] = field(default_factory=Counter)
    errors: dict[str, tuple[datetime | None, int]] = field(default_factory=dict)  # reason -> (first, count)
    denials: Counter[str] = field(default_factory=Counter)  # signal_denied by filter (risk:max_trades, ...)
    screen_rejects: Counter[str] = field(default_factory=Counter)
    trades: dict[str, StrategyTrades] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {
            "records": self.records,
            "unreadable_lines": self.unreadable,
            "first": iso(self.first),
            "last": iso(self.last),
            "by_event": dict(self.by_event.most_common()),
            "by_level": {lvl: self.by_level.get(lvl, 0) for lvl in LEVELS},
            "errors": [
                {"reason": reason, "first": iso(first), "count": n}
                for reason, (first, n) in self.errors.items()
            ],
            "denials": dict(self.denials.most_common()),
            "screen_rejects": dict(self.screen_rejects.most_common()),
            "trades": {
                s: {"trades": t.trades, "wins": t.wins, "pnl": str(t.pnl), "net_pnl": str(t.net_pnl)}
                for s, t in sorted(self.trades.items())
            },
        }


def _money(raw: Any) -> Decimal:
    try:
        return Decimal(str(raw)) if raw not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def summarize(records: list[LogRecord], unreadable: int = 0) -> Summary:
    s = Summary(records=len(records), unreadable=unreadable)
    times = [r.timestamp for r in records if r.timestamp]
    s.first, s.last = (min(times), max(times)) if times else (None, None)
    for r in records:
        s.by_event[r.event] += 1
        s.by_level[r.level] += 1
        if r.level == "error":
            reason = str(r.fields.get("reason") or r.event)
            first, n = s.errors.get(reason, (r.timestamp, 0))
            s.errors[reason] = (first, n + 1)
        if r.event == "signal_denied":
            s.denials[str(r.fields.get("filter") or "unknown")] += 1
        elif r.event == "screen_reject":
            s.screen_rejects[str(r.fields.get("filter") or "unknown")] += 1
        elif r.event == "exit_fill" and r.strategy:
            t = s.trades.setdefault(r.strategy, StrategyTrades())
            t.trades += 1
            pnl = _money(r.fields.get("PnL"))
            t.pnl += pnl
            net = _money(r.fields.get("net_pnl") or r.fields.get("PnL"))
            t.net_pnl += net
            t.wins += is_win(net)
    return s


def _utc_text(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def render(s: Summary, moment_text: Callable[[datetime], str] = _utc_text) -> str:
    """`moment_text`: a time as people read it (the command gives exchange time and UTC; UTC ISO without a home)."""

    def when(t: datetime | None) -> str:
        return moment_text(t) if t else "-"

    lines = [
        f"records    {s.records} from {when(s.first)} to {when(s.last)}"
        + (f"  ({s.unreadable} unreadable line(s) skipped)" if s.unreadable else ""),
        "levels     " + ", ".join(f"{lvl} {s.by_level.get(lvl, 0)}" for lvl in LEVELS),
        "events",
        *(f"  {n:>6}  {event}" for event, n in s.by_event.most_common()),
    ]
    lines.append("errors" + ("" if s.errors else "     none"))
    for reason, (first, n) in s.errors.items():
        lines.append(f"  {n:>6}  first {when(first)}  {reason[:140]}")
    lines.append("denials" + ("" if s.denials else "    none"))
    lines += [f"  {n:>6}  {code}" for code, n in s.denials.most_common()]
    if s.screen_rejects:
        lines.append("screener rejections")
        lines += [f"  {n:>6}  {code}" for code, n in s.screen_rejects.most_common()]
    # what the log recorded at each exit fill: the books (`tbot trades`, `tbot summary`) count a trade closed in two
    # exits once and take later corrections; said so, so the two are never read as the same figure
    lines.append(
        "exits as logged when they filled"
        + ("" if s.trades else ": none")
        + (" (the books, corrections included: `tbot trades`)" if s.trades else "")
    )
    for strat, t in sorted(s.trades.items()):
        lines.append(
            f"  {strat:<6} {t.trades} exit(s), {t.wins} win(s) net of fees, net PnL {cents(t.net_pnl):.2f} "
            f"(gross {cents(t.pnl):.2f}, fees {cents(t.pnl - t.net_pnl):.2f})"
        )
    return "\n".join(lines)
