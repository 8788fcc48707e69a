"""Control files: `control/control_start.txt`, `control/control_stop.txt`, and `control/confirm/<id>`.

The CLI (`tbot stop`, `tbot confirm`) and the dashboard write them; the supervisor polls them every SLEEP_TIME.
A stop request belongs to the run it stops: the run archives it as `.done` when it stops, and a stop file
written before a run began (nothing was running, or a run that crashed) is archived as `.stale` at boot.
`storage/state/supervisor.lock` (an flock held for the life of a run, released by the kernel even on kill -9)
tells whether a supervisor runs, so `tbot stop` can say when nothing does.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tbot_bot.domain.clock import stamp_for_people
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text, readonly_uri, utc_now


def _stamp(who: str) -> str:
    return f"{utc_now().isoformat()} {who}\n"


def lock_path(home: BotHome) -> Path:
    return home.state_dir / "supervisor.lock"


@dataclass
class SupervisorLock:
    """Held by the one supervisor (or `tbot check`) using a home; a second one is refused."""

    path: Path
    fd: int | None
    started_at: float  # wall-clock epoch seconds when the run took the lock

    @classmethod
    def acquire(cls, home: BotHome, *, mode: str) -> SupervisorLock:
        path = lock_path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = running_supervisor(home)
            who = f" ({describe(holder)})" if holder else ""
            raise ConfigError(
                # `tbot stop` ends trading but keeps the process (Start resumes it): the process itself must end
                f"a supervisor is already running in {home.root}{who}; end that process first "
                "(`systemctl stop tbot` under systemd, else stop the `tbot start` that runs it)"
            ) from None
        started = time.time()
        info = {
            "pid": os.getpid(),
            "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
            "mode": mode,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:  # a full disk: the lock is not kept (nor its descriptor) by a boot that stops here
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        return cls(path, fd, started)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def running_supervisor(home: BotHome) -> dict[str, Any] | None:
    """The lock holder's {pid, started_at, mode}, or None when no supervisor runs in this home."""
    path = lock_path(home)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8") or "{}")
            except ValueError:
                info = {}
            return info or {"pid": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_trader(home: BotHome) -> dict[str, Any] | None:
    """The lock holder when it is a supervisor of a trading day (live, or a replay: mode "replay D"), else None (no
    holder, or a restore, a check's boot, an operator's flatten)."""
    holder = running_supervisor(home)
    mode = str((holder or {}).get("mode", ""))
    return holder if mode == "live" or mode.startswith("replay ") else None


def describe(info: dict[str, Any], zone: ZoneInfo | None = None) -> str:
    """The lock holder for people: pid, mode and since when (exchange time and UTC when `zone` is given)."""
    since = stamp_for_people(str(info.get("started_at", "?")), zone)
    return f"pid {info.get('pid', '?')}, {info.get('mode', 'run')} since {since}"


def request_stop(home: BotHome, who: str) -> Path:
    atomic_write_text(home.control_stop, _stamp(who))
    return home.control_stop


def flatten_request_path(home: BotHome) -> Path:
    return home.control_dir / "control_flatten.json"


def flatten_result_path(home: BotHome, request_id: str) -> Path:
    return home.control_dir / f"control_flatten.{request_id}.done"


def request_flatten(home: BotHome, who: str, *, symbol: str | None, strategy: str | None) -> str:
    """Ask the running supervisor to flatten (`tbot flatten`, the dashboard); returns the request's id."""
    request_id = utc_now().strftime("%Y%m%dT%H%M%S%f")
    body = {"id": request_id, "by": who, "symbol": symbol, "strategy": strategy, "at": utc_now().isoformat()}
    atomic_write_text(flatten_request_path(home), json.dumps(body) + "\n")
    return request_id


def flatten_result(home: BotHome, request_id: str) -> dict[str, Any] | None:
    """What the supervisor did with a flatten request, once it did it."""
    try:
        data: dict[str, Any] = json.loads(flatten_result_path(home, request_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def blocked_text(session: str) -> str:
    """What a flatten's block means, as the status message and the CLI's answer say it."""
    return f"no new entries for the rest of the session of {session}"


@dataclass(frozen=True, slots=True)
class FlattenAnswer:
    """A flatten's answer for a person (`tbot flatten`, the dashboard): the same words on both."""

    ok: bool
    refused: str | None
    summary: str
    not_closed: tuple[str, ...]  # "SYM: why", one per position left held


def describe_answer(answer: dict[str, Any]) -> FlattenAnswer:
    """What a flatten did (its JSON answer, FlattenResult.to_json): closed, cancelled, blocked, left held."""
    if answer.get("refused"):
        return FlattenAnswer(False, str(answer["refused"]), f"not flattened: {answer['refused']}", ())
    scope = answer.get("scope") or ""
    held_nothing = f"{scope} held nothing" if scope else "nothing was held"
    closed = ", ".join(answer.get("closed") or []) or (
        f"nothing ({held_nothing})" if answer.get("ok") else "nothing"
    )
    blocked = answer.get("blocked_session")
    others = answer.get("others") or []
    summary = (
        f"flattened by {answer.get('requested_by')}: closed {closed}; {answer.get('cancelled', 0)} orders cancelled"
        + (f"; still held outside {scope}: {', '.join(others)}" if others and scope else "")
        + (f"; {blocked_text(blocked)}" if blocked else "")
    )
    left = tuple(f"{symbol}: {why}" for symbol, why in (answer.get("not_closed") or {}).items())
    return FlattenAnswer(bool(answer.get("ok")), None, summary, left)


def pause_file(home: BotHome) -> Path:
    """Present while the operator has paused new entries (`tbot pause`); gone after `tbot resume`.

    Unlike stop and start it is a state, not a request: it stays until resumed, so a pause survives a restart
    (the supervisor reads it every poll and at boot)."""
    return home.control_dir / "control_pause.txt"


def request_pause(home: BotHome, who: str) -> Path:
    path = pause_file(home)
    atomic_write_text(path, _stamp(who))
    return path


def request_resume(home: BotHome) -> str | None:
    """Lift the operator's pause; returns the stamp of who had paused, None when entries were not paused."""
    stamp = paused_by(home)
    if stamp is not None:
        pause_file(home).unlink(missing_ok=True)
    return stamp


def defense_clear_file(home: BotHome) -> Path:
    """A request (`tbot defense clear`) to end an automatic defense mode: the supervisor consumes it at its next
    poll, or at the next start when none runs."""
    return home.control_dir / "control_defense_clear.txt"


def request_defense_clear(home: BotHome, who: str) -> Path:
    path = defense_clear_file(home)
    atomic_write_text(path, _stamp(who))
    return path


def paused_by(home: BotHome) -> str | None:
    """'<UTC time> <who>' of the pause in force, or None."""
    try:
        return pause_file(home).read_text(encoding="utf-8").strip() or "unknown"
    except FileNotFoundError:
        return None


def pause_in_force(home: BotHome, status: dict[str, Any], running: bool) -> dict[str, Any]:
    """`status` (status.json as read) with the pause a person should be shown: a running supervisor's own (it
    publishes the pause it applies, within a minute of a request); with none running, the pause file's, which
    the next start takes (`tbot pause`/`resume` without a supervisor change only the file, and status.json would
    go on showing what the last run wrote). `tbot status` and the dashboard both show it from here."""
    if running:
        return status
    out = {k: v for k, v in status.items() if k != "paused"}
    stamp = paused_by(home)
    if stamp is not None:
        out["paused"] = stamp
    return out


def stopped_file(home: BotHome) -> Path:
    """Written by a live supervisor when a Stop has ended trading; while it exists the supervisor stays up
    without trading (across days and restarts) until a Start removes it (DESIGN §8)."""
    return home.control_dir / "trading_stopped.txt"


def trading_stopped(home: BotHome) -> str | None:
    """'<UTC time> <who>' of the Stop in force, or None when trading is not stopped."""
    try:
        return stopped_file(home).read_text(encoding="utf-8").strip() or "unknown"
    except FileNotFoundError:
        return None


def mark_trading_stopped(home: BotHome, who: str) -> None:
    """`who`: the Stop request's own "<UTC time> <who>" (kept as it is: one time, the request's), or a name."""
    stamped = re.match(r"\d{4}-\d\d-\d\dT\S+ ", who) is not None
    atomic_write_text(stopped_file(home), f"{who.strip()}\n" if stamped else _stamp(who))


def clear_trading_stopped(home: BotHome) -> None:
    stopped_file(home).unlink(missing_ok=True)


def request_start(home: BotHome, who: str) -> Path:
    atomic_write_text(home.control_start, _stamp(who))
    return home.control_start


def start_answer(home: BotHome, zone: ZoneInfo | None = None) -> tuple[bool, str]:
    """What a Start (web or `tbot start` while a supervisor runs) can do now: (write the request?, message); times
    in exchange time (`zone`) and UTC.

    Never claims a start that will not happen: with no supervisor it names the command that starts one."""
    holder = running_supervisor(home)
    if holder is None:
        return False, (
            f"No supervisor is running in this home, so nothing can pick up a Start from here: {start_command(home)}."
        )
    who = describe(holder, zone)
    if trading_stopped(home) is None:
        return False, f"The supervisor ({who}) is already trading: there is nothing to start."
    # a replay resumes entries at its next window (the day runs on without entries until then); live, at its next poll
    when = (
        "resumes entries in the next window of its replay day"
        if str(holder.get("mode", "")).startswith("replay")
        else "resumes trading within one polling interval"
    )
    return True, f"Start requested: the supervisor ({who}) {when}."


def start_command(home: BotHome) -> str:
    """How a person starts this home's supervisor: the service, or (BROKER_NAME=SIM, which only replays recorded
    days) a replay; the one wording of the dashboard's Start and status page and `tbot start`'s answers."""
    from tbot_bot.config.settings_bot import load_settings

    try:
        sim = load_settings(home).BROKER_NAME == "SIM"
    except Exception:  # noqa: BLE001 - advice only: an unreadable config gets the service's wording (check names it)
        sim = False
    if sim:
        return (
            f"a simulated-exchange home only replays recorded days: run `tbot start --home {home.root} --replay "
            "YYYY-MM-DD`"
        )
    return f"start the service with `sudo systemctl start tbot` (or `tbot start --home {home.root}`)"


def confirm_dir(home: BotHome) -> Path:
    return home.control_dir / "confirm"


class ConfirmRefused(Exception):
    """`tbot confirm` of an order that is not waiting (unknown, expired, already handled); exit 1."""


def confirm_order(home: BotHome, client_order_id: str, who: str, *, now: datetime | None = None) -> Path:
    """Confirm an order listed as pending in status.json whose confirmation window is still open."""
    check_confirmable(home, client_order_id, now=now)
    return write_confirmation(home, client_order_id, who)


def check_confirmable(home: BotHome, client_order_id: str, *, now: datetime | None = None) -> None:
    """Raise ConfirmRefused unless the order is pending and its window is open (CLI and dashboard alike)."""
    if not client_order_id or "/" in client_order_id or client_order_id.startswith("."):
        raise ValueError(f"{client_order_id!r} is not a valid order id")
    from tbot_bot.runtime.status_bot import read_status

    now = now or utc_now()
    status = read_status(home.status_json) or {}
    bot = status.get("bot")
    if isinstance(bot, dict) and bot.get("mode") == "replay":
        # a replay's confirmation window runs on the replay clock: the bot's time (its last status write), never
        # the wall clock (years later: every confirmation would be "expired")
        now = _parse_time(status.get("updated_at")) or now
    pending = {
        str(p.get("client_order_id")): p
        for p in status.get("pending_confirmations") or []
        if isinstance(p, dict)
    }
    entry = pending.get(client_order_id)
    # the journal decides, not the list in status.json (a stop or flatten abandoned the entry and the list went on
    # offering it until the day's end)
    held = _journal_row(home, client_order_id)
    if entry is None or (held is not None and held[0] != "awaiting_confirmation"):
        raise ConfirmRefused(_not_pending_reason(home, client_order_id))
    expires = _parse_time(entry.get("expires_at"))
    if expires is not None and now >= expires:
        raise ConfirmRefused(
            f"order {client_order_id} expired: its confirmation window ended at {expires.isoformat()}"
        )
    # a confirmation the supervisor would not act on is refused here, not reported as done: a paused or stopped
    # bot abandons a pending entry at its next minute, a halted one never sends it
    blocked = (
        f"entries are paused ({paused}; `tbot resume` lifts it)" if (paused := paused_by(home)) else None
    ) or (f"trading is stopped ({stopped})" if (stopped := trading_stopped(home)) else None)
    kill = status.get("kill_switch")
    if blocked is None and isinstance(kill, dict) and kill.get("tripped"):
        blocked = f"the kill switch tripped ({kill.get('reason')})"
    if blocked is not None:
        raise ConfirmRefused(
            f"order {client_order_id} would not be sent: {blocked}; a pending entry is abandoned"
        )


def write_confirmation(home: BotHome, client_order_id: str, who: str) -> Path:
    """The confirmation file itself, unchecked (the supervisor still honours it only within the window)."""
    path = confirm_dir(home) / client_order_id
    atomic_write_text(path, _stamp(who))
    return path


def _parse_time(raw: object) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(raw))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _journal_row(home: BotHome, client_order_id: str) -> tuple[str, str | None] | None:
    """(status, note) of an order in the journal, read-only; None when unknown (or no journal yet)."""
    journal = home.state_dir / "journal.db"
    if not journal.exists():
        return None
    try:
        with sqlite3.connect(readonly_uri(journal), uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT status, note FROM intents WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
    except sqlite3.Error:
        return None
    return (str(row[0]), row[1]) if row is not None else None


def _not_pending_reason(home: BotHome, client_order_id: str) -> str:
    """Why an id is not pending: unknown to the journal, expired, abandoned, or already past confirmation."""
    row = _journal_row(home, client_order_id)
    if row is None:
        return f"unknown order id {client_order_id}: no order is waiting for confirmation under that id (see `tbot status`)"
    status, note = row
    if note == "confirmation window expired":
        return f"order {client_order_id} expired: its confirmation window ended before it was confirmed"
    why = f": {note}" if note and status == "abandoned" else ""
    return f"order {client_order_id} is not waiting for confirmation (status {status}{why})"


class ControlFiles:
    def __init__(self, home: BotHome) -> None:
        self.home = home

    def stop_requested(self) -> bool:
        return self.home.control_stop.exists()

    def flatten_requested(self) -> bool:
        return flatten_request_path(self.home).exists()

    def start_requested(self) -> bool:
        return self.home.control_start.exists()

    def _archive_stop(self, suffix: str) -> str:
        path = self.home.control_stop
        try:
            text = path.read_text(encoding="utf-8").strip()
            path.rename(path.with_name(f"control_stop.{utc_now().strftime('%Y%m%dT%H%M%S%f')}.{suffix}"))
        except OSError:
            return ""
        return text

    def consume_stop(self) -> str:
        """Archive the stop file (so a restart is not stopped by it) and return who asked."""
        return self._archive_stop("done")

    def discard_stale_stop(self, *, written_before: float) -> Path | None:
        """Archive a stop file last written before this run began; it was never meant for this run."""
        path = self.home.control_stop
        try:
            if path.stat().st_mtime >= written_before:
                return None
        except OSError:
            return None
        self._archive_stop("stale")
        return path

    def discard_stale_start(self, *, written_before: float) -> Path | None:
        """Archive a start file last written before this run began, as a stale stop file is."""
        path = self.home.control_start
        try:
            if path.stat().st_mtime >= written_before:
                return None
            path.rename(path.with_name(f"control_start.{utc_now().strftime('%Y%m%dT%H%M%S%f')}.stale"))
        except OSError:
            return None
        return path

    def consume_start(self) -> str:
        path = self.home.control_start
        try:
            text = path.read_text(encoding="utf-8").strip()
            path.unlink()
        except OSError:
            return ""
        return text

    def flatten_request(self) -> dict[str, Any] | None:
        """A pending flatten request; an unreadable one is answered as refused so its writer is not left waiting."""
        path = flatten_request_path(self.home)
        if not path.exists():
            return None
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(body, dict) or not body.get("id") or not body.get("by"):
                raise ValueError("not a flatten request")
        except (OSError, ValueError):
            path.rename(path.with_name(f"control_flatten.{utc_now().strftime('%Y%m%dT%H%M%S%f')}.bad"))
            return None
        return body

    def finish_flatten(self, request: dict[str, Any], result: dict[str, Any]) -> None:
        atomic_write_text(flatten_result_path(self.home, str(request["id"])), json.dumps(result) + "\n")
        flatten_request_path(self.home).unlink(missing_ok=True)

    def is_confirmed(self, client_order_id: str) -> bool:
        return (confirm_dir(self.home) / client_order_id).exists()
