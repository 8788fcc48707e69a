"""Tuning tracker (`tbot tune report`): how the live strategies did under each value of their entry buffer /
VWAP threshold, from the bot's own records — trade history, strategy logs (denials and screen rejections) and
the config versions (which value was live when each trade was entered).

Per strategy and value: trades, win %, average PnL, average holding time, rejections by reason and the most
traded tickers; a recommendation (the value with the best average PnL among values with at least
MIN_TRADES trades) set beside the latest optimizer proposal for that strategy. Written as CSV and JSON under
the optimizer's output folder (`<OPTIMIZER_OUTPUT_DIR>/tuning_tracker/`). Read-only: it never changes config.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tbot_bot.config.config_versions import PREFIX, history
from tbot_bot.config.env_bot import parse_env_text
from tbot_bot.config.security_bot import decrypt_file
from tbot_bot.config.settings_bot import read_env_text
from tbot_bot.domain.results import closed_result, is_win, net_pnl
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_json, atomic_write_text, utc_now

# the key whose value a strategy's results are grouped by (CLOSE uses the OPEN buffer: DESIGN §7)
TRACKED_KEY = {"open": "STRAT_OPEN_BUFFER", "mid": "STRAT_MID_VWAP_THRESHOLD", "close": "STRAT_OPEN_BUFFER"}
MIN_TRADES = 5
REJECTION_EVENTS = ("signal_denied", "screen_reject")


@dataclass(frozen=True, slots=True)
class ConfigTimeline:
    """Which `.env_bot` values were live when: kept versions (each live until its stamp) then the current."""

    versions: list[tuple[datetime, dict[str, str]]]  # (replaced at, values), oldest first
    current: dict[str, str]

    def value_at(self, key: str, moment: datetime) -> str | None:
        for replaced_at, values in self.versions:
            if moment < replaced_at:
                return values.get(key)
        return self.current.get(key)


def config_timeline(home: BotHome) -> ConfigTimeline:
    versions = []
    for v in history(home):
        try:
            text = decrypt_file(
                home.versioned_env_dir / f"{PREFIX}{v.version}", home.key_file("env")
            ).decode()
        except ConfigError:
            continue  # a version encrypted with a retired key: its period is attributed to the next one
        versions.append((v.saved_at, parse_env_text(text)[0]))
    return ConfigTimeline(versions, parse_env_text(read_env_text(home))[0])


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _scopes(home: BotHome) -> list[Path]:
    out = home.output_dir
    if not out.is_dir():
        return []
    return sorted(
        p for p in out.iterdir() if p.is_dir() and ((p / "logs").is_dir() or (p / "trades").is_dir())
    )


def load_trades(home: BotHome) -> list[dict[str, Any]]:
    trades: list[dict[str, Any]] = []
    for scope in _scopes(home):
        for f in sorted((scope / "trades").glob("*_BOT_trade_history.json")):
            try:
                rows = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            trades += [r for r in rows if isinstance(r, dict)]
    return trades


def load_events(home: BotHome, strategy: str) -> list[dict[str, Any]]:
    """The strategy's log lines (json lines or csv, whatever LOG_FORMAT wrote), archived days included."""
    rows: list[dict[str, Any]] = []
    for scope in _scopes(home):
        for f in sorted((scope / "logs").glob(f"{strategy}*.log")):
            if not (f.name == f"{strategy}.log" or f.name[len(strategy)] == "."):
                continue
            text = f.read_text(encoding="utf-8", errors="replace")
            if text.lstrip().startswith("{"):
                for line in text.splitlines():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
            else:
                rows += list(csv.DictReader(io.StringIO(text)))
    return rows


def _dec(v: Any) -> Decimal | None:
    try:
        return Decimal(str(v)) if v not in (None, "") else None
    except InvalidOperation:
        return None


def build_report(
    home: BotHome, *, since: date | None = None, proposals: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    timeline = config_timeline(home)
    trades = [t for t in load_trades(home) if not t.get("error_code") and t.get("mode", "live") != "backtest"]
    rows: list[dict[str, Any]] = []
    tickers: list[dict[str, Any]] = []
    recommendations: dict[str, Any] = {}
    for strategy, key in TRACKED_KEY.items():
        groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for t in trades:
            entered = _when(t.get("entry_time") or t.get("timestamp"))
            if t.get("strategy_name") != strategy or entered is None or (since and entered.date() < since):
                continue
            groups[timeline.value_at(key, entered)].append(t)
        rejections: dict[str | None, Counter[str]] = defaultdict(Counter)
        for e in load_events(home, strategy):
            at = _when(e.get("timestamp"))
            if e.get("event") not in REJECTION_EVENTS or at is None or (since and at.date() < since):
                continue
            reason = str(e.get("filter") or e.get("error_code") or _detail(e).get("filter") or e.get("event"))
            rejections[timeline.value_at(key, at)][reason] += 1
        for value in sorted(set(groups) | set(rejections), key=lambda v: (v is None, _dec(v) or 0)):
            ts = groups.get(value, [])
            # net of fees (domain/results.py): the trade history's PnL is gross, its fees beside it
            pnl = [
                net_pnl(p, _dec(t.get("fees")) or Decimal(0))
                for t in ts
                if (p := _dec(t.get("PnL"))) is not None
            ]
            # wins and the average over trades wholly closed (a trade partly sold has money, not yet a result)
            results = [
                r
                for t in ts
                if (r := closed_result(_dec(t.get("PnL")), _dec(t.get("fees")), t.get("exit_time")))
                is not None
            ]
            held = [
                float(t["holding_seconds"]) / 60 for t in ts if t.get("holding_seconds") not in (None, "")
            ]
            freq = Counter(str(t.get("signal_ticker") or t.get("ticker")) for t in ts)
            rows.append({
                "strategy": strategy, "key": key, "value": value, "trades": len(ts),
                "win_pct": round(100 * sum(1 for p in results if is_win(p)) / len(results), 2) if results else None,
                "avg_pnl": (
                    str((sum(results, Decimal(0)) / len(results)).quantize(Decimal("0.0001"))) if results else None
                ),
                "total_pnl": str(sum(pnl, Decimal(0))),
                "avg_duration_min": round(sum(held) / len(held), 2) if held else None,
                "rejections": sum(rejections[value].values()),
                "rejections_by_reason": dict(sorted(rejections[value].items())),
                "top_tickers": dict(freq.most_common(5)),
            })  # fmt: skip
            for ticker, n in freq.items():
                tickers.append(
                    {"strategy": strategy, "key": key, "value": value, "ticker": ticker, "trades": n}
                )
        recommendations[strategy] = _recommend(strategy, key, [r for r in rows if r["strategy"] == strategy],
                                               timeline.current.get(key), proposals or [])  # fmt: skip
    return {"generated_at": utc_now().isoformat(), "since": since.isoformat() if since else None,
            "min_trades": MIN_TRADES, "rows": rows, "tickers": tickers, "recommendations": recommendations}  # fmt: skip


def _detail(e: dict[str, Any]) -> dict[str, Any]:
    try:
        d = json.loads(e.get("detail") or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return d if isinstance(d, dict) else {}


def _recommend(
    strategy: str, key: str, rows: list[dict[str, Any]], live: str | None, proposals: list[dict[str, Any]]
) -> dict[str, Any]:
    eligible = [
        r for r in rows if r["trades"] >= MIN_TRADES and r["avg_pnl"] is not None and r["value"] is not None
    ]
    best = max(eligible, key=lambda r: Decimal(r["avg_pnl"])) if eligible else None
    latest = next((p for p in proposals if p.get("strategy") == strategy), None)
    proposed = None
    if latest:
        proposed = next((c.get("new") for c in latest.get("changes", []) if c.get("key") == key), None)
    out: dict[str, Any] = {
        "key": key, "live_value": live, "recommended_value": best["value"] if best else None,
        "basis": (f"best average PnL over {best['trades']} live trades" if best else
                  f"no value has {MIN_TRADES} live trades yet: no recommendation"),
        "latest_proposal": latest.get("run_id") if latest else None, "proposal_value": proposed,
    }  # fmt: skip
    if best and proposed is not None:
        same = _dec(best["value"]) == _dec(proposed)
        out["agrees_with_proposal"] = same
    return out


def write_report(home: BotHome, report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    files = {
        "json": out_dir / f"tuning_report_{stamp}.json",
        "csv": out_dir / f"tuning_report_{stamp}.csv",
        "tickers_csv": out_dir / f"ticker_frequency_{stamp}.csv",
    }
    atomic_write_json(files["json"], report)
    cols = ["strategy", "key", "value", "trades", "win_pct", "avg_pnl", "total_pnl", "avg_duration_min", "rejections",
            "rejections_by_reason", "top_tickers"]  # fmt: skip
    atomic_write_text(files["csv"], _csv([{**r, "rejections_by_reason": json.dumps(r["rejections_by_reason"]),
                                           "top_tickers": json.dumps(r["top_tickers"])} for r in report["rows"]], cols))  # fmt: skip
    atomic_write_text(
        files["tickers_csv"], _csv(report["tickers"], ["strategy", "key", "value", "ticker", "trades"])
    )
    return files


def _csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
