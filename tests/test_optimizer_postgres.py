"""Many machines: two `tbot optimize run` worker processes share one study in a real PostgreSQL server
(started by this test): the trials add up, no grid point is evaluated twice, and the result equals a
one-worker run with the embedded SQLite storage."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from fakes.postgres_server import PostgresServer, find_bindir

from rigd_tbot.cli import main as tbot
from tbot_bot.optimizer.study import close_storage
from tbot_bot.support.path_resolver import package_file

BINDIR = find_bindir()
pytestmark = pytest.mark.skipif(
    BINDIR is None, reason="needs Debian's postgresql server binaries (`make postgres` installs them as root)"
)
SAMPLE = package_file("data", "sample")
# 6 x 5 = 30 grid points (one fold): enough for both workers to take trials
SPACE = """
[STRAT_OPEN_BUFFER]
values = [0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005]

[OPEN_TRAILING_STOP_PCT]
values = [0.004, 0.006, 0.01, 0.015, 0.02]
"""


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    assert BINDIR is not None
    server = PostgresServer(BINDIR).start()
    try:
        yield server
    finally:
        server.stop()


def argv(home: Path, space: Path, out: Path, *extra: str) -> list[str]:
    return [
        "optimize", "run", "--strategy", "open", "--algorithm", "grid_search", "--start", "2011-01-03",
        "--end", "2011-03-31", "--walk-forward", "1", "--data-source", str(SAMPLE), "--space", str(space),
        "--home", str(home), "--out", str(out), "--study", "wf-shared", "--no-progress", *extra,
    ]  # fmt: skip


# Each worker runs `tbot` with its first evaluation held until the other worker has claimed a trial too: a
# grid trial takes a few milliseconds, so without this meeting point the worker that starts first may well
# evaluate all 30 points before the other has opened the study, and "shared between the workers" would be
# left to the machine's timing.
MEET = """
import sys, time
from pathlib import Path
from rigd_tbot.cli import main
from tbot_bot.optimizer.prepared import PreparedData

mine, other = Path(sys.argv[1]), Path(sys.argv[2])
evaluate = PreparedData.evaluate_spans

def first_waits(self, *args):
    if not mine.exists():
        mine.touch()
        deadline = time.monotonic() + 120
        while not other.exists():
            if time.monotonic() > deadline:
                sys.exit("the other worker never claimed a trial")
            time.sleep(0.01)
    return evaluate(self, *args)

PreparedData.evaluate_spans = first_waits
sys.exit(main(sys.argv[3:]))
"""


def trial_map(storage: object, name: str) -> dict[tuple, float]:
    study = optuna.load_study(study_name=name, storage=storage)  # type: ignore[arg-type]
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    points = [tuple(sorted(t.params.items())) for t in done]
    assert len(points) == len(set(points)), "a grid point was evaluated twice"
    return {p: t.value for p, t in zip(points, done, strict=True)}


def test_two_workers_share_one_study(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.createdb("tbot_opt")
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                MEET,
                str(tmp_path / f"claimed{i}"),
                str(tmp_path / f"claimed{3 - i}"),
                *argv(tmp_path, space, tmp_path / f"machine{i}", "--storage", url),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in (1, 2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-2000:]
    counts = [int(re.search(r"\((\d+) evaluated by this worker\)", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
    assert sum(counts) == 30  # the trials add up: 30 grid points, shared between the workers
    assert min(counts) > 0, f"one worker evaluated nothing: {counts}"

    storage = optuna.storages.RDBStorage(url)
    shared = {k: trial_map(storage, f"wf-shared.fold{k}") for k in (1,)}
    assert all(len(v) == 30 for v in shared.values())
    for k in (1,):
        study = optuna.load_study(study_name=f"wf-shared.fold{k}", storage=storage)
        assert not study.get_trials(states=(optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING))

    # a third run of the same command only reports (nothing left to evaluate)
    assert tbot(argv(tmp_path, space, tmp_path / "report", "--storage", url)) == 0
    report = json.loads((tmp_path / "report" / "wf-shared" / "best.json").read_text())

    # one worker with the embedded SQLite storage gives the same trials and the same recommendation
    assert tbot(argv(tmp_path, space, tmp_path / "single")) == 0
    single = json.loads((tmp_path / "single" / "wf-shared" / "best.json").read_text())
    local = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/single/wf-shared/study.db")
    for k in (1,):
        assert trial_map(local, f"wf-shared.fold{k}") == shared[k]
    for s in (storage, local):
        close_storage(s)
    assert report["pick"] == single["pick"] and report["verdict"] == single["verdict"]
    assert [f["params"] for f in report["folds"]] == [f["params"] for f in single["folds"]]
    assert report["storage"].startswith("postgresql://postgres@127.0.0.1")


def test_bayesian_trials_written_in_batches_to_postgresql_equal_sqlites(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The sampled loop's batch write runs on PostgreSQL too: a seeded TPE study there holds the trials the same
    command writes to SQLite."""
    url = postgres.createdb("tbot_tpe")
    argv = [
        "optimize", "run", "--strategy", "mid", "--algorithm", "bayesian", "--start", "2011-01-03", "--end",
        "2011-03-31", "--walk-forward", "1", "--trials", "6", "--data-source", str(SAMPLE), "--home",
        str(tmp_path), "--no-progress", "--seed", "3", "--objective", "calmar", "--study", "tpe",
    ]  # fmt: skip
    assert tbot([*argv, "--storage", url, "--out", str(tmp_path / "pg")]) == 0
    assert tbot([*argv, "--out", str(tmp_path / "lite")]) == 0
    storages = [optuna.storages.RDBStorage(u) for u in (url, f"sqlite:///{tmp_path}/lite/tpe/study.db")]
    pg, lite = (
        [(t.number, t.state, t.params, t.values, t.user_attrs) for t in optuna.load_study(study_name="tpe.fold1", storage=s).get_trials()]
        for s in storages
    )  # fmt: skip
    for s in storages:
        close_storage(s)
    assert len(pg) == 6 and pg == lite


def test_a_batch_of_trials_is_written_on_postgresql_as_optuna_writes_each(postgres: PostgresServer) -> None:
    """The batch write's rows on PostgreSQL (its own INSERT ... RETURNING path) equal `Study.add_trials`'s: each
    trial's state and times stay with its parameters, values and attributes."""
    from optuna_rows import rows_both_ways

    rows = rows_both_ways(lambda name: postgres.createdb(f"rows_{name}"))
    assert rows["ours"] == rows["optuna"]
    assert [r[3] for r in rows["ours"]["trials"]] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
