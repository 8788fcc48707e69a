"""`tbot logs summary|tail|prune`: read the bot's logs back, follow them, rotate and prune them.

`summary` counts events and levels, lists errors with their first occurrence, risk denials by reason, and
trades and PnL per strategy (from exit fills), for a period (`--since/--until`, dates or ISO times, UTC),
one strategy and a minimum level. `tail` prints the newest records of every log merged in time order
(`--follow` keeps printing). `prune` rotates every log of the home (each bot's logs, logs/web, logs/) and
deletes rotated logs older than LOG_RETENTION_DAYS (or `--days`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rigd_tbot.cli import add_home_argument, existing_home

LEVEL_CHOICES = ("info", "warning", "error")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="summarise, follow or prune the bot's logs", description=__doc__)
    actions = p.add_subparsers(dest="logs_action", metavar="ACTION")
    actions.required = True
    summary = actions.add_parser("summary", help="events, errors, denials, trades and PnL per strategy")
    tail = actions.add_parser("tail", help="the newest log records, merged in time order")
    prune = actions.add_parser("prune", help="rotate every log and delete those older than the retention")
    for parser in (summary, tail):
        add_home_argument(parser)
        parser.add_argument(
            "--logs-dir", default=None, help="read this directory instead of the home's bot logs"
        )
        parser.add_argument(
            "--strategy", default=None, help="only records of this strategy (open, mid, close, supervisor)"
        )
        parser.add_argument(
            "--level", choices=LEVEL_CHOICES, default=None, help="only records at this level or above"
        )
    summary.add_argument(
        "--since", default=None, help="from this UTC date (YYYY-MM-DD) or ISO time, inclusive"
    )
    summary.add_argument(
        "--until", default=None, help="up to this UTC date (whole day) or ISO time, exclusive"
    )
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    tail.add_argument("-n", "--lines", type=int, default=20, help="how many records (default 20)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records until Ctrl-C")
    add_home_argument(prune)
    prune.add_argument(
        "--days", type=int, default=None, help="retention in days (default LOG_RETENTION_DAYS)"
    )
    for parser in (summary, tail, prune):
        parser.set_defaults(func=run)


def _logs_dir(args: argparse.Namespace) -> Path:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.errors import ConfigError

    if args.logs_dir:
        path = Path(args.logs_dir).expanduser()
        if not path.is_dir():
            raise ConfigError(f"--logs-dir {path} is not a directory")
        return path
    home = existing_home(args.home)
    return home.logs_dir(load_binding(home, check_files=False).scope)


def _exchange_tz(args: argparse.Namespace) -> str | None:
    """The zone of the home's MARKET_CALENDAR (people read exchange time beside UTC); None with --logs-dir."""
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import TbotError
    from tbot_bot.market_time import calendar_timezone

    if args.logs_dir:
        return None
    try:
        return calendar_timezone(load_settings(existing_home(args.home)).MARKET_CALENDAR)
    except (TbotError, ValueError):  # the logs are read to learn why the config will not load: UTC alone then
        return None


def run(args: argparse.Namespace) -> int:
    from tbot_bot.errors import ConfigError, UsageError

    if args.logs_action == "prune":
        return _prune(args)
    from rigd_tbot.display import both_times
    from tbot_bot.domain.vocab import STRATEGY_NAMES
    from tbot_bot.reporting import audit_log_parser as alp
    from tbot_bot.support.utils_bot import time_bound

    logs_dir = _logs_dir(args)
    if args.logs_action == "summary":
        try:
            since = time_bound(args.since, end=False) if args.since else None
            until = time_bound(args.until, end=True) if args.until else None
        except ValueError as exc:
            raise ConfigError(f"--since/--until: {exc}") from None
        if since is not None and until is not None and until <= since:
            raise UsageError(
                f"--until {args.until} is not after --since {args.since}: the span holds no time"
            )

        records, unreadable = alp.read_records(logs_dir, since=since, until=until)
        # a name no log could hold is a typo, not "no activity" (a known name quiet in the span summarises empty)
        known = {*STRATEGY_NAMES, "supervisor", *(r.strategy for r in records if r.strategy)}
        if args.strategy is not None and args.strategy not in known:
            raise UsageError(f"--strategy {args.strategy!r}: the logs hold {', '.join(sorted(known))}")
        summary = alp.summarize(alp.select(records, strategy=args.strategy, level=args.level), unreadable)
        if args.json:
            print(json.dumps(summary.as_json(), indent=2))
            return 0
        zone = _exchange_tz(args)
        if zone is None:  # --logs-dir without a home: no exchange to name, UTC alone
            print(alp.render(summary))
        else:
            print(alp.render(summary, lambda t: both_times(t, zone, with_date=True)))
        return 0
    if args.lines < 1:
        raise ConfigError(f"--lines {args.lines} must be at least 1")
    shown = 0
    while True:
        records, _ = alp.read_records(logs_dir)
        records = alp.select(records, strategy=args.strategy, level=args.level)
        fresh = records[shown:] if shown else records[-args.lines :]
        for rec in fresh:
            print(rec.text(), flush=True)
        shown = len(records)
        if not args.follow:
            return 0
        time.sleep(1.0)


def _prune(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import ConfigError
    from tbot_bot.reporting.log_rotation import rotate_home_logs
    from tbot_bot.support.utils_bot import utc_now

    home = existing_home(args.home)
    days = args.days if args.days is not None else load_settings(home).LOG_RETENTION_DAYS
    if not 1 <= days <= 3650:
        raise ConfigError(f"--days {days} must be between 1 and 3650")
    done = rotate_home_logs(home, days, now=utc_now())
    for path in done.rotated:
        print(f"rotated  {home.relative(path)}")
    for path in done.deleted:
        print(f"deleted  {home.relative(path)}")
    print(f"logs prune: {len(done.rotated)} rotated, {len(done.deleted)} deleted (retention {days} days)")
    return 0
