"""The backtest report: extra metrics by hand, breakdown tables, self-contained HTML, date-axis charts."""

from __future__ import annotations

import base64
import io
import math
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import matplotlib.dates as mdates
import pandas as pd
import pytest

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest import performance_metrics as pm
from tbot_bot.backtest import plot_results
from tbot_bot.backtest.plot_results import equity_figure
from tbot_bot.backtest.report import breakdown, build_report, print_report, write_html, write_markdown

D1, D2, D3, D4 = date(2011, 1, 3), date(2011, 1, 4), date(2011, 1, 5), date(2011, 1, 6)


def metric_trades() -> pd.DataFrame:
    entry = pd.to_datetime(
        ["2011-01-03 14:50", "2011-01-03 14:55", "2011-01-04 14:50", "2011-01-05 14:50", "2011-01-05 15:50"],
        utc=True,
    )
    minutes = [10, 10, 20, 40, 30]
    return pd.DataFrame(
        {
            "entry_time": entry,
            "exit_time": entry + pd.to_timedelta(minutes, unit="min"),
            "pnl": [10.0, -5.0, -20.0, 0.0, 40.0],
            "session": [D1, D1, D2, D3, D3],
        }
    )


def test_extra_metrics_hand_computed() -> None:
    m = pm.compute(metric_trades(), 1000.0, [D1, D2, D3, D4], market_minutes=4 * 390)
    assert m.gross_profit == 50.0 and m.gross_loss == 25.0 and m.profit_factor == 2.0
    assert m.expectancy == 5.0 and m.avg_win == 25.0 and m.avg_loss == -12.5
    # exits in time order: +10, -5, -20, 0, +40 -> two losses in a row; the flat trade breaks the streak
    assert (m.max_consecutive_wins, m.max_consecutive_losses) == (1, 2)
    # the first two trades overlap (14:50-15:00 and 14:55-15:05 -> 15 min), then 20 + 40 + 30
    assert m.exposure_pct == pytest.approx(105 / 1560)
    daily = [5 / 1000, -20 / 1005, 40 / 985, 0.0]
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in daily) / 4)
    assert m.sortino == pytest.approx(sum(daily) / 4 / downside * math.sqrt(252))
    annual = (1025 / 1000) ** (252 / 4) - 1
    assert m.annual_return == pytest.approx(annual)
    # equity 1000 1010 1005 985 985 1025: worst fall 1010 -> 985
    assert m.calmar == pytest.approx(annual / (25 / 1010))


def test_profit_factor_and_sortino_are_none_without_losses() -> None:
    t = metric_trades()
    t = t[t["pnl"] >= 0]
    m = pm.compute(t, 1000.0, [D1, D2, D3])
    assert m.profit_factor is None and m.sortino is None and m.calmar is None
    assert m.max_consecutive_losses == 0


def engine_trades() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ["SYN1", "SYN1", "SH", "SYN2"],
            "exit_reason": ["timeout", "stop_loss", "vwap_touch", "timeout"],
            "session": ["2011-01-04", "2011-01-04", "2011-01-05", "2011-01-06"],
            "side": ["long", "long", "long", "long"],
            "direction": ["bullish", "bullish", "bearish", "bullish"],  # SH bought on a bearish signal
            "entry_time": ["2011-01-04T15:00:00+00:00"] * 4,
            "exit_time": ["2011-01-04T15:30:00+00:00", "2011-01-04T15:10:00+00:00"] * 2,
            "PnL": ["1.1001", "-0.1001", "2.5", "-3"],  # before fees
            "fees": ["0.10", "0.10", "0.05", "0.15"],
            "net_PnL": ["1.0001", "-0.2001", "2.45", "-3.15"],
        }
    )


def test_breakdown_rows_and_total_in_decimal() -> None:
    rows = breakdown(engine_trades(), "ticker")
    assert [r.key for r in rows] == ["SH", "SYN1", "SYN2", "TOTAL"]
    syn1 = rows[1]
    assert (syn1.trades, syn1.wins, syn1.losses, syn1.total_pnl) == (2, 1, 1, Decimal("0.8000"))
    assert (syn1.gross_pnl, syn1.fees) == (Decimal("1.0000"), Decimal("0.20"))
    assert syn1.avg_minutes == 20.0
    total = rows[-1]
    assert total.total_pnl == Decimal("0.10") and total.trades == 4 and total.win_rate == 0.5
    # win %, gross PnL, fees, net PnL, average net
    assert total.cells()[4:9] == ["50.00%", "0.50", "0.40", "0.10", "0.02"]
    # a trade list from before fees: net = PnL, fees 0
    gross_only = breakdown(engine_trades().drop(columns=["fees", "net_PnL"]), "ticker")[-1]
    assert (gross_only.total_pnl, gross_only.fees) == (Decimal("0.5"), Decimal(0))
    assert [r.key for r in breakdown(engine_trades(), "direction")] == ["bearish", "bullish", "TOTAL"]
    # a trade list without directions falls back to the position's side
    assert [r.key for r in breakdown(engine_trades().drop(columns="direction"), "direction")] == [
        "long",
        "TOTAL",
    ]
    empty = breakdown(engine_trades().iloc[0:0], "ticker")
    assert len(empty) == 1 and empty[0].cells()[:2] == ["TOTAL", "0"]


def _report():  # noqa: ANN202
    t = engine_trades()
    frame = pd.DataFrame(
        {
            "entry_time": pd.to_datetime(t["entry_time"]),
            "exit_time": pd.to_datetime(t["exit_time"]),
            "pnl": t["net_PnL"].astype(float),
            "fees": t["fees"].astype(float),
            "session": pd.to_datetime(t["session"]).dt.date,
        }
    )
    m = pm.compute(frame, 1000.0, [D1, D2, D3, D4])
    return build_report(t, m, strategy="mid", start="2011-01-03", end="2011-01-06", sessions=4)


def test_printed_tables_have_every_breakdown_and_totals() -> None:
    buf = io.StringIO()
    print_report(_report(), file=buf)
    text = buf.getvalue()
    for title in ("Per ticker", "Per exit reason", "Per day", "Per direction", "Summary"):
        assert title in text
    assert text.count("TOTAL") == 4
    assert re.search(r"profit factor\s+1\.03", text)  # net: 3.4501 / 3.3501
    assert re.search(r"PnL before fees\s+0\.50", text) and re.search(r"\bfees\s+0\.40", text)
    assert re.search(r"net PnL \(after fees\)\s+0\.10", text)
    assert "1 session without trades" in text


def test_html_is_self_contained_and_markdown_has_tables(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    html = write_html(_report(), tmp_path / "report.html", {"equity": png}).read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html and "<link" not in html
    data = re.search(r"src='data:image/png;base64,([^']+)'", html)
    assert data and base64.b64decode(data.group(1)) == png.read_bytes()
    assert "<tr class='total'>" in html and "Per exit reason" in html
    md = write_markdown(_report(), tmp_path / "report.md", {"equity": png}).read_text()
    assert "| ticker | trades |" in md and "| TOTAL | 4 | 2 | 2 | 50.00% | 0.50 | 0.40 | 0.10 |" in md


def test_equity_chart_is_on_a_date_axis() -> None:
    t = metric_trades()
    curve = pm.equity_curve(t, 1000.0)
    fig = equity_figure(curve, t, "x")
    ax = fig.axes[1]
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    lo, hi = (mdates.num2date(x).date() for x in ax.get_xlim())
    assert lo <= D1 and hi >= D3 and (hi - lo).days < 10  # days, not trade numbers
    marks = fig.axes[0].collections
    assert sum(len(c.get_offsets()) for c in marks) == len(t)  # every exit is marked


@pytest.mark.parametrize("trades", [5, 0])
def test_a_chart_on_a_canvas_laid_out_ahead_is_the_chart_drawn_from_scratch(
    tmp_path: Path, trades: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart worker lays the canvases out while the simulation runs; the PNGs must not change for it."""
    monkeypatch.setattr(plot_results, "_LAID_OUT", {})  # this test's own: nothing left over for other tests
    t = metric_trades().iloc[:trades]
    curve = pm.equity_curve(t, 1000.0)
    daily = pd.Series(
        [12.5, -3.0, 0.0, 7.25][: max(trades - 1, 0)], index=[D1, D2, D3, D4][: max(trades - 1, 0)]
    )
    for how in ("scratch", "laid_out"):
        if how == "laid_out":
            plot_results.lay_out_equity()
            plot_results.lay_out_daily()
        plot_results.plot_equity_drawdown(curve, t, tmp_path / f"equity_{how}.png", "x: equity and drawdown")
        plot_results.plot_daily_pnl(daily, tmp_path / f"daily_{how}.png", "x: PnL per session, net of fees")
        assert not plot_results._LAID_OUT  # each canvas laid out serves one chart
    for chart in ("equity", "daily"):
        drawn = (tmp_path / f"{chart}_laid_out.png").read_bytes()
        assert drawn[:8] == b"\x89PNG\r\n\x1a\n" and drawn == (tmp_path / f"{chart}_scratch.png").read_bytes()


def test_tbot_backtest_prints_tables_with_default_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    argv = ["backtest", "--strategy", "mid", "--start", "2011-01-03", "--end", "2011-01-14"]
    assert tbot([*argv, "--out", str(out), "--home", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "Per ticker" in text and "Per day" in text and "Sortino" in text and "Calmar" in text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
