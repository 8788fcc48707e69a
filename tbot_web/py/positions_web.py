"""The Positions page (broker vs journal vs ledger, the report `tbot positions` prints) and "Flatten all".

The report is computed by tbot_bot (`operator_desk.position_report`); the page only renders it. Flatten goes to the
running supervisor as a control request (consumed within one poll); with none running the dashboard flattens itself
under the run lock, as `tbot flatten` does. Operators and admins only, CSRF, a confirmation step, audited.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.core.users import Role
from tbot_bot.runtime.control import request_flatten, running_supervisor

from .auth_web import activity, current_user, requires, state
from .readers_web import read_status
from .status_values_web import position_rows
from .time_web import both, exchange_zone

bp = Blueprint("positions", __name__)


@bp.route("/positions")
@requires(Role.VIEWER)
def page() -> Any:
    # the dashboard never talks to the broker: it shows the comparison the supervisor published (status.json),
    # made at start and after every window; `tbot positions` compares now
    status = read_status(state().home)
    published = status.get("reconciliation")
    report, problem = (
        (published, None)
        if isinstance(published, dict)
        else (
            None,
            "no comparison published yet (the supervisor publishes one at start and after every window); "
            "`tbot positions` on the server compares now",
        )
    )
    zone = exchange_zone(status)
    if report is not None:  # when it was compared, in exchange time and UTC
        report = {**report, "checked_text": both(report.get("checked_at"), zone, with_date=True)}
    # between comparisons, what the bot holds now (status.json, written at every fill): the page never shows an
    # older comparison as if it were the present
    held = position_rows(status)
    return render_template(
        "positions.html",
        report=report,
        problem=problem,
        held=held,
        held_text=both(status.get("updated_at"), zone, with_date=True),
    )


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
    # without a supervisor the dashboard does not trade itself: the command on the server does, under the run lock
    flash(
        f"No supervisor is running, so there is nothing to ask: on the server, `tbot flatten --yes --home {home.root}` "
        "cancels the bot's orders and closes its positions itself.",
        "error",
    )
    return redirect(url_for("positions.page"))
