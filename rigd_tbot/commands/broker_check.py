"""`tbot broker-check`: the operator's readiness check of the configured broker.

Account, buying power, market clock, open positions and one quote, each reported OK or FAIL. Exit 0 only
when every step answered; a broker that cannot be reached stops the check after the first step.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.broker.adapter_guard import describe_endpoint
from tbot_bot.errors import (
    ConfigError,
    MarketDataError,
    MarketDataUnreachable,
    NetworkError,
    TbotError,
    UsageError,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "broker-check",
        help="check the configured broker: account, buying power, clock, positions, one quote",
        description="Connects with the home's encrypted broker credentials and prints what the broker says.",
    )
    add_home_argument(p)
    p.add_argument("--symbol", default="SPY", help="symbol to quote (default SPY)")
    p.set_defaults(func=run)


def _step(label: str, action: Callable[[], str], failures: list[str], where: str, refused: list[str]) -> bool:
    """Run one check; False when the ones after it cannot succeed. A 401/403 is recorded in `refused`."""
    try:
        detail = action()
    except TbotError as exc:
        print(f"FAIL {label:<10} {type(exc).__name__}: {exc}")
        failures.append(label)
        if re.search(r"\b(401|403)\b", str(exc)):
            refused.append(label)
            return False  # the keys were refused: every step after would be refused alike
        # an answer without data (no quote for the symbol) is not an unreachable broker: the next steps still run
        unreachable = isinstance(exc, NetworkError) and (
            not isinstance(exc, MarketDataError) or isinstance(exc, MarketDataUnreachable)
        )
        return not (unreachable or isinstance(exc, ConfigError))
    except Exception as exc:  # adapters guard their methods; this line is for whatever still slips through
        print(f"FAIL {label:<10} unexpected {type(exc).__name__} from {where}: {str(exc)[:300]}")
        failures.append(label)
        return True
    print(f"OK   {label:<10} {detail}")
    return True


def run(args: argparse.Namespace) -> int:
    from tbot_bot.broker.factory import build_broker
    from tbot_bot.config.settings_bot import load_settings

    home = existing_home(args.home)
    settings = load_settings(home)
    if settings.BROKER_NAME == "SIM":
        # BROKER_NAME=SIM: the simulated exchange only exists inside a replay; there is no connection to check
        raise UsageError(
            f"{home.root} uses the simulated exchange (BROKER_NAME=SIM): there is no broker connection to check. "
            f"Check the home with `tbot check --home {home.root} --replay DAY` instead"
        )
    broker = build_broker(settings, home)
    failures: list[str] = []
    reached: list[str] = []  # steps the broker answered with a refusal of the credentials
    where = describe_endpoint(broker)
    print(f"broker {settings.BROKER_NAME} at {where} for home {home.root}")
    try:

        def account() -> str:
            a = broker.get_account()
            return (
                f"{a.account_id} status={a.status} cash={a.cash} buying_power={a.buying_power} "
                f"equity={a.equity} {a.currency}"
            )

        def clock() -> str:
            c = broker.get_clock()
            state = "open" if c.is_open else "closed"
            return f"{c.timestamp:%Y-%m-%d %H:%M:%S}Z market {state}; next open {c.next_open}, next close {c.next_close}"

        def positions() -> str:
            held = broker.get_positions()
            listed = ", ".join(f"{p.symbol} {p.qty} @ {p.avg_entry_price}" for p in held)
            return f"{len(held)} open" + (f": {listed}" if listed else "")

        def quote() -> str:
            q = broker.get_latest_quote(args.symbol)
            return f"{q.symbol} bid {q.bid} ask {q.ask} spread {q.spread_pct:.4%} at {q.timestamp:%H:%M:%S}Z"

        steps: list[tuple[str, Callable[[], str]]] = [
            ("account", account),
            ("clock", clock),
            ("positions", positions),
            ("quote", quote),
        ]
        for label, action in steps:
            if not _step(label, action, failures, where, reached):
                # the broker answered, and refused the keys: reaching it is not what is wrong
                print(
                    "stopped: the broker refused the credentials (HTTP 401/403); check the keys in "
                    "storage/secrets (`tbot secrets set broker`) and the account's paper/live setting"
                    if reached
                    else "stopped: the broker cannot be reached; fix that first"
                )
                break
    finally:
        close: Any = getattr(broker, "close", None)
        if callable(close):
            close()
    if failures:
        print(f"broker-check FAILED: {', '.join(failures)}")
        return 1
    print("broker-check OK")
    return 0
