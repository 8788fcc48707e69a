"""`tbot plot day`: one session of one symbol as a candlestick chart with what the strategies saw and did.

Drawn with matplotlib alone (candles are bars and wicks; no extra dependency): the strategy windows shaded
(analysis light, breakout darker, monitoring lightest), OPEN's opening range (high/low of its analysis window),
session VWAP and Bollinger bands computed by `strategy.signals` (the numbers the strategies use), and every
entry and exit marked with its strategy, direction, exit reason and PnL. Trades of an instrument bought for
this symbol's signal (an inverse ETF) are marked at this symbol's price and name the instrument. The bottom axis
is UTC, the top axis exchange time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tbot_bot.domain.results import is_win
from tbot_bot.enhancements.bollinger_confluence import bollinger_bands  # noqa: E402
from tbot_bot.errors import ConfigError  # noqa: E402
from tbot_bot.strategy.signals import session_vwap  # noqa: E402

if TYPE_CHECKING:
    from tbot_bot.market_time import Window

WIN, LOSS = "#1a7f37", "#cf222e"
SHADES = {"open": "#4c8bf5", "mid": "#f2a93b", "close": "#9b59b6"}


@dataclass(frozen=True, slots=True)
class DayTrade:
    """One trade of the day as the chart needs it (from the ledger or a backtest's trades)."""

    strategy: str
    ticker: str  # instrument traded
    signal_ticker: str
    direction: str  # bullish | bearish (the signal's view; an inverse ETF bought is bearish)
    entry_time: datetime | None
    exit_time: datetime | None
    entry_price: Decimal | None
    exit_price: Decimal | None
    pnl: Decimal | None  # net of fees
    exit_reason: str | None


def _naive_utc(ts: datetime | pd.Timestamp) -> datetime:
    return pd.Timestamp(ts).tz_convert("UTC").tz_localize(None).to_pydatetime()


def _x(ts: datetime | pd.Timestamp) -> float:
    """Matplotlib's date number of a moment (naive UTC, as the axis is drawn)."""
    return float(mdates.date2num(_naive_utc(ts)))


def _price_at(bars: pd.DataFrame, moment: datetime) -> float | None:
    """The symbol's bar open at `moment` (a fill's minute), else the last close before it."""
    ts = pd.Timestamp(moment).floor("min")
    hit = bars[bars["timestamp"] == ts]
    if len(hit):
        return float(hit["open"].iloc[0])
    before = bars[bars["timestamp"] < ts]
    return float(before["close"].iloc[-1]) if len(before) else None


def day_figure(
    bars: pd.DataFrame,
    symbol: str,
    day: date,
    windows: Sequence[Window],
    trades: Sequence[DayTrade],
    *,
    exchange_tz: str,
    bollinger: tuple[int, float],
    source: str,
) -> Figure:
    """`bars`: the symbol's regular-session bars of `day` (timestamp = bar start, UTC)."""
    bars = bars.sort_values("timestamp").reset_index(drop=True)
    if bars.empty:
        raise ConfigError(f"no bars for {symbol} on {day}")
    t = [_naive_utc(x) for x in bars["timestamp"]]
    o, h, lo, c, v = (bars[k].to_numpy(float) for k in ("open", "high", "low", "close", "volume"))
    width = 0.6 / (24 * 60)  # 0.6 minute in matplotlib date units (days)
    fig, (ax, ax_vol) = plt.subplots(
        2, 1, figsize=(14, 7.5), dpi=90, sharex=True, gridspec_kw={"height_ratios": [4, 1]}
    )
    fig.subplots_adjust(left=0.06, right=0.985, top=0.86, bottom=0.08, hspace=0.05)
    up = c >= o
    colours = np.where(up, WIN, LOSS)
    ax.vlines(t, lo, h, colors=colours, linewidth=0.6, zorder=2)
    ax.bar(t, np.where(up, c - o, o - c), width, bottom=np.minimum(o, c), color=colours, zorder=3)
    ax_vol.bar(t, v, width, color=colours, alpha=0.6)
    ax.plot(t, session_vwap(h, lo, c, v), color="#0b3d91", linewidth=1.2, label="VWAP", zorder=4)
    period, k = bollinger
    mid, upper, lower = bollinger_bands(c, period, k)
    ax.plot(t, mid, color="#777777", linewidth=0.8, linestyle="--", label=f"Bollinger {period}, {k:g}σ")
    ax.fill_between(t, lower, upper, color="#999999", alpha=0.12, zorder=1)
    _shade_windows(ax, ax_vol, windows, bars)
    _mark_trades(ax, trades, bars, symbol)
    ax.set_ylabel("price")
    ax_vol.set_ylabel("volume")
    ax_vol.set_xlabel("time (UTC)")
    ax.grid(True, alpha=0.25)
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    marker = {"linestyle": "", "markeredgecolor": "black", "markersize": 8}
    handles += [
        Line2D([], [], marker="^", color="#bbbbbb", label="entry, bullish", **marker),  # type: ignore[arg-type]
        Line2D([], [], marker="v", color="#bbbbbb", label="entry, bearish", **marker),  # type: ignore[arg-type]
        Line2D([], [], marker="X", color=WIN, label="exit, win", **marker),  # type: ignore[arg-type]
        Line2D([], [], marker="X", color=LOSS, label="exit, loss", **marker),  # type: ignore[arg-type]
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=3, framealpha=0.85)
    locator = mdates.HourLocator()
    ax_vol.xaxis.set_major_locator(locator)
    ax_vol.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax_vol.set_xlim(t[0] - timedelta(minutes=3), t[-1] + timedelta(minutes=3))
    tz = ZoneInfo(exchange_tz)
    top = ax.secondary_xaxis("top")
    top.xaxis.set_major_locator(mdates.HourLocator(tz=tz))
    top.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    top.set_xlabel(f"exchange time ({exchange_tz})", fontsize=8)
    n = len([x for x in trades if x.entry_time is not None])
    fig.suptitle(f"{symbol} {day.isoformat()} — {n} trade(s) — {source}", fontsize=12, y=0.985)
    return fig


def _shade_windows(ax: plt.Axes, ax_vol: plt.Axes, windows: Sequence[Window], bars: pd.DataFrame) -> None:
    for w in windows:
        if not w.fits:
            continue
        colour = SHADES.get(w.strategy, "#888888")
        spans = (
            (w.start, w.breakout_start, 0.10),
            (w.breakout_start, w.breakout_end, 0.22),
            (w.breakout_end, w.monitoring_end, 0.05),
        )
        for a, b, alpha in spans:
            if b > a:
                for axis in (ax, ax_vol):
                    axis.axvspan(_x(a), _x(b), color=colour, alpha=alpha, linewidth=0)
        ax.text(_x(w.start), 0.01, f" {w.strategy.upper()}", va="bottom", fontsize=9, color=colour,
                fontweight="bold", transform=ax.get_xaxis_transform())  # fmt: skip
        if w.strategy == "open":
            rng = bars[(bars["timestamp"] >= w.start) & (bars["timestamp"] < w.breakout_start)]
            if len(rng):
                hi, low = float(rng["high"].max()), float(rng["low"].min())
                x0, x1 = _x(w.start), _x(w.monitoring_end)
                ax.hlines([hi, low], x0, x1, colors=colour, linestyles=":", linewidth=1.1, zorder=4)
                ax.text(x1, hi, f" OR high {hi:.2f}", fontsize=7, color=colour, va="bottom")
                ax.text(x1, low, f" OR low {low:.2f}", fontsize=7, color=colour, va="top")


def _mark_trades(ax: plt.Axes, trades: Sequence[DayTrade], bars: pd.DataFrame, symbol: str) -> None:
    for tr in trades:
        own = tr.ticker == symbol  # else an instrument bought for this symbol's signal: mark at our price
        via = "" if own else f" via {tr.ticker}"
        bearish = tr.direction == "bearish"
        if tr.entry_time is not None:
            price = (
                float(tr.entry_price)
                if own and tr.entry_price is not None
                else _price_at(bars, tr.entry_time)
            )
            if price is not None:
                ax.scatter([_x(tr.entry_time)], [price], marker="v" if bearish else "^", s=90,
                           color=SHADES.get(tr.strategy, "black"), edgecolors="black", zorder=6)  # fmt: skip
                ax.annotate(f"{tr.strategy} {tr.direction} entry{via}", (_x(tr.entry_time), price),
                            xytext=(0, -18 if bearish else 14), textcoords="offset points", fontsize=7, ha="center")  # fmt: skip
        if tr.exit_time is not None:
            price = (
                float(tr.exit_price) if own and tr.exit_price is not None else _price_at(bars, tr.exit_time)
            )
            if price is not None:
                won = is_win(tr.pnl)
                pnl = "" if tr.pnl is None else f" {tr.pnl:+.2f}"
                ax.scatter([_x(tr.exit_time)], [price], marker="X", s=80, color=WIN if won else LOSS,
                           edgecolors="black", zorder=6)  # fmt: skip
                ax.annotate(f"exit: {tr.exit_reason or '?'}{pnl}", (_x(tr.exit_time), price),
                            xytext=(0, 12), textcoords="offset points", fontsize=7, ha="center",
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0})  # fmt: skip


def write_day_chart(fig: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    try:
        fig.savefig(tmp)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never a half-made chart left beside the one asked for
        raise
    finally:
        plt.close(fig)
    return out
