"""History across sessions: cumulative and per-session PnL charts (SVG) and a per-day table that links to the
day's trades, logs and `tbot plot day` charts. Read-only, from the per-session daily summaries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, abort, render_template

from tbot_bot.core.users import Role

from .auth_web import requires, state
from .history_charts import daily_svg, equity_svg
from .history_readers import SAFE_NAME, charts_dir, session_rows

bp = Blueprint("sessions", __name__)


@bp.route("/history")
@requires(Role.VIEWER)
def page() -> Any:
    rows, problems = session_rows(state().home)
    totals = {
        "sessions": len(rows),
        "trades": sum(r.trades for r in rows),
        "wins": sum(r.wins for r in rows),
        "losses": sum(r.losses for r in rows),
        "pnl": sum((r.pnl for r in rows), Decimal(0)),
        "fees": sum((r.fees for r in rows), Decimal(0)),
        "net": rows[-1].cumulative if rows else Decimal(0),
    }
    return render_template("history.html", rows=list(reversed(rows)), totals=totals, problems=problems)


@bp.route("/history/<kind>.svg")
@requires(Role.VIEWER)
def chart(kind: str) -> Any:
    rows, _ = session_rows(state().home)
    days = [r.day for r in rows]
    if kind == "equity":
        svg = equity_svg(days, [r.cumulative for r in rows])
    elif kind == "daily":
        svg = daily_svg(days, [r.net for r in rows])
    else:
        abort(404)
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


@bp.route("/history/chart/<segment:name>")
@requires(Role.VIEWER)
def day_chart(name: str) -> Any:
    folder = charts_dir(state().home)
    if folder is None or not SAFE_NAME.match(name) or not name.endswith(".png"):
        abort(404)
    path = folder / name
    if not path.is_file():
        abort(404)
    # read whole (charts are small) so no file handle outlives the request
    return Response(path.read_bytes(), mimetype="image/png")
