"""`tbot stop`, `tbot status`, `tbot confirm ID`: talk to a running supervisor through its home's files."""

from __future__ import annotations

import argparse
import getpass

from rigd_tbot.cli import add_home_argument
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    stop = sub.add_parser(
        "stop", help="ask the running supervisor for a graceful stop (writes control_stop.txt)"
    )
    add_home_argument(stop)
    stop.set_defaults(func=run_stop)

    status = sub.add_parser("status", help="print output/status.json for a person")
    add_home_argument(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(func=run_status)

    confirm = sub.add_parser(
        "confirm",
        help="confirm a pending order (TRADE_CONFIRMATION_REQUIRED=true); valid until its breakout window ends",
    )
    add_home_argument(confirm)
    confirm.add_argument("order_id", metavar="ORDER_ID", help="the client order id shown by `tbot status`")
    confirm.set_defaults(func=run_confirm)


def _existing_home(args: argparse.Namespace) -> BotHome:
    home = BotHome.resolve(args.home)
    if not (home.env_bot_enc.exists() or home.env_bot_plain.exists()):
        raise ConfigError(
            f"{home.root} is not a bot home (no .env_bot.enc); pass --home DIR or set TBOT_HOME"
        )
    return home


def run_stop(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import request_stop

    path = request_stop(_existing_home(args), f"cli:{getpass.getuser()}")
    print(f"stop requested ({path}); the supervisor closes positions, ingests and exits within SLEEP_TIME")
    return 0


def run_status(args: argparse.Namespace) -> int:
    import json

    from tbot_bot.runtime.status_bot import read_status, render_status

    home = BotHome.resolve(args.home)
    data = read_status(home.status_json)
    if data is None:
        raise ConfigError(f"no status at {home.status_json}: the bot has not run in this home yet")
    print(json.dumps(data, indent=2) if args.json else render_status(data))
    return 0


def run_confirm(args: argparse.Namespace) -> int:
    from tbot_bot.runtime.control import confirm_order

    try:
        path = confirm_order(_existing_home(args), args.order_id, f"cli:{getpass.getuser()}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"confirmed {args.order_id} ({path})")
    return 0
