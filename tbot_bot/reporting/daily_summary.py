"""Per-session daily summaries `daily_summary_YYYY-MM-DD.json` plus `daily_summary_index.json`.

Per strategy and in total: win rate, PnL, fees, trades vs signals, holding time. Built from TradeRecords (the
same rows as the trade history, whose PnL and fees are the ledger's). One file per exchange session, never
overwritten by another day; nothing is written for a non-trading day. The index lists every session file with
its headline figures (newest last). File format: support/architecture.md "Per-session files".
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.domain.results import closed_result, is_loss, is_win, net_pnl
from tbot_bot.reporting.trade_history import TradeRecord, record_dict, report_value
from tbot_bot.support.utils_bot import atomic_write_text

STRATEGIES = ("open", "mid", "close")


def _ratio(num: Decimal | int, den: int) -> str | None:
    return None if den == 0 else str((Decimal(num) / den).quantize(Decimal("0.0001")))


def _strategy_summary(
    trades: Sequence[TradeRecord], errors: int, signals: int, denials: int
) -> dict[str, Any]:
    # one PnL, one win (domain/results.py): each closed trade's result is net of its fees, a win is net > 0;
    # the gross total and the fees stay beside the net one
    gross = [t.PnL for t in trades if t.PnL is not None]
    # a trade's result once it is wholly closed (a part sold counts in the money above, not as a win or a loss)
    nets = [r for t in trades if (r := closed_result(t.PnL, t.fees, t.exit_time)) is not None]
    fees = sum((t.fees for t in trades if t.fees is not None), Decimal(0))
    holds = [h for h in (record_dict(t)["holding_seconds"] for t in trades) if h is not None]
    by_ticker: dict[str, Decimal] = defaultdict(Decimal)
    for t in trades:
        if t.PnL is not None:
            by_ticker[t.ticker] += net_pnl(t.PnL, t.fees or Decimal(0))
    ranked = sorted(by_ticker.items(), key=lambda kv: (kv[1], kv[0]))
    wins = sum(1 for p in nets if is_win(p))
    total = sum(gross, Decimal(0))
    return {
        "total_trades": len(trades),
        "closed_trades": len(nets),  # the win rate's denominator (trades still open have no result yet)
        "wins": wins,
        "losses": sum(1 for p in nets if is_loss(p)),
        "win_rate": _ratio(wins, len(nets)),
        "total_pnl": report_value(total),
        "total_fees": report_value(fees),
        "net_pnl": report_value(total - fees),
        "average_pnl": _ratio(sum(nets, Decimal(0)), len(nets)),
        "max_gain": report_value(max(nets)) if nets else None,
        "max_loss": report_value(min(nets)) if nets else None,
        "signals_triggered": signals,
        "denials": denials,
        "trades_vs_signals": _ratio(len(trades), signals),
        "average_holding_seconds": _ratio(sum(holds), len(holds)),
        "best_ticker": {"ticker": ranked[-1][0], "pnl": report_value(ranked[-1][1])} if ranked else None,
        "worst_ticker": {"ticker": ranked[0][0], "pnl": report_value(ranked[0][1])} if ranked else None,
        "errors": errors,
        # position semantics: side held (an inverse ETF or put is long) and the signal's view
        "trades_by_side": {k: sum(1 for t in trades if t.side == k) for k in ("long", "short")},
        "trades_by_direction": {
            k: sum(1 for t in trades if (t.direction or "bullish") == k) for k in ("bullish", "bearish")
        },
    }


def build_daily_summary(
    records: Sequence[TradeRecord],
    signals_by_strategy: Mapping[str, int],
    denials_by_strategy: Mapping[str, int],
    account_fees: Decimal = Decimal(0),
    adjustments: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0)),
) -> dict[str, Any]:
    """Per-strategy metrics plus totals. Records carrying an error_code count as errors, not trades.
    `account_fees`: the day's fees the broker posted apart from fills (ledger_read.account_fees). No strategy
    owns them, so they are in the totals alone: `account_fees` shows them, `total_fees` and `net_pnl` include
    them (the day's fees and net are the ledger's, whatever column a reader takes). `adjustments`: the (gross PnL,
    fees) of corrections posted this day to entries of a closed month (ledger_read.prior_period_adjustments): in
    the totals alone too, shown as `prior_period_adjustments`."""
    names = sorted(
        set(STRATEGIES)
        | {r.strategy_name for r in records}
        | set(signals_by_strategy)
        | set(denials_by_strategy)
    )
    strategies: dict[str, Any] = {}
    for name in names:
        mine = [r for r in records if r.strategy_name == name]
        trades = [r for r in mine if not r.error_code]
        strategies[name] = _strategy_summary(
            trades,
            len(mine) - len(trades),
            signals_by_strategy.get(name, 0),
            denials_by_strategy.get(name, 0),
        )
    all_trades = [r for r in records if not r.error_code]
    totals = _strategy_summary(
        all_trades,
        len(records) - len(all_trades),
        sum(signals_by_strategy.values()),
        sum(denials_by_strategy.values()),
    )
    if account_fees:
        totals["account_fees"] = report_value(account_fees)
        totals["total_fees"] = report_value(Decimal(totals["total_fees"]) + account_fees)
        totals["net_pnl"] = report_value(Decimal(totals["net_pnl"]) - account_fees)
    pnl, fees = adjustments
    if pnl or fees:
        totals["prior_period_adjustments"] = {
            "total_pnl": report_value(pnl), "total_fees": report_value(fees), "net_pnl": report_value(pnl - fees)
        }  # fmt: skip
        totals["total_pnl"] = report_value(Decimal(totals["total_pnl"]) + pnl)
        totals["total_fees"] = report_value(Decimal(totals["total_fees"]) + fees)
        totals["net_pnl"] = report_value(Decimal(totals["net_pnl"]) + pnl - fees)
    return {"strategies": strategies, "totals": totals}


SUMMARY_PREFIX = "daily_summary_"
INDEX_NAME = "daily_summary_index.json"


def summary_path(summaries_dir: Path, session_date: date) -> Path:
    return summaries_dir / f"{SUMMARY_PREFIX}{session_date.isoformat()}.json"


def write_daily_summary(
    summaries_dir: Path,
    scope: str,
    summary: Mapping[str, Any],
    *,
    generated_at: datetime,
    session_date: date,
) -> Path:
    """Write `daily_summary_YYYY-MM-DD.json` for one session and refresh the index; returns the file."""
    path = summary_path(summaries_dir, session_date)
    doc = {
        "format": "tbot.daily_summary/1",
        "scope": scope,
        "session_date": session_date.isoformat(),
        "generated_at": report_value(generated_at),
        **summary,
    }
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    write_summary_index(summaries_dir, scope, generated_at=generated_at)
    return path


def write_summary_index(summaries_dir: Path, scope: str, *, generated_at: datetime) -> Path:
    """`daily_summary_index.json`: one row per session file (sorted by date) with its headline figures."""
    sessions = []
    for path in sorted(summaries_dir.glob(f"{SUMMARY_PREFIX}????-??-??.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            totals = doc.get("totals") or {}
        except (OSError, ValueError):
            continue  # a file being replaced right now; the next write lists it
        sessions.append(
            {
                "session_date": doc.get("session_date"),
                "file": path.name,
                "generated_at": doc.get("generated_at"),
                "total_trades": totals.get("total_trades"),
                "total_pnl": totals.get("total_pnl"),
                "total_fees": totals.get("total_fees"),
                "net_pnl": totals.get("net_pnl"),
            }
        )
    index = {
        "format": "tbot.daily_summary_index/1",
        "scope": scope,
        "updated_at": report_value(generated_at),
        "sessions": sessions,
    }
    out = summaries_dir / INDEX_NAME
    atomic_write_text(out, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return out
