"""Strategy logs, newest first, with filters by strategy, minimum level and day, and paging (read-only)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, render_template, request

from tbot_bot.core.users import Role

from .auth_web import requires, state
from .readers_web import LEVELS, STRATEGIES, read_log_entries, read_log_page, read_status, set_fields
from .time_web import both, exchange_zone

bp = Blueprint("logs", __name__)
PER_PAGE = 100


def _int(name: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(request.args.get(name, str(default)))))
    except ValueError:
        return default


def _filters() -> tuple[str | None, str | None, str | None]:
    strategy = request.args.get("strategy") or None
    level = request.args.get("level") or None
    day = request.args.get("day") or None
    return (
        strategy if strategy in STRATEGIES else None,
        level if level in LEVELS else None,
        day if day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) else None,
    )


@bp.route("/logs")
@requires(Role.VIEWER)
def page() -> Any:
    strategy, level, day = _filters()
    per_page = _int("limit", PER_PAGE, 10, 500)
    page_no = _int("page", 0, 0, 100_000)
    home = state().home
    entries, total = read_log_page(
        home, strategy=strategy, level=level, day=day, page=page_no, per_page=per_page
    )
    zone = exchange_zone(read_status(home))
    rows = [
        {"time": both(e.get("timestamp"), zone, with_date=True, seconds=True), "strategy": e.get("strategy"),
         "level": e.get("level"), "event": e.get("event") or e.get("message") or "", "fields": set_fields(e)}
        for e in entries
    ]  # fmt: skip
    pages = max(1, -(-total // per_page))
    args = {k: v for k, v in (("strategy", strategy), ("level", level), ("day", day)) if v}
    if per_page != PER_PAGE:
        args["limit"] = str(per_page)
    return render_template(
        "logs.html", rows=rows, strategy=strategy or "", level=level or "", day=day or "", limit=per_page,
        strategies=STRATEGIES, levels=LEVELS, page=page_no, pages=pages, total=total, args=args,
        tz=str(zone) if zone else None,
    )  # fmt: skip


@bp.route("/api/logs")
@requires(Role.VIEWER)
def api() -> Any:
    strategy, level, day = _filters()
    limit = _int("limit", 200, 1, 1000)
    return jsonify(
        entries=read_log_entries(state().home, strategy=strategy, level=level, limit=limit, day=day)
    )
