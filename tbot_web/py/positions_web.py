"""The Positions page (broker vs journal vs ledger, the report `tbot positions` prints) and "Flatten all".

The report is computed by tbot_bot (`operator_desk.position_report`); the page only renders it. Flatten goes to the
running supervisor as a control request (consumed within one poll); with none running the dashboard flattens itself
under the run lock, as `tbot flatten` does. Operators and admins only, CSRF, a confirmation step, audited.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.core.users import Role
from tbot_bot.errors import TbotError
from tbot_bot.runtime.control import request_flatten, running_supervisor
from tbot_bot.runtime.operator_desk import flatten_here, position_report

from .auth_web import activity, current_user, requires, state

bp = Blueprint("positions", __name__)


@bp.route("/positions")
@requires(Role.VIEWER)
def page() -> Any:
    try:
        report, problem = position_report(state().home), None
    except TbotError as exc:
        # missing reports never mean flat: the page says the comparison could not be made, and why
        report, problem = None, str(exc)
    return render_template("positions.html", report=report, problem=problem)


@bp.route("/positions/flatten", methods=["GET", "POST"])
@requires(Role.OPERATOR)
def flatten() -> Any:
    if request.method != "POST" or request.form.get("confirm") != "yes":  # HEAD never acts
        return render_template("flatten_confirm.html", running=running_supervisor(state().home) is not None)
    user = current_user()
    who = f"web:{user.username if user else 'unknown'}"
    activity("flatten_requested", user.username if user else None)
    home = state().home
    if running_supervisor(home) is not None:
        request_flatten(home, who, symbol=None, strategy=None)
        flash("Flatten requested: the supervisor cancels the bot's orders and closes its positions at its next poll "
              "and takes no new entry for the rest of the session.", "info")  # fmt: skip
        return redirect(url_for("positions.page"))
    try:
        result = flatten_here(home, who)
    except TbotError as exc:
        flash(f"Not flattened: {exc}", "error")
        return redirect(url_for("positions.page"))
    if result.not_closed:
        flash("NOT closed: " + "; ".join(f"{s}: {why}" for s, why in result.not_closed.items()), "error")
    else:
        flash(f"Flattened: closed {', '.join(result.closed) or 'nothing (nothing was held)'}.", "info")
    return redirect(url_for("positions.page"))
