"""Optuna studies of one optimizer run: one study per walk-forward fold (`<run_id>.fold<k>`) in the run's
storage (SQLite file by default, PostgreSQL for many machines). Every process running the same command is a
worker of the same studies; the trials add up.

Grid search: the process that creates a fold's study (creation is atomic in the database) enqueues every
grid point once; workers then claim waiting trials with Optuna's own atomic WAITING -> RUNNING transition
(a row lock on PostgreSQL), so no grid point is evaluated twice whatever the number of workers. Bayesian
(TPE) and genetic (NSGA-II, two objectives: in-sample PnL up, in-sample max drawdown down) sample freely until
the fold's study holds `--trials` trials: each worker asks and tells on an in-memory copy of the fold's study
and writes its finished trials to the shared storage in batches (`_run_sampled`). The sampler only ever sees
in-sample values; out-of-sample metrics are stored on each trial as user attributes for the walk-forward report.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from tbot_bot.errors import ConfigError
from tbot_bot.optimizer.metrics import TrialMetrics
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.optimizer.space import Param, SearchSpace
from tbot_bot.optimizer.walk_forward import Fold
from tbot_bot.support.utils_bot import readonly_uri

ALGORITHMS = ("grid_search", "bayesian", "genetic")
GRID_READY_ATTR = "grid_enqueued"


class StudyRefused(ConfigError):
    """A study this run may not join (other settings, an older version, another objective count): every worker
    meets the same refusal, so the command reports it once."""


# the study's runner.evidence_fingerprint, set by the run that creates it and checked by every run that joins
FINGERPRINT_ATTR = "evidence_fingerprint"
_CLAIM_RETRIES = 50
_CLAIM_BATCH = 16  # waiting trials read per claim (another worker may win some of them)
# a sampled (TPE, NSGA-II) worker writes its finished trials, and reads the other workers', after this many trials
# or seconds, whichever comes first (sooner as the target nears)
_SYNC_TRIALS = 32
_SYNC_SECONDS = 2.0

log = logging.getLogger("tbot.optimizer")


@dataclass(frozen=True, slots=True)
class StudyConfig:
    run_id: str
    strategy: str
    algorithm: str
    objective: str
    space: SearchSpace
    trials: int | None  # per fold, across all workers; None = the whole grid (grid search only)
    storage: str
    seed: int = 0
    stale_after_s: int = 300  # a RUNNING trial whose worker has been silent this long is re-queued
    # runner.evidence_fingerprint: the settings, data and range the trials are evidence of
    fingerprint: str = ""

    def fold_study_name(self, fold: Fold) -> str:
        return f"{self.run_id}.fold{fold.index}"

    def trials_per_fold(self) -> int:
        if self.algorithm == "grid_search":
            return min(self.space.grid_size, self.trials or self.space.grid_size)
        return self.trials or 50


def make_storage(
    url: str, stale_after_s: int = 300, template_dir: Path | None = None
) -> optuna.storages.RDBStorage:
    """The study storage. A running trial's worker records its heartbeat every `stale_after_s / 5` seconds
    (`trial_heartbeat`); a trial whose heartbeat is `stale_after_s` old (its worker was killed) is failed and
    its parameters queued again. A slow trial of a live worker is never taken for a dead one. `template_dir`:
    where an empty SQLite study file of this Optuna's schema is kept, copied for each new study file (creating
    Optuna's tables costs more than a short study's storage does otherwise)."""
    from sqlalchemy import exc as sa_exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    heartbeat: dict[str, Any] = {
        "heartbeat_interval": max(1, stale_after_s // 5), "grace_period": stale_after_s,
        "heartbeat_stale_trial_callback": retry,
    }  # fmt: skip
    for attempt in range(5):
        try:
            if url.startswith("sqlite"):
                # a file this call creates gets this Optuna's schema: checking it against this Optuna's
                # migration scripts (which alembic loads from source every time) would only cost time
                path = url.removeprefix("sqlite:///").split("?", 1)[0]
                new = path != ":memory:" and not os.path.exists(path)
                if not new and path != ":memory:":
                    _refuse_foreign_sqlite(url, Path(path))
                if new and template_dir is not None:
                    # another process may have made it meanwhile: then it is checked like any existing file
                    new = _from_template(Path(path), template_dir) is not False
                # several local workers share one file: wait for the lock instead of failing
                storage = _rdb_storage(url, {"connect_args": {"timeout": 60}}, heartbeat, skip_check=new)
                _fast_sqlite(storage)
                return storage
            return _rdb_storage(url, {"pool_pre_ping": True}, heartbeat)
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError) as exc:
            # workers starting together race to create Optuna's tables: the loser finds them made
            racing = not isinstance(exc, sa_exc.OperationalError) or "already exists" in str(exc)
            if attempt == 4 or not racing:
                raise ConfigError(
                    f"--storage {redact(url)} cannot be opened: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                ) from None
            time.sleep(0.5 + attempt)
        except Exception as exc:  # SQLAlchemy/driver errors: a wrong URL, a server that does not answer
            raise ConfigError(
                f"--storage {redact(url)} cannot be opened: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from None
    raise AssertionError("unreachable")


# tables every Optuna RDB storage has (its schema since 1.x); a SQLite file holding other tables is not a study
_OPTUNA_TABLES = {"studies", "trials", "version_info"}


def _refuse_foreign_sqlite(url: str, path: Path) -> None:
    """An existing SQLite file that holds tables but not Optuna's is someone else's (a ledger, a core database):
    Optuna would add its tables to it. Refused by name, the file untouched (opened read-only)."""
    import sqlite3

    try:
        with closing(sqlite3.connect(readonly_uri(path), uri=True)) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return  # not readable as SQLite: Optuna's own open names the problem
    if tables and not _OPTUNA_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
        raise ConfigError(
            f"--storage {redact(url)}: {path} is a SQLite database of something else (tables {shown}), not an "
            "Optuna study; name a new file (it is created) or an existing study's"
        )


def _from_template(path: Path, template_dir: Path) -> bool | None:
    """A new study file as a copy of an empty one of this Optuna's schema (made here once, then reused). True:
    made here; False: the file exists (another process starting the same study made it first: never copied
    over); None: no template could be kept or copied (Optuna creates the tables itself)."""
    template = template_dir / f"empty-study-optuna-{optuna.__version__}.db"
    copy = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if not template.is_file():
            template_dir.mkdir(parents=True, exist_ok=True)
            made = template.with_name(f".{template.name}.{os.getpid()}.tmp")
            made.unlink(missing_ok=True)
            _rdb_storage(f"sqlite:///{made}", {}, {}, skip_check=True).engine.dispose()
            os.replace(made, template)  # whole or not at all: another process may be making it too
        shutil.copyfile(template, copy)
        # linked into place only if no file is there: a whole copy, and never over a study another worker opened
        os.link(copy, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        return None
    finally:
        copy.unlink(missing_ok=True)


def _rdb_storage(
    url: str, engine: dict[str, Any], heartbeat: dict[str, Any], skip_check: bool = False
) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        # heartbeats are marked experimental in Optuna 5; the interface is pinned with the version
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, skip_compatibility_check=skip_check, **heartbeat
        )


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Return the database connections (a worker may live on in a long process)."""
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.remove_session()
        storage.engine.dispose()


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """WAL and synchronous=NORMAL: a trial is a few small writes; with the default rollback journal every one
    waits for an fsync, which costs more than the trial itself. A crash loses at most the last trials (a
    study is a cache of results, re-run by the same command), never the file's consistency."""
    from sqlalchemy import event

    def on_connect(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()
    event.listen(storage.engine, "connect", on_connect)
    # the file switches to WAL now (the mode is kept in the file), before forked workers connect together:
    # switching takes an exclusive lock that a second connection's switch would fail on, without waiting
    with storage.engine.connect():
        pass


def redact(url: str) -> str:
    """A storage URL without its password (for logs and reports)."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in cred else url
    return url


def _sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    if cfg.algorithm == "grid_search":
        return optuna.samplers.GridSampler(cfg.space.grid(), seed=cfg.seed)  # type: ignore[arg-type]
    if cfg.algorithm == "bayesian":
        return optuna.samplers.TPESampler(seed=cfg.seed)
    return optuna.samplers.NSGAIISampler(seed=cfg.seed)


def directions(cfg: StudyConfig) -> list[Literal["minimize", "maximize"]]:
    # genetic: two objectives (in-sample PnL, in-sample max drawdown) and a Pareto front
    return ["maximize", "minimize"] if cfg.algorithm == "genetic" else ["maximize"]


def suggest(trial: optuna.Trial, p: Param, grid: bool) -> Any:
    values = list(p.values)
    if grid or len(values) < 3:
        return trial.suggest_categorical(p.key, values)
    steps = {round(b - a, 10) for a, b in itertools.pairwise(values)}
    if len(steps) == 1:
        step = steps.pop()
        if p.is_int:
            return trial.suggest_int(p.key, int(values[0]), int(values[-1]), step=int(step))
        return round(trial.suggest_float(p.key, float(values[0]), float(values[-1]), step=step), 10)
    return trial.suggest_categorical(p.key, values)


def _finished(study: optuna.Study) -> bool:
    """Whether any trial of the study has ended (a grid's queued points are not trials run)."""
    return bool(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    )


def open_study(cfg: StudyConfig, fold: Fold, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create (and, for grid search, fill the queue of) a fold's study, or join it when it exists."""
    name = cfg.fold_study_name(fold)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, directions=directions(cfg), sampler=_sampler(cfg)
        )
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(cfg))
        created = False
    attrs = study.user_attrs  # one read (each is a query): the stamps below are checked against it
    recorded = attrs.get(FINGERPRINT_ATTR)
    if not created and not recorded and cfg.fingerprint and _finished(study):
        # made before studies recorded their evidence (and before calmar was the backtest's Calmar ratio): its
        # trials cannot be checked against this run's settings, and their values may be scored otherwise
        raise StudyRefused(
            f"study {name} was made by an earlier version that did not record the settings and data its trials "
            "ran on (and scored calmar otherwise): its trials cannot be counted as evidence for this run. Run "
            "under another --study name (or none) for a new study",
            source="tbot optimize run",
        )
    if (created or not recorded) and cfg.fingerprint:
        # a worker joining a study its creator has not stamped yet stamps it alike (the same run)
        study.set_user_attr(FINGERPRINT_ATTR, cfg.fingerprint)
    elif recorded and cfg.fingerprint and recorded != cfg.fingerprint:
        # a --study name (or another machine) joined with other settings or bars: its trials would be mixed
        # with trials of another configuration, and the verdict would judge neither
        raise StudyRefused(
            f"study {name} was run on other settings, bars or options than this run's (the configuration, the "
            "data, the range, the space, --float or --seed differ): its trials are no evidence for these. Run "
            "with the settings and data it was run on, or under another --study name (or none) for a new study",
            source="tbot optimize run",
        )
    if len(study.directions) != len(directions(cfg)):
        raise StudyRefused(
            f"study {name} exists with {len(study.directions)} objective(s); {cfg.algorithm} needs "
            f"{len(directions(cfg))}: use another --study name"
        )
    if cfg.algorithm == "grid_search":
        if created:
            keys = cfg.space.keys
            points = [
                dict(zip(keys, point, strict=True))
                for point in itertools.islice(
                    itertools.product(*(p.values for p in cfg.space.params)), cfg.trials_per_fold()
                )
            ]
            _enqueue_all(study, points)
            study.set_user_attr(GRID_READY_ATTR, cfg.trials_per_fold())
        elif GRID_READY_ATTR not in attrs:
            # another machine's worker (or a command started at the same moment) still filling it: the queue
            # is one transaction, so it is ready within milliseconds (a local run's workers find it ready)
            deadline = time.monotonic() + 120
            while GRID_READY_ATTR not in study.user_attrs:
                if time.monotonic() > deadline:
                    raise ConfigError(f"study {name} exists but its grid was never enqueued")
                time.sleep(0.02)
    # written once per study (each write is a transaction): a joining worker finds them there
    for key, value in (("space", cfg.space.describe()), ("objective", cfg.objective)):
        if attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def _enqueue_all(study: optuna.Study, points: list[dict[str, Any]]) -> None:
    """Queue every grid point in ONE transaction: the rows `enqueue_trial` writes per point (a WAITING trial
    numbered after the study's trials, its point as the `fixed_params` system attribute), written by the batch
    write, without Optuna's flush, checks and commit per point, which cost more than a trial at thousands of
    points."""
    waiting = [
        optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": point})
        for point in points
    ]
    _write_trials(study, waiting)


Objective = Callable[[optuna.Trial], float | tuple[float, float]]


def make_objective(cfg: StudyConfig, prep: PreparedData, fold: Fold) -> Objective:
    grid = cfg.algorithm == "grid_search"

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        params = {p.key: suggest(trial, p, grid) for p in cfg.space.params}
        ins, oos = prep.evaluate_spans(params, fold.in_sample, fold.out_of_sample)
        trial.set_user_attr("metrics", metrics_attr(ins, oos))
        if cfg.algorithm == "genetic":
            return ins.total_pnl, ins.max_drawdown
        return ins.objective(cfg.objective)

    return objective


def metrics_attr(ins: TrialMetrics, oos: TrialMetrics) -> dict[str, Any]:
    """A trial's one attribute (one write): in-sample, out-of-sample, and the per-period in-sample Sharpe that
    the deflated Sharpe ratio needs for every trial tried."""
    return {"is": ins.to_dict(), "oos": oos.to_dict(), "is_sharpe_pp": (ins.sharpe or 0.0) / math.sqrt(252)}


def _rdb(storage: optuna.storages.BaseStorage) -> optuna.storages.RDBStorage:
    backend = getattr(storage, "_backend", storage)  # the study wraps its RDB storage in a cache
    if not isinstance(backend, optuna.storages.RDBStorage):
        raise ConfigError("the optimizer needs an RDB storage (sqlite:///... or postgresql://...)")
    return backend


def _stored_time(moment: datetime | None) -> datetime | None:
    """A FrozenTrial's time (naive local) as Optuna 5's trial tables hold it: naive UTC. Its ORM converts on
    the way in and out; the statements of this module bypass the ORM."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _stored_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _record(
    rdb: optuna.storages.RDBStorage,
    trial_id: int,
    params: dict[str, Any],
    dists: dict[str, optuna.distributions.CategoricalDistribution],
    metrics: dict[str, Any],
    value: float,
) -> None:
    """A grid trial's parameters, metrics attribute, value and final state in ONE transaction of plain
    statements: the rows Optuna's `set_trial_param`, `set_trial_user_attr` and `set_trial_state_values` write
    (checked identical by the tests), without their ORM session, re-read of the trial and commit per call,
    which took a third of a trial's time. A NaN objective fails the trial, as `Study.tell` does; a trial
    finished meanwhile (failed as stale) is refused with Optuna's own error and nothing of it is written. Like
    the claim, it relies on Optuna's table models (the version is pinned; the tests compare the rows)."""
    from optuna.storages._rdb import models
    from sqlalchemy import update

    state, values = (TrialState.FAIL, []) if math.isnan(value) else (TrialState.COMPLETE, [value])
    trials = models.TrialModel.__table__
    with rdb.engine.begin() as conn:
        finished = conn.execute(
            update(trials)
            .where(trials.c.trial_id == trial_id, trials.c.state == TrialState.RUNNING)
            .values(state=state, datetime_complete=_stored_now())
        ).rowcount
        if finished != 1:
            raise optuna.exceptions.UpdateFinishedTrialError(
                f"trial {trial_id} is no longer running (failed as stale by another worker?)"
            )
        rows = _TrialRows()
        rows.add(trial_id, params, dists, values, {"metrics": metrics}, {})
        rows.insert(conn)


class _TrialRows:
    """A trial's parameter, value and attribute rows, as Optuna's trial tables hold them, gathered per table to
    be inserted together (`_record`, `_write_trials`)."""

    def __init__(self) -> None:
        from optuna.storages._rdb import models

        self._models = models
        self.by_table: dict[Any, list[dict[str, Any]]] = {
            models.TrialParamModel.__table__: [],
            models.TrialValueModel.__table__: [],
            models.TrialUserAttributeModel.__table__: [],
            models.TrialSystemAttributeModel.__table__: [],
        }

    def add(
        self,
        trial_id: int,
        params: dict[str, Any],
        dists: Mapping[str, optuna.distributions.BaseDistribution],
        values: list[float],
        user_attrs: dict[str, Any],
        system_attrs: dict[str, Any],
    ) -> None:
        m = self._models
        self.by_table[m.TrialParamModel.__table__] += [
            {
                "trial_id": trial_id,
                "param_name": key,
                "param_value": dists[key].to_internal_repr(v),
                "distribution_json": optuna.distributions.distribution_to_json(dists[key]),
            }  # fmt: skip
            for key, v in params.items()
        ]
        for objective, v in enumerate(values):
            stored, kind = m.TrialValueModel.value_to_stored_repr(v)
            self.by_table[m.TrialValueModel.__table__].append(
                {"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind}
            )
        for table, attrs in (
            (m.TrialUserAttributeModel.__table__, user_attrs),
            (m.TrialSystemAttributeModel.__table__, system_attrs),
        ):
            self.by_table[table] += [
                {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
            ]

    def insert(self, conn: Any) -> None:
        from sqlalchemy import insert

        for table, rows in self.by_table.items():
            if rows:
                conn.execute(insert(table), rows)


def _check_distributions(
    rdb: optuna.storages.RDBStorage,
    study_id: int,
    dists: dict[str, optuna.distributions.CategoricalDistribution],
) -> None:
    """What Optuna checks before it writes a parameter: the study's earlier trials used a compatible
    distribution for it (a study resumed with another space is refused before any trial). Once per fold and
    worker, not per trial: every trial of a run has the run's space. Unlike Optuna's check per write, a second
    command started on the same `--study` with another space at the same moment is not refused (its grid points
    are the first command's anyway: they were queued by whoever created the study)."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(rdb.scoped_session) as session:
        for key, dist in dists.items():
            earlier = (
                session.query(models.TrialParamModel)
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id, models.TrialParamModel.param_name == key)
                .first()
            )
            if earlier is not None:
                optuna.distributions.check_distribution_compatibility(
                    optuna.distributions.json_to_distribution(str(earlier.distribution_json)), dist
                )


def _claim(study: optuna.Study) -> tuple[int, dict[str, Any]] | None:
    """Take one waiting (enqueued) trial: its id and grid point (`fixed_params`); None when the queue is empty.

    The claim is one conditional UPDATE (WAITING -> RUNNING where still WAITING) whose row count says who
    won. Optuna's own transition reads then writes, which SQLite's driver does not make atomic (the read
    runs outside the write transaction), so two local workers could both take the same grid point. The
    winner reads the grid point and records the trial's first heartbeat in the same transaction."""
    from optuna.storages._rdb import models
    from sqlalchemy import insert, select, update

    engine = _rdb(study._storage).engine
    table = models.TrialModel.__table__
    attrs = models.TrialSystemAttributeModel.__table__
    beats = models.TrialHeartbeatModel.__table__
    for _ in range(_CLAIM_RETRIES):
        try:
            with engine.begin() as conn:
                # a few candidates, not the whole queue: the read stays small at thousands of grid points
                waiting = conn.execute(
                    select(table.c.trial_id)
                    .where(table.c.study_id == study._study_id, table.c.state == TrialState.WAITING)
                    .order_by(table.c.trial_id)
                    .limit(_CLAIM_BATCH)
                ).all()
            if not waiting:
                return None
            for (trial_id,) in waiting:
                with engine.begin() as conn:
                    won = conn.execute(
                        update(table)
                        .where(table.c.trial_id == trial_id, table.c.state == TrialState.WAITING)
                        .values(state=TrialState.RUNNING, datetime_start=_stored_now())
                    ).rowcount
                    if won == 1:
                        fixed = conn.execute(
                            select(attrs.c.value_json).where(
                                attrs.c.trial_id == trial_id, attrs.c.key == "fixed_params"
                            )
                        ).scalar()
                        conn.execute(insert(beats).values(trial_id=trial_id))  # stamped by the database
                if won == 1:
                    return int(trial_id), json.loads(fixed) if fixed else {}
        except Exception as exc:  # a busy SQLite file or a serialisation failure: read the queue again
            if "locked" not in str(exc) and "could not serialize" not in str(exc):
                raise
            time.sleep(0.05)
    return None


@contextmanager
def trial_heartbeat(
    storage: optuna.storages.BaseStorage, trial_id: int, recorded: bool = False
) -> Iterator[None]:
    """Keep `trial_id`'s heartbeat fresh while the block runs, from a thread (what Optuna's own `optimize()`
    does; this module runs its own loop to claim grid points). `recorded`: the first beat is already written
    (a grid claim writes it)."""
    rdb = _rdb(storage)
    interval = rdb.get_heartbeat_interval()
    if not recorded:
        rdb.record_heartbeat(trial_id)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                rdb.record_heartbeat(trial_id)
            except Exception as exc:  # a missed beat is retried next interval; the trial itself goes on
                log.warning("optimizer: heartbeat of trial %s not recorded: %s", trial_id, exc)

    thread = threading.Thread(target=beat, name=f"trial-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def requeue_stale(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed worker (heartbeat older than the grace period): failed, then their
    parameters queued again (RetryHeartbeatStaleTrialCallback), so the grid stays complete."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_fold(
    cfg: StudyConfig,
    prep: PreparedData,
    fold: Fold,
    storage: optuna.storages.BaseStorage,
    progress: Any,
    workers: int = 1,
) -> int:
    """This worker's share of a fold; returns how many trials it evaluated. `workers`: this command's local
    workers (`--jobs`), which a sampled study counts in sizing its batches."""
    study = open_study(cfg, fold, storage)
    requeue_stale(study)
    if cfg.algorithm == "grid_search":
        return _run_grid(cfg, prep, fold, study, progress)
    return _run_sampled(cfg, prep, fold, study, progress, workers)


def _run_sampled(
    cfg: StudyConfig,
    prep: PreparedData,
    fold: Fold,
    study: optuna.Study,
    progress: Any,
    workers: int,
) -> int:
    """Bayesian and genetic: ask and tell on an in-memory copy of the fold's study, seeded with the shared
    study's finished trials; the finished trials are written to the shared storage together (`_write_trials`),
    every `_SYNC_TRIALS` trials or `_SYNC_SECONDS`, and the other workers' trials are read in at the same time.

    Over the RDB storage one ask/tell cost ~25 ms of sessions and commits per trial (a parameter, an attribute,
    the state, the heartbeat, the re-read of the study's trials for the sampler), more than an evaluation. The
    sampler sees the same trials in the same order, so a worker alone samples exactly what it sampled trial by
    trial (tested, for both samplers). What changes with several workers: each sees the others' trials at its
    next write, not at its next trial, and a fold's `--trials` can be exceeded by the trials the other workers
    have not written yet. Every worker registers in the study as it starts (`_join`): the k-th samples with
    seed `--seed` + k (the first, and so a lone worker, with `--seed` itself), so workers do not repeat each
    other's draws, and a batch is at most half of what is left shared among the registered workers still
    sampling (or this command's `--jobs`, if more), so they pass the target by about the trials under way as
    it is reached; at worst by the unwritten batches of workers that were stalled, each at most what was left
    when it last looked over twice the number of workers. A trial being evaluated is in no storage: nothing
    for a stale sweep to fail, and a killed worker loses at most its unwritten batch (the study simply holds
    fewer trials, and running the command again adds them)."""
    index, registration = _join(study)
    local = optuna.create_study(
        directions=directions(cfg), sampler=_sampler(replace(cfg, seed=cfg.seed + index))
    )
    objective = make_objective(cfg, prep, fold)
    target = cfg.trials_per_fold()
    known: set[int] = set()  # shared trial ids already in the local study
    shared = _read_in(study, local, known)
    working, looked = _working(study, 1), time.monotonic()
    pending: list[optuna.trial.FrozenTrial] = []
    done = 0
    synced = time.monotonic()
    try:
        while True:
            counted = sum(t.state == TrialState.COMPLETE for t in pending)
            if shared + counted >= target:
                if not pending:
                    break
            else:
                trial = local.ask()
                value = objective(trial)  # Ctrl-C here: the trial is dropped, the finished ones written below
                frozen = local.tell(trial, list(value) if isinstance(value, tuple) else value)
                pending.append(frozen)
                done += 1
                progress.update(1)
                counted += frozen.state == TrialState.COMPLETE
            # write sooner as the target nears: another worker's unwritten trials are what can overshoot it.
            # The workers are counted again every few trials or a quarter second, whichever comes first
            # (others may have started or finished since; one small read)
            if done % 4 == 0 or time.monotonic() - looked >= 0.25:
                working, looked = _working(study, working), time.monotonic()
            batch = min(_SYNC_TRIALS, max(1, (target - shared) // (2 * max(workers, working))))
            if (
                len(pending) >= batch
                or shared + counted >= target
                or time.monotonic() - synced >= _SYNC_SECONDS
            ):
                # handed over first: a Ctrl-C after the commit never writes them twice (one during the
                # write loses them: logged below)
                written, pending = pending, []
                try:
                    known.update(_write_trials(study, written))
                except BaseException as exc:
                    log.warning("optimizer: %d finished trials not written: %r", len(written), exc)
                    raise
                shared = _read_in(study, local, known)
                synced = time.monotonic()
    except BaseException:
        # Ctrl-C or a failed evaluation: the finished trials not written yet are kept, then the error goes on
        if pending:
            try:
                _write_trials(study, pending)
            except Exception as exc:  # the storage failing too: say so, but report the first error
                log.warning("optimizer: %d finished trials not written: %s", len(pending), exc)
        raise
    finally:
        _leave(study, registration)
    return done


def _read_in(study: optuna.Study, local: optuna.Study, known: set[int]) -> int:
    """Copy the shared study's finished trials the local one lacks into it (in the shared study's order);
    return how many trials count towards the target there (COMPLETE and RUNNING, as before batching)."""
    counted = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.RUNNING):
            counted += 1
        if t.state.is_finished() and t._trial_id not in known:
            local.add_trial(t)
            known.add(t._trial_id)
    return counted


_WORKER_KEY = "tbot:worker:"
_WORKING, _LEFT = "null", '"left"'  # a registration's value while its worker samples, and once it has left


def _join(study: optuna.Study) -> tuple[int, int]:
    """Register this worker in the fold's study (a study system attribute of its own); return how many had
    registered before it (earlier runs included: a resumed run does not replay the first one's draws) and the
    registration's row. Inserted, then counted, like a batch of trials: two workers starting together on
    SQLite get different places (the insert holds the write lock; on PostgreSQL the study row is locked)."""
    import uuid

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func, insert, select

    attrs = models.StudySystemAttributeModel.__table__
    sid = study._study_id
    with _create_scoped_session(_rdb(study._storage).scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(sid, session, for_update=True)
        mine = session.scalar(
            insert(attrs)
            .values(study_id=sid, key=f"{_WORKER_KEY}{uuid.uuid4().hex}", value_json=_WORKING)
            .returning(attrs.c.study_system_attribute_id)
        )
        before = session.scalar(
            select(func.count())
            .select_from(attrs)
            .where(
                attrs.c.study_id == sid,
                attrs.c.key.startswith(_WORKER_KEY),
                attrs.c.study_system_attribute_id < mine,
            )
        )
    return int(before or 0), int(mine)


def _working(study: optuna.Study, known: int) -> int:
    """How many registered workers have not left (a killed one never leaves: it still counts, which only makes
    batches smaller); `known` when the storage cannot say (the count only sizes batches)."""
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    attrs = models.StudySystemAttributeModel.__table__
    try:
        with _rdb(study._storage).engine.connect() as conn:
            n = conn.scalar(
                select(func.count())
                .select_from(attrs)
                .where(
                    attrs.c.study_id == study._study_id,
                    attrs.c.key.startswith(_WORKER_KEY),
                    attrs.c.value_json == _WORKING,
                )
            )
    except Exception as exc:  # a transient storage error: the next write meets it, if it lasts
        log.debug("optimizer: workers not counted: %s", exc)
        return known
    return max(1, int(n or 0))


def _leave(study: optuna.Study, registration: int) -> None:
    from optuna.storages._rdb import models
    from sqlalchemy import update

    attrs = models.StudySystemAttributeModel.__table__
    try:
        with _rdb(study._storage).engine.begin() as conn:
            conn.execute(
                update(attrs)
                .where(attrs.c.study_system_attribute_id == registration)
                .values(value_json=_LEFT)
            )
    except Exception as exc:  # it then counts as working: batches of later workers are a little smaller
        log.warning("optimizer: worker registration not closed: %s", exc)


def _write_trials(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    """Trials (finished, or waiting grid points) into the shared study in ONE transaction, numbered after its
    other trials as Optuna numbers a new trial (inserted first, then counted): the rows `Study.add_trials`
    writes (checked identical by the tests), without its session and commit per trial. Relies on Optuna's
    table models (the version is pinned). Returns their ids in the shared study."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import bindparam, func, insert, select, update

    rdb = _rdb(study._storage)
    sid = study._study_id
    table = models.TrialModel.__table__
    with _create_scoped_session(rdb.scoped_session) as session:
        # PostgreSQL: the study row locked until commit, so batches are numbered one after the other
        models.StudyModel.find_or_raise_by_id(sid, session, for_update=True)
        # inserted, then numbered (as Optuna numbers a new trial): on SQLite the insert takes the database's
        # write lock, so the count below sees every other worker's trials; counted first, two workers writing
        # at once could both read the same count
        new_ids = list(
            session.scalars(
                insert(table).returning(table.c.trial_id, sort_by_parameter_order=True),
                [
                    {
                        "study_id": sid,
                        "state": t.state,
                        "datetime_start": _stored_time(t.datetime_start),
                        "datetime_complete": _stored_time(t.datetime_complete),
                    }  # fmt: skip
                    for t in trials
                ],
            )
        )
        first = session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.c.study_id == sid, table.c.trial_id.not_in(new_ids))
        )
        session.execute(
            update(table).where(table.c.trial_id == bindparam("tid")).values(number=bindparam("n")),
            [{"tid": tid, "n": (first or 0) + i} for i, tid in enumerate(new_ids)],
        )
        rows = _TrialRows()
        for tid, t in zip(new_ids, trials, strict=True):
            rows.add(tid, t.params, t.distributions, t.values or [], t.user_attrs, t.system_attrs)
        rows.insert(session)
    return new_ids


def _run_grid(cfg: StudyConfig, prep: PreparedData, fold: Fold, study: optuna.Study, progress: Any) -> int:
    """Grid search: claim a queued grid point, evaluate it, record it, straight through the RDB storage.

    The grid point is the trial's `fixed_params`, so there is nothing to sample: the trial's parameters (the
    categorical distributions `suggest_categorical` would record), its metrics and its value are written as
    `Study.tell` writes them, without the study's trial cache and the grid sampler's end-of-trial scan of
    every trial, whose cost grows with the study (quadratic over thousands of trials). Per trial two
    transactions: the claim (with the grid point and the first heartbeat) and the record (parameters, one
    attribute, value and state); nothing else, and no file beyond the study's storage."""
    rdb = _rdb(study._storage)
    dists = {p.key: optuna.distributions.CategoricalDistribution(list(p.values)) for p in cfg.space.params}
    _check_distributions(rdb, study._study_id, dists)
    done = 0
    while (claimed := _claim(study)) is not None:
        trial_id, fixed = claimed
        params = {key: fixed[key] for key in dists}
        try:
            with trial_heartbeat(rdb, trial_id, recorded=True):
                ins, oos = prep.evaluate_spans(params, fold.in_sample, fold.out_of_sample)
            _record(rdb, trial_id, params, dists, metrics_attr(ins, oos), ins.objective(cfg.objective))
        except KeyboardInterrupt:
            # Ctrl-C: the trial is given up and its grid point queued again, so the same command resumes it
            # (unless its record was committed just before: then it is done)
            try:
                rdb.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                raise KeyboardInterrupt from None
            study.enqueue_trial(fixed)
            raise
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            # another worker took this trial for a dead one (its heartbeat went stale) and queued its grid
            # point again: whoever claims it evaluates it; this worker goes on with the next one
            log.warning("optimizer: trial %s not recorded: %s", trial_id, exc)
            continue
        done += 1
        progress.update(1)
    return done
