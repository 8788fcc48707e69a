"""Live status: the page, the small JSON endpoint it polls, and the per-strategy SVG charts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template

from tbot_bot.core.users import Role

from .auth_web import now, requires, state
from .charts_web import bar_chart_svg
from .readers_web import STRATEGIES, compact_status, money, read_status

bp = Blueprint("status", __name__)


def _status() -> dict[str, Any]:
    home = state().home
    return compact_status(read_status(home), now(), stop_requested=home.control_stop.exists())


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
        by_strategy = status.get("realized_pnl_by_strategy") or {}
        values = [(s, money(by_strategy.get(s, "0")) or Decimal(0)) for s in STRATEGIES]
        svg = bar_chart_svg("Realised PnL by strategy", values)
    elif kind == "trades":
        counts = status.get("trades_by_strategy") or {}
        values = [(s, Decimal(int(counts.get(s, 0) or 0))) for s in STRATEGIES]
        svg = bar_chart_svg("Trades by strategy", values)
    else:
        abort(404)
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})
