"""`tbot rebalance status|check`: the float against its target and the rebalance breach, if any.

`status` prints the last check, the open breach (request id, whether the accounting API has it) and the
latest resolved ones, without contacting anything. `check` runs one check now, exactly as the daemon does: a new
breach is POSTed once, logged to rebalance_request.log and noted in the ledger's audit_log; a running daemon then
pauses entries (REBALANCE_PAUSE_ENTRIES). Exit 0 inside the band, 1 while a breach is open.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from rigd_tbot.cli import add_home_argument, bot_home
from tbot_bot.support.path_resolver import BotHome


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rebalance", help="float deviation: show or check the rebalance state", description=__doc__
    )
    actions = p.add_subparsers(dest="rebalance_action", metavar="ACTION")
    actions.required = True
    status = actions.add_parser("status", help="last check, open breach and recent ones (no network)")
    add_home_argument(status)
    check = actions.add_parser("check", help="compare the float with its target now; request once per breach")
    add_home_argument(check)
    for parser in (status, check):
        parser.set_defaults(func=run)


def _fmt(a: dict[str, Any] | None) -> str:
    if not a:
        return "none"
    dev = a.get("deviation")
    pct = f"{Decimal(dev) * 100:.2f}%" if dev is not None else "n/a"
    return (
        f"target {a.get('target')}, broker equity {a.get('broker_equity') or 'n/a'}, ledger cash "
        f"{a.get('ledger_cash') or 'n/a (float not in the bot ledger)'}; deviation {pct} "
        f"({a.get('basis') or '-'}), band ±{Decimal(a.get('threshold') or 0) * 100:.2f}%"
    )


def _breach(home: BotHome, message: str, opened: bool) -> None:
    """A breach this check opened or closed is alerted as the supervisor alerts it (routine), once: the breach
    is then recorded, so neither a later check nor the daemon opens it again."""
    from tbot_bot.trading.notifier_bot import AlertLevel, alert_from_command

    print(("breach opened: " if opened else "breach closed: ") + message)
    print(alert_from_command(home, "rebalance", message, AlertLevel.ROUTINE))


def _print_state(state: dict[str, Any]) -> int:
    last = state.get("last_check")
    print(f"last check  {last['at'] + ' (' + last['reason'] + ')' if last else 'never'}")
    if last:
        print(f"            {_fmt(last)}")
    breach = state.get("open")
    if breach:
        sent = (
            f"request {breach['request_id']}"
            if breach.get("posted")
            else f"NOT sent: {breach.get('post_error')}"
        )
        print(f"BREACH      {breach['breach_id']} since {breach['opened_at']}; {sent}")
        print(f"            {_fmt(breach.get('assessment'))}")
    else:
        print("breach      none open")
    for closed in state.get("closed", [])[-3:]:
        print(f"resolved    {closed['breach_id']}: {closed['opened_at']} -> {closed['closed_at']}")
    return 1 if breach else 0


def _equity(settings: Any, home: BotHome) -> Any:
    # BROKER_NAME=SIM: the paper exchange's own book (positions at cost; nothing is open after a session)
    if settings.BROKER_NAME == "SIM":
        from tbot_bot.broker.brokers.sim_store import SimStore

        db = home.state_dir / "sim_exchange.db"
        if not db.exists():
            return lambda: None
        store = SimStore(
            db, starting_cash=Decimal(0), currency=settings.CURRENCY_CODE, account_id="SIM-PAPER"
        )
        _, cash, _ = store.account()
        held = sum((p.qty * p.avg_entry_price for p in store.positions()), Decimal(0))
        store.close()
        return lambda: cash + held
    from tbot_bot.broker.factory import build_broker

    broker = build_broker(settings, home)
    return lambda: broker.get_account().equity


def run(args: argparse.Namespace) -> int:
    from tbot_bot.reporting.rebalance_notifier import read_state

    home = bot_home(args.home)
    if args.rebalance_action == "status":
        return _print_state(read_state(home))
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.acct_client import AccountingClient
    from tbot_bot.accounting.float_ledger import verified_float
    from tbot_bot.config.retry import RetryPolicy
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.reporting.rebalance_notifier import RebalanceMonitor
    from tbot_bot.support.utils_bot import utc_now

    settings, binding = load_settings(home), load_binding(home)
    # REBALANCE_ENABLED=false: the bot checks no drift, so there is nothing to check here either
    if not settings.REBALANCE_ENABLED:
        print("REBALANCE_ENABLED=false: no rebalance checks for this bot")
        return 0
    client = AccountingClient.from_home(home, binding.identity, retry=RetryPolicy.from_settings(settings))
    monitor = RebalanceMonitor(
        settings,
        home,
        binding,
        session_float=verified_float(home, binding),
        equity=_equity(settings, home),
        client=client,
        log_dir=home.logs_dir(binding.scope),
        now=utc_now,
        on_breach=lambda message, opened: _breach(home, message, opened),
    )
    try:
        monitor.check("manual")
    finally:
        if client is not None:
            client.close()
    return _print_state(read_state(home))
