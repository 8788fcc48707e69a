"""Strategy logs, newest first, with filters by strategy, minimum level and day, and paging (read-only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, render_template, request

from tbot_bot.core.users import Role

from .auth_web import requires, state
from .readers_web import LEVELS, STRATEGIES, read_log_entries, read_log_page, read_status, set_fields
from .time_web import both, day_filter, exchange_zone

bp = Blueprint("logs", __name__)
PER_PAGE = 100


def _int(name: str, default: int, low: int, high: int, problems: list[str]) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return max(low, min(high, int(raw)))
    except ValueError:
        problems.append(f"{name} {raw[:40]!r} is not a whole number ({low} to {high}); showing {default}")
        return default


def _filters(problems: list[str]) -> tuple[str | None, str | None, str | None]:
    """The filters asked for; one that cannot apply is left out and said in `problems` (the page flashes them, the
    JSON route answers them)."""
    strategy = request.args.get("strategy") or None
    level = request.args.get("level") or None
    day, problem = day_filter(request.args.get("day"))
    if problem:
        problems.append(problem)
    for name, value, allowed in (("strategy", strategy, STRATEGIES), ("level", level, LEVELS)):
        if value is not None and value not in allowed:
            problems.append(f"{name} {value[:40]!r} is not one of {', '.join(allowed)}; showing all")
    return (strategy if strategy in STRATEGIES else None, level if level in LEVELS else None, day)


@bp.route("/logs")
@requires(Role.VIEWER)
def page() -> Any:
    problems: list[str] = []
    strategy, level, day = _filters(problems)
    per_page = _int("limit", PER_PAGE, 10, 500, problems)
    page_no = _int("page", 0, 0, 100_000, problems)
    for problem in problems:
        flash(problem, "error")
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
    problems: list[str] = []
    strategy, level, day = _filters(problems)
    limit = _int("limit", 200, 1, 1000, problems)
    if problems:  # a JSON reader has no page to be told on: the request is refused, naming what to fix
        return jsonify(error="; ".join(problems)), 400
    return jsonify(
        entries=read_log_entries(state().home, strategy=strategy, level=level, limit=limit, day=day)
    )
