"""Optimizer throughput on seeded synthetic bars (100 symbols x 30 sessions, like bench_backtest.py).

Per strategy: the one-off preparation per worker, the time of ONE trial (signals, fills, sizing, metrics over
all 30 sessions) through the optimizer's path, the same trial through the backtest's path (simulate() +
execute_day + performance_metrics) for comparison, and trials/s with 1 and 2 worker processes: evaluation
alone (each worker evaluating its share), and whole grid-search studies (each trial = IS + OOS metrics, Optuna
and the SQLite storage included) over the whole command and over the trial loop alone, and their ratio: cold
(the preparation built and cached) and warm (the same study again, its preparation read from the cache). "Whole"
runs from the call until the results are on disk (trials.csv, folds.csv, best.json: what `tbot optimize run`
prints); the worker forked at the start then finishes the charts and report.html while the command prints, and
that wait is timed apart ("charts") and shown in a second ratio that includes it. The studies read their bars
from a bar store (`tbot data import` of the synthetic files), as the README's research section keeps data.
Each study runs twice: over the strategy's default grid (a few dozen points) and over a larger grid (LARGE_SPACES,
324 points, `--space`), since a study's fixed costs (preparation, storage, choosing, report) weigh on a short
study and fade over a long one; `--no-large` skips the larger grid.

`--thousands` measures instead what a trial costs beyond its evaluation as a study grows to thousands of
trials (Optuna, the storage, claiming and recording): OPEN over 60 symbols x 41 sessions, 1 job, grid studies of
300, 1,000 and 3,000 points and Bayesian (TPE) studies of 300 and 1,000 trials; per study the whole command, the
trial loop (Optuna's timestamps), the evaluations (timed in-process) and (loop - evaluations) / trials.

Run: .venv/bin/python benchmarks/bench_optimizer.py [--json] [--trials N] [--no-large] [--thousands]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import passing_fundamentals, synthetic  # noqa: E402
from helpers import make_settings  # noqa: E402

from tbot_bot.backtest import performance_metrics  # noqa: E402
from tbot_bot.backtest.execution import execute_day  # noqa: E402
from tbot_bot.backtest.slippage import SlippageModel  # noqa: E402
from tbot_bot.data.bar_import import import_bars  # noqa: E402
from tbot_bot.optimizer import runner  # noqa: E402
from tbot_bot.optimizer.prepared import PreparedData  # noqa: E402
from tbot_bot.optimizer.runner import RunRequest, finish_charts, prepared_cache_dir, run_optimizer  # noqa: E402
from tbot_bot.optimizer.space import default_space  # noqa: E402
from tbot_bot.support.path_resolver import BotHome  # noqa: E402

STRATEGIES = ("open", "mid", "close")
START, END = date(2011, 1, 3), date(2011, 2, 15)
TARGET_RATIO = 0.8
# the larger grids: each strategy's default keys, denser (324 points each)
LARGE_SPACES = {
    "open": """
[STRAT_OPEN_BUFFER]
low = 0.001
high = 0.012
step = 0.001

[OPEN_TRAILING_STOP_PCT]
values = [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03]

[OPEN_MONITORING_TIME]
values = [15, 20, 30]
""",
    "mid": """
[STRAT_MID_VWAP_THRESHOLD]
low = 0.001
high = 0.009
step = 0.001

[MID_STOP_LOSS_PCT]
values = [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.0225, 0.025, 0.0275, 0.03, 0.035]

[MID_MONITORING_TIME]
values = [15, 30, 45]
""",
    "close": """
[STRAT_CLOSE_MOMENTUM_PCT]
values = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]

[STRAT_CLOSE_SPIKE_PCT]
values = [0.002, 0.004, 0.006, 0.008, 0.01, 0.012]

[CLOSE_STOP_LOSS_PCT]
values = [0.005, 0.01, 0.02]

[CLOSE_MONITORING_TIME]
values = [10, 25, 40]
""",
}


def grid_points(strategy: str) -> list[dict[str, object]]:
    space = default_space(strategy)
    return [
        dict(zip(space.keys, p, strict=True)) for p in itertools.product(*(x.values for x in space.params))
    ]


def backtest_path_trial(prep: PreparedData, params: dict[str, object]) -> float:
    """The pre-optimizer path: simulate() over the grid, execute_day per session, performance_metrics."""
    settings = prep.settings_for(params)
    p = prep.module.params_from_settings(settings)
    signals = prep.module.simulate(prep.grid, p, vix=prep.vix)
    slip = SlippageModel.from_settings(settings)
    fills = []
    for day, g in signals.groupby("session"):
        if day in prep.days:
            fills += execute_day(g, prep.strategy, settings, prep.capabilities, prep.market, prep.fundamentals,
                                 prep.float_, slip)[0]  # fmt: skip
    frame = pd.DataFrame(
        {"entry_time": pd.to_datetime([f["entry_time"] for f in fills], utc=True),
         "exit_time": pd.to_datetime([f["exit_time"] for f in fills], utc=True),
         "pnl": [float(f["net_PnL"]) for f in fills], "session": [date.fromisoformat(f["session"]) for f in fills]}
    )  # fmt: skip
    return performance_metrics.compute(frame, float(prep.float_), prep.days).total_pnl


def _evaluate_share(args: tuple[str, str, list[dict[str, object]]]) -> float:
    strategy, data, points = args
    prep = PreparedData(make_settings(), strategy, data, START, END)
    t0 = time.perf_counter()
    for p in points:
        prep.evaluate(p)
    return time.perf_counter() - t0


def evaluation_rate(strategy: str, data: str, points: list[dict[str, object]], workers: int) -> float:
    """trials/s of `workers` processes evaluating a share of `points` each (preparation excluded)."""
    shares = [(strategy, data, points[i::workers]) for i in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        times = pool.map(_evaluate_share, shares)
    return len(points) / max(times)


def study_rate(
    strategy: str, data: Path, end: date, jobs: int, out: Path, home: Path, space: Path | None = None
) -> tuple[float, float, str, int, float]:
    """A whole grid-search study (1 fold) with `jobs` local workers: trials/s over the whole command
    (preparation, storage set-up, choosing and the report with its charts included) and over the trial loop
    alone (first trial start to last trial end, from Optuna's own timestamps). One fold needs two blocks of 20
    sessions (issue 21). `home` holds the preparation cache (data/cache/prepared): the caller empties it for a
    cold run. `space`: a --space file (default: the strategy's default grid). Returns the two rates, whether the
    preparation came from the cache, the number of trials, and the seconds spent waiting for the charts after
    the results."""
    req = RunRequest(strategy, "grid_search", START, end, data, walk_forward=1, jobs=jobs, out=out,
                     progress=False, propose=False, study="bench", float_=Decimal("100000"), space_file=space)  # fmt: skip
    statuses: list[str] = []
    real_prepare = runner._prepare

    def recording(*args: object) -> PreparedData:
        prep = real_prepare(*args)  # type: ignore[arg-type]
        statuses.append(prep.cache_status)
        return prep

    runner._prepare = recording  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        result = run_optimizer(BotHome(home), make_settings(), req, wait_for_charts=False)
        wall = time.perf_counter() - t0
        finish_charts(result)
        charts = time.perf_counter() - t0 - wall
    finally:
        runner._prepare = real_prepare  # type: ignore[assignment]
    span, _ = trial_loop(out / "bench" / "study.db", "bench.fold1")
    n = int(result.summary["trials_total"])
    return n / wall, n / span, statuses[0], n, charts


def trial_loop(db: Path, study: str) -> tuple[float, int]:
    """Seconds from the first trial's start to the last one's end of a study in a SQLite file (Optuna's own
    timestamps), and its number of trials."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    finally:
        storage.engine.dispose()
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return span.total_seconds(), len(trials)


THOUSANDS = (
    ("grid_search", 300),
    ("grid_search", 1000),
    ("grid_search", 3000),
    ("bayesian", 300),
    ("bayesian", 1000),
)


def bars_folder(folder: Path, symbols: int, sessions: int) -> list[date]:
    """A data folder of seeded synthetic bars (Parquet) with a flat VIX of 25 and passing fundamentals; its days."""
    folder.mkdir()
    frame = synthetic(symbols, sessions)
    frame.to_parquet(folder / "bars.parquet")
    days = sorted(frame["timestamp"].dt.date.unique())
    (folder / "vix.csv").write_text("date,close\n" + "".join(f"{d},25\n" for d in days))
    passing_fundamentals(folder, frame)
    return days


def thousands(tmp: Path) -> list[dict[str, object]]:
    """Per study of THOUSANDS: trials, whole s, loop s, evaluation s, overhead ms per trial beyond its evaluation."""

    data = tmp / "bars_thousands"
    # 60 symbols: enough trades for the evidence floor, evaluations of ~25 ms
    days = bars_folder(data, 60, 41)
    store = tmp / "store_thousands"
    import_bars(data, store)
    spent = [0.0]
    real = PreparedData.evaluate_spans

    def timed_spans(self: PreparedData, *args: object, **kwargs: object) -> object:
        t = time.perf_counter()
        try:
            return real(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent[0] += time.perf_counter() - t

    PreparedData.evaluate_spans = timed_spans  # type: ignore[assignment,method-assign]
    rows: list[dict[str, object]] = []
    try:
        for algorithm, n in THOUSANDS:
            # n points: STRAT_OPEN_BUFFER in steps of 0.00001 x ten trailing stops (Bayesian samples from it)
            space = tmp / f"space_{n}.toml"
            space.write_text(
                f"[STRAT_OPEN_BUFFER]\nlow = 0.0001\nhigh = {0.0001 + (n // 10 - 1) * 0.00001:.5f}\nstep = 0.00001\n\n"
                "[OPEN_TRAILING_STOP_PCT]\nvalues = [0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, "
                "0.035]\n",
                encoding="utf-8",
            )
            out = tmp / f"thousands_{algorithm}_{n}"
            req = RunRequest("open", algorithm, START, days[-1], store, walk_forward=1, jobs=1, out=out, trials=n,
                             progress=False, propose=False, study="t", float_=Decimal("100000"), space_file=space)  # fmt: skip
            spent[0] = 0.0
            t0 = time.perf_counter()
            run_optimizer(BotHome(tmp / "home_thousands"), make_settings(), req)
            whole = time.perf_counter() - t0
            loop, trials = trial_loop(out / "t" / "study.db", "t.fold1")
            rows.append({
                "algorithm": algorithm, "trials": trials, "whole_s": round(whole, 2), "loop_s": round(loop, 2),
                "evaluation_s": round(spent[0], 2),
                "overhead_ms_per_trial": round(1000 * (loop - spent[0]) / trials, 2),
                "evaluation_ms_per_trial": round(1000 * spent[0] / trials, 2),
                "ratio_whole_over_loop": round(loop / whole, 2),
            })  # fmt: skip
    finally:
        PreparedData.evaluate_spans = real  # type: ignore[method-assign]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trials", type=int, default=36, help="trials timed per strategy (default 36)")
    parser.add_argument("--no-large", action="store_true", help="skip the studies over the larger grids")
    parser.add_argument(
        "--thousands", action="store_true", help="only the overhead per trial as studies grow to 3,000 trials"
    )
    args = parser.parse_args()
    if args.thousands:
        with tempfile.TemporaryDirectory() as tmp:
            rows = thousands(Path(tmp))
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print("what a trial costs beyond its evaluation, OPEN, 60 symbols x 41 sessions, 1 job:")
        for r in rows:
            print(
                f"  {r['algorithm']:>11} {r['trials']:>5} trials: whole {r['whole_s']} s, loop {r['loop_s']} s, "
                f"evaluations {r['evaluation_s']} s ({r['evaluation_ms_per_trial']} ms each); overhead "
                f"{r['overhead_ms_per_trial']} ms per trial; whole-study trials/s over the loop's "
                f"{r['ratio_whole_over_loop']}"
            )
        return 0
    report: dict[str, object] = {"data": "synthetic 100 symbols x 30 sessions", "target_ms_per_trial": 65}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bars"
        bars_folder(folder, 100, 30)
        # the whole-command study: 41 sessions (the first warms up), the least one walk-forward fold accepts
        study_data = Path(tmp) / "bars_study"
        study_days = bars_folder(study_data, 100, 41)
        # the studies read it as a researcher keeps data: imported into a bar store (`tbot data import`)
        study_store = Path(tmp) / "store_study"
        import_bars(study_data, study_store)
        for strategy in STRATEGIES:
            t0 = time.perf_counter()
            prep = PreparedData(make_settings(), strategy, folder, START, END)
            prep_s = time.perf_counter() - t0
            points = (grid_points(strategy) * 3)[: args.trials]
            prep.evaluate(points[0])  # first use computes the session indicators once
            per_trial = []
            trades = 0
            for p in points:
                t = time.perf_counter()
                m = prep.evaluate(p)
                per_trial.append(time.perf_counter() - t)
                trades += m.trades
            old = []
            for p in points[:3]:
                t = time.perf_counter()
                backtest_path_trial(prep, p)
                old.append(time.perf_counter() - t)
            report[strategy] = {
                "sessions": len(prep.days),
                "prepare_s": round(prep_s, 2),
                "trial_ms_median": round(1000 * statistics.median(per_trial), 1),
                "trial_ms_p90": round(1000 * sorted(per_trial)[int(0.9 * len(per_trial)) - 1], 1),
                "avg_trades_per_trial": round(trades / len(points), 1),
                "backtest_path_trial_ms_median": round(1000 * statistics.median(old), 1),
                "eval_trials_per_s_1_worker": round(evaluation_rate(strategy, str(folder), points, 1), 1),
                "eval_trials_per_s_2_workers": round(evaluation_rate(strategy, str(folder), points, 2), 1),
            }
            home = Path(tmp) / "home"
            sizes: list[tuple[str, Path | None]] = [("study", None)]
            if not args.no_large:
                large = Path(tmp) / f"large_{strategy}.toml"
                large.write_text(LARGE_SPACES[strategy], encoding="utf-8")
                sizes.append(("large_study", large))
            for size, space in sizes:
                for jobs in (1, 2):
                    # cold: the preparation built (and cached); warm: the same study again, read from the cache
                    for run in ("cold", "warm"):
                        if run == "cold":
                            shutil.rmtree(prepared_cache_dir(BotHome(home)), ignore_errors=True)
                        whole, loop, cache, n, charts = study_rate(
                            strategy,
                            study_store,
                            study_days[-1],
                            jobs,
                            Path(tmp) / f"{size}{jobs}{run}{strategy}",
                            home,
                            space,
                        )
                        row = report[strategy]
                        assert isinstance(row, dict)
                        row[f"{size}_{jobs}_jobs_{run}"] = {
                            "trials": n, "preparation": cache, "whole_command_trials_per_s": round(whole, 2),
                            "trial_loop_trials_per_s": round(loop, 2), "ratio_whole_over_loop": round(whole / loop, 2),
                            "charts_after_results_s": round(charts, 3),
                            "ratio_with_charts": round(n / (n / whole + charts) / loop, 2),
                        }  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        print(f"{key}: {json.dumps(value)}")
    print(f"whole-study trials/s vs its trial loop's (target ratio >= {TARGET_RATIO}):")
    verdicts = []
    for size, label in (("study", "default grid"), ("large_study", "larger grid")):
        rows = [
            (strategy, jobs, run, row[key])
            for strategy in STRATEGIES
            if isinstance(row := report[strategy], dict)
            for jobs in (1, 2)
            for run in ("cold", "warm")
            if (key := f"{size}_{jobs}_jobs_{run}") in row
        ]
        for strategy, jobs, run, r in rows:
            print(
                f"  {label}, {strategy:>5} ({r['trials']} trials) {jobs} job(s), {run} ({r['preparation']}): "
                f"whole {r['whole_command_trials_per_s']} trials/s, loop {r['trial_loop_trials_per_s']} trials/s, "
                f"ratio {r['ratio_whole_over_loop']}; charts after the results {r['charts_after_results_s']} s, "
                f"ratio with them {r['ratio_with_charts']}"
            )
        if rows:
            for run in ("cold", "warm"):
                met = [r for _, _, ru, r in rows if ru == run and r["ratio_whole_over_loop"] >= TARGET_RATIO]
                total = sum(1 for _, _, ru, _ in rows if ru == run)
                verdicts.append(
                    f"  {label}, {run} preparation: {len(met)} of {total} studies reach {TARGET_RATIO}"
                )
    print("target met:")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
