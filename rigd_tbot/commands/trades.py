"""`tbot trades`: list round trips from the home's ledger (the book of record), totals at the bottom."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from rigd_tbot.cli import add_home_argument, bot_home
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import iso_date

STRATEGIES = ("open", "mid", "close")
FORMATS = ("table", "csv", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trades",
        help="list trades from the ledger (entry/exit, prices, PnL, fees, exit reason) with totals",
        description=(
            "Reads the home's bot ledger read-only: each round trip with its entry and exit times (exchange time "
            "and UTC), prices, size, realised PnL, fees and exit reason, as booked. Trades still open show no exit. "
            "csv ends with a TOTAL row; json is {trades: [...], totals: {...}}; money is exact decimal text."
        ),
    )
    add_home_argument(p)
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--date", dest="day", type=iso_date, metavar="YYYY-MM-DD", help="only trades entered this day (UTC)"
    )
    when.add_argument(
        "--since", type=iso_date, metavar="YYYY-MM-DD", help="only trades entered on or after this day"
    )
    p.add_argument("--strategy", choices=STRATEGIES, default=None, help="only this strategy's trades")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or json")
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="rewrite the trade history files and every per-session summary from the ledger, then list",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.market_time import market_calendar
    from tbot_bot.reporting.ledger_trades import read_trades, totals

    home = bot_home(args.home)
    binding = load_binding(home)
    if args.rebuild:
        _rebuild(home, binding)
    from tbot_bot.accounting.ledger_read import account_fees

    trades = read_trades(binding.ledger_path, day=args.day, since=args.since, strategy=args.strategy)
    # the fees the broker posted apart from fills over the listed days belong to no strategy: in the totals of an
    # unfiltered listing only (as in the day's summary)
    extra = (
        Decimal(0)
        if args.strategy
        else account_fees(
            binding.ledger_path,
            args.day.isoformat() if args.day else None,
            since=args.since.isoformat() if args.since else None,
        )
    )
    total = totals(trades, extra)
    if args.format == "json":
        doc = {
            "trades": [t.as_row() for t in trades],
            "totals": {k: v if isinstance(v, int) else str(v) for k, v in total.items()},
        }
        print(json.dumps(doc, indent=2))
        return 0
    if args.format == "csv":
        rows = [t.as_row() for t in trades]
        fields = list(rows[0]) if rows else ["session", "strategy", "ticker", "pnl", "fees", "net_pnl"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow(
            {"session": "TOTAL", "pnl": total["pnl"], "fees": total["fees"], "net_pnl": total["net_pnl"]}
        )
        return 0
    tz = str(market_calendar(load_settings(home).MARKET_CALENDAR).tz)
    _print_table(trades, total, tz, binding.scope, args)
    return 0


def _rebuild(home: BotHome, binding) -> None:  # type: ignore[no-untyped-def]
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import TbotError
    from tbot_bot.reporting.ledger_history import rebuild_summaries, refresh_trade_history
    from tbot_bot.runtime.order_journal import OrderJournal
    from tbot_bot.support.trading_mode import trading_mode

    broker = load_settings(home).BROKER_NAME
    mode = trading_mode(home, broker)  # paper, live or replay, as the run that traded recorded it
    scope = binding.scope
    # what the ledger does not hold (signal times, signal and denial counts) comes from the order journal
    journal_path = home.state_dir / "journal.db"
    journal = None
    if journal_path.is_file():
        try:
            journal = OrderJournal(journal_path)
        except TbotError as exc:  # the ledger is the record: a damaged journal only costs what it would add
            print(f"note: {exc}; rebuilt without its signal times and counts", file=sys.stderr)
    try:
        signal_times = journal.signal_times() if journal else {}
        history = refresh_trade_history(
            binding.ledger_path, home.trades_dir(scope), scope, broker=broker, mode=mode, rebuild=True,
            signal_times=signal_times,
        )  # fmt: skip
        summaries = rebuild_summaries(
            binding.ledger_path, home.summaries_dir(scope), scope, broker=broker, mode=mode,
            journal_counts=journal.day_counts if journal else None,
        )  # fmt: skip
    finally:
        if journal is not None:
            journal.close()
    print(
        f"rebuilt from {binding.ledger_path.name}: trade history ({history.rows} trades) and "
        f"{len(summaries)} session summaries",
        file=sys.stderr,
    )


def _side(t: object) -> str:
    """The position's side, with the signal's view when it is not the obvious one (long SH on a bearish signal)."""
    side, direction = getattr(t, "side", ""), getattr(t, "direction", "")
    plain = (side == "long" and direction == "bullish") or (side == "short" and direction == "bearish")
    return side if plain else f"{side} ({direction})"


def _later_day(entry: datetime | None, exit_: datetime | None, tz: str) -> bool:
    """Whether the exit falls on another exchange date than the entry."""
    if entry is None or exit_ is None:
        return False
    zone = ZoneInfo(tz)
    return entry.astimezone(zone).date() != exit_.astimezone(zone).date()


def _print_table(trades: list, total: dict, tz: str, scope: str, args: argparse.Namespace) -> None:  # type: ignore[type-arg]
    from rigd_tbot.display import both_times, print_table
    from tbot_bot.domain.results import cents_text, price_text

    def money(v: Decimal | None) -> str:
        return "-" if v is None else cents_text(v)

    def price(v: Decimal | None) -> str:
        return "-" if v is None else price_text(v)

    # each trade's gross PnL, fees and net result (what people read as its PnL), as the totals below
    rows = [
        [
            t.session, t.strategy, t.ticker if t.ticker == t.signal_ticker else f"{t.ticker} ({t.signal_ticker})",
            _side(t), format(t.size.normalize(), "f"), both_times(t.entry_time, tz),
            # an exit on a later day (a position carried over night) says its date: it read as before the entry
            both_times(t.exit_time, tz, with_date=_later_day(t.entry_time, t.exit_time, tz)),
            price(t.entry_price), price(t.exit_price), money(t.pnl), money(t.fees), money(t.net_pnl),
            t.exit_reason or "open",
        ]
        for t in trades
    ]  # fmt: skip
    what = f"on {args.day}" if args.day else (f"since {args.since}" if args.since else "all days")
    title = f"Trades of {scope}, {what}" + (f", {args.strategy}" if args.strategy else "")
    wins = f"{total['wins']} won, {total['losses']} lost" + (
        f", {total['open']} open" if total["open"] else ""
    )
    footer = ["TOTAL", f"{total['trades']} trades", wins, "", "", "", "", "", "", money(total["pnl"]),
              money(total["fees"]), money(total["net_pnl"]), ""]  # fmt: skip
    headers = ["day", "strategy", "ticker (signal)", "side", "size", "entry", "exit", "entry px", "exit px",
               "gross PnL", "fees", "net PnL", "exit reason"]  # fmt: skip
    print_table(title, headers, rows, footer=footer, right=(4, 7, 8, 9, 10, 11))
    if not trades:
        print("no trades match; try without --date/--since/--strategy")
    if total["account_fees"]:
        print(
            f"Fees in the total include {cents_text(total['account_fees'])} the broker charged apart from fills "
            "(regulatory fees, in the ledger as FEE transactions)."
        )
    adopted = [t for t in trades if t.adopted]
    if adopted:
        print(
            "\nOpened by hand and taken over from the broker (`tbot positions --adopt/--close`), in the totals above:"
        )
        for t in adopted:
            print(f"  {t.session} {t.strategy} {t.ticker}: net {money(t.net_pnl)}")
    corrected = [t for t in trades if t.correction]
    if corrected:
        print("\nCorrected by the accountant (`tbot ledger correct`; figures above are after correction):")
        for t in corrected:
            print(f"  {t.session} {t.strategy} {t.ticker}: {t.correction}")
