"""Server-rendered SVG for the History page: cumulative net PnL across sessions (a line, dots per session) and
net PnL per session (bars around zero). The x axis is the session date; no chart library, no script."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 900, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 42
WIN, LOSS, LINE = "#1a7f37", "#cf222e", "#0b5cad"


def _scale(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    lo = min([*values, Decimal(0)])
    hi = max([*values, Decimal(0)])
    if hi == lo:
        hi = lo + 1
    return lo, hi


def _frame(title: str, lo: Decimal, hi: Decimal) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM

    def y(v: Decimal) -> float:
        return TOP + float((hi - v) / (hi - lo)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="18" font-weight="bold" fill="#333">{escape(title)}</text>',
    ]
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{v:,.2f}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(Decimal(0)):.1f}" y2="{y(Decimal(0)):.1f}" stroke="#888"/>'
    )
    return parts


def _x_labels(days: Sequence[str], xs: Sequence[float]) -> list[str]:
    if not days:
        return []
    step = max(1, len(days) // 8)
    picks = sorted(set(range(0, len(days), step)) | {len(days) - 1})
    return [
        f'<text class="day" x="{xs[i]:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="#333">'
        f"{escape(days[i])}</text>"
        for i in picks
    ]


def _xs(n: int) -> list[float]:
    width = WIDTH - LEFT - RIGHT
    slot = width / max(n, 1)
    return [LEFT + slot * (i + 0.5) for i in range(n)]


def equity_svg(days: Sequence[str], cumulative: Sequence[Decimal]) -> str:
    title = "Cumulative net PnL by session"
    if not days:
        return _empty(title)
    lo, hi = _scale(cumulative)
    parts = _frame(title, lo, hi)
    xs = _xs(len(days))
    plot_h = HEIGHT - TOP - BOTTOM
    ys = [TOP + float((hi - v) / (hi - lo)) * plot_h for v in cumulative]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    parts.append(f'<polyline fill="none" stroke="{LINE}" stroke-width="2" points="{points}"/>')
    for d, v, x, y in zip(days, cumulative, xs, ys, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}">'
            f"<title>{escape(d)}: {v:,.2f}</title></circle>"
        )
    parts += _x_labels(days, xs)
    parts.append("</svg>")
    return "".join(parts)


def daily_svg(days: Sequence[str], net: Sequence[Decimal]) -> str:
    title = "Net PnL per session"
    if not days:
        return _empty(title)
    lo, hi = _scale(net)
    parts = _frame(title, lo, hi)
    xs = _xs(len(days))
    plot_h = HEIGHT - TOP - BOTTOM
    bar_w = max(2.0, (WIDTH - LEFT - RIGHT) / len(days) * 0.7)
    zero = TOP + float(hi / (hi - lo)) * plot_h
    for d, v, x in zip(days, net, xs, strict=True):
        h = float(abs(v) / (hi - lo)) * plot_h
        y = zero - h if v >= 0 else zero
        colour = WIN if v > 0 else LOSS
        parts.append(
            f'<rect class="bar" x="{x - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.8):.1f}" '
            f'fill="{colour}"><title>{escape(d)}: {v:,.2f}</title></rect>'
        )
    parts += _x_labels(days, xs)
    parts.append("</svg>")
    return "".join(parts)


def _empty(title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} 60" role="img" aria-label="{escape(title)}" '
        f'font-family="sans-serif" font-size="12"><text x="10" y="35" fill="#555">{escape(title)}: no sessions yet'
        "</text></svg>"
    )
