"""`tbot positions` (broker vs journal vs ledger, and the ways to resolve a difference) and `tbot flatten`.

Exit codes: positions 0 = the three agree, 1 = they differ (each difference named); flatten 0 = everything asked for
is closed and booked, 1 = a position could not be closed (named), 75 = a running supervisor did not answer the
request in time (it stays queued), 2 = refused (bad arguments, a home that is not a bot home).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rigd_tbot.cli import add_home_argument, bot_home, cli_actor
from tbot_bot.domain.vocab import STRATEGY_NAMES, StrategyName
from tbot_bot.errors import UsageError
from tbot_bot.support.utils_bot import iso_date

EXIT_OK, EXIT_DIFFERS, EXIT_USAGE, EXIT_NOT_ANSWERED = 0, 1, 2, 75
FLATTEN_WAIT_POLLS = 3  # a supervisor polls every SLEEP_TIME; the flatten itself settles for a few bars more


def _symbol(text: str) -> str:
    s = text.strip().upper()
    if not s or not all(c.isalnum() or c in ".-" for c in s) or len(s) > 32:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ticker or option symbol (letters, digits, . and -)"
        )
    return s


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--replay",
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="SIM homes: the replayed day (default: status.json's)",
    )
    p.add_argument(
        "--data-source", type=Path, default=None, metavar="PATH", help="SIM homes: the replay's bars"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "positions",
        help="broker positions and open orders beside the journal's and the ledger's; exit 1 when they differ",
        description=(
            "Shows what the broker holds, what the bot's journal says it holds and what the ledger has booked, with "
            "market value and unrealised PnL, and flags every difference (exit 1). Resolve a position changed at the "
            "broker by hand with --adopt (book it as a flagged external trade the bot then manages), --close (adopt "
            "and sell it at market) or --ignore (leave it, excluded from the comparison); --rebuild-journal re-creates "
            "a lost journal from the broker's orders of the day. Changes need the supervisor stopped."
        ),
    )
    add_home_argument(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    action = p.add_mutually_exclusive_group()
    action.add_argument(
        "--adopt", type=_symbol, metavar="SYMBOL", help="book the broker's position as adopted"
    )
    action.add_argument("--close", type=_symbol, metavar="SYMBOL", help="adopt, then close at market")
    action.add_argument("--ignore", type=_symbol, metavar="SYMBOL", help="leave the broker's position alone")
    action.add_argument(
        "--ignore-order",
        metavar="CLIENT_ORDER_ID",
        help="leave an open order placed at the broker by hand alone",
    )
    action.add_argument(
        "--rebuild-journal", action="store_true", help="rebuild the journal from the broker's orders"
    )
    p.add_argument(
        "--strategy", choices=[str(s) for s in STRATEGY_NAMES], default=StrategyName.CLOSE,
        help="the strategy an adopted position is kept under (default close: managed until the day's end)",
    )  # fmt: skip
    _replay_args(p)
    p.set_defaults(func=run_positions)

    f = sub.add_parser(
        "flatten",
        help="cancel the bot's open orders, close its positions at market, book them; blocks entries for the session",
        description=(
            "With a supervisor running, asks it (control/control_flatten.json) and waits for its answer; without one, "
            "does it itself under the run lock. Exit 0 all closed, 1 a position not closed (named), 75 no answer yet."
        ),
    )
    add_home_argument(f)
    f.add_argument(
        "--symbol", type=_symbol, default=None,
        help="close only this symbol (a symbol the bot does not hold is refused); new entries stop either way",
    )  # fmt: skip
    f.add_argument(
        "--strategy",
        choices=[str(s) for s in STRATEGY_NAMES],
        default=None,
        help="close only this strategy's positions; new entries stop for every strategy either way",
    )
    f.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _replay_args(f)
    f.set_defaults(func=run_flatten)


def render(report: dict[str, Any], exchange_tz: str) -> str:
    from rigd_tbot.display import both_times

    checked = datetime.fromisoformat(str(report["checked_at"]).replace("Z", "+00:00"))
    lines = [
        f"positions for {report['session_date']} (checked {both_times(checked, exchange_tz, with_date=True)})"
    ]
    head = f"{'symbol':<22}{'broker':>12}{'journal':>12}{'ledger':>12}{'to book':>10}{'value':>12}{'unreal.':>10}"
    lines.append(head)
    for row in report["positions"]:
        lines.append(
            f"{row['symbol']:<22}{row['broker_qty'] or '?':>12}{row['journal_qty']:>12}{row['ledger_qty']:>12}"
            f"{row['unbooked_qty']:>10}{row['market_value'] or '':>12}{row['unrealized_pnl'] or '':>10}"
        )
        lines += [f"  ! {p}" for p in row["problems"]]
        if row["ignored_qty"] != "0":
            lines.append(f"  (ignored at the broker: {row['ignored_qty']})")
        if row["in_flight_qty"] != "0":
            lines.append(
                f"  (of the broker's, {row['in_flight_qty']} is a fill of the bot's own order the journal has not "
                "recorded yet: the running supervisor or the next start records and books it)"
            )
    if not report["positions"]:
        lines.append("  (no position anywhere)")
    for o in report["open_orders"]:
        mark = "" if o["in_journal"] else "   ! not in the journal"
        lines.append(
            f"open order {o['client_order_id']} {o['side']} {o['qty']} {o['symbol']} {o['status']}{mark}"
        )
    verdict = "DIFFERS: " if report["differs"] else ""
    lines.append(verdict + report["summary"])
    if report["blocks_trading"]:
        lines.append(
            "a start refuses to trade this day until this is resolved (see README, When something goes wrong)"
        )
    return "\n".join(lines) + "\n"


def run_positions(args: argparse.Namespace) -> int:
    from tbot_bot.market_time import market_calendar
    from tbot_bot.runtime import operator_desk
    from tbot_bot.runtime.flatten import rebuild_journal

    home = bot_home(args.home)
    who = cli_actor()
    changing = bool(args.adopt or args.close or args.ignore or args.ignore_order or args.rebuild_journal)
    with operator_desk.open_desk(
        home, lock=changing, replay_day=args.replay, data_source=args.data_source
    ) as desk:
        # what a booking here may set off (a halt that closes the rest) is told against what was before it
        changing = bool(args.adopt or args.close)
        held_before = operator_desk.held_symbols(desk) if changing else set()
        halted_before = desk.ctx.halted_reason
        if args.adopt:
            entry = operator_desk.adopt(desk, args.adopt, StrategyName(args.strategy), who)
            print(
                f"adopted {entry.filled_qty} {args.adopt} at {entry.filled_price} as {entry.client_order_id} (booked, flagged)"
            )
        elif args.close:
            done = operator_desk.close(desk, args.close, StrategyName(args.strategy), who)
            state = f"{done.status} {done.filled_qty or 0}" if done else "nothing to close"
            print(f"closing {args.close}: exit {done.client_order_id if done else '-'} {state}")
        if changing:
            operator_desk.publish(desk)
            if desk.ctx.halted_reason and desk.ctx.halted_reason != halted_before:
                # booking it tripped a limit (an adopted loss counts toward DAILY_LOSS_LIMIT): the halt closed the rest
                also = sorted(held_before - operator_desk.held_symbols(desk) - {args.adopt or args.close})
                print(
                    f"trading halted: {desk.ctx.halted_reason}"
                    + (f"; the halt also closed {', '.join(also)}" if also else "")
                    + f"; no new entries for the rest of the session of {desk.ctx.day_key}",
                    file=sys.stderr,
                )
        elif args.ignore:
            qty = operator_desk.ignore(desk, args.ignore, who)
            print(f"ignoring {qty} {args.ignore} at the broker (not the bot's; excluded from the comparison)")
        elif args.ignore_order:
            operator_desk.ignore_order(desk, args.ignore_order, who)
            print(f"ignoring the open order {args.ignore_order} (not the bot's)")
        elif args.rebuild_journal:
            result = rebuild_journal(desk.ctx, since=desk.since)
            print(
                f"journal rebuilt: {len(result.added)} orders added, {result.kept} already there"
                + (
                    f", {len(result.foreign)} not the bot's: {', '.join(result.foreign)}"
                    if result.foreign
                    else ""
                )
            )
        report = desk.report().to_json()
        tz = str(market_calendar(desk.ctx.settings.MARKET_CALENDAR).tz)
    print(json.dumps(report, indent=2) if args.json else render(report, tz), end="\n" if args.json else "")
    return EXIT_DIFFERS if report["differs"] else EXIT_OK


def run_flatten(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.runtime.control import describe, flatten_result, request_flatten, running_supervisor

    home = bot_home(args.home)
    who = cli_actor()
    scope = (
        " ".join(x for x in (args.symbol, args.strategy and f"strategy {args.strategy}") if x) or "everything"
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("flatten closes positions at market: confirm with --yes (no terminal to ask on)")
        if input(f"flatten {scope} at market in {home.root}? type yes: ").strip().lower() != "yes":
            print("not flattened")
            return 1
    holder = running_supervisor(home)
    if holder is not None:
        request_id = request_flatten(home, who, symbol=args.symbol, strategy=args.strategy)
        wait = float(load_settings(home).SLEEP_TIME) * FLATTEN_WAIT_POLLS + 120
        from rigd_tbot.display import home_zone

        print(
            f"flatten requested from the supervisor ({describe(holder, home_zone(home))}); waiting up to {wait:.0f}s"
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            answer = flatten_result(home, request_id)
            if answer is not None:
                return _report_flatten(answer)
            time.sleep(0.2)
        print(
            f"no answer from the supervisor yet: the request stays queued ({home.control_dir})",
            file=sys.stderr,
        )
        return EXIT_NOT_ANSWERED
    from tbot_bot.runtime.operator_desk import flatten_here

    result = flatten_here(
        home,
        who,
        symbol=args.symbol,
        strategy=args.strategy,
        replay_day=args.replay,
        data_source=args.data_source,
    )
    return _report_flatten(result.to_json())


def _report_flatten(answer: dict[str, Any]) -> int:
    from tbot_bot.runtime.control import describe_answer

    said = describe_answer(answer)
    if said.refused:
        print(said.summary, file=sys.stderr)
        return EXIT_USAGE
    print(said.summary)
    for line in said.not_closed:
        print(f"NOT closed: {line}", file=sys.stderr)
    return EXIT_OK if said.ok else EXIT_DIFFERS
