"""Read the per-session daily summaries of a bot scope (for `tbot summary` and the dashboard's history page).

Files: `output/<scope>/summaries/*daily_summary_YYYY-MM-DD.json` (one per session) and, from homes written
before per-session files existed, the single `<scope>_BOT_daily_summary.json` (its `trading_day` says which
session it is; a per-session file of the same day wins). A file that cannot be read or parsed is skipped and
named in `problems`, never fatal: one damaged day must not hide the others. Pure file reading (no trading
imports), so the web process may use it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tbot_bot.domain.results import DAMAGED_MAGNITUDE

_DAY_FILE = re.compile(r"daily_summary_(\d{4}-\d{2}-\d{2})\.json$")


@dataclass(frozen=True, slots=True)
class SessionSummary:
    day: str  # YYYY-MM-DD
    path: Path
    doc: dict[str, Any]

    @property
    def totals(self) -> dict[str, Any]:
        t = self.doc.get("totals")
        return t if isinstance(t, dict) else {}

    @property
    def strategies(self) -> dict[str, dict[str, Any]]:
        s = self.doc.get("strategies")
        return {k: v for k, v in s.items() if isinstance(v, dict)} if isinstance(s, dict) else {}

    @property
    def pnl(self) -> Decimal:
        return decimal_or_zero(self.totals.get("total_pnl"))

    def count(self, key: str) -> int:
        value = self.totals.get(key)
        return value if isinstance(value, int) else 0


@dataclass
class SummaryScan:
    sessions: list[SessionSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def decimal_or_zero(value: object) -> Decimal:
    """An amount of a summary file; 0 for a missing one, and for junk, NaN, infinities and magnitudes from 10**18
    on (a damaged file must not take the History page or its charts down)."""
    try:
        number = Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() and number.copy_abs() < DAMAGED_MAGNITUDE else Decimal(0)


def _load(path: Path, scan: SummaryScan) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        scan.problems.append(f"{path.name}: unreadable ({exc.__class__.__name__})")
        return None
    if not isinstance(doc, dict):
        scan.problems.append(f"{path.name}: not a summary object")
        return None
    return doc


def read_session_summaries(summaries_dir: Path) -> SummaryScan:
    """Every session's summary in `summaries_dir`, oldest first."""
    scan = SummaryScan()
    if not summaries_dir.is_dir():
        return scan
    by_day: dict[str, SessionSummary] = {}
    legacy: list[Path] = []
    for path in sorted(summaries_dir.glob("*.json")):
        m = _DAY_FILE.search(path.name)
        if m is None:
            if path.name.endswith("daily_summary.json"):
                legacy.append(path)
            continue
        doc = _load(path, scan)
        if doc is not None:
            by_day[m.group(1)] = SessionSummary(m.group(1), path, doc)
    for path in legacy:
        doc = _load(path, scan)
        day = doc.get("trading_day") if doc else None
        if doc is not None and isinstance(day, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            by_day.setdefault(day, SessionSummary(day, path, doc))
    scan.sessions = [by_day[d] for d in sorted(by_day)]
    return scan
