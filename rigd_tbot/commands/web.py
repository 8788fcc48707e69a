"""`tbot web`: serve the dashboard (tbot_web) with waitress; a separate process from the daemon."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument, bounded_int
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the web dashboard (waitress; default http://127.0.0.1:8080)")
    add_home_argument(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; put TLS in front)"
    )
    p.add_argument("--port", type=bounded_int(1, 65535), default=8080, help="port (default 8080)")
    p.add_argument(
        "--threads", type=bounded_int(1, 64), default=4, help="waitress worker threads, 1-64 (default 4)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_web.py.run_web import serve

    serve(BotHome.resolve(args.home).root, host=args.host, port=args.port, threads=args.threads)
    return 0
