"""The dashboard shell (main.html), robots.txt and the favicon."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template

from tbot_bot.core.users import Role

from .auth_web import now, public, requires, state
from .portal_paths import WEB_ROOT
from .readers_web import current_status

bp = Blueprint("main", __name__)


@bp.route("/")
@requires(Role.VIEWER)
def index() -> Any:
    home = state().home
    status = current_status(home, now())
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
