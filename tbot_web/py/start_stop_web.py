"""Session control for operators and admins: write control/control_start.txt, control/control_stop.txt
(the daemon polls them every SLEEP_TIME), control/control_pause.txt (pause / resume new entries) and
control/confirm/<client_order_id> for pending orders, control/control_defense_clear.txt (`tbot defense clear`). Start and Stop mean what DESIGN §8 says: Stop ends
trading and the supervisor stays up, stopped, until Start; a Start nothing can pick up is refused, naming
the command that starts the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, url_for

from tbot_bot.core.users import Role
from tbot_bot.domain.clock import stamp_for_people
from tbot_bot.runtime.control import (
    ConfirmRefused,
    check_confirmable,
    paused_by,
    request_defense_clear,
    request_pause,
    request_resume,
    running_supervisor,
    start_answer,
)
from tbot_bot.support.utils_bot import atomic_write_text

from .auth_web import activity, current_user, now, requires, state, system_event
from .readers_web import read_status
from .status_values_web import CLIENT_ORDER_ID
from .time_web import exchange_zone

bp = Blueprint("control", __name__)

_CLIENT_ORDER_ID = CLIENT_ORDER_ID


def _write_control(path: Path, action: str, detail: str = "") -> str:
    user = current_user()
    who = user.username if user else "unknown"
    stamp = now().isoformat()
    # one line, as the CLI writes it ("<UTC time> <who>"): the supervisor shows it whole in status and logs
    atomic_write_text(path, f"{stamp} web:{who}\n")  # 0600: the bot's user's alone, as the CLI writes them
    _audit(action, who, detail)
    return who


def _audit(action: str, who: str, detail: str = "") -> None:
    activity(action, who, detail)
    system_event(action, who, detail or None)


@bp.route("/control/start", methods=["POST"])
@requires(Role.OPERATOR)
def start() -> Any:
    ok, message = start_answer(state().home, exchange_zone(read_status(state().home)))
    if not ok:
        # never claim a start that will not happen: no supervisor, or one already trading
        flash(message, "error")
        return redirect(url_for("status.page"))
    _write_control(state().home.control_start, "control_start")
    flash(message, "info")
    return redirect(url_for("status.page"))


@bp.route("/control/pause", methods=["POST"])
@requires(Role.OPERATOR)
def pause() -> Any:
    user = current_user()
    who = user.username if user else "unknown"
    already = paused_by(state().home)
    if already is not None:
        # as `tbot pause`: the first pause stands, with who made it (a second would overwrite its stamp)
        zone = exchange_zone(read_status(state().home))
        flash(f"New entries are already paused ({stamp_for_people(already, zone)}).", "info")
        return redirect(url_for("status.page"))
    request_pause(state().home, f"web:{who}")
    _audit("control_pause", who)
    where = "from the next minute" if running_supervisor(state().home) else "from the next start"
    flash(f"New entries paused {where}; open positions are still managed. Resume lifts it.", "info")
    return redirect(url_for("status.page"))


@bp.route("/control/resume", methods=["POST"])
@requires(Role.OPERATOR)
def resume() -> Any:
    user = current_user()
    who = user.username if user else "unknown"
    if paused_by(state().home) is None:
        flash("New entries are not paused: nothing to resume.", "error")
        return redirect(url_for("status.page"))
    request_resume(state().home)
    _audit("control_resume", who)
    flash("New entries resumed.", "info")
    return redirect(url_for("status.page"))


@bp.route("/control/defense-clear", methods=["POST"])
@requires(Role.OPERATOR)
def defense_clear() -> Any:
    """`tbot defense clear` from the dashboard: end an automatic defense mode for this session."""
    home = state().home
    running = running_supervisor(home) is not None
    if running and read_status(home).get("defense_mode") is False:
        flash("Defense mode is off: nothing to clear.", "error")
        return redirect(url_for("status.page"))
    user = current_user()
    who = user.username if user else "unknown"
    request_defense_clear(home, f"web:{who}")
    _audit("control_defense_clear", who)
    when = "at its next poll" if running else "at the next start (no supervisor runs)"
    flash(
        f"Defense clear requested: the supervisor ends an automatic defense mode {when}; "
        "DEFENSE_MODE_ACTIVE=true keeps it on.",
        "info",
    )
    return redirect(url_for("status.page"))


@bp.route("/control/stop", methods=["POST"])
@requires(Role.OPERATOR)
def stop() -> Any:
    if running_supervisor(state().home) is None:
        # as `tbot stop`: a stop file with nothing running would only be archived as stale by the next start
        flash("No supervisor is running in this home: there is nothing to stop.", "error")
        return redirect(url_for("status.page"))
    _write_control(state().home.control_stop, "control_stop")
    flash(
        "Stop requested: the bot cancels its orders, closes its positions and books the day, then stays "
        "stopped (across days) until Start.",
        "info",
    )
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
