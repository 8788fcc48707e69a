"""`tbot optimize run|list|show|approve|reject`: tune a strategy's `.env_bot` keys with walk-forward
validation (DESIGN §11); the live config changes only when a person approves a proposal."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import TYPE_CHECKING

from rigd_tbot.cli import add_home_argument, bot_home, cli_actor
from tbot_bot.optimizer.evidence import DSR_THRESHOLD, MAX_AUTO_FOLDS, sig4, verdict_lines
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import counted, iso_date

if TYPE_CHECKING:
    from tbot_bot.optimizer.runner import RunResult


def folds_arg(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number of folds (1 or more) or 'auto'")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from tbot_bot.backtest.backtest_engine import SEED_MAX, seed_value

    p = sub.add_parser("optimize", help="tune strategy settings (Optuna, walk-forward); approve proposals")
    osub = p.add_subparsers(dest="optimize_command", metavar="ACTION")
    osub.required = True

    run = osub.add_parser(
        "run",
        help="run (or resume, or join as a worker) an optimisation and write a proposal",
        description="Running the same command again resumes the same study; with --storage postgresql://... "
        "every machine running it is a worker of one study. Defaults come from the home's OPTIMIZER_* keys.",
    )
    run.add_argument("--strategy", required=True, choices=("open", "mid", "close"), help="strategy to tune")
    run.add_argument(
        "--algorithm", choices=("grid_search", "bayesian", "genetic"), default=None,
        help="grid_search (GridSampler), bayesian (TPE) or genetic (NSGA-II, PnL vs drawdown); "
        "default OPTIMIZER_ALGORITHM",
    )  # fmt: skip
    run.add_argument("--start", type=iso_date, default=None, help="first date, YYYY-MM-DD "
                     "(default: OPTIMIZER_BACKTEST_LOOKBACK_DAYS sessions before --end)")  # fmt: skip
    run.add_argument("--end", type=iso_date, default=None, help="last date (default: the data's last)")
    run.add_argument("--data-source", "--data_source", dest="data_source", default=None,
                     help="CSV/Parquet file, folder of 1-minute bars or bar store (tbot data import) "
                     "(default: the home's bars cache data/cache/bars)")  # fmt: skip
    run.add_argument("--space", default=None, help="TOML search space replacing the strategy's default")
    run.add_argument("--trials", type=int, default=None,
                     help="trials per fold across all workers (default: the whole grid; 50 for bayesian/genetic)")  # fmt: skip
    run.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    run.add_argument("--objective", choices=("sharpe", "pnl", "calmar"), default="sharpe",
                     help="what to maximise in-sample (default sharpe; genetic uses PnL vs drawdown)")  # fmt: skip
    run.add_argument(
        "--walk-forward", type=folds_arg, default=None, metavar="K|auto",
        help=f"walk-forward folds K (default auto: as many as the data allow, up to {MAX_AUTO_FOLDS}, each "
        "block holding the sessions the objective needs)",
    )  # fmt: skip
    run.add_argument(
        "--min-dsr", type=float, default=DSR_THRESHOLD, metavar="P",
        help=f"deflated Sharpe probability a recommendation needs (default {DSR_THRESHOLD})",
    )  # fmt: skip
    run.add_argument("--storage", default=None,
                     help="Optuna storage URL: sqlite:///PATH (default: study.db in the run folder) or "
                     "postgresql://user@host:port/db to share one study between machines")  # fmt: skip
    run.add_argument("--study", default=None, help="study name = run id (default: derived from the command)")
    run.add_argument(
        "--out", default=None, help="results folder (default: OPTIMIZER_OUTPUT_DIR under the home)"
    )
    run.add_argument(
        "--env-file", default=None, help="plaintext .env_bot to tune (default: the home's config)"
    )
    run.add_argument(
        "--float", dest="float_", default=None,
        help="broker_current_float (default: the home's float, as `tbot backtest`)",
    )  # fmt: skip
    run.add_argument(
        "--seed",
        type=seed_value,
        default=0,
        help=f"seed of the samplers and the slippage model, 0..{SEED_MAX}",
    )
    run.add_argument(
        "--stale-after", type=int, default=300, metavar="SECONDS",
        help="re-queue a trial left RUNNING this long by a killed worker (default 300; must exceed the longest trial)",
    )  # fmt: skip
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_home_argument(run)
    run.set_defaults(func=run_run)

    ls = osub.add_parser("list", help="list proposals (newest first)")
    add_home_argument(ls)
    ls.set_defaults(func=run_list)

    show = osub.add_parser("show", help="show one proposal: changes and out-of-sample evidence")
    show.add_argument("run_id", metavar="RUN_ID", help="the optimizer run to show (see `tbot optimize list`)")
    show.add_argument("--json", action="store_true", help="print the proposal as JSON")
    add_home_argument(show)
    show.set_defaults(func=run_show)

    ap = osub.add_parser(
        "approve", help="apply a proposal to the live config (validated, encrypted, versioned, audited)"
    )
    ap.add_argument("run_id", metavar="RUN_ID", help="the optimizer run whose proposal is approved")
    ap.add_argument("--trial", type=int, default=None, help="apply trial N of the run's last fold instead")
    ap.add_argument(
        "--force", action="store_true", help="apply even if the live values changed since the run"
    )
    add_home_argument(ap)
    ap.set_defaults(func=run_approve)

    rj = osub.add_parser("reject", help="reject a proposal (recorded with who/when/why)")
    rj.add_argument("run_id", metavar="RUN_ID", help="the optimizer run whose proposal is rejected")
    rj.add_argument("--reason", default="", help="why (kept in the audit log)")
    add_home_argument(rj)
    rj.set_defaults(func=run_reject)


def actor() -> str:
    return cli_actor()


def run_run(args: argparse.Namespace) -> int:
    from tbot_bot.backtest.backtest_engine import load_settings_for
    from tbot_bot.optimizer.defaults import request_from_args

    home = BotHome.resolve(args.home)
    settings = load_settings_for(args, home)
    req = request_from_args(args, home, settings)
    from tbot_bot.optimizer.runner import finish_charts, run_optimizer

    try:
        # the summary is printed while the worker draws the charts; the command returns once they are written
        result = run_optimizer(home, settings, req, wait_for_charts=False)
        try:
            _print_results(result)
        finally:  # whatever stopped the printing, the charts and report.html are waited for
            result = finish_charts(result)
    except KeyboardInterrupt:
        print("interrupted: the study is kept; run the same command to resume it", flush=True)
        return 130
    for note in result.notes:
        print(f"note: {note}")
    print(f"results: {result.out_dir}")
    if result.proposal and result.summary["verdict"]["recommend"]:
        print(f"proposal: {result.proposal} (nothing changes until `tbot optimize approve {result.run_id}`)")
    elif result.proposal:
        print(f"record: {result.proposal} (no improvement to approve; `tbot optimize show {result.run_id}`)")
    return 0


def _print_results(result: RunResult) -> None:
    s = result.summary
    print(f"run {result.run_id}: {counted(s['trials_total'], 'trial')} in {counted(len(s['folds']), 'fold')} "
          f"({result.evaluated_here} evaluated by this worker), float {Decimal(s['float']):,.2f}")  # fmt: skip
    print(f"fees: {s['fee_profile']}")
    for f in s["folds"]:
        print(f"  fold {f['fold']}: IS {f['is_start']}..{f['is_end']} objective {sig4(f['is_objective'])} | "
              f"OOS {f['oos_start']}..{f['oos_end']} objective {sig4(f['oos_objective'])} | {f['params']}")  # fmt: skip
    for line in verdict_lines(s["verdict"]):
        print(line)


def run_list(args: argparse.Namespace) -> int:
    from tbot_bot.optimizer.proposals import changed, list_proposals

    items = list_proposals(bot_home(args.home))
    if not items:
        print("no proposals")
        return 0
    for p in items:
        ev = p["evidence"]
        d = p.get("decision") or {}
        # a trial approved by number: what was applied, not the candidate's changes
        changes = (
            f"trial {d['trial']} applied: "
            + ", ".join(f"{a['key']} {a['old']}->{a['new']}" for a in d.get("applied") or [])
            if d.get("trial") is not None
            else ", ".join(f"{c['key']} {c['old']}->{c['new']}" for c in changed(p))
        )
        print(f"{p['run_id']}  {p['status']:<12}  {p['created_at'][:19]}Z  OOS {sig4(ev.get('oos_objective'))} "
              f"(current {sig4(ev.get('oos_current_objective'))})  {changes or 'no change'}")  # fmt: skip
    return 0


def run_show(args: argparse.Namespace) -> int:
    from tbot_bot.optimizer.proposals import KEEP_CURRENT, load_proposal

    p = load_proposal(bot_home(args.home), args.run_id)
    if args.json:
        print(json.dumps(p, indent=2, sort_keys=True))
        return 0
    ev = p["evidence"]
    kind = "run" if p["status"] == KEEP_CURRENT else "proposal"  # a kept run filed no proposal to approve
    print(f"{kind} {p['run_id']} ({p['status']}), strategy {p['strategy']}, {p['algorithm']}, "
          f"objective {p['objective']}, created {p['created_at']}")  # fmt: skip
    for line in verdict_lines(p.get("verdict")):
        print(line)
    print("candidate's keys:" if p.get("verdict") and not p["verdict"].get("recommend") else "changes:")
    for c in p["changes"]:
        print(f"  {c['key']}: {c['old']} -> {c['new']}{'' if c['old'] != c['new'] else ' (unchanged)'}")
    for w in p.get("warnings") or []:
        print(f"warning: {w}")
    print(f"out-of-sample mean objective: candidate {sig4(ev.get('oos_objective'))} vs current "
          f"{sig4(ev.get('oos_current_objective'))}; walk-forward efficiency "
          f"{sig4(ev.get('walk_forward_efficiency'))}; deflated Sharpe {sig4(ev.get('deflated_sharpe'))}")  # fmt: skip
    for f in ev.get("folds") or []:
        outcome = {True: "won", False: "lost"}.get(f.get("won"), "n/a")
        print(f"  fold {f['fold']} OOS {f['oos_start']}..{f['oos_end']}: candidate {sig4(f.get('candidate'))} "
              f"vs current {sig4(f.get('current'))} ({outcome})")  # fmt: skip
    print(f"float: {ev.get('float') or 'not recorded'} (the study's; approve refuses another home float)")
    if p.get("decision"):
        d = p["decision"]
        print(f"decision: {d['action']} by {d['actor']} at {d['at']}")
        if d.get("trial") is not None:
            # what was applied, when it is not the candidate the evidence above is for
            applied = (
                ", ".join(f"{a['key']} {a['old']} -> {a['new']}" for a in d.get("applied") or []) or "nothing"
            )
            print(
                f"  applied trial {d['trial']} (not the candidate above, whose evidence this is): {applied}"
            )
    print(f"results: {p['results_dir']}")
    return 0


def run_approve(args: argparse.Namespace) -> int:
    from tbot_bot.accounting.float_ledger import float_to_compare
    from tbot_bot.optimizer.proposals import approve

    home = bot_home(args.home)
    changes = approve(
        home,
        args.run_id,
        actor=actor(),
        trial=args.trial,
        force=args.force,
        home_float=float_to_compare(home),
    )
    if args.trial is not None:
        print(
            f"warning: trial {args.trial} is applied as asked; the proposal's evidence (out-of-sample wins, deflated "
            "Sharpe) is for its candidate, not for this trial (`tbot optimize show` names what was applied)"
        )
    if not changes:
        print(f"approved {args.run_id}: the live config already had these values")
    for c in changes:
        print(f"  {c.key}: {c.old} -> {c.new}")
    print(
        f"approved {args.run_id} (validated, re-encrypted; the previous config is kept in env_bot.versioned/)"
    )
    return 0


def run_reject(args: argparse.Namespace) -> int:
    from tbot_bot.optimizer.proposals import reject

    reject(bot_home(args.home), args.run_id, actor=actor(), reason=args.reason)
    print(f"rejected {args.run_id}")
    return 0
