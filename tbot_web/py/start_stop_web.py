"""Session control for operators and admins: write control/control_start.txt, control/control_stop.txt
(the daemon polls them every SLEEP_TIME) and control/confirm/<client_order_id> for pending orders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, url_for

from tbot_bot.core.audit import log_system_event
from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import atomic_write_text

from .auth_web import activity, current_user, now, requires, state
from .readers_web import read_status
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
    pending = read_status(state().home).get("pending_confirmations") or []
    if client_order_id not in {str(p.get("client_order_id")) for p in pending if isinstance(p, dict)}:
        flash(
            f"Order {client_order_id} is not waiting for confirmation (expired or already handled).", "error"
        )
        return redirect(url_for("status.page"))
    path = state().home.path("control", "confirm", client_order_id)
    _write_control(path, "order_confirmed", client_order_id)
    flash(f"Order {client_order_id} confirmed.", "info")
    return redirect(url_for("status.page"))
