"""The backtest report a researcher reads after every run (the freqtrade habit).

Breakdowns per ticker, exit reason, day and direction, each with a TOTAL row, plus the run's metrics; printed as
rich tables and written as `report.md` and a self-contained `report.html` (inline CSS, charts inlined as base64
PNG: no CDN, no external file, opens from an e-mail attachment). Money is summed as Decimal from the trades'
exact PnL / fees / net_PnL strings, so the TOTAL rows equal the trade history to the cent. Wins, losses and the
averages are NET of fees (what the account keeps); gross PnL and fees are shown beside them.
"""

from __future__ import annotations

import base64
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbot_bot.domain.results import cents_text, percent_text
from tbot_bot.support.utils_bot import atomic_write_text, counted

if TYPE_CHECKING:
    from tbot_bot.backtest.performance_metrics import Metrics

# (column of the trades frame, title); direction is the signal's view (bullish | bearish), whatever instrument traded
BREAKDOWNS: tuple[tuple[str, str], ...] = (
    ("ticker", "Per ticker"),
    ("exit_reason", "Per exit reason"),
    ("session", "Per day"),
    ("direction", "Per direction"),
)
HEADERS = ("", "trades", "wins", "losses", "win %", "gross PnL", "fees", "net PnL", "avg net", "avg minutes")
NET_COLUMN = 7


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    key: str
    trades: int
    wins: int
    losses: int
    total_pnl: Decimal  # net of fees
    avg_minutes: float | None
    gross_pnl: Decimal = Decimal(0)  # before fees
    fees: Decimal = Decimal(0)

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def avg_pnl(self) -> Decimal | None:
        return self.total_pnl / self.trades if self.trades else None

    def cells(self) -> list[str]:
        return [
            self.key,
            str(self.trades),
            str(self.wins),
            str(self.losses),
            "-" if self.win_rate is None else percent_text(self.win_rate),
            cents_text(self.gross_pnl),
            cents_text(self.fees),
            cents_text(self.total_pnl),
            "-" if self.avg_pnl is None else cents_text(self.avg_pnl),
            "-" if self.avg_minutes is None else f"{self.avg_minutes:.1f}",
        ]


@dataclass(frozen=True, slots=True)
class BacktestReport:
    title: str
    subtitle: str
    tables: dict[str, list[BreakdownRow]]  # title -> rows, the last row is TOTAL
    metrics: list[tuple[str, str]]
    sessions_without_trades: int
    warnings: tuple[str, ...] = ()  # e.g. fees eating the smallest order


@dataclass(frozen=True, slots=True)
class _Trades:
    """Each trade's exact amounts and duration, converted once for every breakdown table (per group, this was
    re-parsed from the frame's strings: most of the report's cost)."""

    gross: list[Decimal]
    fees: list[Decimal]
    net: list[Decimal]
    minutes: np.ndarray

    @classmethod
    def of(cls, trades: pd.DataFrame) -> _Trades:
        def decimals(column: str) -> list[Decimal]:
            return [Decimal(str(p)) for p in trades[column]] if column in trades.columns else []

        gross = decimals("PnL")
        fees = decimals("fees") or [Decimal(0)] * len(gross)  # a trade list from before fees
        net = decimals("net_PnL") or [g - f for g, f in zip(gross, fees, strict=True)]
        if len(trades):
            held = pd.to_datetime(trades["exit_time"], utc=True) - pd.to_datetime(
                trades["entry_time"], utc=True
            )
            minutes = held.dt.total_seconds().to_numpy() / 60
        else:
            minutes = np.empty(0)
        return cls(gross, fees, net, minutes)

    def row(self, key: str, rows: np.ndarray) -> BreakdownRow:
        """The breakdown row of the trades at positions `rows`."""
        net = [self.net[i] for i in rows]
        return BreakdownRow(
            key=key,
            trades=len(net),
            wins=sum(1 for p in net if p > 0),
            losses=sum(1 for p in net if p < 0),
            total_pnl=sum(net, Decimal(0)),
            avg_minutes=float(self.minutes[rows].mean()) if len(net) else None,
            gross_pnl=sum((self.gross[i] for i in rows), Decimal(0)),
            fees=sum((self.fees[i] for i in rows), Decimal(0)),
        )


def breakdown(trades: pd.DataFrame, column: str, amounts: _Trades | None = None) -> list[BreakdownRow]:
    """One row per value of `column` (sorted), then TOTAL over every trade (`amounts`: _Trades.of(trades),
    when the caller converted them once for several tables)."""
    rows: list[BreakdownRow] = []
    if column == "direction" and "direction" not in trades.columns and "side" in trades.columns:
        column = "side"  # a trade list without the signal's view: the position's side
    if not len(trades):
        return [BreakdownRow("TOTAL", 0, 0, 0, Decimal(0), None)]
    amounts = amounts or _Trades.of(trades)
    keys = trades[column].fillna("-").astype(str).to_numpy()
    for key in sorted(set(keys)):
        rows.append(amounts.row(key, np.flatnonzero(keys == key)))
    rows.append(amounts.row("TOTAL", np.arange(len(trades))))
    return rows


def _num(value: float | None, fmt: str, none: str = "n/a") -> str:
    return none if value is None else format(value, fmt)


def _money(value: Decimal | None) -> str:
    return "n/a" if value is None else cents_text(value)


def metric_lines(m: Metrics) -> list[tuple[str, str]]:
    return [
        ("trades (wins / losses)", f"{m.trades} ({m.wins} / {m.losses})"),
        ("win rate", "n/a" if m.win_rate is None else percent_text(m.win_rate)),
        ("net PnL (after fees)", cents_text(m.total_pnl)),
        ("starting / final equity", f"{cents_text(m.initial_equity)} / {cents_text(m.final_equity)}"),
        ("profit factor", _num(m.profit_factor, ".2f", "n/a (no losing trade)")),
        ("expectancy per trade", _money(m.expectancy)),
        ("average win / loss", f"{_money(m.avg_win)} / {_money(m.avg_loss)}"),
        ("max consecutive wins / losses", f"{m.max_consecutive_wins} / {m.max_consecutive_losses}"),
        ("average trade duration", _num(m.avg_trade_duration_minutes, ".1f") + " min"),
        ("exposure time", f"{percent_text(m.exposure_pct)} of market time"),
        ("max drawdown", f"{cents_text(m.max_drawdown)} ({percent_text(m.max_drawdown_pct)} of peak)"),
        ("Sharpe (daily, annualised)", _num(m.sharpe, ".2f")),
        ("Sortino (daily, annualised)", _num(m.sortino, ".2f")),
        ("annualised return", "n/a" if m.annual_return is None else percent_text(m.annual_return)),
        ("Calmar", _num(m.calmar, ".2f")),
        ("sessions", str(m.sessions)),
    ]


def build_report(
    trades: pd.DataFrame, metrics: Metrics, *, strategy: str, start: str, end: str, sessions: int,
    fee_profile: str | None = None, warnings: Sequence[str] = (),
) -> BacktestReport:  # fmt: skip
    days_traded = trades["session"].nunique() if len(trades) else 0
    amounts = _Trades.of(trades)
    tables = {title: breakdown(trades, col, amounts) for col, title in BREAKDOWNS}
    total = next(iter(tables.values()))[-1]
    lines = metric_lines(metrics)
    # the totals before fees, beside the net PnL (all exact sums of the trade history)
    lines[2:2] = [
        ("PnL before fees", cents_text(total.gross_pnl)),
        ("fees", cents_text(total.fees)),
    ]
    if fee_profile is not None:
        lines.insert(4, ("fee profile", fee_profile))
    return BacktestReport(
        title=f"Backtest {strategy.upper()} {start} to {end}",
        subtitle=f"{counted(sessions, 'session')}, {counted(len(trades), 'trade')}; times UTC; PnL in account "
        "currency, net of fees",
        tables=tables,
        metrics=lines,
        sessions_without_trades=sessions - days_traded,
        warnings=tuple(warnings),
    )


def print_report(report: BacktestReport, file: Any = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = file or sys.stdout
    # not a terminal (pipe, file, test): a fixed width so the tables never wrap mid-row
    console = Console(file=out, width=None if out.isatty() else 110, highlight=False)
    console.print(f"[bold]{report.title}[/bold]  ({report.subtitle})")
    for warning in report.warnings:
        console.print(f"[bold]warning:[/bold] {escape(warning)}", soft_wrap=True)
    for title, rows in report.tables.items():
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_footer=False)
        for i, h in enumerate(HEADERS):
            table.add_column(h or title.split()[-1], justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row.cells(), style="bold" if row.key == "TOTAL" else None)
        console.print(table)
    summary = Table(title="Summary", box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for label, value in report.metrics:
        summary.add_row(label, value)
    console.print(summary)
    if report.sessions_without_trades:
        console.print(
            f"{counted(report.sessions_without_trades, 'session')} without trades (zero bars in the daily chart)"
        )


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    right = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(right) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def write_markdown(report: BacktestReport, path: Path, images: dict[str, Path]) -> Path:
    lines = [f"# {report.title}", "", report.subtitle, ""]
    lines += [f"> **warning:** {w}\n" for w in report.warnings]
    for alt, image in images.items():
        lines += [f"![{alt}]({image.name})", ""]
    lines += ["## Summary", ""] + _md_table(("metric", "value"), report.metrics) + [""]
    for title, rows in report.tables.items():
        head = [title.split()[-1], *HEADERS[1:]]
        lines += [f"## {title}", ""] + _md_table(head, [r.cells() for r in rows]) + [""]
    atomic_write_text(
        path, "\n".join(lines), durable=False
    )  # research output (backtest_engine.RESEARCH_DURABLE)
    return path


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:1100px;
color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:1.6rem}
.sub{color:#59636e;margin-top:0}table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.4rem 0}
th,td{padding:.25rem .7rem;border-bottom:1px solid #d1d9e0;text-align:right}th:first-child,td:first-child{text-align:left}
tr.total td{font-weight:600;border-top:2px solid #59636e}td.neg{color:#cf222e}td.pos{color:#1a7f37}
img{max-width:100%;height:auto;border:1px solid #d1d9e0;margin:.4rem 0}
.grid{display:flex;flex-wrap:wrap;gap:2rem}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.4rem .7rem}
"""


def _cell(text: str, col: int) -> str:
    cls = ""
    if col == NET_COLUMN:  # net PnL column: colour by sign
        cls = (
            ' class="neg"' if text.startswith("-") else (' class="pos"' if text not in ("0.00", "-") else "")
        )
    return f"<td{cls}>{html.escape(text)}</td>"


def write_html(report: BacktestReport, path: Path, images: dict[str, Path]) -> Path:
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1><p class='sub'>{html.escape(report.subtitle)}</p>",
        *(f"<p class='warn'><strong>warning:</strong> {html.escape(w)}</p>" for w in report.warnings),
    ]
    for alt, image in images.items():
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>")
    parts.append("<div class='grid'><section><h2>Summary</h2><table>")
    parts += [f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in report.metrics]
    parts.append("</table></section></div>")
    for title, rows in report.tables.items():
        head = [title.split()[-1], *HEADERS[1:]]
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(h)}</th>" for h in head]
        parts.append("</tr>")
        for row in rows:
            cls = " class='total'" if row.key == "TOTAL" else ""
            parts.append(f"<tr{cls}>" + "".join(_cell(c, i) for i, c in enumerate(row.cells())) + "</tr>")
        parts.append("</table>")
    if report.sessions_without_trades:
        parts.append(
            f"<p class='sub'>{counted(report.sessions_without_trades, 'session')} without trades.</p>"
        )
    parts.append("</body></html>\n")
    atomic_write_text(
        path, "".join(parts), durable=False
    )  # research output (backtest_engine.RESEARCH_DURABLE)
    return path
