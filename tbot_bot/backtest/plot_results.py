"""Backtest charts against the calendar (headless: bare matplotlib Figures saved by the Agg renderer).

`equity_drawdown.png`: equity (top) and drawdown (bottom) on one date axis, every exit marked (green triangle
up = winning trade, red triangle down = losing or flat). `daily_pnl.png`: one bar per session of the range,
sessions without trades included (a zero bar), so gaps in trading are visible.

A chart's canvas (figure, axes, labels, grid, date axis) does not depend on the numbers, so the chart worker
lays both out ahead while the simulation runs (`lay_out_equity`, `lay_out_daily`): the one rendering that
creates the ticks and loads the fonts is then done, and drawing the numbers costs about half as much. A chart
drawn on a canvas laid out ahead is the same PNG, byte for byte, as one drawn from scratch.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIN, LOSS = "#1a7f37", "#cf222e"
# zlib level 3: at Pillow's default (6) encoding was a fifth of a chart's time; ~15 ms less each, files ~20% larger
PNG = {"compress_level": 3}
# canvases laid out ahead in this process, each used by the next chart of its kind
_LAID_OUT: dict[str, Figure] = {}


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _rendered(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()  # no file: the rendering is for the ticks and fonts it leaves in place
    return fig


def lay_out_equity() -> None:
    """The equity chart's canvas, rendered once, for the next equity chart drawn in this process."""
    _LAID_OUT["equity"] = _rendered(_equity_canvas())


def lay_out_daily() -> None:
    """The daily chart's canvas, rendered once, for the next daily chart drawn in this process."""
    _LAID_OUT["daily"] = _rendered(_daily_canvas())


def plot_equity_drawdown(curve: pd.DataFrame, trades: pd.DataFrame, path: Path, title: str) -> Path:
    """`curve`: time, equity, drawdown (performance_metrics.equity_curve); `trades`: exit_time, pnl."""
    fig = equity_figure(curve, trades, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, pil_kwargs=PNG)
    return path


def _equity_canvas() -> Figure:
    # a bare Figure (no pyplot, no figure manager): headless, and nothing global to close afterwards
    fig = Figure(figsize=(10, 5.6), dpi=90)
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    fig.subplots_adjust(left=0.09, right=0.98, top=0.92, bottom=0.09, hspace=0.08)
    ax_eq.set_ylabel("equity")
    ax_dd.set_ylabel("drawdown")
    ax_dd.set_xlabel("date (UTC)")
    for ax in (ax_eq, ax_dd):
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.grid(True, alpha=0.3)
    _date_axis(ax_dd)
    return fig


def equity_figure(curve: pd.DataFrame, trades: pd.DataFrame, title: str) -> Figure:
    fig = _LAID_OUT.pop("equity", None) or _equity_canvas()
    ax_eq, ax_dd = fig.axes
    if len(curve):
        times = pd.to_datetime(curve["time"], utc=True).dt.tz_convert(None)
        ax_eq.step(times, curve["equity"], where="post", color="tab:blue", linewidth=1.3, label="equity")
        ax_dd.fill_between(times, curve["drawdown"], 0, step="post", color=LOSS, alpha=0.35)
        ax_dd.step(times, curve["drawdown"], where="post", color=LOSS, linewidth=0.9)
        if len(trades):
            t = trades.sort_values("exit_time")
            exits = pd.to_datetime(t["exit_time"], utc=True).dt.tz_convert(None)
            equity_after = curve["equity"].to_numpy()[1:]
            won = (t["pnl"].astype(float) > 0).to_numpy()
            ax_eq.scatter(exits[won], equity_after[won], marker="^", color=WIN, s=26, zorder=3, label="win")
            ax_eq.scatter(
                exits[~won], equity_after[~won], marker="v", color=LOSS, s=26, zorder=3, label="loss or flat"
            )
        ax_eq.legend(loc="best", fontsize=8, framealpha=0.8)
    else:
        ax_eq.text(0.5, 0.5, "no trades", transform=ax_eq.transAxes, ha="center", va="center")
    ax_eq.set_title(title, y=1.0)  # placed, not measured: matplotlib would lay the axes out once more for it
    return fig


def _daily_canvas() -> Figure:
    fig = Figure(figsize=(10, 3.4), dpi=90)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.09, right=0.98, top=0.88, bottom=0.16)
    ax.set_ylabel("PnL per session")
    ax.set_xlabel("session date")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def plot_daily_pnl(daily: pd.Series, path: Path, title: str) -> Path:
    """`daily`: PnL per session date (float), every session of the range."""
    fig = _LAID_OUT.pop("daily", None) or _daily_canvas()
    (ax,) = fig.axes
    if len(daily):
        days = pd.to_datetime([d.isoformat() if isinstance(d, date) else d for d in daily.index])
        values = daily.astype(float).to_numpy()
        ax.bar(days, values, width=0.8, color=[WIN if v > 0 else LOSS for v in values])
        ax.axhline(0, color="black", linewidth=0.6)
        _date_axis(ax)
    else:
        ax.text(0.5, 0.5, "no sessions", transform=ax.transAxes, ha="center", va="center")
    ax.set_title(title, y=1.0)  # placed, not measured (see equity_figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, pil_kwargs=PNG)
    return path
