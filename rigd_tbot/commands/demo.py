"""`tbot demo`: provision a sim home if absent, replay one sample day with all three strategies, print a table."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rigd_tbot.cli import add_home_argument
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import iso_date

DEMO_DAY = date(2011, 1, 25)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="replay one sample trading day end to end in a demo home and print what happened",
        description=(
            "Provisions demo_home/ (sim broker, bundled SPY minute bars and derived instruments) when absent, runs the "
            "real supervisor through one recorded day at replay speed, and prints per-strategy signals, entries, exits "
            "and net PnL (after fees), then where the ledger, OFX, trade history and summary are."
        ),
    )
    # never $TBOT_HOME: on a bot's machine it names the real home, which a demo must not provision or replay into
    add_home_argument(
        p, help="demo home directory (default: demo_home/ in the current directory; not $TBOT_HOME)"
    )
    p.add_argument(
        "--day",
        type=iso_date,
        default=DEMO_DAY,
        metavar="YYYY-MM-DD",
        help=f"sample day to replay (default {DEMO_DAY}; a day without bars lists the ones available)",
    )
    p.set_defaults(func=run)


def available_days_message(day: date) -> str:
    from tbot_bot.backtest.load_historical_data import days_text
    from tbot_bot.data.sample import sample_days

    return (
        f"the bundled sample has no bars for {day}; {days_text(sample_days(), '--day')}\n"
        f"for example: tbot demo --day {DEMO_DAY}"
    )


def run(args: argparse.Namespace) -> int:
    from rigd_tbot.commands.provision import opening_float_time
    from tbot_bot.data.sample import sample_days
    from tbot_bot.runtime.boot import DayAlreadyBooked
    from tbot_bot.runtime.main import Supervisor
    from tbot_bot.support.provision import ProvisionRequest, provision

    if args.day not in sample_days():
        raise ConfigError(available_days_message(args.day))
    home = BotHome.resolve(args.home or "demo_home")
    if not home.env_bot_enc.exists():
        provision(
            home,
            ProvisionRequest(
                broker="sim",
                entity="RGL",
                jurisdiction="USA",
                account="demo",
                bot_id="DEMO01",
                float_amount="25000",
                environment="development",
            ),
            now=opening_float_time(
                "sim", None
            ),  # the float is booked in the data's time, before the replayed day
        )
        print(f"provisioned a demo bot home in {home.root}")
    try:
        code = Supervisor(home, replay_day=args.day).run()
    except DayAlreadyBooked:
        # `make demo` twice: the day is booked in this home, so its results are shown as they were
        print(
            f"{args.day} was already replayed in {home.root}; its results are below "
            f"(replay it again in a fresh home: tbot demo --home NEW_HOME --day {args.day})"
        )
        code = 0
    print(render_demo_table(home, args.day))
    return code


def _window_lines(status: dict[str, Any]) -> list[str]:
    """One line per window from status.json: scheduled start in exchange time and UTC, and its outcome."""
    lines = []
    for w in status.get("windows") or []:
        start, local = w.get("scheduled_start"), w.get("scheduled_start_exchange")
        if not start:
            continue
        utc = datetime.fromisoformat(start)
        when = f"{utc:%H:%M} UTC"
        if local:
            when = f"{datetime.fromisoformat(local):%H:%M} {w.get('exchange_timezone', '')} = {when}"
        note = w.get("note") or ""
        lines.append(
            f"{'window ' + w.get('strategy', '?'):<14}{when}  {w.get('status', '')}"
            + (f" ({note})" if note and note != "fits" else "")
        )
    return lines


def render_demo_table(home: BotHome, day: date, home_label: str = "demo home") -> str:
    """What a replayed day did (shared by `tbot demo` and `tbot start --replay`): per-strategy counts and
    net PnL (after fees), each window's scheduled start in exchange time and UTC, and where the outputs are."""
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.runtime.order_journal import OrderJournal
    from tbot_bot.runtime.positions import round_trips
    from tbot_bot.runtime.reports import report_paths
    from tbot_bot.runtime.status_bot import read_status

    binding = load_binding(home)
    journal = OrderJournal(home.state_dir / "journal.db")
    try:
        intents = journal.intents(day.isoformat())
        signals = journal.signal_counts(day.isoformat())
        trips = round_trips(intents)
    finally:
        journal.close()
    lines = [
        f"Replayed {day} — bot {binding.scope}",
        f"{'strategy':<9}{'signals':>8}{'entries':>9}{'exits':>7}{'net PnL':>15}",
    ]
    total = Decimal(0)
    for s in ("open", "mid", "close"):
        entries = sum(1 for i in intents if i.strategy == s and i.purpose == "entry" and i.filled_qty)
        exits = sum(1 for t in trips if t.entry.strategy == s)
        pnl = sum((t.pnl for t in trips if t.entry.strategy == s), Decimal(0))
        total += pnl
        lines.append(f"{s:<9}{signals.get(s, 0):>8}{entries:>9}{exits:>7}{pnl:>15.2f}")
    lines.append(
        f"{'total':<9}{sum(signals.values()):>8}{sum(1 for i in intents if i.purpose == 'entry' and i.filled_qty):>9}{len(trips):>7}{total:>15.2f}"
    )
    status = read_status(home.status_json) or {}
    lines += ["", *_window_lines(status)]
    paths = report_paths(home, binding, day)
    lines += [
        "",
        f"{home_label:<14}{home.root}",
        f"status        {status.get('state')}  ({home.status_json})",
        f"ledger        {binding.ledger_path}",
        # LEDGER_EXPORT_MODE=off: no statement is written by the run (`tbot ofx export` writes one)
        f"OFX           {paths['ofx']}"
        if Path(paths["ofx"]).exists()
        else f"OFX           none written (LEDGER_EXPORT_MODE=off): tbot ofx export --home {home.root} --date {day} --out FILE",
        f"trade history {paths['trade_history_csv']}",
        f"              {paths['trade_history_json']}",
        f"summary       {paths['summary']}",
        f"strategy logs {paths['logs']}",
        f"verify with   tbot ledger verify --home {home.root}",
    ]
    return "\n".join(lines)
