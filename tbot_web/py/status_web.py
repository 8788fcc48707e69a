"""Live status: the page, the small JSON endpoint it polls, and the per-strategy SVG charts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template

from tbot_bot.core.users import Role

from .auth_web import now, requires, state
from .charts_web import bar_chart_svg
from .numbers_web import money as money_text
from .readers_web import STRATEGIES, current_status, money, read_status
from .status_values_web import count

bp = Blueprint("status", __name__)


def _status() -> dict[str, Any]:
    return current_status(state().home, now())


@bp.route("/status")
@requires(Role.VIEWER)
def page() -> Any:
    return render_template("status.html", status=_status())


@bp.route("/api/status")
@requires(Role.VIEWER)
def api() -> Any:
    response = jsonify(_status())
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/charts/<kind>.svg")
@requires(Role.VIEWER)
def chart(kind: str) -> Any:
    status = read_status(state().home)
    if kind == "pnl":
        by_strategy = status.get("realized_pnl_by_strategy")
        raw = {s: by_strategy.get(s, "0") for s in STRATEGIES} if isinstance(by_strategy, dict) else {}
        parsed = {s: money(v) for s, v in raw.items()}
        title = "Net PnL by strategy (after fees)"
        shown = money_text
    elif kind == "trades":
        counts = status.get("trades_by_strategy")
        raw = {s: counts.get(s, 0) or 0 for s in STRATEGIES} if isinstance(counts, dict) else {}
        parsed = {s: Decimal(c) if isinstance(c := count(v), int) else None for s, v in raw.items()}
        title = "Trades by strategy"
        shown = str
    else:
        abort(404)
    values = [(s, v) for s, v in parsed.items() if v is not None]
    if len(values) < len(STRATEGIES):
        # a malformed status.json value is left out and the chart says so
        title += " (some values unavailable)"
    svg = bar_chart_svg(title, values, shown=shown)
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})
