"""`tbot tune report`: the tuning tracker over live trades and strategy logs (buffer/threshold -> results)."""

from __future__ import annotations

import argparse

from rigd_tbot.cli import add_home_argument, existing_home
from tbot_bot.support.utils_bot import iso_date


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="tuning tracker: live results per entry buffer / VWAP threshold")
    tsub = p.add_subparsers(dest="tune_command", metavar="ACTION")
    tsub.required = True
    rep = tsub.add_parser(
        "report",
        help="win %%, average PnL, duration, rejections and tickers per live value; a recommendation beside "
        "the latest optimizer proposal; csv/json under the optimizer's output folder",
    )
    rep.add_argument("--since", type=iso_date, default=None, help="only trades/events from this date")
    add_home_argument(rep)
    rep.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from decimal import Decimal

    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.domain.results import cents_text
    from tbot_bot.enhancements.tuning_tracker import build_report, write_report
    from tbot_bot.optimizer.proposals import improvements, list_proposals

    home = existing_home(args.home)
    settings = load_settings(home)
    report = build_report(home, since=args.since, proposals=improvements(list_proposals(home)))
    files = write_report(home, report, home.path(settings.OPTIMIZER_OUTPUT_DIR) / "tuning_tracker")
    print(
        f"{'strategy':<8} {'key':<26} {'value':>8} {'trades':>6} {'win %':>6} {'avg PnL':>10} {'min':>6} {'rejects':>7}"
    )
    for r in report["rows"]:
        win = (
            f"{r['win_pct']:.2f}" if r["win_pct"] is not None else "-"
        )  # percentages: two decimals everywhere
        dur = f"{r['avg_duration_min']:.1f}" if r["avg_duration_min"] is not None else "-"
        # money for people in cents (the csv/json keep the exact average)
        avg = cents_text(Decimal(r["avg_pnl"])) if r["avg_pnl"] else "-"
        print(f"{r['strategy']:<8} {r['key']:<26} {str(r['value']):>8} {r['trades']:>6} {win:>6} "
              f"{avg:>10} {dur:>6} {r['rejections']:>7}")  # fmt: skip
    if not report["rows"]:
        print("no live trades or rejections recorded yet")
    for strategy, rec in report["recommendations"].items():
        line = f"{strategy}: {rec['key']} live {rec['live_value']}, recommended {rec['recommended_value']} ({rec['basis']})"
        if rec["latest_proposal"]:
            agree = rec.get("agrees_with_proposal")
            verdict = "" if agree is None else (" - agrees" if agree else " - differs")
            line += f"; latest proposal {rec['latest_proposal']} says {rec['proposal_value']}{verdict}"
        print(line)
    print(f"written: {files['csv']}, {files['json']}, {files['tickers_csv']}")
    return 0
