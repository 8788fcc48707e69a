"""The optimizer report's charts (headless: bare matplotlib Figures saved by the Agg renderer). Imported only
where a chart is drawn (the chart worker, optimizer/report.ReportJob): importing matplotlib costs more than a
short study's trials."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backends import backend_agg  # noqa: F401 - the PNG renderer, imported with the worker's preload
from matplotlib.figure import Figure

from tbot_bot.support.utils_bot import atomic_write_bytes

if TYPE_CHECKING:
    from tbot_bot.optimizer.report import FoldSeries


def _png(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_history(series: tuple[FoldSeries, ...], genetic: bool, path: Path) -> Path:
    # bare Figures with fixed margins: tight_layout would render each figure twice (once to measure it)
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.13, top=0.9)
    for s in series:
        best = [max(s.values[: i + 1]) for i in range(len(s.values))]
        ax.scatter(s.numbers, s.values, s=10, alpha=0.5, label=f"fold {s.fold}")
        ax.plot(s.numbers, best, linewidth=1)
    ax.locator_params(nbins=6)
    ax.set_xlabel("trial")
    ax.set_ylabel("in-sample net PnL" if genetic else "in-sample objective")
    ax.set_title("Optimisation history (dots: trials, lines: best so far)")
    ax.legend(fontsize=7)
    return _png(fig, path)


def plot_slices(series: tuple[FoldSeries, ...], keys: tuple[str, ...], path: Path) -> Path:
    fig = Figure(figsize=(4 * len(keys), 3.5))
    axes = fig.subplots(1, len(keys), squeeze=False)
    fig.subplots_adjust(left=0.25 / len(keys), right=0.99, bottom=0.1, top=0.82, wspace=0.3)
    for ax, key in zip(axes[0], keys, strict=True):
        for s in series:
            ax.scatter(s.params[key], s.values, s=10, alpha=0.6, label=f"fold {s.fold}")
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
        # a handful of ticks: each tick is several artists, which were most of the drawing time
        ax.locator_params(nbins=4)
    axes[0][0].set_ylabel("in-sample objective")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Parameter slices")
    return _png(fig, path)


def plot_pareto(series: tuple[FoldSeries, ...], path: Path) -> Path:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    for s in series:
        ax.scatter(s.drawdowns, s.values, s=8, alpha=0.3)
        ax.plot(s.front_drawdowns, s.front_values, marker="o", label=f"fold {s.fold}")
    ax.set_xlabel("in-sample max drawdown")
    ax.set_ylabel("in-sample net PnL")
    ax.set_title("Pareto front: return vs drawdown")
    ax.legend(fontsize=7)
    return _png(fig, path)
