"""Auditor views: trade history, ledger summary (read-only SQLite) and OFX downloads."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, render_template, request

from tbot_bot.core.users import Role
from tbot_bot.reporting.trade_history import with_net

from .auth_web import activity, can, current_user, requires, state
from .readers_web import (
    broker_account_fees,
    ledger_summary,
    ofx_files,
    read_status,
    read_trade_history,
    trade_summary,
)
from .time_web import both, day_filter, exchange_zone

bp = Blueprint("history", __name__)


@bp.route("/trades")
@requires(Role.AUDITOR)
def trades() -> Any:
    home = state().home
    records = read_trade_history(home)
    chosen, problem = day_filter(request.args.get("day"))
    if problem:
        flash(problem, "error")
    day = chosen or ""
    if day:
        # ?day=YYYY-MM-DD (from the History page): that session's trades, by their entry's UTC date as the
        # summaries and `tbot trades --date` choose them (a trade's timestamp is its exit: a position carried over
        # night was listed under the next day)
        records = [r for r in records if str(r.get("entry_time") or r.get("timestamp") or "").startswith(day)]
    zone = exchange_zone(read_status(home))
    # each trade's net result beside its gross PnL and fees (a file written before the net column gets it here)
    shown = [
        {**with_net(r), "time_text": both(r.get("timestamp"), zone, with_date=True)}
        for r in reversed(records[-300:])
    ]
    return render_template(
        "trades.html",
        records=shown,
        summary=trade_summary(records),
        # fees the broker charged apart from fills (no strategy's): shown under the strategies, as `tbot trades`
        account_fees=broker_account_fees(home, day or None),
        day=day,
        tz=str(zone) if zone else None,
    )


@bp.route("/ledger")
@requires(Role.AUDITOR)
def ledger() -> Any:
    home = state().home
    ledger = ledger_summary(home)
    # each posting's date in exchange time and UTC, as every other page shows times
    zone = exchange_zone(read_status(home))
    for key in ("latest", "corrections"):
        ledger[key] = [
            {**t, "dated_text": both(t.get("dtposted"), zone, with_date=True)} for t in ledger.get(key) or []
        ]
    ledger["tz"] = str(zone) if zone else None
    return render_template(
        "ledger.html", ledger=ledger, ofx=sorted(ofx_files(home)), can_correct=can(Role.ADMIN)
    )


@bp.route("/ledger/ofx/<segment:name>")
@requires(Role.AUDITOR)
def ofx(name: str) -> Any:
    files = ofx_files(state().home)
    if name not in files:
        abort(404)
    user = current_user()
    activity("ofx_download", user.username if user else None, name)
    # read whole (exports are small) so no file handle outlives the request
    return Response(
        files[name].read_bytes(),
        mimetype="application/x-ofx",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
