"""The dashboard shell (main.html), robots.txt and the favicon."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template

from tbot_bot.core.users import Role

from .auth_web import now, public, requires, state
from .portal_paths import WEB_ROOT
from .readers_web import compact_status, read_status, status_written_at

bp = Blueprint("main", __name__)


@bp.route("/")
@requires(Role.VIEWER)
def index() -> Any:
    home = state().home
    status = compact_status(
        read_status(home),
        now(),
        stop_requested=home.control_stop.exists(),
        written_at=status_written_at(home),
    )
    return render_template("main.html", status=status)


@bp.route("/robots.txt")
@public
def robots() -> Any:
    return Response((WEB_ROOT / "robots.txt").read_bytes(), mimetype="text/plain")


@bp.route("/favicon.ico")
@public
def favicon() -> Any:
    return Response(
        (WEB_ROOT / "favicon.ico").read_bytes(),
        mimetype="image/x-icon",
        headers={"Cache-Control": "max-age=86400"},
    )
