"""Read-only data for the History and Research pages: per-session summaries across days, the day charts the bot
wrote (`tbot plot day`), backtest runs under backtest_results/, and optimizer proposals. Plain file reading; no
trading logic is imported (the proposals are read as JSON, approval is the optimizer's page)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.session_summaries import decimal_or_zero, read_session_summaries

from .readers_web import bot_files

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


@dataclass(frozen=True, slots=True)
class DayRow:
    day: str
    trades: int
    wins: int
    losses: int
    pnl: Decimal
    fees: Decimal
    net: Decimal
    cumulative: Decimal  # net PnL of every session up to and including this one
    charts: tuple[str, ...]  # PNG names in output/<scope>/charts/ for this day


def charts_dir(home: BotHome) -> Path | None:
    scope = bot_files(home).scope
    return home.bot_output_dir(scope) / "charts" if scope else None


def day_charts(home: BotHome) -> dict[str, list[str]]:
    """{day: [png names]} of the charts `tbot plot day` wrote into the home."""
    folder = charts_dir(home)
    found: dict[str, list[str]] = {}
    if folder is None or not folder.is_dir():
        return found
    for p in sorted(folder.glob("????-??-??_*.png")):
        if SAFE_NAME.match(p.name):
            found.setdefault(p.name[:10], []).append(p.name)
    return found


def session_rows(home: BotHome) -> tuple[list[DayRow], list[str]]:
    """One row per session with a summary (oldest first) and the problems met reading them."""
    scope = bot_files(home).scope
    if scope is None:
        return [], []
    scan = read_session_summaries(home.summaries_dir(scope))
    charts = day_charts(home)
    rows: list[DayRow] = []
    running = Decimal(0)
    for s in scan.sessions:
        pnl = s.pnl
        fees = decimal_or_zero(s.totals.get("total_fees"))
        net = decimal_or_zero(s.totals["net_pnl"]) if "net_pnl" in s.totals else pnl - fees
        running += net
        rows.append(
            DayRow(
                s.day,
                s.count("total_trades"),
                s.count("wins"),
                s.count("losses"),
                pnl,
                fees,
                net,
                running,
                tuple(charts.get(s.day, ())),
            )  # fmt: skip
        )
    return rows, scan.problems


# ---------------------------------------------------------------- research: backtests and proposals


def backtest_runs(home: BotHome, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: run name, strategy, range, trades, PnL, Sharpe, and whether a report.html exists."""
    root = home.backtest_results_dir
    if not root.is_dir():
        return []
    runs = []
    for folder in root.iterdir():
        metrics_file = folder / "metrics.json"
        if not (folder.is_dir() and SAFE_NAME.match(folder.name) and metrics_file.is_file()):
            continue
        try:
            m = json.loads(metrics_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(m, dict):
            continue
        runs.append(
            {
                "name": folder.name,
                "mtime": metrics_file.stat().st_mtime,
                "strategy": m.get("strategy"),
                "start": m.get("start"),
                "end": m.get("end"),
                "trades": m.get("trades"),
                "total_pnl": m.get("total_pnl"),
                "win_rate": m.get("win_rate"),
                "profit_factor": m.get("profit_factor"),
                "sharpe": m.get("sharpe"),
                "max_drawdown": m.get("max_drawdown"),
                "has_report": (folder / "report.html").is_file(),
            }
        )
    runs.sort(key=lambda r: r["mtime"], reverse=True)
    return runs[:limit]


def backtest_file(home: BotHome, run: str, name: str) -> Path | None:
    """A report or chart of one run, by names checked against a strict pattern (no path tricks)."""
    if not (
        SAFE_NAME.match(run) and name in ("report.html", "report.md", "equity_drawdown.png", "daily_pnl.png")
    ):
        return None
    path = home.backtest_results_dir / run / name
    return path if path.is_file() else None


def proposals(home: BotHome, limit: int = 50) -> list[dict[str, Any]]:
    """Optimizer proposals (env_bot.versioned/proposals/*.json), newest first, as `tbot optimize list` reads them."""
    from tbot_bot.optimizer.proposals import changed, list_proposals

    out = []
    for doc in list_proposals(home)[:limit]:
        verdict = doc.get("verdict") if isinstance(doc.get("verdict"), dict) else {}
        out.append(
            {
                "run_id": doc["run_id"],
                "strategy": doc.get("strategy"),
                "algorithm": doc.get("algorithm"),
                "status": doc.get("status"),
                "created_at": str(doc.get("created_at", "")),
                "changes": len(changed(doc)),
                # the run's verdict (evidence.decide); None for a record of an older version
                "recommended": verdict.get("recommend"),
                "verdict": verdict.get("statement"),
            }
        )
    return out
