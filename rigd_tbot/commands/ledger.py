"""`tbot ledger verify|float|close|correct`: check the injected bot ledger (exit 0 ok, 1 naming each failing row),
show the float, close a month into 3040 Accumulated Profit, or post a correction (a reversal and, where asked, the
corrected entry; never an UPDATE)."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from rigd_tbot.cli import add_home_argument, bot_home, cli_user
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ledger", help="verify the bot ledger, show the float, close a period", description=__doc__
    )
    actions = p.add_subparsers(dest="ledger_action", metavar="ACTION")
    actions.required = True
    verify = actions.add_parser(
        "verify",
        help="schema version, balance of every transaction, audit hash chain, one audit row per transaction, "
        "chain head against its anchor (LEDGER_STATUS.db and backup sidecar), FITID uniqueness, COA",
    )
    add_home_argument(verify)
    verify.set_defaults(func=run)
    show_float = actions.add_parser(
        "float",
        help="print broker_current_float (the float-ledger balance) and today's use of it: the session cap per "
        "window and, per window started today, the cap used / available and entries (as status.json publishes them)",
    )
    add_home_argument(show_float)
    show_float.set_defaults(func=run)
    close = actions.add_parser(
        "close",
        help="close a month: income and expense into 3040 Accumulated Profit; later postings dated in it are refused",
    )
    close.add_argument("--period", required=True, metavar="YYYY-MM", help="the month to close, e.g. 2011-01")
    add_home_argument(close)
    close.set_defaults(func=run)
    correct = actions.add_parser(
        "correct",
        help="reverse a posted entry and, with --amount or --account, post the corrected one (flagged corrections "
        "naming the reason, you and the original FITID; a closed period's entry is corrected in the open one)",
    )
    correct.add_argument(
        "--fitid", required=True, help="the FITID of the entry to correct (see `tbot trades`, the OFX)"
    )
    what = correct.add_mutually_exclusive_group(required=True)
    what.add_argument("--amount", help="the corrected Broker Cash (1030) amount, e.g. 1234.56")
    what.add_argument("--account", metavar="N", help="move the entry's non-cash leg to COA account N")
    what.add_argument("--reverse", action="store_true", help="reverse the entry, post nothing in its place")
    correct.add_argument(
        "--from-account", metavar="M", help="with --account: the leg to move when there are several"
    )
    correct.add_argument("--reason", required=True, help="why (kept in the ledger memo and the audit log)")
    correct.add_argument("--yes", action="store_true", help="post without asking for confirmation")
    add_home_argument(correct)
    correct.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.coa import coa_matches
    from tbot_bot.accounting.float_ledger import UnverifiedFloat, verified_float
    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.accounting.ledger_verify import verify_ledger

    home = bot_home(args.home)  # a mistyped --home is said as such, not as a missing identity file
    binding = load_binding(home, check_files=False)
    if args.ledger_action == "float":
        # a figure read from a float ledger that fails verification is no figure: named, as `verify` names it
        try:
            amount = verified_float(home, binding)
        except UnverifiedFloat as exc:
            print(f"FAILED: {binding.float_ledger_path.name} fails verification, so its float is not shown:")
            for problem in exc.problems:
                print(f"  - {problem}")
            return 1
        print(f"{amount} {binding.currency_code}")
        print(_float_usage(home))
        return 0
    if args.ledger_action == "close":
        return _close(home, binding, args.period)
    if args.ledger_action == "correct":
        return _correct(home, binding, args)
    anchors = AnchorStore.for_home(home)
    problems = []
    for path in (binding.ledger_path, binding.float_ledger_path):
        problems += [
            f"{path.name}: {p}" for p in verify_ledger(path, anchors=anchors, backup_dir=binding.backup_dir)
        ]
    problems += [f"{binding.coa_path.name}: {p}" for p in coa_matches(binding.coa_path)]
    from tbot_bot.accounting.float_injection import float_movement_mismatch

    if not problems:  # both ledgers readable and whole: the float they hold must be the same
        problems += float_movement_mismatch(binding)
    from tbot_bot.accounting.ledger_ack import acknowledged_problems, offsite_problems

    acked, notes = acknowledged_problems(home, binding, ask=True)
    offsite, offsite_notes = offsite_problems(home, binding)
    notes += offsite_notes
    problems += [f"{binding.ledger_path.name}: {p}" for p in acked + offsite]
    for note in notes:
        print(f"note: {note}")
    if problems:
        for problem in problems:
            print(problem)
        print(f"FAILED: {len(problems)} problem(s)")
        return 1
    print(f"OK: {binding.ledger_path.name}, {binding.float_ledger_path.name} and the COA verify")
    return 0


def _float_usage(home: BotHome) -> str:
    """Today's use of the float: the figures the supervisor publishes every minute (status.json `money`, computed
    by RiskManager.window_usage), never derived a second time here."""
    from rigd_tbot.status_view import window_caps
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import ConfigError
    from tbot_bot.market_time import session_date_at
    from tbot_bot.runtime.status_bot import read_status
    from tbot_bot.support.utils_bot import utc_now

    status = read_status(home.status_json) or {}
    money = status.get("money") if isinstance(status.get("money"), dict) else None
    session = status.get("session_date")
    if not money or not session:
        return "usage: none published yet (the supervisor publishes it in status.json while it runs)"
    bot = status.get("bot") if isinstance(status.get("bot"), dict) else {}
    if bot.get("mode") == "replay":
        label = f"session {session} (replay)"
    else:
        try:
            calendar = load_settings(home).MARKET_CALENDAR
        except ConfigError:
            calendar = "XNYS"
        today = session_date_at(utc_now(), calendar).isoformat()
        if session != today:
            return f"usage: no window has started today ({today}); the last session published was {session}"
        label = f"today ({session})"
    caps = window_caps(money)
    return (
        f"usage {label}: float {money.get('float', '-')}, session cap per window {money.get('session_cap', '-')}; "
        + (caps if caps else "no window has started yet")
    )


def _supervisor_session_in(home: BotHome, last_day: date) -> str | None:
    """Why a period ending `last_day` cannot be closed now: a supervisor runs a session on or before that day (a
    replay's day, or the live session status.json names; unknown counts as inside), whose fills could then not be
    booked. None when none runs, or it trades a later session (last month closed while this one trades)."""
    from tbot_bot.runtime.control import describe, running_supervisor
    from tbot_bot.runtime.status_bot import read_status

    holder = running_supervisor(home)
    if holder is None:
        return None
    mode = str(holder.get("mode", ""))
    if mode.startswith("replay "):
        session: str | None = mode.split(" ", 1)[1][:10]
    else:
        session = (read_status(home.status_json) or {}).get("session_date")
    try:
        day = date.fromisoformat(str(session))
    except ValueError:
        day = None
    if day is not None and day > last_day:
        return None
    if day is not None and _booked(home, day):
        return None  # that session is booked (the evening of the month's last session, a weekend, the 1st's morning)
    shown = f"the session of {day}" if day else "a session (its date is not known yet)"
    return (
        f"a supervisor is trading {shown} ({describe(holder)}): its fills could not be booked into a closed "
        f"{last_day:%Y-%m}; close the month once its last session is booked (after `systemctl stop tbot`, or from the "
        "next month's first session on)"
    )


def _booked(home: BotHome, day: date) -> bool:
    """The supervisor has booked the session of `day` (its journal says so): nothing of it is left to post."""
    from tbot_bot.runtime.order_journal import OrderJournal

    path = home.state_dir / "journal.db"
    if not path.is_file():
        return False
    journal = OrderJournal(path)
    try:
        return journal.day_booked(day.isoformat()) is not None
    finally:
        journal.close()


def _close(home: BotHome, binding, period: str) -> int:  # type: ignore[no-untyped-def]
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.accounting.ledger_period import period_bounds
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import ConfigError, LedgerError

    # refusals on stderr, as every command's errors (stdout carries the result)
    try:
        period_bounds(period)
        keep = load_settings(home).LEDGER_BACKUP_KEEP
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trading = _supervisor_session_in(home, period_bounds(period)[1].date())
    if trading is not None:
        print(f"refused: {trading}", file=sys.stderr)
        return 2
    try:
        result, entry = LedgerWriter.for_home(home, binding.ledger_path, binding, keep).close_period(
            period, actor="tbot ledger close"
        )
    except ConfigError as exc:  # the period cannot be closed now (not ended, already closed): a person's call
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except LedgerError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    if entry is None:
        print(f"closed {period}: no income or expense to close; postings dated in {period} are now refused")
    else:
        print(
            f"closed {period}: {entry.fitid} moved {entry.pnl} {binding.currency_code} of profit into 3040 "
            f"Accumulated Profit; postings dated in {period} or earlier are now refused"
        )
    return 0


def _correct(home: BotHome, binding, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]

    from tbot_bot.accounting.accounting_api import build_reversal
    from tbot_bot.accounting.ledger_correction import (
        legs_text,
        parse_amount,
        plan_correction,
        post_correction,
    )
    from tbot_bot.config.settings_bot import load_settings

    amount = None if args.amount is None else parse_amount(args.amount)
    user = cli_user()
    # what planning refuses about the request is a UsageError (exit 2); a ledger that cannot be read stays a fault
    plan = plan_correction(
        binding.ledger_path, args.fitid, reason=args.reason, user=user, source="tbot ledger correct",
        amount=amount, account=args.account, from_account=args.from_account,
    )  # fmt: skip
    for p in (plan, plan.follows):
        if p is None:
            continue
        reversal = build_reversal(binding.ledger_path, p.fitid, reason=p.reason, posted_at=p.posted_at)
        what = (
            "correcting"
            if p is plan
            else "and, so the position's accounts close at zero, its exit"
            if p.role == "exit"
            else "and, as the fill it was charged for is reversed, its fee"
        )
        print(
            f"{what} {p.fitid} (dated {p.original_date:%Y-%m-%d %H:%M:%S} UTC): {legs_text(p.original_splits)}"
        )
        if p.closed_period:
            print(
                f"  period {p.closed_period} is closed: the correction is dated {p.posted_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        print(f"  post {reversal.fitid}: {legs_text(reversal.splits)}")
        if p.replacement is not None:
            print(f"  post {p.replacement.fitid}: {legs_text(p.replacement.splits)}")
    print(f"  reason: {plan.reason}")
    if plan.warning:
        print(f"  warning: {plan.warning}")
    if not args.yes:
        if not sys.stdin.isatty():
            print("refused: not confirmed; run it in a terminal to answer the question, or pass --yes")
            return 1
        if input("post this correction? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing posted")
            return 1
    written, unrecorded = post_correction(
        home, binding, plan, user=user, source="tbot ledger correct",
        backup_keep=load_settings(home).LEDGER_BACKUP_KEEP,
    )  # fmt: skip
    print(f"posted {written} correction entr{'y' if written == 1 else 'ies'} for {plan.fitid}")
    if unrecorded:
        print(f"warning: {unrecorded}", file=sys.stderr)
    return 0
