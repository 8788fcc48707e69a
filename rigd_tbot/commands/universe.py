"""`tbot universe build`: write data/universe.txt from the broker's active, tradable US equities."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import utc_now

EXCHANGES = ("NYSE", "NASDAQ", "ARCA", "AMEX", "BATS")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("universe", help="build the trading universe (data/universe.txt) from the broker")
    usub = p.add_subparsers(dest="universe_command", metavar="ACTION")
    usub.required = True
    b = usub.add_parser(
        "build",
        help="list the broker's active, tradable US equities into data/universe.txt",
        description=(
            "Build data/universe.txt: the broker's active, tradable US equities on the chosen exchanges whose "
            "previous close lies in the price range, the most liquid --max-symbols of them, plus the inverse ETFs "
            "of the strategy pools. Defaults come from .env_bot (UNIVERSE_EXCHANGES, MIN_PRICE, MAX_PRICE, "
            "UNIVERSE_MAX_SYMBOLS). The screener still filters every window's candidates."
        ),
    )
    add_home_argument(b)
    b.add_argument(
        "--exchanges", default=None, help=f"comma-separated listing exchanges, any of {','.join(EXCHANGES)}"
    )
    b.add_argument("--min-price", default=None, help="lowest previous close (default MIN_PRICE)")
    b.add_argument("--max-price", default=None, help="highest previous close (default MAX_PRICE)")
    b.add_argument(
        "--max-symbols", type=int, default=None, help="most equities kept (default UNIVERSE_MAX_SYMBOLS)"
    )
    b.add_argument(
        "--symbols-file",
        default=None,
        help="file of symbols to look up at the broker instead of its whole list (needed for IBKR and Tradier)",
    )
    b.set_defaults(func=run_build)


def _price(text: str | None, option: str) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{option} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ConfigError(f"{option} {text!r} must be a positive price")
    return value


def _exchanges(text: str | None) -> list[str] | None:
    if text is None:
        return None
    chosen = [x.strip().upper() for x in text.split(",") if x.strip()]
    bad = [x for x in chosen if x not in EXCHANGES]
    if bad or not chosen:
        raise ConfigError(f"--exchanges {text!r}: allowed are {', '.join(EXCHANGES)}")
    return chosen


def _symbols_file(text: str | None) -> list[str] | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"--symbols-file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--symbols-file {path} is not UTF-8 text (undecodable byte at offset {exc.start}); "
            "give one symbol per line (# starts a comment)"
        ) from None
    symbols = [s for line in text.splitlines() for s in line.split("#")[0].split()]
    if not symbols:
        raise ConfigError(f"--symbols-file {path} names no symbol")
    return symbols


def _progress(stage: str, done: int, total: int) -> None:
    print(f"\r{stage}: {done}/{total} symbols", end="" if done < total else "\n", file=sys.stderr, flush=True)


def run_build(args: argparse.Namespace) -> int:
    from tbot_bot.broker.factory import build_broker
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.inputs.universe import build_for_home

    if args.max_symbols is not None and args.max_symbols < 1:
        raise ConfigError(f"--max-symbols {args.max_symbols} must be at least 1")
    home = existing_home(args.home)
    settings = load_settings(home)
    options: dict[str, Any] = {
        "exchanges": _exchanges(args.exchanges),
        "min_price": _price(args.min_price, "--min-price"),
        "max_price": _price(args.max_price, "--max-price"),
        "max_symbols": args.max_symbols,
        "symbols": _symbols_file(args.symbols_file),
    }
    # BROKER_NAME=SIM: the simulated exchange trades only the symbols of the replay data it is given
    if settings.BROKER_NAME == "SIM":
        raise ConfigError(
            "BROKER_NAME=SIM replays recorded days; its universe is the symbols of the replay data, not a built list"
        )
    broker = build_broker(settings, home)
    try:
        build = build_for_home(home, settings, broker, utc_now(), progress=_progress, **options)
    finally:
        close = getattr(broker, "close", None)
        if callable(close):
            close()
    print(f"wrote {home.relative(home.universe_file)}: {build.summary()} ({build.calls} data API calls)")
    return 0
