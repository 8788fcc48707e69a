"""Session control for operators and admins: write control/control_start.txt, control/control_stop.txt
(the daemon polls them every SLEEP_TIME) and control/confirm/<client_order_id> for pending orders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, url_for

from tbot_bot.core.audit import log_system_event
from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError
from tbot_bot.runtime.control import ConfirmRefused, check_confirmable, running_supervisor
from tbot_bot.support.utils_bot import atomic_write_text

from .auth_web import activity, current_user, now, requires, state
from .status_values_web import CLIENT_ORDER_ID

bp = Blueprint("control", __name__)

_CLIENT_ORDER_ID = CLIENT_ORDER_ID


def _write_control(path: Path, action: str, detail: str = "") -> str:
    user = current_user()
    who = user.username if user else "unknown"
    stamp = now().isoformat()
    atomic_write_text(path, f"requested_by={who}\nrequested_at={stamp}\nsource=web\n", mode=0o640)
    activity(action, who, detail)
    try:
        log_system_event(
            state().home, source="web", event=action, actor=who, detail=detail or None, now=now()
        )
    except ConfigError:
        pass  # SYSTEM_LOGS.db missing: access.log and the activity DB still hold the action
    return who


@bp.route("/control/start", methods=["POST"])
@requires(Role.OPERATOR)
def start() -> Any:
    _write_control(state().home.control_start, "control_start")
    flash("Start requested: the bot picks it up within one polling interval.", "info")
    return redirect(url_for("status.page"))


@bp.route("/control/stop", methods=["POST"])
@requires(Role.OPERATOR)
def stop() -> Any:
    if running_supervisor(state().home) is None:
        # as `tbot stop`: a stop file with nothing running would only be archived as stale by the next start
        flash("No supervisor is running in this home: there is nothing to stop.", "error")
        return redirect(url_for("status.page"))
    _write_control(state().home.control_stop, "control_stop")
    flash("Stop requested: the bot cancels orders, closes positions and shuts down gracefully.", "info")
    return redirect(url_for("status.page"))


@bp.route("/control/confirm/<segment:client_order_id>", methods=["POST"])
@requires(Role.OPERATOR)
def confirm(client_order_id: str) -> Any:
    if not _CLIENT_ORDER_ID.match(client_order_id):
        abort(400)
    if not state().settings.settings().TRADE_CONFIRMATION_REQUIRED:
        # TRADE_CONFIRMATION_REQUIRED=false: orders never wait, so there is nothing to confirm
        flash("Trade confirmation is off (TRADE_CONFIRMATION_REQUIRED=false); nothing to confirm.", "error")
        return redirect(url_for("status.page"))
    try:
        # the same rule as `tbot confirm`: only an order listed as pending whose window is still open
        check_confirmable(state().home, client_order_id, now=now())
    except ConfirmRefused as exc:
        flash(f"Not confirmed: {exc}.", "error")
        return redirect(url_for("status.page"))
    _write_control(
        state().home.path("control", "confirm", client_order_id), "order_confirmed", client_order_id
    )
    flash(f"Order {client_order_id} confirmed.", "info")
    return redirect(url_for("status.page"))
