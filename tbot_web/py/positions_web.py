"""The Positions page (broker vs journal vs ledger, the report `tbot positions` prints) and "Flatten all".

The report is computed by tbot_bot (`operator_desk.position_report`); the page only renders it. Flatten goes to the
running supervisor as a control request (consumed within one poll); with none running the dashboard flattens itself
under the run lock, as `tbot flatten` does. Operators and admins only, CSRF, a confirmation step, audited. The page
then shows the supervisor's answer in `tbot flatten`'s words (what closed, what is still held and why).
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from tbot_bot.core.users import Role
from tbot_bot.runtime.control import describe_answer, flatten_result, request_flatten, running_supervisor

from .auth_web import activity, current_user, now, requires, state
from .readers_web import current_status, read_status
from .status_values_web import position_rows
from .time_web import both, exchange_zone

bp = Blueprint("positions", __name__)

FLATTEN_WAIT_S = (
    10.0  # the longest a Flatten request waits for the supervisor's answer before showing the page
)
_REQUEST_ID = re.compile(r"\d{8}T\d{12}")  # control.request_flatten's ids


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
        flattened=_flatten_answer(request.args.get("flatten", "")),
        status=current_status(state().home, now()),  # the banners: a supervisor gone, a stale status
    )


def _flatten_answer(request_id: str) -> dict[str, Any] | None:
    """What the supervisor answered a flatten this page asked for (the words `tbot flatten` prints)."""
    if not _REQUEST_ID.fullmatch(request_id):
        return None
    answer = flatten_result(state().home, request_id)
    if answer is None:
        return {"pending": True}
    said = describe_answer(answer)
    return {"pending": False, "ok": said.ok, "summary": said.summary, "not_closed": said.not_closed}


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
        request_id = request_flatten(home, who, symbol=None, strategy=None)
        # the supervisor takes it at its next poll (SLEEP_TIME): a short wait usually brings the answer with the page
        deadline = time.monotonic() + min(
            FLATTEN_WAIT_S, 3 * float(state().settings.settings().SLEEP_TIME) + 2
        )
        while flatten_result(home, request_id) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        return redirect(url_for("positions.page", flatten=request_id))
    # without a supervisor the dashboard does not trade itself: the command on the server does, under the run lock
    flash(
        f"No supervisor is running, so there is nothing to ask: on the server, `tbot flatten --yes --home {home.root}` "
        "cancels the bot's orders and closes its positions itself.",
        "error",
    )
    return redirect(url_for("positions.page"))
