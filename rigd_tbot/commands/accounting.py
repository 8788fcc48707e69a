"""`tbot accounting sync`: push the bot ledger's transactions to the accounting system's ingestion endpoint.

Resumes after the last FITID the accounting system acknowledged, in batches; running it again after an
interruption sends nothing twice. Needs `acct_api_credentials` (`tbot secrets set acct_api`). Exit 0 when
everything is acknowledged, 75 when the accounting API could not be reached (transient: run it again), 1 when it
refused, 2 when not configured.
"""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument, existing_home


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "accounting", help="exchange data with the firm's accounting system", description=__doc__
    )
    actions = p.add_subparsers(dest="accounting_action", metavar="ACTION")
    actions.required = True
    sync = actions.add_parser("sync", help="push ledger transactions after the last acknowledged FITID")
    add_home_argument(sync)
    sync.add_argument(
        "--batch-size", type=int, default=200, help="transactions per request, 1..5000 (default 200)"
    )
    sync.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.acct_client import SECRET_NAME, AccountingClient
    from tbot_bot.accounting.ledger_sync import remember_sync, sync_ledger
    from tbot_bot.config.retry import RetryPolicy
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import ConfigError
    from tbot_bot.support.utils_bot import utc_now

    if not 1 <= args.batch_size <= 5000:
        raise ConfigError(f"--batch-size {args.batch_size} must be between 1 and 5000")
    home = existing_home(args.home)
    binding = load_binding(home)
    client = AccountingClient.from_home(
        home, binding.identity, retry=RetryPolicy.from_settings(load_settings(home))
    )
    if client is None:
        raise ConfigError(
            f"the accounting API is not configured: no {home.secret_file(SECRET_NAME).name}; "
            "store ACCT_API_URL and ACCT_API_TOKEN with `tbot secrets set acct_api`"
        )
    try:
        result = sync_ledger(
            client,
            binding,
            batch_size=args.batch_size,
            on_batch=lambda n, last: print(f"  sent {n} transaction(s) up to {last}"),
        )
    finally:
        client.close()
    remember_sync(home, result, utc_now())
    print(
        f"accounting sync: {result.pushed} new, {result.duplicates} already there, {result.batches} batch(es); "
        f"acknowledged up to {result.last_fitid or 'nothing (empty ledger)'}"
    )
    return 0
