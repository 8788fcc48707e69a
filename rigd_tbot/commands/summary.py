"""`tbot summary`: the sessions' daily summaries as a table (one row per day, or one day per strategy)."""

from __future__ import annotations

import argparse
from decimal import Decimal

from rigd_tbot.cli import add_home_argument, bot_home
from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import iso_date

ORDER = {"open": 0, "mid": 1, "close": 2}
COUNTS = ("total_trades", "wins", "losses", "signals_triggered", "denials", "errors")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-session summaries: trades, wins, PnL, signals, denials per day (or per strategy with --date)",
        description=(
            "Reads output/<scope>/summaries/ (one daily summary per session, written after each session's "
            "booking). Without --date: one row per session and a TOTAL row. With --date: that session per "
            "strategy. PnL is realised before fees; net = PnL - fees."
        ),
    )
    add_home_argument(p)
    p.add_argument(
        "--date", dest="day", type=iso_date, metavar="YYYY-MM-DD", help="one session, per strategy"
    )
    p.set_defaults(func=run)


def _pct(value: object) -> str:
    from tbot_bot.domain.results import percent_text

    try:
        return percent_text(Decimal(str(value))) if value is not None else "-"
    except ArithmeticError:
        return "-"


def _closed(totals: dict) -> int:  # type: ignore[type-arg]
    """Closed trades of a summary block: recorded since the field exists; for an older file, wins / win_rate
    (exact to the 4 places the rate is kept), else wins + losses."""
    closed = totals.get("closed_trades")
    if isinstance(closed, int):
        return closed
    wins = totals.get("wins") if isinstance(totals.get("wins"), int) else 0
    try:
        rate = Decimal(str(totals.get("win_rate")))
        if wins and rate.is_finite() and Decimal("0.0001") <= rate <= 1:  # a rate a summary can hold
            return int((wins / rate).to_integral_value())
    except ArithmeticError:
        pass
    losses = totals.get("losses") if isinstance(totals.get("losses"), int) else 0
    return wins + losses


def _amounts(totals: dict) -> tuple[Decimal, Decimal, Decimal]:  # type: ignore[type-arg]
    """(realised PnL, fees, net) of a summary block; net = PnL - fees when the file predates fees."""
    from tbot_bot.support.session_summaries import decimal_or_zero

    pnl = decimal_or_zero(totals.get("total_pnl"))
    fees = decimal_or_zero(totals.get("total_fees"))
    net = decimal_or_zero(totals["net_pnl"]) if totals.get("net_pnl") is not None else pnl - fees
    return pnl, fees, net


def _money3(totals: dict) -> list[str]:  # type: ignore[type-arg]
    from tbot_bot.domain.results import cents_text

    return [cents_text(m) for m in _amounts(totals)]


def run(args: argparse.Namespace) -> int:
    from rigd_tbot.display import print_table
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.domain.results import cents_text
    from tbot_bot.support.session_summaries import decimal_or_zero, read_session_summaries

    home = bot_home(args.home)
    scope = load_binding(home).scope
    scan = read_session_summaries(home.summaries_dir(scope))
    for problem in scan.problems:
        print(f"warning: {problem}")
    headers = [
        "",
        "trades",
        "wins",
        "losses",
        "win rate",
        "gross PnL",
        "fees",
        "net PnL",
        "signals",
        "denials",
        "errors",
    ]
    right = tuple(range(1, len(headers)))
    if args.day is not None:
        match = [s for s in scan.sessions if s.day == args.day.isoformat()]
        if not match:
            days = ", ".join(s.day for s in scan.sessions[-10:]) or "none yet"
            raise ConfigError(f"no summary for {args.day} in {home.summaries_dir(scope)}; sessions: {days}")
        s = match[0]
        rows = [
            [name, *(str(v.get(k, 0)) for k in COUNTS[:3]), _pct(v.get("win_rate")),
             *_money3(v), *(str(v.get(k, 0)) for k in COUNTS[3:])]
            for name, v in sorted(s.strategies.items(), key=lambda kv: (ORDER.get(kv[0], 9), kv[0]))
        ]  # fmt: skip
        t = s.totals
        # what the totals hold beyond the strategies' rows, as rows of their own (so the rows add up to TOTAL)
        blank = ["", "", "", ""]
        account = decimal_or_zero(t.get("account_fees"))
        if account:
            rows.append(["fees apart from fills", *blank, cents_text(Decimal(0)), cents_text(account),
                         cents_text(-account), "", "", ""])  # fmt: skip
        adjusted = t.get("prior_period_adjustments")
        if isinstance(adjusted, dict):
            rows.append(["prior-period adjustment", *blank, *_money3(adjusted), "", "", ""])
        footer = ["TOTAL", *(str(t.get(k, 0)) for k in COUNTS[:3]), _pct(t.get("win_rate")),
                  *_money3(t), *(str(t.get(k, 0)) for k in COUNTS[3:])]  # fmt: skip
        headers[0] = "strategy"
        print_table(f"Session {s.day} of {scope}", headers, rows, footer=footer, right=right)
        return 0
    rows = []
    for s in scan.sessions:
        rows.append([s.day, *(str(s.count(k)) for k in COUNTS[:3]), _pct(s.totals.get("win_rate")),
                     *_money3(s.totals), *(str(s.count(k)) for k in COUNTS[3:])])  # fmt: skip
    sums = {k: sum(s.count(k) for s in scan.sessions) for k in COUNTS}
    # one win rate (daily_summary): wins over the closed trades, a zero-PnL trade included, open ones not
    closed = sum(_closed(s.totals) for s in scan.sessions)
    money = [sum((_amounts(s.totals)[i] for s in scan.sessions), Decimal(0)) for i in range(3)]
    footer = ["TOTAL", *(str(sums[k]) for k in COUNTS[:3]),
              _pct(Decimal(sums["wins"]) / closed) if closed else "-", *(cents_text(m) for m in money),
              *(str(sums[k]) for k in COUNTS[3:])]  # fmt: skip
    headers[0] = "session"
    print_table(f"Sessions of {scope} ({len(rows)})", headers, rows, footer=footer, right=right)
    if not rows:
        print(f"no session summaries yet in {home.summaries_dir(scope)}; they are written after each session")
    return 0
