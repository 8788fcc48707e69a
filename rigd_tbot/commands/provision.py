"""`tbot provision`: stand-in for the accounting system; creates a complete bot home."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

from rigd_tbot.cli import add_home_argument
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import iso_date


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "provision",
        help="create a bot home: keys, encrypted config, identity, ledger, COA, float ledger, core databases",
        description=(
            "Provision a bot home as the accounting system would. Refuses an already provisioned home unless "
            "--force, and never overwrites a ledger. For --broker alpaca the credentials are read from "
            "ALPACA_API_KEY, ALPACA_SECRET_KEY, ALPACA_BASE_URL, ALPACA_DATA_URL when set; for ibkr from "
            "IBKR_HOST, IBKR_PORT, IBKR_CLIENT_ID, IBKR_ACCOUNT; for tradier from TRADIER_ACCESS_TOKEN, "
            "TRADIER_ACCOUNT_ID, TRADIER_BASE_URL (e.g. a local test server), TRADIER_SANDBOX (default true)."
        ),
    )
    add_home_argument(p)
    p.add_argument(
        "--broker", required=True, choices=["sim", "alpaca", "ibkr", "tradier"], help="the bot's one broker"
    )
    p.add_argument("--entity", required=True, help="ENTITY_CODE, e.g. RGL")
    p.add_argument("--jurisdiction", required=True, help="JURISDICTION_CODE, e.g. USA")
    p.add_argument("--account", required=True, help="account name, e.g. main")
    p.add_argument("--bot-id", required=True, help="BOT_ID, e.g. TB01")
    p.add_argument("--float", dest="float_amount", required=True, help="opening float injection, e.g. 2500")
    p.add_argument("--currency", default="USD", help="ISO 4217 currency of the ledger (default USD)")
    p.add_argument(
        "--environment", default="production", choices=["production", "development"], help="written to .env"
    )
    p.add_argument("--force", action="store_true", help="re-provision an existing home (ledgers are kept)")
    p.add_argument(
        "--float-date",
        type=iso_date,
        metavar="YYYY-MM-DD",
        default=None,
        help="date of the opening float in the books (default: today; for --broker sim, which replays recorded "
        "days, the first day of the bundled sample data, so replayed days find their float already booked)",
    )
    p.set_defaults(func=run)


def opening_float_time(broker: str, float_date: date | None) -> datetime | None:
    """When the opening float is booked: the given day's start (UTC), a sim home's first sample day, else now."""
    if float_date is None and broker.lower() == "sim":
        from tbot_bot.data.sample import sample_days

        float_date = sample_days()[0]
    return (
        None
        if float_date is None
        else datetime(float_date.year, float_date.month, float_date.day, tzinfo=UTC)
    )


def run(args: argparse.Namespace) -> int:
    from tbot_bot.errors import UsageError
    from tbot_bot.support.provision import ProvisionRequest, provision
    from tbot_bot.support.utils_bot import utc_now

    today = utc_now().date()
    if args.float_date is not None and args.float_date > today:
        # the books would hold a float dated in the future, while every trade before that date spends it
        raise UsageError(
            f"--float-date {args.float_date} is in the future: the opening float is booked on a day that has come "
            f"(today, {today}, at the latest)"
        )
    home = BotHome.resolve(args.home)
    result = provision(
        home,
        ProvisionRequest(
            broker=args.broker,
            entity=args.entity,
            jurisdiction=args.jurisdiction,
            account=args.account,
            bot_id=args.bot_id,
            float_amount=args.float_amount,
            currency=args.currency,
            environment=args.environment,
            force=args.force,
        ),
        now=opening_float_time(args.broker, args.float_date),
    )
    print(f"provisioned {result.identity.scope} in {result.home}")
    print(f"  ledger: {result.ledger_path}{'' if result.ledger_created else ' (existing, kept)'}")
    for note in result.notes:
        print(f"  note: {note}")
    if args.broker.lower() == "sim":
        from rigd_tbot.commands.demo import DEMO_DAY

        # a sim home only replays recorded days, so its readiness check names one (the demo's sample day)
        print(f"next: tbot check --home {result.home} --replay {DEMO_DAY.isoformat()}")
    elif result.broker_credentials_missing:
        print(
            f"next: tbot secrets set broker --home {result.home}  (and screener), then tbot check --home {result.home}"
        )
    else:  # the broker's credentials came from the environment and are stored
        print(
            f"next: tbot secrets list --home {result.home}  (what else this home requires, such as the screener's "
            f"key), then tbot check --home {result.home}"
        )
    return 0
