"""Strategy log tail with filters by strategy and minimum level (read-only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request

from tbot_bot.core.users import Role

from .auth_web import requires, state
from .readers_web import LEVELS, STRATEGIES, read_log_entries

bp = Blueprint("logs", __name__)


def _filters() -> tuple[str | None, str | None, int]:
    strategy = request.args.get("strategy") or None
    level = request.args.get("level") or None
    try:
        limit = max(1, min(1000, int(request.args.get("limit", "200"))))
    except ValueError:
        limit = 200
    return (strategy if strategy in STRATEGIES else None), (level if level in LEVELS else None), limit


@bp.route("/logs")
@requires(Role.VIEWER)
def page() -> Any:
    strategy, level, limit = _filters()
    entries = read_log_entries(state().home, strategy=strategy, level=level, limit=limit)
    return render_template(
        "logs.html",
        entries=list(reversed(entries)),
        strategy=strategy or "",
        level=level or "",
        limit=limit,
        strategies=STRATEGIES,
        levels=LEVELS,
    )


@bp.route("/api/logs")
@requires(Role.VIEWER)
def api() -> Any:
    strategy, level, limit = _filters()
    return jsonify(entries=read_log_entries(state().home, strategy=strategy, level=level, limit=limit))
