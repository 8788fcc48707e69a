"""One `tbot optimize run`: load the data once per worker, run (or join) the fold studies, then collect every
worker's trials, choose on out-of-sample evidence, write the outputs and the proposal.

The run id is derived from the command (strategy, algorithm, dates, folds, objective, space, data, trials,
seed), so running the same command again resumes the same studies in the same folder; `--study NAME` sets it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from tbot_bot.backtest.backtest_engine import backtest_float, simulation_notes
from tbot_bot.backtest.chart_worker import ChartWorker
from tbot_bot.config.env_bot import trading_values
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.errors import ConfigError, TbotError
from tbot_bot.optimizer import prep_cache
from tbot_bot.optimizer import results as results_mod
from tbot_bot.optimizer.evidence import DSR_THRESHOLD, auto_folds, require_sessions, require_trades
from tbot_bot.optimizer.metrics import OBJECTIVES
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.optimizer.proposals import (
    AlreadyDecided,
    base_differences,
    base_digests,
    write_proposal,
)
from tbot_bot.optimizer.report import chart_worker, finish_outputs, submit_outputs
from tbot_bot.optimizer.space import SearchSpace, fit_to_windows, load_space
from tbot_bot.optimizer.study import (
    ALGORITHMS,
    StudyConfig,
    StudyRefused,
    close_storage,
    make_storage,
    open_study,
    redact,
    run_fold,
)
from tbot_bot.optimizer.walk_forward import make_folds
from tbot_bot.strategy.strategy_router import strategy_module
from tbot_bot.support.child_process import end_with_parent
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import decimal_key
from tbot_bot.trading.fees import describe_profile

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings


@dataclass(frozen=True, slots=True)
class RunRequest:
    strategy: str
    algorithm: str
    start: date
    end: date
    data_source: Path
    objective: str = "sharpe"
    walk_forward: int | None = 3  # None: as many folds as the data allow (evidence.auto_folds)
    trials: int | None = None
    jobs: int = 1
    space_file: Path | None = None
    storage: str | None = None
    study: str | None = None
    out: Path | None = None
    seed: int = 0
    float_: Decimal | None = None  # None: the home's float, as `tbot backtest` (backtest_float)
    min_dsr: float = DSR_THRESHOLD  # deflated Sharpe probability a recommendation needs
    progress: bool = True
    propose: bool = True
    vix_path: Path | None = None  # default: vix.csv beside the bars
    stale_after_s: int = 300  # re-queue a trial left RUNNING this long by a killed worker


@dataclass(slots=True)
class RunResult:
    run_id: str
    out_dir: Path
    summary: dict[str, Any]
    files: dict[str, Path]
    proposal: Path | None
    evaluated_here: int
    notes: list[str] = field(default_factory=list)
    # the worker still drawing the charts and report.html (run_optimizer(wait_for_charts=False)): finish_charts
    charts: ChartWorker | None = None


def validate(req: RunRequest) -> None:
    problems = []
    if req.strategy not in ("open", "mid", "close"):
        problems.append(f"--strategy {req.strategy!r}: allowed open, mid, close")
    if req.algorithm not in ALGORITHMS:
        problems.append(f"--algorithm {req.algorithm!r}: allowed {', '.join(ALGORITHMS)}")
    if req.objective not in OBJECTIVES:
        problems.append(f"--objective {req.objective!r}: allowed {', '.join(OBJECTIVES)}")
    if req.end < req.start:
        problems.append(f"--end {req.end} is before --start {req.start}")
    if req.trials is not None and req.trials < 1:
        problems.append(f"--trials must be at least 1 (found {req.trials})")
    if not 0 < req.min_dsr < 1:
        problems.append(f"--min-dsr must be above 0 and below 1 (found {req.min_dsr})")
    if req.walk_forward is not None and req.walk_forward < 1:
        problems.append(f"--walk-forward must be at least 1 (found {req.walk_forward})")
    if req.stale_after_s < 1:
        problems.append(f"--stale-after must be at least 1 second (found {req.stale_after_s})")
    if not 1 <= req.jobs <= 64:
        problems.append(f"--jobs must be 1..64 (found {req.jobs})")
    if req.study is not None and not req.study.replace("-", "").replace("_", "").replace(".", "").isalnum():
        problems.append(f"--study {req.study!r}: use letters, digits, '-', '_' and '.' only")
    if req.storage is not None and not req.storage.startswith(("sqlite:///", "postgresql://", "postgresql+")):
        problems.append(
            f"--storage {redact(req.storage)}: use sqlite:///PATH or postgresql://user@host:port/db"
        )
    if problems:
        raise ConfigError(problems, source="tbot optimize run")


def evidence_fingerprint(
    req: RunRequest, settings: BotSettings, prep: PreparedData, space: SearchSpace
) -> str:
    """What a study's trials are evidence of: every trading setting of the base configuration (not the
    OPERATIONS_KEYS: logging, alerts, the dashboard; two machines may differ there), the bars and side inputs
    (their checksums: prep.data_key), the range, the space, the float and the seed. Two runs with the same
    fingerprint may share trials; any difference makes them different studies."""
    ident = json.dumps(
        [trading_values(settings), prep.data_key, space.describe(), req.strategy, req.algorithm,
         req.objective, req.start.isoformat(), req.end.isoformat(), req.walk_forward, req.trials, req.seed,
         decimal_key(req.float_) if req.float_ is not None else None],
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(ident.encode()).hexdigest()


def other_windows(settings: BotSettings, strategy: str, params: dict[str, Any]) -> list[str]:
    """What approving `params` would change beyond the tuned window: each key that changes another enabled
    window's parameters (found by computing them, so no list to keep up: STRAT_OPEN_BUFFER is CLOSE's
    continuation buffer too). The study has no evidence for those windows."""
    warnings = []
    for key, value in params.items():
        changed = settings.model_copy(update={key: value})
        hit = [
            name
            for name in ("open", "mid", "close")
            if name != strategy
            and settings.strategy_enabled(name)
            and strategy_module(name).params_from_settings(settings)
            != strategy_module(name).params_from_settings(changed)
        ]
        if hit:
            warnings.append(
                f"{key} is read by the {' and '.join(w.upper() for w in hit)} window too: approving this "
                f"proposal changes {'its' if len(hit) == 1 else 'their'} trading as well, and this "
                f"{strategy.upper()} study has no evidence for {'it' if len(hit) == 1 else 'them'} "
                f"(`tbot backtest --strategy all` shows the whole day)"
            )
    return warnings


def run_id_for(req: RunRequest, fingerprint: str) -> str:
    """--study, else a name from the command and its fingerprint: the same command on the same settings and
    data resumes its study; a changed setting or bar makes a new one (never old trials as new evidence)."""
    if req.study:
        return req.study
    return (
        f"{req.strategy}_{req.algorithm}_{req.start:%Y%m%d}_{req.end:%Y%m%d}_wf{req.walk_forward}_"
        f"{req.objective}_{fingerprint[:8]}"
    )


def _prepare(req: RunRequest, settings: BotSettings, home: BotHome) -> PreparedData:
    assert req.float_ is not None  # resolved by run_optimizer
    # built once per data range and settings, then read back by every later run over the same data
    return PreparedData(
        settings, req.strategy, req.data_source, req.start, req.end, broker_current_float=req.float_,
        seed=req.seed, vix_path=req.vix_path, cache_dir=prepared_cache_dir(home),
    )  # fmt: skip


def prepared_cache_dir(home: BotHome) -> Path:
    """Cached study preparations (optimizer/prep_cache.py); safe to delete, rebuilt on the next run."""
    return home.cache_dir / "prepared"


def _evidence_floor(req: RunRequest, prep: PreparedData) -> RunRequest:
    """Refuse data too thin for the claims a run makes (exit 2 with the minimum); resolve automatic folds."""
    folds = req.walk_forward or auto_folds(len(prep.days), req.objective)
    require_sessions(len(prep.days), folds, req.objective)
    require_trades(prep.baseline_trades(), prep.days[0].isoformat(), prep.days[-1].isoformat())
    return replace(req, walk_forward=folds)


def _work(cfg: StudyConfig, req: RunRequest, prep: PreparedData, position: int, storage: Any) -> int:
    """One worker: take trials fold after fold until none is left (the data was prepared once, before)."""
    assert req.walk_forward is not None  # resolved by run_optimizer
    folds = make_folds(prep.days, req.walk_forward)
    total = cfg.trials_per_fold() * len(folds)
    done = 0
    with tqdm(
        total=total, desc=f"{cfg.strategy} {cfg.algorithm} worker {position}", unit="trial", file=sys.stderr,
        disable=not req.progress, position=position, leave=position == 0, delay=1,
    ) as bar:  # fmt: skip
        for fold in folds:
            done += run_fold(cfg, prep, fold, storage, bar, workers=req.jobs)
    return done


def _child(
    cfg: StudyConfig, req: RunRequest, prep: PreparedData, position: int, storage: Any, parent_pid: int = 0
) -> None:
    """A forked worker: the parent's storage object (its engine disposed before the fork, so this process
    opens its own connections), not a second one: opening a storage costs Optuna's schema check again. It ends
    with the command: a killed `tbot optimize run` left it evaluating the rest of the grid for nobody (its trial
    then waits --stale-after to be queued again, as a killed worker's does)."""
    if parent_pid:
        end_with_parent(parent_pid)
    prep_cache.populate_after_fork(prep.grid.close)  # a cached preparation's pages, mapped at once
    try:
        _work(cfg, req, prep, position, storage)
    except KeyboardInterrupt:
        sys.exit(130)
    except StudyRefused:
        sys.exit(2)  # the command meets the same refusal and reports it
    except TbotError as exc:
        print(f"optimizer worker {position}: {exc}", file=sys.stderr)  # named, not a traceback
        sys.exit(1)
    finally:
        close_storage(storage)


def run_optimizer(
    home: BotHome, settings: BotSettings, req: RunRequest, *, wait_for_charts: bool = True
) -> RunResult:
    """One run: prepare, study, choose, write. On return the charts and report.html are written too; with
    `wait_for_charts=False` the numbers are on disk and the worker still draws: the caller prints, then calls
    finish_charts (`tbot optimize run` does)."""
    validate(req)
    # values the configuration's windows cannot run are left out (noted) before anything is prepared
    space, left_out = fit_to_windows(load_space(req.strategy, req.space_file), settings)
    # forked first: the worker imports matplotlib while this process prepares and runs the study
    charts = chart_worker()
    try:
        result = _run(home, settings, req, space, charts)
        result = replace(result, notes=[*left_out, *result.notes])
    except BaseException:
        charts.cancel()  # an error before the charts' job: the worker exits without drawing
        raise
    return finish_charts(result) if wait_for_charts else result


def finish_charts(result: RunResult) -> RunResult:
    """Wait for the charts and report.html, and for the preparation's cache file (written in the background
    while the study ran); a drawing failure becomes a note (report.html says it too)."""
    prep_cache.wait_for_writes()
    if result.charts is None:
        return result
    drawn, missing = finish_outputs(result.out_dir, result.summary, result.charts)
    notes = [*result.notes, missing] if missing else result.notes
    return replace(result, files={**result.files, **drawn}, notes=notes, charts=None)


def _run(
    home: BotHome, settings: BotSettings, req: RunRequest, space: SearchSpace, charts: ChartWorker
) -> RunResult:
    if req.float_ is None:
        req = replace(req, float_=backtest_float(None, home))
    prep = _prepare(req, settings, home)  # once: forked workers inherit it
    req = _evidence_floor(req, prep)
    assert req.walk_forward is not None
    # OPTIMIZER_OUTPUT_DIR: where runs are written under the home unless --out says otherwise
    out_root = req.out or home.path(settings.OPTIMIZER_OUTPUT_DIR)
    fingerprint = evidence_fingerprint(req, settings, prep, space)
    run_id = run_id_for(req, fingerprint)
    out_dir = out_root / run_id
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    storage_url = req.storage or f"sqlite:///{out_dir / 'study.db'}"
    cfg = StudyConfig(
        run_id,
        req.strategy,
        req.algorithm,
        req.objective,
        space,
        req.trials,
        storage_url,
        req.seed,
        req.stale_after_s,
        fingerprint,
    )
    # tables created before any worker starts (a new SQLite file copied from an empty one kept in the cache)
    try:
        storage = make_storage(storage_url, req.stale_after_s, template_dir=home.cache_dir / "optuna")
    except ConfigError:
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a refused --storage leaves no empty run folder behind
        raise
    folds = make_folds(prep.days, req.walk_forward)
    try:
        children = []
        if req.jobs > 1:
            # every fold's study made (its grid queued) before the workers start: a worker that found its
            # creator still filling it polled, and joined a 2-job study a fifth of a second late
            for fold in folds:
                open_study(cfg, fold, storage)
            storage.engine.dispose()  # no pooled connection may cross a fork
            ctx = multiprocessing.get_context("fork")
            children = [
                ctx.Process(target=_child, args=(cfg, req, prep, i, storage, os.getpid()))
                for i in range(1, req.jobs)
            ]
            for c in children:
                c.start()
        try:
            evaluated = _work(cfg, req, prep, 0, storage)
        finally:
            for c in children:
                c.join()
        # a worker that stopped on its own error has said what it was; its trials were left to the others
        failed = [c.exitcode for c in children if c.exitcode not in (0, 130)]
        results = results_mod.collect(cfg, folds, storage)
    finally:
        close_storage(storage)
    notes = []
    if failed:
        notes.append(
            f"{len(failed)} of {req.jobs} workers stopped on an error (above); the others took their trials"
        )
    unfinished = len(results) < len(folds) or any(len(r.trials) < cfg.trials_per_fold() for r in results)
    if unfinished:
        # another worker may still run them, or a killed one left them RUNNING (re-queued after --stale-after):
        # a verdict on part of the study is no verdict, so no proposal or record is filed from it
        notes.append(
            "some trials are unfinished (still running in another worker, or left by a killed one and re-queued "
            f"after --stale-after {req.stale_after_s}s): outputs cover the trials finished so far, and no "
            "proposal is filed until they are; run the same command again to finish them"
        )
    baseline = settings.model_dump()
    summary = results_mod.summarise(cfg, prep, results, baseline, req.min_dsr)
    summary.update(
        start=req.start.isoformat(), end=req.end.isoformat(), data_source=str(req.data_source),
        storage=redact(storage_url), walk_forward=req.walk_forward, seed=req.seed, float=str(req.float_),
        fee_profile=describe_profile(settings),  # the fees every trial was charged (SIM_FEE_PROFILE)
    )  # fmt: skip
    # the numbers on disk first, then the charts and report.html from the worker (finish_charts)
    files = submit_outputs(
        out_dir, summary, results_mod.trial_rows(cfg, results), results, space.keys, charts
    )
    proposal = None
    # what the study could not simulate as the live bot trades (LongPut, a window that does not run, randomized
    # slippage): said with the results and carried into the proposal, as a backtest says it
    cannot = list(simulation_notes(settings, [req.strategy]))
    notes += cannot
    if req.propose and not unfinished and (home.env_bot_enc.exists() or home.env_bot_plain.exists()):
        also = other_windows(settings, req.strategy, (summary.get("pick") or {}).get("params") or {})
        try:
            proposal = write_proposal(home, summary, out_dir, settings, cannot + also)
        except AlreadyDecided as exc:
            notes.append(str(exc))
        if proposal is not None:
            notes += also
            other = base_differences(base_digests(settings), load_settings(home))
            if other:
                notes.append(
                    f"this study ran on other values than the live config's for {', '.join(other)} (--env-file): "
                    "`tbot optimize approve` refuses its proposal unless --force"
                )
    elif req.propose and not unfinished:
        notes.append(f"no configuration in {home.root}: no proposal written (results only)")
    return RunResult(run_id, out_dir, summary, files, proposal, evaluated, notes, charts)
