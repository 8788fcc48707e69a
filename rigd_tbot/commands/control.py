"""`tbot stop`, `tbot pause`, `tbot resume`, `tbot status`, `tbot confirm ID`: talk to a running supervisor
through its home's files (DESIGN §8: Stop ends trading and the supervisor stays up, stopped, until Start)."""

from __future__ import annotations

import argparse
import sys

from rigd_tbot.cli import add_home_argument, bot_home, cli_actor
from rigd_tbot.display import exchange_tz_of, home_zone
from tbot_bot.domain.clock import stamp_for_people
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    stop = sub.add_parser(
        "stop",
        help="ask the running supervisor for a graceful stop (writes control_stop.txt); exit 1 if none runs",
    )
    add_home_argument(stop)
    stop.set_defaults(func=run_stop)

    pause = sub.add_parser(
        "pause",
        help="pause new entries (open positions are still managed); holds across restarts until `tbot resume`",
    )
    add_home_argument(pause)
    pause.set_defaults(func=run_pause)

    resume = sub.add_parser("resume", help="resume new entries after `tbot pause`; exit 1 if not paused")
    add_home_argument(resume)
    resume.set_defaults(func=run_resume)

    defense = sub.add_parser(
        "defense",
        help="end an automatic defense mode for this session (`defense clear`); DEFENSE_MODE_ACTIVE=true stays on",
    )
    defense_actions = defense.add_subparsers(dest="defense_action", required=True, metavar="clear")
    clear = defense_actions.add_parser(
        "clear",
        help="the supervisor ends defense mode at its next poll (or at the next start); a trigger that fires "
        "again switches it on again",
    )
    add_home_argument(clear)
    clear.set_defaults(func=run_defense_clear)

    status = sub.add_parser(
        "status",
        help="the bot's state, windows (exchange time and UTC), counts, positions and safety flags",
    )
    add_home_argument(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(func=run_status)

    confirm = sub.add_parser(
        "confirm",
        help=(
            "confirm a pending order (TRADE_CONFIRMATION_REQUIRED=true); valid until its breakout window ends; "
            "exit 1 naming an unknown or expired id"
        ),
    )
    add_home_argument(confirm)
    confirm.add_argument("order_id", metavar="ORDER_ID", help="the client order id shown by `tbot status`")
    confirm.set_defaults(func=run_confirm)


def run_stop(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import describe, request_stop, running_supervisor

    home = bot_home(args.home)
    holder = running_supervisor(home)
    if holder is None:
        # a stop file written now would only be discarded by the next start: say so instead
        print(f"no supervisor is running in {home.root}: nothing to stop", file=sys.stderr)
        return 1
    path = request_stop(home, cli_actor())
    print(
        f"stop requested ({path}) for the supervisor ({describe(holder, home_zone(home))}); within SLEEP_TIME it "
        "cancels its "
        "orders, closes its positions and books the day; it then stays up, stopped (live: across days; a "
        "replay: to its replay day's end), until `tbot start` or the dashboard's Start"
    )
    return 0


def run_pause(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import paused_by, request_pause, running_supervisor

    home = bot_home(args.home)
    already = paused_by(home)
    if already is not None:
        print(f"new entries are already paused ({stamp_for_people(already, home_zone(home))})")
        return 0
    path = request_pause(home, cli_actor())
    when = "from the next minute" if running_supervisor(home) else "from the next start (no supervisor runs)"
    print(f"new entries paused {when} ({path}); open positions are still managed; `tbot resume` lifts it")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import request_resume

    home = bot_home(args.home)
    was = request_resume(home)
    if was is None:
        print("new entries are not paused: nothing to resume", file=sys.stderr)
        return 1
    print(f"new entries resumed (they had been paused {stamp_for_people(was, home_zone(home))})")
    return 0


def run_defense_clear(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import request_defense_clear, running_supervisor

    home = bot_home(args.home)
    running = running_supervisor(home)
    shown = _read_status_file(home) or {}
    if running and shown.get("defense_mode") is False:
        # the running supervisor says defense mode is off: a request would be discarded at its next poll
        print(
            "defense mode is off (`tbot status`): nothing to clear; a DEFENSE_MODE_TRIGGER_* that fires later "
            "switches it on, and this command ends it then",
            file=sys.stderr,
        )
        return 1
    path = request_defense_clear(home, cli_actor())
    when = "at its next poll" if running else "at the next start (no supervisor runs)"
    print(
        f"defense clear requested ({path}): the supervisor ends an automatic defense mode {when}; `tbot status` "
        "shows the outcome (DEFENSE_MODE_ACTIVE=true keeps it on)"
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    import json

    from rigd_tbot.status_view import render_status_view, written_time
    from tbot_bot.runtime.control import pause_in_force, running_supervisor
    from tbot_bot.support.utils_bot import utc_now

    home = bot_home(
        args.home
    )  # a mistyped --home is said as such, not "the bot has not run in this home yet"
    running = running_supervisor(home) is not None
    # the pause in force, as the dashboard's /api/status shows it (scripts read --json)
    data = pause_in_force(home, _read_status_file(home), running)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    try:
        view = render_status_view(
            data,
            exchange_tz=exchange_tz_of(home, data),
            written_at=written_time(home.status_json),
            now=utc_now(),
            running=running,
            log_file=_supervisor_log(home),
        )
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"{home.status_json} does not hold the fields a status has ({type(exc).__name__}: {exc}); "
            "`tbot status --json` prints it raw; the bot rewrites it at its next change"
        ) from None
    print(view, end="")
    return 0


def _supervisor_log(home: BotHome) -> str:
    """The supervisor's log, relative to the home (one bot per home: its output/<scope>/logs)."""
    found = sorted(home.output_dir.glob("*/logs/supervisor.log"))
    return str(home.relative(found[0])) if found else "the supervisor.log in output/<bot>/logs"


def _read_status_file(home: BotHome) -> dict:  # type: ignore[type-arg]
    """status.json as the object the bot writes, or a ConfigError saying what is wrong with the file."""
    from tbot_bot.support.utils_bot import parse_json

    path = home.status_json
    after = "the bot writes a new one at its next start or change"
    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"no status at {path}: the bot has not run in this home yet")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not the status file: remove it ({after})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        data = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(
            f"{path} is not a JSON status file (damaged or replaced?): remove it ({after})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} holds a JSON {type(data).__name__}, not the status object: remove it ({after})"
        )
    return data


def run_confirm(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import ConfirmRefused, confirm_order

    try:
        path = confirm_order(bot_home(args.home), args.order_id, cli_actor())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except ConfirmRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"confirmed {args.order_id} ({path})")
    return 0
