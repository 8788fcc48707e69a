"""`tbot status` for a person: header lines, then windows, counts and positions as tables.

Window times are shown in exchange time and UTC. "written" is the status file's modification time (wall
clock): for a replay `updated_at` is the replayed day's clock, which says nothing about whether the bot is alive.
A status that claims a window is running but has not been written for STALE_AFTER_S is flagged STALE.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from rigd_tbot.display import both_times, print_table
from tbot_bot.runtime.status_bot import conditions, is_stale


def _when(text: Any, tz: str, *, with_date: bool = False) -> str:
    if not isinstance(text, str) or not text:
        return "-"
    try:
        return both_times(datetime.fromisoformat(text.replace("Z", "+00:00")), tz, with_date=with_date)
    except ValueError:
        return text


def _stamp(stamp: Any, tz: str) -> str:
    """A control stamp ('<UTC time> <who>') with its time in exchange time and UTC."""
    from zoneinfo import ZoneInfo

    from tbot_bot.domain.clock import stamp_for_people

    return stamp_for_people(str(stamp), ZoneInfo(tz))


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def window_caps(money: dict[str, Any]) -> str:
    """Per window started today: session cap used / left and entries, as the supervisor published them
    (status.json `money.windows`, from RiskManager.window_usage)."""
    return ", ".join(
        f"{name} {w.get('cap_used')} used / {w.get('cap_available')} left ({w.get('trades')}/{w.get('max_trades')} entries)"
        for name, w in (money.get("windows") or {}).items()
        if isinstance(w, dict)
    )


def render_status_view(
    data: dict[str, Any],
    *,
    exchange_tz: str,
    written_at: datetime | None,
    now: datetime,
    running: bool | None = None,
    log_file: str = "the supervisor.log in output/<bot>/logs",
) -> str:
    """`running`: whether a supervisor holds the run lock now (None: not known); a running state with none is
    said at once, not only when the file has aged past STALE_AFTER_S. `log_file`: where the supervisor's log is."""
    out = io.StringIO()
    bot = data.get("bot") or {}
    broker = data.get("broker") or {}
    kind = str(bot.get("mode") or "unknown")
    mode = f"REPLAY of {bot.get('replay_day')}" if kind == "replay" else kind.upper()
    age = (now - written_at).total_seconds() if written_at else None
    lines = [
        f"bot        {bot.get('entity', '')} {bot.get('bot_id', '')} on {broker.get('name', '')} — {mode}",
        f"state      {data.get('state')}  (session {data.get('session_date') or '-'}, "
        f"active window {data.get('active_strategy') or '-'})",
        f"broker     {'healthy' if broker.get('healthy') else 'UNHEALTHY: ' + str(broker.get('last_error'))}"
        f"; api retries {(data.get('api') or {}).get('retries', 0)}, errors {(data.get('api') or {}).get('errors', 0)}",
    ]
    ks = data.get("kill_switch") or {}
    lines.append(
        f"safety     kill switch {'TRIPPED: ' + str(ks.get('reason')) if ks.get('tripped') else 'armed'}, "
        f"defense mode {'ON (' + str(data.get('defense_reason') or 'active') + ')' if data.get('defense_mode') else 'off'}"
    )
    for condition in conditions(data, lambda t: _when(t, exchange_tz, with_date=True)):
        lines.append(f"ALERT      {condition}")
    if data.get("trading_stopped"):
        resume = (
            "`systemctl start tbot` starts the supervisor, then `tbot start` (or the dashboard's Start) resumes it"
            if running is False
            else "`tbot start` resumes it"
        )
        lines.append(f"STOPPED    trading stopped ({_stamp(data['trading_stopped'], exchange_tz)}); {resume}")
    if data.get("paused"):
        lines.append(
            f"PAUSED     new entries paused ({_stamp(data['paused'], exchange_tz)}); exits still managed; "
            "`tbot resume`"
        )
    # one PnL: net of fees, in cents; gross and fees beside it
    lines.append(
        f"PnL        net {_cents(data.get('net_pnl', data.get('realized_pnl')))} today "
        f"(gross {_cents(data.get('gross_pnl'))}, fees {_cents(data.get('fees'))})"
    )
    money = data.get("money") or {}
    if money:
        lines.append(
            f"money      equity {money.get('equity', '-')}, cash {money.get('cash', '-')}"
            + (
                f" (read {_when(money['account_read_at'], exchange_tz)})"
                if money.get("account_read_at")
                else ""
            )
            + f", open exposure {money.get('open_exposure', '-')}, net PnL today {money.get('net_pnl_today', '-')}"
            " (after fees)"
        )
        caps = window_caps(money)
        lines.append(f"float      {money.get('float', '-')}; session cap per window {money.get('session_cap', '-')}"
                     + (f": {caps}" if caps else ""))  # fmt: skip
        if money.get("account_error"):
            lines.append(f"           broker account not read: {money['account_error']}")
    written = "" if age is None else f"; file written {_ago(age)}"
    lines.append(
        f"updated    {_when(data.get('updated_at'), exchange_tz, with_date=True)} (bot clock){written}"
    )
    if running is False and is_stale(data.get("state"), age, running):
        lines.append(
            f"NOT RUNNING no supervisor holds the run lock: the state '{data.get('state')}' above is the last one "
            f"written before it ended (a kill, a crash, or a refusal its log names); `systemctl status tbot`, {log_file}"
        )
    elif is_stale(data.get("state"), age, running):
        lines.append(
            f"STALE      the status says '{data.get('state')}' but was last written {_ago(age or 0)}: "
            f"is the bot still running? (systemctl status tbot, {log_file})"
        )
    elif running is False and kind != "replay":
        # a day's end (closed) or a stopped process: true, but no later session trades until one is started
        lines.append(
            "NOT RUNNING no supervisor holds the run lock: no later session trades until it is started "
            f"(`systemctl start tbot`; {log_file})"
        )
    if data.get("message"):
        lines.append(f"message    {data['message']}")
    out.write("\n".join(lines) + "\n\n")
    counts = data.get("counts") or {}
    pnl = data.get("realized_pnl_by_strategy") or {}
    rows = []
    for w in data.get("windows") or []:
        s = w.get("strategy", "")
        c = counts.get(s, {})
        rows.append([
            s, str(w.get("status", "")), _when(w.get("scheduled_start"), exchange_tz),
            _when(w.get("scheduled_end"), exchange_tz), _when(w.get("actual_start"), exchange_tz),
            _when(w.get("actual_end"), exchange_tz), str(c.get("signaled", 0)), str(c.get("entered", 0)),
            str(c.get("exited", 0)), _cents(pnl.get(s, "0")), str(w.get("note") or ""),
        ])  # fmt: skip
    headers = ["window", "status", "scheduled start", "scheduled end", "actual start", "actual end",
               "signals", "entered", "exited", "net PnL", "note"]  # fmt: skip
    print_table(f"Windows (exchange time {exchange_tz} / UTC)", headers, rows, right=(6, 7, 8, 9), file=out)
    positions = data.get("positions") or []
    if positions:
        prow = [[str(p.get(k, "")) for k in ("symbol", "side", "qty", "entry_price", "unrealized_pnl", "strategy")]
                for p in positions]  # fmt: skip
        print_table("Open positions", ["symbol", "side", "qty", "entry", "unrealised", "strategy"], prow,
                    right=(2, 3, 4), file=out)  # fmt: skip
    for pc in data.get("pending_confirmations") or []:
        out.write(
            f"pending    {pc.get('client_order_id')} {pc.get('symbol')} ({pc.get('strategy')}) expires "
            f"{_when(pc.get('expires_at'), exchange_tz)}: tbot confirm {pc.get('client_order_id')}\n"
        )
    out.write(f"version    {data.get('version')}\n")
    return out.getvalue()


def written_time(path: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def _cents(value: object) -> str:
    """A status.json amount for people: rounded to the cent ("-" when absent or not a number)."""
    from decimal import Decimal, InvalidOperation

    from tbot_bot.domain.results import cents

    try:
        return f"{cents(Decimal(str(value))):.2f}" if value is not None else "-"
    except InvalidOperation:
        return "-"
