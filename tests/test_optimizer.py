"""`tbot optimize run` end to end on the bundled sample (small grids, short spans), resume after Ctrl-C,
the three algorithms, walk-forward statistics, bad input, and the proposal workflow (approve, reject,
config history, rollback)."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import numpy as np
import optuna
import pytest

from rigd_tbot.cli import main as tbot
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.optimizer.metrics import deflated_sharpe
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.optimizer.walk_forward import make_folds
from tbot_bot.support.path_resolver import BotHome, package_file

SAMPLE = package_file("data", "sample")
SPACE = """
[STRAT_OPEN_BUFFER]
values = [0.001, 0.003]

[OPEN_TRAILING_STOP_PCT]
low = 0.005
high = 0.01
step = 0.005
"""


def run_args(home: Path, space: Path, *extra: str) -> list[str]:
    return [
        "optimize", "run", "--strategy", "open", "--algorithm", "grid_search", "--start", "2011-01-03",
        "--end", "2011-02-15", "--walk-forward", "2", "--data-source", str(SAMPLE), "--space", str(space),
        "--home", str(home), "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    p = tmp_path / "space.toml"
    p.write_text(SPACE, encoding="utf-8")
    return p


def only_run_dir(home: Path) -> Path:
    (run,) = [p for p in (home / "backtest_results" / "strategy_tuning").iterdir() if p.is_dir()]
    return run


def test_run_writes_every_output_then_approve_history_rollback(
    provisioned_home: Path, space_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = provisioned_home
    assert tbot(run_args(home, space_file)) == 0
    run = only_run_dir(home)
    for name in ("trials.csv", "folds.csv", "best.json", "report.html", "optimization_history.png",
                 "param_slices.png"):  # fmt: skip
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    trials = list(csv.DictReader((run / "trials.csv").read_text().splitlines()))
    assert len(trials) == 2 * 4  # every grid point once in each of the two folds
    assert {(r["fold"], r["STRAT_OPEN_BUFFER"], r["OPEN_TRAILING_STOP_PCT"]) for r in trials} == {
        (f, b, s) for f in ("1", "2") for b in ("0.001", "0.003") for s in ("0.005", "0.01")
    }
    best = json.loads((run / "best.json").read_text())
    assert [f["fold"] for f in best["folds"]] == [1, 2]
    for f in best["folds"]:
        fold_rows = [r for r in trials if r["fold"] == str(f["fold"])]
        # each fold's choice is its in-sample best
        assert f["is_objective"] == pytest.approx(max(float(r["value"]) for r in fold_rows))
        assert f["oos_end"] < "2011-02-16" and f["is_end"] < f["oos_start"]
    # the recommendation is the candidate with the best OUT-OF-SAMPLE objective
    assert best["recommended"]["oos_objective"] == max(c["oos_objective"] for c in best["candidates"])
    assert set(best["parameter_stability"]) == {"STRAT_OPEN_BUFFER", "OPEN_TRAILING_STOP_PCT"}
    assert 0 <= best["deflated_sharpe"]["dsr"] <= 1 and best["deflated_sharpe"]["trials"] == 8
    assert "data:image/png;base64," in (run / "report.html").read_text()
    out = capsys.readouterr().out
    assert "proposal:" in out
    # every trial was charged the home's fee profile (a sim home: Alpaca's), and the run says so
    assert best["fee_profile"].startswith("SIM_FEE_PROFILE=alpaca: Alpaca: no commission")
    assert f"fees: {best['fee_profile']}" in out and best["fee_profile"] in (run / "report.html").read_text()

    # the same command resumes: nothing left to evaluate, same recommendation
    assert tbot(run_args(home, space_file)) == 0
    assert "(0 evaluated by this worker)" in capsys.readouterr().out
    assert json.loads((run / "best.json").read_text())["recommended"] == best["recommended"]

    # proposal: list/show, then approve through the encrypted config path
    bot = BotHome(home)
    before = load_settings(bot)
    assert tbot(["optimize", "list", "--home", str(home)]) == 0
    assert run.name in capsys.readouterr().out
    assert tbot(["optimize", "show", run.name, "--home", str(home)]) == 0
    assert "out-of-sample" in capsys.readouterr().out
    assert tbot(["optimize", "approve", run.name, "--home", str(home)]) == 0
    after = load_settings(bot)
    rec = best["recommended"]["params"]
    assert after.STRAT_OPEN_BUFFER == rec["STRAT_OPEN_BUFFER"]
    assert after.OPEN_TRAILING_STOP_PCT == rec["OPEN_TRAILING_STOP_PCT"]
    proposal = json.loads((home / "env_bot.versioned" / "proposals" / f"{run.name}.json").read_text())
    assert proposal["status"] == "approved" and proposal["decision"]["actor"].startswith("cli:")
    audit = [json.loads(x) for x in (home / "logs" / "optimizer_audit.log").read_text().splitlines()]
    assert audit[-1]["action"] == "approved" and audit[-1]["run_id"] == run.name
    assert not (home / ".env_bot").exists()  # never written in plaintext
    # a decided proposal cannot be decided again
    assert tbot(["optimize", "approve", run.name, "--home", str(home)]) == 2
    assert tbot(["optimize", "reject", run.name, "--home", str(home)]) == 2
    assert "already approved" in capsys.readouterr().err

    # history lists the version the approval replaced; rollback restores it
    capsys.readouterr()
    assert tbot(["config", "history", "--home", str(home)]) == 0
    listing = capsys.readouterr().out
    version = proposal["decision"]["previous_version"]
    assert version in listing and "optimizer approve" in listing
    assert tbot(["config", "rollback", version, "--home", str(home)]) == 0
    rolled = load_settings(bot)
    assert rolled.STRAT_OPEN_BUFFER == before.STRAT_OPEN_BUFFER
    assert rolled.OPEN_TRAILING_STOP_PCT == before.OPEN_TRAILING_STOP_PCT
    assert tbot(["config", "rollback", "19990101T000000000000Z", "--home", str(home)]) == 2
    assert "no config version" in capsys.readouterr().err


def test_reject_and_stale_proposal(
    provisioned_home: Path, space_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = provisioned_home
    assert tbot(run_args(home, space_file, "--study", "a1")) == 0
    # the live value changes after the run: approving the stale proposal is refused unless --force
    assert tbot(["config", "set", "OPEN_TRAILING_STOP_PCT=0.03", "--home", str(home)]) == 0
    capsys.readouterr()
    assert tbot(["optimize", "approve", "a1", "--home", str(home)]) == 2
    assert "changed since this proposal was made" in capsys.readouterr().err
    assert load_settings(BotHome(home)).OPEN_TRAILING_STOP_PCT == 0.03
    assert tbot(["optimize", "reject", "a1", "--reason", "stale", "--home", str(home)]) == 0
    p = json.loads((home / "env_bot.versioned" / "proposals" / "a1.json").read_text())
    assert p["status"] == "rejected" and p["decision"]["reason"] == "stale"
    assert tbot(["optimize", "show", "nope", "--home", str(home)]) == 2
    assert "no optimizer proposal 'nope'" in capsys.readouterr().err


def test_ctrl_c_leaves_the_study_resumable(
    tmp_path: Path, space_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = PreparedData.evaluate_spans

    def interrupted(self: PreparedData, params: dict, *spans: tuple) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # the third trial
            raise KeyboardInterrupt
        return real(self, params, *spans)

    monkeypatch.setattr(PreparedData, "evaluate_spans", interrupted)
    assert tbot(run_args(tmp_path, space_file, "--study", "cc")) == 130
    monkeypatch.setattr(PreparedData, "evaluate_spans", real)
    assert tbot(run_args(tmp_path, space_file, "--study", "cc")) == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/backtest_results/strategy_tuning/cc/study.db")
    for fold in (1, 2):
        study = optuna.load_study(study_name=f"cc.fold{fold}", storage=storage)
        done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        points = [tuple(sorted(t.params.items())) for t in done]
        assert len(points) == 4 and len(set(points)) == 4  # every grid point once, none twice
    fold1 = optuna.load_study(study_name="cc.fold1", storage=storage)
    assert len(fold1.get_trials(states=(optuna.trial.TrialState.FAIL,))) == 1


@pytest.mark.parametrize("algorithm", ["bayesian", "genetic"])
def test_bayesian_and_genetic(tmp_path: Path, algorithm: str) -> None:
    argv = [
        "optimize", "run", "--strategy", "mid", "--algorithm", algorithm, "--start", "2011-01-03",
        "--end", "2011-01-31", "--walk-forward", "1", "--trials", "5", "--data-source", str(SAMPLE),
        "--home", str(tmp_path), "--no-progress", "--seed", "3", "--objective", "calmar",
    ]  # fmt: skip
    assert tbot(argv) == 0
    run = only_run_dir(tmp_path)
    trials = list(csv.DictReader((run / "trials.csv").read_text().splitlines()))
    assert len(trials) == 5
    best = json.loads((run / "best.json").read_text())
    if algorithm == "genetic":
        assert (run / "pareto_front.png").is_file()
        assert best["pareto_front"] and "value_is_max_drawdown" in trials[0]
    else:
        assert best["objective"] == "calmar"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--walk-forward", "40"], "needs at least 82 sessions"),
        (["--storage", "mysql://x"], "use sqlite:///PATH or postgresql://"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--space", "BAD"], "does not exist"),
        (["--start", "2011-03-01", "--end", "2011-02-01"], "is before --start"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["optimize", "run", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-31",
            "--data-source", str(SAMPLE), "--home", str(tmp_path), "--no-progress", *extra]  # fmt: skip
    assert tbot(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_space_file_problems_are_reported_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[STRAT_OPEN_BUFER]\nvalues=[0.1]\n[OPEN_MONITORING_TIME]\nvalues=[1.5]\n[OPEN_TRAILING_STOP_PCT]\nvalues=[5]\n"
    )
    argv = ["optimize", "run", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-31",
            "--data-source", str(SAMPLE), "--home", str(tmp_path), "--space", str(bad)]  # fmt: skip
    assert tbot(argv) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err and "did you mean STRAT_OPEN_BUFFER?" in err
    assert "not an integer" in err and "outside the allowed range" in err


def test_folds_are_anchored_and_out_of_sample_spans_follow_in_order() -> None:
    days = tuple(date(2011, 1, d) for d in range(3, 23))
    folds = make_folds(days, 3)
    assert [len(f.out_of_sample) for f in folds] == [5, 5, 5]
    for f in folds:
        assert f.in_sample[0] == days[0] and f.in_sample[-1] < f.out_of_sample[0]
        assert f.in_sample + f.out_of_sample == days[: len(f.in_sample) + len(f.out_of_sample)]


def test_deflated_sharpe_falls_with_more_trials_and_dispersion() -> None:
    rng = np.random.default_rng(5)
    r = rng.normal(0.002, 0.01, 120)
    few = deflated_sharpe(r, list(rng.normal(0, 0.05, 3)))["dsr"]
    many = deflated_sharpe(r, list(rng.normal(0, 0.05, 300)))["dsr"]
    assert few is not None and many is not None and 0 <= many < few <= 1
    assert deflated_sharpe(np.zeros(10), [0.1, 0.2])["dsr"] is None


def test_two_local_jobs_on_sqlite_share_the_grid(
    tmp_path: Path, space_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tbot(run_args(tmp_path, space_file, "--study", "jobs", "--jobs", "2")) == 0
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path}/backtest_results/strategy_tuning/jobs/study.db"
    )
    for fold in (1, 2):
        study = optuna.load_study(study_name=f"jobs.fold{fold}", storage=storage)
        points = [tuple(sorted(t.params.items())) for t in study.get_trials()]
        assert len(points) == 4 and len(set(points)) == 4  # every grid point once, none twice, none failed
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials())
    storage.engine.dispose()


def test_defaults_come_from_the_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from helpers import make_settings

    from tbot_bot.optimizer.defaults import request_from_args

    settings = make_settings(OPTIMIZER_ALGORITHM="bayesian", OPTIMIZER_BACKTEST_LOOKBACK_DAYS=5)
    args = argparse.Namespace(
        strategy="open", algorithm=None, start=None, end=date(2011, 1, 14), data_source=None, objective="sharpe",
        walk_forward=1, trials=None, jobs=1, space=None, storage=None, study=None, out=None, seed=0,
        float_="100000", no_progress=True, stale_after=300,
    )  # fmt: skip
    home = BotHome(tmp_path)
    req = request_from_args(args, home, settings)
    assert req.data_source == SAMPLE and "using the bundled sample" in capsys.readouterr().err
    assert req.algorithm == "bayesian" and req.start == date(2011, 1, 10)  # 5 sessions ending on the 14th
    cache = tmp_path / "data" / "cache" / "bars"
    cache.mkdir(parents=True)
    (cache / "bars_2011-01-14.csv.gz").write_bytes(b"")
    assert request_from_args(args, home, settings).data_source == cache


def test_a_killed_workers_trial_is_queued_again(tmp_path: Path, space_file: Path) -> None:
    """A worker claims a grid point and dies (SIGKILL: no handler runs). After --stale-after seconds the next
    worker fails that trial and queues its parameters again: the grid ends complete, each point done once."""
    import time

    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.study import StudyConfig, _claim, _rdb, close_storage, make_storage, open_study
    from tbot_bot.optimizer.walk_forward import Fold

    run_dir = tmp_path / "backtest_results" / "strategy_tuning" / "kill"
    run_dir.mkdir(parents=True)
    url = f"sqlite:///{run_dir}/study.db"
    cfg = StudyConfig(
        "kill", "open", "grid_search", "sharpe", load_space("open", space_file), None, url, 0, 1
    )
    storage = make_storage(url, 1)
    study = open_study(cfg, Fold(1, (), ()), storage)
    claimed = _claim(study)
    assert claimed is not None
    _rdb(storage).record_heartbeat(claimed)  # ... and the worker is gone
    close_storage(storage)
    time.sleep(2.5)
    assert tbot(run_args(tmp_path, space_file, "--study", "kill", "--stale-after", "1")) == 0
    storage = make_storage(url, 1)
    fold1 = optuna.load_study(study_name="kill.fold1", storage=storage)
    done = fold1.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    points = [tuple(sorted(t.params.items())) for t in done]
    assert len(points) == 4 and len(set(points)) == 4
    (failed,) = fold1.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed._trial_id == claimed
    assert not fold1.get_trials(states=(optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING))
    close_storage(storage)


def test_a_slow_trial_of_a_live_worker_is_not_taken_for_a_dead_one(tmp_path: Path, space_file: Path) -> None:
    """The heartbeat is kept fresh while a trial runs: with --stale-after 1 a trial running 2.5 s survives
    another worker's stale sweep; the same trial with only its first heartbeat would be failed."""
    import time

    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.study import (
        StudyConfig,
        _claim,
        _rdb,
        close_storage,
        make_storage,
        open_study,
        requeue_stale,
        trial_heartbeat,
    )
    from tbot_bot.optimizer.walk_forward import Fold

    url = f"sqlite:///{tmp_path}/study.db"
    cfg = StudyConfig(
        "slow", "open", "grid_search", "sharpe", load_space("open", space_file), None, url, 0, 1
    )
    storage = make_storage(url, 1)
    study = open_study(cfg, Fold(1, (), ()), storage)
    beating, silent = _claim(study), _claim(study)
    assert beating is not None and silent is not None
    _rdb(storage).record_heartbeat(silent)  # one beat at the start, then nothing (a killed worker)
    with trial_heartbeat(storage, beating):
        time.sleep(2.5)  # a trial longer than the grace period
        other = make_storage(url, 1)  # a second worker starting its fold sweeps stale trials
        requeue_stale(optuna.load_study(study_name="slow.fold1", storage=other))
        close_storage(other)
    states = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
    assert states[beating] == optuna.trial.TrialState.RUNNING
    assert states[silent] == optuna.trial.TrialState.FAIL
    close_storage(storage)
