"""Serve the dashboard with waitress (never Flask's debug server). `tbot web --home H [--host] [--port]`,
or `python -m tbot_web.py.run_web --home H`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tbot_bot.core.users import list_users
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome, resolve_home

from .portal_web import create_app


def serve(home: Path, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 4) -> None:
    import waitress

    app = create_app(home)
    if not list_users(BotHome(home)):
        print(
            f"tbot web: no users yet; add one with `tbot users add --home {home} --username NAME --role admin`"
        )
    print(f"tbot web: serving {home} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    waitress.serve(
        app, host=host, port=port, threads=threads, ident="tbot-web", clear_untrusted_proxy_headers=True
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve the RIGD TradeBot dashboard")
    parser.add_argument("--home", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        serve(resolve_home(args.home), host=args.host, port=args.port)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
