"""`tbot alerts test [--channel C]`: send a test alert through each configured channel and say which arrived."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument, existing_home

CHANNELS = ("email", "slack", "pagerduty", "sms")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="test the alert channels (tbot alerts test)")
    cmds = p.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")
    t = cmds.add_parser(
        "test",
        help="send a test alert through each configured channel (or --channel C) and say which arrived",
        description=(
            "Send one test alert, once, through every channel the home's secrets configure and every channel "
            "CRITICAL_ALERT_CHANNEL / ROUTINE_ALERT_CHANNEL name. 'arrived' means the receiving server accepted "
            "it (HTTP 2xx, SMTP 250). Exit 0 when every tested channel arrived, 1 otherwise."
        ),
    )
    add_home_argument(t)
    t.add_argument("--channel", choices=CHANNELS, help="test only this channel")
    t.set_defaults(func=run_test)


def run_test(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.accounting_config import load_identity
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.support.trading_mode import trading_mode
    from tbot_bot.support.utils_bot import utc_now
    from tbot_bot.trading.notifier_bot import Alert, AlertEvent, AlertLevel, send_test_alerts

    home = existing_home(args.home)
    settings = load_settings(home)
    mode = trading_mode(home, settings.BROKER_NAME)
    bot = load_identity(home).BOT_ID
    alert = Alert(
        AlertLevel.CRITICAL, AlertEvent.INFO, utc_now(), None, None, None, "tbot alerts test",
        f"test alert from bot {bot}: kill switch, halt and outage alerts will arrive here", mode=str(mode),
    )  # fmt: skip
    results = send_test_alerts(home, settings, alert, args.channel)
    if not results:
        print(
            "no alert channel configured and both CRITICAL_ALERT_CHANNEL and ROUTINE_ALERT_CHANNEL are log: "
            "nothing to test (alerts go to the log only, by choice)"
        )
        return 0
    for r in results:
        print(f"{r.channel:<10} {'ARRIVED' if r.arrived else 'NOT ARRIVED'}  {r.detail}")
    return 0 if all(r.arrived for r in results) else 1
