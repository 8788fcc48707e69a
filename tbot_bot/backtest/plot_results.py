"""Equity-curve and drawdown PNGs for a backtest run (headless: matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_equity_and_drawdown(curve: pd.DataFrame, out_dir: Path, title: str) -> tuple[Path, Path]:
    """Writes equity_curve.png and drawdown.png; `curve` has columns time, equity, drawdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "equity_curve.png", out_dir / "drawdown.png")
    x = list(range(len(curve)))
    for path, column, label, colour in (
        (paths[0], "equity", "equity", "tab:blue"),
        (paths[1], "drawdown", "drawdown", "tab:red"),
    ):
        fig, ax = plt.subplots(figsize=(9, 4), dpi=80)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.14)  # fixed margins: tight_layout is slow
        y = curve[column].to_numpy() if len(curve) else []
        if column == "drawdown":
            ax.fill_between(x, y, 0, color=colour, alpha=0.4, step="post")
        ax.step(x, y, where="post", color=colour)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        ax.set_title(f"{title}: {label}")
        ax.set_xlabel("trade # (exits in time order)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        fig.savefig(path)
        plt.close(fig)
    return paths
