"""Server-rendered SVG bar charts (PnL and trade count per strategy): no chart library, no script, a few
hundred bytes per chart over a slow link."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from xml.sax.saxutils import escape

WIDTH, HEIGHT, PAD = 320, 160, 24
TOP = 38  # room for the title and the value label above the tallest bar


def bar_chart_svg(
    title: str, values: list[tuple[str, Decimal]], *, unit: str = "", shown: Callable[[Decimal], str] = str
) -> str:
    """Vertical bars around a zero line; negative bars point down. Labels are escaped. `shown`: a bar's value as
    people read it elsewhere (numbers_web.money for money: cents, as the status card shows it)."""
    n = max(len(values), 1)
    top = max([v for _, v in values] + [Decimal(0)])
    bottom = min([v for _, v in values] + [Decimal(0)])
    span = (top - bottom) or Decimal(1)
    plot_h = HEIGHT - TOP - PAD
    zero_y = TOP + float(top / span) * plot_h
    slot = (WIDTH - 2 * PAD) / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{PAD}" y="16" font-weight="bold" fill="#333">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{zero_y:.1f}" x2="{WIDTH - PAD}" y2="{zero_y:.1f}" stroke="#888"/>',
    ]
    for i, (label, value) in enumerate(values):
        h = float(abs(value) / span) * plot_h
        x = PAD + i * slot + slot * 0.2
        y = zero_y - h if value >= 0 else zero_y
        colour = "#2e7d32" if value >= 0 else "#c62828"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" height="{max(h, 0.5):.1f}" '
            f'fill="{colour}"><title>{escape(label)}: {escape(shown(value))}{escape(unit)}</title></rect>'
        )
        parts.append(
            f'<text x="{x + slot * 0.3:.1f}" y="{HEIGHT - 6}" text-anchor="middle" fill="#333">{escape(label)}</text>'
        )
        value_y = (y - 3) if value >= 0 else (zero_y - 3)  # above the zero line, clear of the labels
        parts.append(
            f'<text x="{x + slot * 0.3:.1f}" y="{value_y:.1f}" text-anchor="middle" fill="#333">'
            f"{escape(shown(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
