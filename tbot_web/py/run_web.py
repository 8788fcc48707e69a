"""Serve the dashboard with waitress (never Flask's debug server). `tbot web --home H [--host] [--port]`,
or `python -m tbot_web.py.run_web --home H`."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from tbot_bot.core.users import list_users
from tbot_bot.errors import ConfigError, UsageError
from tbot_bot.support.path_resolver import BotHome, resolve_home

from .portal_web import create_app


def require_bot_home(home: BotHome) -> None:
    """Refuse to serve a directory that is not a bot home (e.g. the current directory by accident)."""
    markers = (home.env_bot_enc, home.env_bot_plain, home.dotenv, home.core_db("SYSTEM_USERS"))
    if not home.root.is_dir() or not any(m.exists() for m in markers):
        raise UsageError(
            f"{home.root} is not a bot home (no .env_bot.enc, .env_bot, .env or storage/databases); pass "
            "--home DIR or set TBOT_HOME to the home `tbot provision` created"
        )


def check_listen_address(host: str, port: int) -> None:
    """Refuse an address that does not resolve or cannot be bound (in use, not of this machine, privileged),
    before anything is started."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise UsageError(
            f"--host {host!r} cannot be resolved ({reason}); use an address of this machine such as "
            "127.0.0.1 (the default) or 0.0.0.0 behind a TLS proxy"
        ) from None
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port, or stop what "
                "uses it"
            ) from None


def serve(home: Path, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 4) -> None:
    import waitress

    require_bot_home(BotHome(home))
    app = create_app(home)
    check_listen_address(host, port)
    if not list_users(BotHome(home)):
        print(
            f"tbot web: no users yet; add one with `tbot users add --home {home} --username NAME --role admin`"
        )
    print(f"tbot web: serving {home} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    # WEB_TRUST_PROXY: waitress passes X-Forwarded-* through and ProxyFix (in the app) believes only N hops
    trust_proxy = app.extensions["tbot"].limits.trust_proxy
    waitress.serve(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="tbot-web",
        clear_untrusted_proxy_headers=not trust_proxy,
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
