"""Daily summary `{scope}_BOT_daily_summary.json`: per-strategy win rate, PnL, trades vs signals, holding time.

Built from TradeRecords (the same rows as the trade history); an audit artifact, never read back.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.reporting.trade_history import TradeRecord, record_dict, report_value
from tbot_bot.support.utils_bot import atomic_write_text

STRATEGIES = ("open", "mid", "close")


def _ratio(num: Decimal | int, den: int) -> str | None:
    return None if den == 0 else str((Decimal(num) / den).quantize(Decimal("0.0001")))


def _strategy_summary(
    trades: Sequence[TradeRecord], errors: int, signals: int, denials: int
) -> dict[str, Any]:
    pnls = [t.PnL for t in trades if t.PnL is not None]
    holds = [h for h in (record_dict(t)["holding_seconds"] for t in trades) if h is not None]
    by_ticker: dict[str, Decimal] = defaultdict(Decimal)
    for t in trades:
        if t.PnL is not None:
            by_ticker[t.ticker] += t.PnL
    ranked = sorted(by_ticker.items(), key=lambda kv: (kv[1], kv[0]))
    wins = sum(1 for p in pnls if p > 0)
    total = sum(pnls, Decimal(0))
    return {
        "total_trades": len(trades),
        "wins": wins,
        "losses": sum(1 for p in pnls if p < 0),
        "win_rate": _ratio(wins, len(pnls)),
        "total_pnl": report_value(total),
        "average_pnl": _ratio(total, len(pnls)),
        "max_gain": report_value(max(pnls)) if pnls else None,
        "max_loss": report_value(min(pnls)) if pnls else None,
        "signals_triggered": signals,
        "denials": denials,
        "trades_vs_signals": _ratio(len(trades), signals),
        "average_holding_seconds": _ratio(sum(holds), len(holds)),
        "best_ticker": {"ticker": ranked[-1][0], "pnl": report_value(ranked[-1][1])} if ranked else None,
        "worst_ticker": {"ticker": ranked[0][0], "pnl": report_value(ranked[0][1])} if ranked else None,
        "errors": errors,
    }


def build_daily_summary(
    records: Sequence[TradeRecord],
    signals_by_strategy: Mapping[str, int],
    denials_by_strategy: Mapping[str, int],
) -> dict[str, Any]:
    """Per-strategy metrics plus totals. Records carrying an error_code count as errors, not trades."""
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
    return {"strategies": strategies, "totals": totals}


def write_daily_summary(
    summaries_dir: Path,
    scope: str,
    summary: Mapping[str, Any],
    *,
    generated_at: datetime,
    trading_day: str | None = None,
) -> Path:
    """Write `{scope}_BOT_daily_summary.json` with the scope, day and generation time."""
    path = summaries_dir / f"{scope}_BOT_daily_summary.json"
    doc = {"scope": scope, "trading_day": trading_day, "generated_at": report_value(generated_at), **summary}
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
