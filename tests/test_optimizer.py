"""`tbot optimize run` end to end on a small synthetic data set with a planted edge and on the bundled sample
(small grids), resume after Ctrl-C, the three algorithms, walk-forward statistics, what a run may claim (its
verdict, the refusals of too little data), bad input, and the proposal workflow (approve, reject, config
history, rollback)."""

from __future__ import annotations

import csv
import gzip
import html
import json
import math
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import make_settings
from optuna.trial import TrialState

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest.backtest_engine import backtest_float
from tbot_bot.config.settings_bot import load_settings, read_env_text, replace_values
from tbot_bot.market_time import market_calendar
from tbot_bot.optimizer.evidence import decide, sig4
from tbot_bot.optimizer.metrics import deflated_sharpe
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.optimizer.walk_forward import make_folds
from tbot_bot.support.path_resolver import BotHome, package_file

SAMPLE = package_file("data", "sample")
SPACE = """
[STRAT_OPEN_BUFFER]
values = [0.001, 0.003]

[OPEN_TRAILING_STOP_PCT]
values = [0.005, 0.02]
"""
# the planted data set: 61 sessions, the first only warms up (previous-session volume), 60 scored = 3 blocks of 20
PLANTED_START, PLANTED_END = "2011-01-04", "2011-03-30"


def planted_edge_bars(folder: Path, sessions: int, *, edge: bool = True, seed: int = 7) -> list[date]:
    """Two symbols, the first 120 minutes of each session. With `edge`, every session: a flat 20-minute
    opening range, a breakout close 0.4% above it, on half of the days (at random) a 0.9% dip, then a move to a
    random -1.5%..+5.5% (a noisy edge, not a sure thing). OPEN with a 0.5% trailing stop is shaken out by the
    deep dips (a loss those days); a 2% stop rides every move. Without `edge` the price never leaves the
    range: no trade at all."""
    cal = market_calendar("XNYS")
    days = list(cal.sessions_in_range("2011-01-03", "2011-12-30"))[:sessions]
    rng = np.random.default_rng(seed)
    n = 120
    frames = []
    for sym, base in (("PLNT", 20.0), ("EDGE", 30.0)):
        for d in days:
            p = base * (1 + rng.uniform(-0.01, 0.01))
            close = np.full(n, p)
            close[:20] = p * (1 + 0.0003 * np.sin(np.arange(20)))
            move, deep = rng.uniform(-0.015, 0.055), rng.random() < 0.5
            if edge:
                bottom = 0.994 if deep else 0.999
                close[20] = p * 1.004
                close[21:25] = np.linspace(p * 1.003, p * bottom, 4)
                close[25:60] = np.linspace(p * (bottom + 0.001), p * (1.004 + move), 35)
                close[60:] = p * (1.004 + move)
            open_ = np.r_[close[0], close[:-1]]
            frames.append(pd.DataFrame({
                "timestamp": pd.date_range(cal.session_open(d), periods=n, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ"),
                "symbol": sym, "open": open_.round(4), "high": (np.maximum(open_, close) * 1.0002).round(4),
                "low": (np.minimum(open_, close) * 0.9998).round(4), "close": close.round(4), "volume": 50_000,
            }))  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    csv_text = pd.concat(frames, ignore_index=True).to_csv(index=False)
    (folder / "bars.csv.gz").write_bytes(gzip.compress(csv_text.encode(), mtime=0))
    fund = {"marketCapitalization": 2600.0, "peNormalizedAnnual": 14.2, "totalDebt/totalEquityAnnual": 0.45}
    (folder / "fundamentals.json").write_text(json.dumps({"PLNT": fund, "EDGE": fund}))
    return [d.date() for d in days]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("planted")
    days = planted_edge_bars(folder, 61)
    assert (days[1].isoformat(), days[-1].isoformat()) == (PLANTED_START, PLANTED_END)
    return folder


def run_args(home: Path, space: Path, data: Path, *extra: str) -> list[str]:
    """A grid run on the planted data: 2 folds of 20 out-of-sample sessions, float 100,000 (orders large
    enough that a $1 minimum commission does not decide the result)."""
    return [
        "optimize", "run", "--strategy", "open", "--algorithm", "grid_search", "--start", PLANTED_START,
        "--end", PLANTED_END, "--walk-forward", "2", "--data-source", str(data), "--space", str(space),
        "--float", "100000", "--home", str(home), "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    p = tmp_path / "space.toml"
    p.write_text(SPACE, encoding="utf-8")
    return p


@pytest.fixture
def shaken_out_home(provisioned_home: Path) -> Path:
    """A provisioned home whose OPEN trailing stop (0.5%) the planted dip shakes out every day, funded to the
    studies' float (run_args: 100,000; approve refuses a study sized from another float than the home's)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.float_injection import inject_float

    assert tbot(["config", "set", "OPEN_TRAILING_STOP_PCT=0.005", "--home", str(provisioned_home)]) == 0
    home = BotHome(provisioned_home)
    inject_float(
        load_binding(home), Decimal("97500"), posted_at=datetime(2011, 1, 3, 13, tzinfo=UTC), home=home
    )
    return provisioned_home


def only_run_dir(home: Path) -> Path:
    (run,) = [p for p in (home / "backtest_results" / "strategy_tuning").iterdir() if p.is_dir()]
    return run


def test_planted_edge_is_recommended_then_approve_history_rollback(
    shaken_out_home: Path, space_file: Path, planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = shaken_out_home
    capsys.readouterr()
    assert tbot(run_args(home, space_file, planted, "--min-dsr", "0.99")) == 0
    run = only_run_dir(home)
    for name in ("trials.csv", "folds.csv", "best.json", "report.html", "optimization_history.png",
                 "param_slices.png"):  # fmt: skip
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    trials = list(csv.DictReader((run / "trials.csv").read_text().splitlines()))
    assert len(trials) == 2 * 4  # every grid point once in each of the two folds
    assert {(r["fold"], r["STRAT_OPEN_BUFFER"], r["OPEN_TRAILING_STOP_PCT"]) for r in trials} == {
        (f, b, s) for f in ("1", "2") for b in ("0.001", "0.003") for s in ("0.005", "0.02")
    }
    best = json.loads((run / "best.json").read_text())
    assert [f["fold"] for f in best["folds"]] == [1, 2]
    for f in best["folds"]:
        fold_rows = [r for r in trials if r["fold"] == str(f["fold"])]
        # each fold's choice is its in-sample best
        assert f["is_objective"] == pytest.approx(max(float(r["value"]) for r in fold_rows))
        assert f["oos_end"] <= PLANTED_END and f["is_end"] < f["oos_start"]
    # a candidate is scored only on the blocks after its own in-sample span (fold 2's winner never on fold 1's
    # block, which lies inside its in-sample span), and the current settings on the pick's same blocks
    starts = {f["fold"]: f["oos_start"] for f in best["folds"]}
    for c in best["candidates"]:
        assert c["oos_folds"] == [k for k, start in starts.items() if start > c["is_end"]]
        assert len(c["fold_objectives"]) == len(c["oos_folds"])
    assert [f["fold"] for f in best["verdict"]["folds"]] == best["pick"]["oos_folds"]
    # the pick is the candidate with the best mean OUT-OF-SAMPLE objective
    assert best["pick"]["oos_objective"] == max(c["oos_objective"] for c in best["candidates"])
    assert set(best["parameter_stability"]) == {"STRAT_OPEN_BUFFER", "OPEN_TRAILING_STOP_PCT"}
    assert 0 <= best["deflated_sharpe"]["dsr"] <= 1 and best["deflated_sharpe"]["trials"] == 8
    # the planted edge: the 2% stop wins every fold out of sample, significantly, and is recommended
    verdict = best["verdict"]
    assert best["pick"]["params"]["OPEN_TRAILING_STOP_PCT"] == 0.02
    assert verdict["recommend"] is True and [c["passed"] for c in verdict["checks"]] == [True, True, True]
    assert [f["won"] for f in verdict["folds"]] == [True, True]
    assert best["deflated_sharpe"]["dsr"] >= 0.99 and verdict["dsr_threshold"] == 0.99
    assert verdict["statement"].startswith(
        f"Recommend trial {best['pick']['trial']}, the in-sample best of fold"
    )
    assert (
        f"deflated Sharpe probability {sig4(best['deflated_sharpe']['dsr'])} is at least 0.99"
        in verdict["statement"]
    )
    assert best["float"] == "100000"
    report = (run / "report.html").read_text()
    assert "data:image/png;base64," in report and html.escape(verdict["statement"]) in report
    out = capsys.readouterr().out
    assert verdict["statement"] in out and "proposal:" in out and "float 100,000.00" in out
    # every trial was charged the home's fee profile (a sim home: Alpaca's), and the run says so
    assert best["fee_profile"].startswith("SIM_FEE_PROFILE=alpaca: Alpaca: no commission")
    assert f"fees: {best['fee_profile']}" in out and best["fee_profile"] in (run / "report.html").read_text()

    # the same command resumes: nothing left to evaluate, same verdict
    assert tbot(run_args(home, space_file, planted, "--min-dsr", "0.99")) == 0
    assert "(0 evaluated by this worker)" in capsys.readouterr().out
    again = json.loads((run / "best.json").read_text())
    assert again["pick"] == best["pick"] and again["verdict"] == verdict

    # proposal: list/show, then approve through the encrypted config path
    bot = BotHome(home)
    before = load_settings(bot)
    assert tbot(["optimize", "list", "--home", str(home)]) == 0
    assert run.name in capsys.readouterr().out
    assert tbot(["optimize", "show", run.name, "--home", str(home)]) == 0
    shown = capsys.readouterr().out
    assert (
        verdict["statement"] in shown
        and "out-of-sample" in shown
        and "OPEN_TRAILING_STOP_PCT: 0.005 -> 0.02" in shown
    )
    assert tbot(["optimize", "approve", run.name, "--home", str(home)]) == 0
    after = load_settings(bot)
    rec = best["pick"]["params"]
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
    shaken_out_home: Path, space_file: Path, planted: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = shaken_out_home
    assert tbot(run_args(home, space_file, planted, "--study", "a1")) == 0
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

    # the study a1 was run on OPEN_TRAILING_STOP_PCT=0.005: joining it with 0.03 would mix its trials with
    # trials of another configuration, so it is refused by name
    capsys.readouterr()
    assert tbot(run_args(home, space_file, planted, "--study", "a1")) == 2
    assert "study a1.fold1 was run on other settings" in capsys.readouterr().err
    # back on its settings the run resumes; the rejected proposal's record is never rewritten
    assert tbot(["config", "set", "OPEN_TRAILING_STOP_PCT=0.005", "--home", str(home)]) == 0
    capsys.readouterr()
    assert tbot(run_args(home, space_file, planted, "--study", "a1")) == 0
    out = capsys.readouterr().out
    assert "(0 evaluated by this worker)" in out and "proposal a1 was already rejected by cli:" in out
    assert json.loads((home / "env_bot.versioned" / "proposals" / "a1.json").read_text()) == p
    # a study made before studies recorded their evidence (its trials scored by older rules) is not joined
    (db,) = home.rglob("a1/study.db")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM study_user_attributes WHERE key = 'evidence_fingerprint'")
    assert tbot(run_args(home, space_file, planted, "--study", "a1")) == 2
    assert "study a1.fold1 was made by an earlier version that did not record" in capsys.readouterr().err

    # a run on another configuration (--env-file) files evidence for that one: approve names what differs
    other = tmp_path / "other.env_bot"
    other.write_text(replace_values(read_env_text(BotHome(home)), {"MIN_PRICE": "2.5"}), encoding="utf-8")
    assert tbot(run_args(home, space_file, planted, "--env-file", str(other), "--min-dsr", "0.99")) == 0
    out = capsys.readouterr().out
    assert "ran on other values than the live config's for MIN_PRICE (--env-file)" in out
    (run_id,) = [f.stem for f in (home / "env_bot.versioned" / "proposals").glob("*.json") if f.stem != "a1"]
    before = read_env_text(BotHome(home))
    assert tbot(["optimize", "approve", run_id, "--home", str(home)]) == 2
    assert "evaluated other values than the live config's for MIN_PRICE" in capsys.readouterr().err
    assert read_env_text(BotHome(home)) == before


def test_an_older_study_is_refused_by_every_worker_without_a_traceback(
    shaken_out_home: Path, space_file: Path, planted: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With --jobs 2 the forked worker meets the same refusal as the command: it leaves the message to it (it
    printed a traceback of its own before)."""
    home = shaken_out_home
    assert tbot(run_args(home, space_file, planted, "--study", "old")) == 0
    (db,) = home.rglob("old/study.db")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM study_user_attributes WHERE key = 'evidence_fingerprint'")
    capfd.readouterr()
    assert tbot(run_args(home, space_file, planted, "--study", "old", "--jobs", "2")) == 2
    err = capfd.readouterr().err
    assert "study old.fold1 was made by an earlier version" in err and "Traceback" not in err


def test_a_worker_that_stops_on_its_own_error_is_named_and_the_study_completes(
    shaken_out_home: Path,
    space_file: Path,
    planted: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error only a forked worker meets (its own storage connection, say) was a traceback, then (briefly)
    silence; it is one named line, the command notes it, and the other worker takes the trials."""
    from tbot_bot.errors import LedgerError
    from tbot_bot.optimizer import runner

    real = runner._work

    def second_worker_fails(cfg, req, prep, position, storage):  # type: ignore[no-untyped-def]
        if position == 1:
            raise LedgerError("cannot reach the study's storage (test)")
        return real(cfg, req, prep, position, storage)

    monkeypatch.setattr(runner, "_work", second_worker_fails)  # the forked worker inherits it
    capfd.readouterr()
    assert tbot(run_args(shaken_out_home, space_file, planted, "--study", "w", "--jobs", "2")) == 0
    captured = capfd.readouterr()
    assert (
        "optimizer worker 1: " in captured.err and "cannot reach the study's storage (test)" in captured.err
    )
    assert "Traceback" not in captured.err
    assert "1 of 2 workers stopped on an error (above); the others took their trials" in captured.out


def test_the_sample_has_no_significant_winner_so_no_improvement_is_filed(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled sample (43 sessions: one fold of 21 + 22) with the home's own float: the run says "keep the
    current settings" and why; its record cannot be approved and is not an improvement the tuner reads."""
    home = provisioned_home
    space = home / "space.toml"
    space.write_text("[OPEN_TRAILING_STOP_PCT]\nvalues = [0.01, 0.03]\n", encoding="utf-8")
    capsys.readouterr()
    argv = ["optimize", "run", "--strategy", "open", "--algorithm", "grid_search", "--start", "2011-01-03",
            "--end", "2011-03-31", "--data-source", str(SAMPLE), "--space", str(space), "--home", str(home),
            "--no-progress"]  # fmt: skip
    assert tbot(argv) == 0
    out = capsys.readouterr().out
    run = only_run_dir(home)
    best = json.loads((run / "best.json").read_text())
    verdict = best["verdict"]
    # the home's float (its float ledger), as `tbot backtest` uses, not 100,000
    assert Decimal(best["float"]) == backtest_float(None, BotHome(home)) == Decimal("2500")
    assert "float 2,500.00" in out and best["walk_forward"] == 1  # auto: the data allow one fold
    assert verdict["recommend"] is False and not all(c["passed"] for c in verdict["checks"])
    assert verdict["statement"].startswith("Keep the current settings: the best candidate, trial ")
    failed = [c["text"] for c in verdict["checks"] if not c["passed"]]
    assert failed and all(text in verdict["statement"] for text in failed)
    assert verdict["statement"] in out and "proposal:" not in out and "no improvement to approve" in out
    assert html.escape(verdict["statement"]) in (run / "report.html").read_text()
    assert "No proposal was filed" in (run / "report.html").read_text()
    record = json.loads((home / "env_bot.versioned" / "proposals" / f"{run.name}.json").read_text())
    assert record["status"] == "keep_current" and record["verdict"] == verdict
    assert tbot(["optimize", "show", run.name, "--home", str(home)]) == 0
    assert verdict["statement"] in capsys.readouterr().out
    before = load_settings(BotHome(home))
    assert tbot(["optimize", "approve", run.name, "--home", str(home)]) == 2
    assert "filed no improvement, so there is nothing to approve" in capsys.readouterr().err
    assert load_settings(BotHome(home)) == before
    from tbot_bot.optimizer.proposals import improvements, list_proposals

    assert list_proposals(BotHome(home)) and improvements(list_proposals(BotHome(home))) == []


def test_too_few_trades_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """41 sessions (two blocks of 20) in which the price never leaves its opening range: no trade, no Sharpe."""
    data = tmp_path / "flat"
    planted_edge_bars(data, 41, edge=False)
    argv = ["optimize", "run", "--strategy", "open", "--start", "2011-01-04", "--end", "2011-03-02",
            "--data-source", str(data), "--home", str(tmp_path), "--no-progress"]  # fmt: skip
    assert tbot(argv) == 2
    err = capsys.readouterr().err
    assert "the current settings make 0 trades in 2011-01-04..2011-03-02" in err
    assert "needs at least 30" in err and "Traceback" not in err
    assert not (tmp_path / "backtest_results").exists()  # refused before anything was written


def test_verdict_needs_a_majority_of_folds_a_higher_mean_and_a_significant_dsr() -> None:
    cand = {"fold": 3, "trial": 7, "is_start": "2011-01-03", "is_end": "2011-03-01", "params": {"K": 1},
            "fold_objectives": [2.0, -1.0, 0.5]}  # fmt: skip
    significant = {"dsr": 0.97}
    ok = decide("sharpe", cand, [1.0, -2.0, 0.7], significant)
    # 2 of 3 folds won (fold 3: 0.5 < 0.7), mean 0.5 > -0.1, DSR 0.97 >= 0.95
    assert ok["recommend"] is True and [f["won"] for f in ok["folds"]] == [True, True, False]
    assert ok["statement"].startswith(
        "Recommend trial 7, the in-sample best of fold 3 (2011-01-03..2011-03-01)"
    )
    one_of_three = decide("sharpe", cand, [3.0, -2.0, 0.7], significant)
    assert one_of_three["recommend"] is False and "in 1 of 3 folds (needs 2)" in one_of_three["statement"]
    assert one_of_three["statement"].startswith("Keep the current settings")
    # a mean that only ties is not higher
    tie = decide("pnl", {**cand, "fold_objectives": [2.0, 2.0, 2.0]}, [1.0, 1.0, 4.0], significant)
    assert (
        tie["recommend"] is False
        and "mean out-of-sample pnl 2 is not above the current settings' 2" in tie["statement"]
    )
    # the DSR threshold is a parameter (--min-dsr); a DSR that cannot be computed never passes
    assert decide("sharpe", cand, [1.0, -2.0, 0.7], significant, 0.99)["recommend"] is False
    assert "6.4e-06 is below 0.95" in decide("sharpe", cand, [1.0, -2.0, 0.7], {"dsr": 6.4e-06})["statement"]
    assert decide("sharpe", cand, [1.0, -2.0, 0.7], {"dsr": None})["recommend"] is False
    assert decide("sharpe", None, [], None)["statement"].startswith("Keep the current settings: no trial")
    same = decide("sharpe", cand, [2.0, -1.0, 0.5], significant, same_as_current=True)
    assert same["recommend"] is False and same["statement"].endswith("has the current settings' values.")
    assert [sig4(x) for x in (1234.5678, 0.000064321, None, 3)] == ["1235", "6.432e-05", "n/a", "3"]


def test_ctrl_c_leaves_the_study_resumable(
    tmp_path: Path, space_file: Path, planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = PreparedData.evaluate_spans

    def interrupted(self: PreparedData, params: dict, *spans: tuple) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # the third trial
            raise KeyboardInterrupt
        return real(self, params, *spans)

    monkeypatch.setattr(PreparedData, "evaluate_spans", interrupted)
    assert tbot(run_args(tmp_path, space_file, planted, "--study", "cc")) == 130
    monkeypatch.setattr(PreparedData, "evaluate_spans", real)
    assert tbot(run_args(tmp_path, space_file, planted, "--study", "cc")) == 0
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
        "--end", "2011-03-31", "--walk-forward", "1", "--trials", "5", "--data-source", str(SAMPLE),
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
    # history and slices (and the Pareto front), drawn by the chart worker and embedded in the report
    images = (run / "report.html").read_text().count("data:image/png;base64,")
    assert images == (3 if algorithm == "genetic" else 2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "the sharpe objective needs at least 20 sessions per fold"),  # January: 20 sessions, 1 fold
        (["--end", "2011-03-31", "--walk-forward", "3"], "(80 sessions for 4 blocks)"),
        (
            ["--end", "2011-03-31", "--objective", "calmar", "--walk-forward", "40"],
            "(820 sessions for 41 blocks)",
        ),
        (["--min-dsr", "1.5"], "--min-dsr must be above 0 and below 1"),
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


def test_a_sqlite_file_of_something_else_is_never_a_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--storage naming the bot's ledger (or any SQLite file without Optuna's tables) is refused by name, and the
    file is left byte for byte as it was (Optuna added its 13 tables to the ledger before)."""
    import hashlib
    import sqlite3

    ledger = tmp_path / "ledger.db"
    with sqlite3.connect(ledger) as conn:
        conn.execute("CREATE TABLE transactions (fitid TEXT PRIMARY KEY, amount INTEGER)")
        conn.execute("INSERT INTO transactions VALUES ('F1', 100)")
    before = hashlib.sha256(ledger.read_bytes()).hexdigest()
    argv = ["optimize", "run", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-03-31",
            "--data-source", str(SAMPLE), "--home", str(tmp_path), "--no-progress", "--trials", "1",
            "--storage", f"sqlite:///{ledger}"]  # fmt: skip
    assert tbot(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"{ledger} is a SQLite database of something else (tables transactions)" in err
        and "Traceback" not in err
    )
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == before
    # the refused run leaves no empty run folder behind (it was made before the storage was opened)
    tuning = tmp_path / "backtest_results" / "strategy_tuning"
    assert not tuning.exists() or not any(tuning.iterdir())


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
    # within one key too: the value that is not whole and the one out of range, together (a fix revealed the next)
    bad.write_text("[OPEN_MONITORING_TIME]\nvalues = [10, 20.5, -3]\n")
    assert tbot(argv) == 2
    err = capsys.readouterr().err
    assert (
        "2 problems" in err
        and "20.5 is not an integer" in err
        and "values [-3] outside the allowed range" in err
    )


def test_a_space_table_in_two_forms_or_with_unknown_fields_is_refused(tmp_path: Path) -> None:
    from tbot_bot.errors import ConfigError
    from tbot_bot.optimizer.space import load_space

    mixed = tmp_path / "mixed.toml"
    mixed.write_text("[OPEN_MONITORING_TIME]\nvalues = [15, 30]\nlow = 10\nhigh = 40\nstep = 5\n")
    with pytest.raises(
        ConfigError, match=r"\[OPEN_MONITORING_TIME\] has both `values` and `low`/`high`/`step`"
    ):
        load_space("open", mixed)
    typo = tmp_path / "typo.toml"
    typo.write_text("[OPEN_MONITORING_TIME]\nvalue = [15, 30]\n")
    with pytest.raises(ConfigError, match=r"\[OPEN_MONITORING_TIME\] has value; a table holds `values`"):
        load_space("open", typo)


def test_window_timings_the_configuration_cannot_run_are_left_out_or_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The windows run one after another: an OPEN_MONITORING_TIME that runs OPEN past MID's start is refused by
    `tbot check`, so a study never scores it (its proposal could not be approved); one timing key loses the values,
    named; several keys whose combinations do not fit refuse the space."""
    from tbot_bot.errors import ConfigError
    from tbot_bot.optimizer.space import default_space, fit_to_windows, load_space

    settings = make_settings()
    # the default spaces fit the template's windows whole
    for strategy in ("open", "mid", "close"):
        assert fit_to_windows(default_space(strategy), settings) == (default_space(strategy), [])
    one = tmp_path / "one.toml"
    one.write_text(
        "[STRAT_OPEN_BUFFER]\nvalues = [0.001, 0.002]\n[OPEN_MONITORING_TIME]\nvalues = [15, 30, 45, 60]\n"
    )
    space, notes = fit_to_windows(load_space("open", one), settings)
    assert space.grid() == {"STRAT_OPEN_BUFFER": [0.001, 0.002], "OPEN_MONITORING_TIME": [15, 30]}
    assert [n.split(":")[0] for n in notes] == [
        "OPEN_MONITORING_TIME=45 left out of the space",
        "OPEN_MONITORING_TIME=60 left out of the space",
    ]
    assert "the open window runs to 10:45" in notes[0]
    # MID off: OPEN may hold until CLOSE starts
    assert fit_to_windows(load_space("open", one), make_settings(STRAT_MID_ENABLED="false"))[1] == []
    two = tmp_path / "two.toml"
    two.write_text("[OPEN_ANALYSIS_TIME]\nvalues = [20, 30]\n[OPEN_MONITORING_TIME]\nvalues = [20, 30]\n")
    with pytest.raises(
        ConfigError,
        match=r"OPEN_ANALYSIS_TIME=30, OPEN_MONITORING_TIME=30 cannot run .*runs to 10:40.*narrow.*\(1 combination of them",
    ):
        fit_to_windows(load_space("open", two), settings)
    # through the command: refused before anything is prepared, exit 2, no traceback
    argv = ["optimize", "run", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-31",
            "--data-source", str(SAMPLE), "--home", str(tmp_path), "--space", str(two)]  # fmt: skip
    assert tbot(argv) == 2
    assert "narrow the ranges of OPEN_ANALYSIS_TIME, OPEN_MONITORING_TIME" in capsys.readouterr().err
    # a MID breakout too short for ADX_PERIOD's first value (`tbot check` refuses it) is left out too (a diff review)
    mid = tmp_path / "mid.toml"
    mid.write_text("[MID_BREAKOUT_TIME]\nvalues = [5, 10, 20]\n")
    space, notes = fit_to_windows(load_space("mid", mid), make_settings(ADX_PERIOD=42))
    assert space.grid() == {"MID_BREAKOUT_TIME": [10, 20]}
    assert len(notes) == 1 and notes[0].startswith("MID_BREAKOUT_TIME=5 left out of the space")
    assert "ADX_PERIOD=42 (its first value needs 84 bars; at most 40)" in notes[0]


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


SAMPLED_SPACE = """
[STRAT_OPEN_BUFFER]
low = 0.0005
high = 0.005
step = 0.0005

[OPEN_TRAILING_STOP_PCT]
values = [0.004, 0.006, 0.01, 0.015, 0.02]
"""


def _trial_rows(study: optuna.Study) -> list[tuple]:
    """What a study holds of its trials, times aside (a worker's and a reference run's differ there)."""
    return [
        (t.number, t.state, t.params, t.distributions, t.values, t.user_attrs, t.system_attrs)
        for t in study.get_trials()
    ]


@pytest.mark.parametrize("algorithm", ["bayesian", "genetic"])
def test_a_lone_sampled_worker_writes_in_batches_what_it_sampled_trial_by_trial(
    tmp_path: Path, planted: Path, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TPE and NSGA-II ask and tell on an in-memory copy, written in batches: the shared study ends up with the
    trials (parameters, values, metrics, sampler attributes, numbers) a plain Optuna loop over the storage
    writes with the same seed, and exactly `--trials` of them."""
    from tbot_bot.optimizer import study as study_mod
    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.study import StudyConfig, close_storage, make_objective, make_storage, open_study

    monkeypatch.setattr(study_mod, "_SYNC_TRIALS", 4)  # several batches in a short study
    space = tmp_path / "space.toml"
    space.write_text(SAMPLED_SPACE, encoding="utf-8")
    start, end = date.fromisoformat(PLANTED_START), date.fromisoformat(PLANTED_END)
    prep = PreparedData(make_settings(), "open", planted, start, end, seed=0)
    (fold,) = make_folds(prep.days, 1)
    trials = 14  # past TPE's ten random start-up trials

    def config(url: str) -> StudyConfig:
        return StudyConfig("s", "open", algorithm, "sharpe", load_space("open", space), trials, url, 5)

    batched_url, plain_url = f"sqlite:///{tmp_path}/batched.db", f"sqlite:///{tmp_path}/plain.db"
    batched = make_storage(batched_url)
    assert study_mod.run_fold(config(batched_url), prep, fold, batched, _NoBar()) == trials
    plain = make_storage(plain_url)
    reference = open_study(config(plain_url), fold, plain)
    reference.optimize(make_objective(config(plain_url), prep, fold), n_trials=trials)
    got = optuna.load_study(study_name="s.fold1", storage=batched)
    assert len(got.get_trials()) == trials
    assert _trial_rows(got) == _trial_rows(reference)
    # the same command again finds its trials there and evaluates none
    assert study_mod.run_fold(config(batched_url), prep, fold, batched, _NoBar()) == 0
    for storage in (batched, plain):
        close_storage(storage)


def test_ctrl_c_keeps_a_sampled_workers_finished_trials_and_the_command_resumes(
    tmp_path: Path, planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the seventh evaluation (batches of four): the six finished trials are in the study, the
    seventh is in none; running again evaluates the eight left."""
    from tbot_bot.optimizer import study as study_mod
    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.study import StudyConfig, close_storage, make_storage

    monkeypatch.setattr(study_mod, "_SYNC_TRIALS", 4)
    space = tmp_path / "space.toml"
    space.write_text(SAMPLED_SPACE, encoding="utf-8")
    start, end = date.fromisoformat(PLANTED_START), date.fromisoformat(PLANTED_END)
    prep = PreparedData(make_settings(), "open", planted, start, end, seed=0)
    (fold,) = make_folds(prep.days, 1)
    url = f"sqlite:///{tmp_path}/study.db"
    cfg = StudyConfig("c", "open", "bayesian", "sharpe", load_space("open", space), 14, url, 5)
    storage = make_storage(url)
    calls = [0]
    real = PreparedData.evaluate_spans

    def interrupted(self: PreparedData, *args: object) -> object:
        calls[0] += 1
        if calls[0] == 7:
            raise KeyboardInterrupt
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PreparedData, "evaluate_spans", interrupted)
    with pytest.raises(KeyboardInterrupt):
        study_mod.run_fold(cfg, prep, fold, storage, _NoBar())
    held = optuna.load_study(study_name="c.fold1", storage=storage).get_trials()
    assert [t.state for t in held] == [TrialState.COMPLETE] * 6
    assert study_mod.run_fold(cfg, prep, fold, storage, _NoBar()) == 8
    assert len(optuna.load_study(study_name="c.fold1", storage=storage).get_trials()) == 14
    close_storage(storage)


def test_a_batch_of_trials_is_written_as_optuna_writes_each(tmp_path: Path, new_york_time: None) -> None:
    """`_write_trials` writes the rows `Study.add_trials` writes: finite, infinite and failed (NaN) trials with
    parameters of three kinds, user and system attributes; every row of every trial table is compared (the
    PostgreSQL test does the same there)."""
    from optuna_rows import rows_both_ways

    rows = rows_both_ways(lambda name: f"sqlite:///{tmp_path}/{name}.db")
    assert rows["ours"] == rows["optuna"]
    assert len(rows["ours"]["trials"]) == 5 and any(r[3] == "FAIL" for r in rows["ours"]["trials"])


def test_two_local_sampled_workers_share_the_trial_target(tmp_path: Path, planted: Path) -> None:
    """`--jobs 2` with TPE: both workers write into one study, which holds at least `--trials` trials, every one
    finished and numbered once; the target is exceeded by at most the other worker's batch."""
    space = tmp_path / "space.toml"
    space.write_text(SAMPLED_SPACE, encoding="utf-8")
    argv = [
        "optimize", "run", "--strategy", "open", "--algorithm", "bayesian", "--start", PLANTED_START, "--end",
        PLANTED_END, "--walk-forward", "1", "--trials", "12", "--jobs", "2", "--data-source", str(planted),
        "--space", str(space), "--float", "100000", "--home", str(tmp_path), "--no-progress", "--seed", "3",
        "--study", "two",
    ]  # fmt: skip
    assert tbot(argv) == 0
    db = tmp_path / "backtest_results" / "strategy_tuning" / "two" / "study.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    trials = optuna.load_study(study_name="two.fold1", storage=storage).get_trials()
    storage.engine.dispose()
    # past the target by at most the batch the other worker held: a quarter of what was left when it last
    # looked (3 of 12), usually just the trial it had under way
    assert 12 <= len(trials) <= 15
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all("metrics" in t.user_attrs for t in trials)
    with sqlite3.connect(db) as conn:
        # Optuna's own reading keys trials by number: a number given twice would hide a trial
        counts = conn.execute("SELECT count(*), count(DISTINCT number) FROM trials").fetchone()
        # both registered (each samples with its own seed: --seed, then --seed + 1)
        joined = conn.execute("SELECT count(*) FROM study_system_attributes WHERE key LIKE 'tbot:worker:%'")
        assert counts == (len(trials), len(trials)) and joined.fetchone() == (2,)
        left = conn.execute("SELECT count(*) FROM study_system_attributes WHERE value_json = '\"left\"'")
        assert left.fetchone() == (2,)  # and both left when done (later workers size batches without them)


def _write_batches(url: str, worker: int, meet: Any) -> None:
    """Twenty batches of five finished trials, each marked with its worker and place (run in a forked process);
    each batch's first statement waits for the other worker's, so the two always write at once."""
    from sqlalchemy import event

    from tbot_bot.optimizer.study import _write_trials, close_storage, make_storage

    local = optuna.create_study()
    for i in range(100):
        trial = local.ask()
        trial.suggest_int("x", 0, 1000)
        trial.set_user_attr("mark", [worker, i])
        local.tell(trial, float(trial.params["x"]))
    done = local.get_trials()
    storage = make_storage(url)
    study = optuna.load_study(study_name="race", storage=storage)

    def together(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT STUDIES"):  # the batch's first statement
            meet.wait(timeout=60)

    event.listen(storage.engine, "before_cursor_execute", together)
    for b in range(20):
        _write_trials(study, done[b * 5 : b * 5 + 5])
    close_storage(storage)


def test_two_workers_writing_batches_at_once_number_every_trial_once(tmp_path: Path) -> None:
    """Two processes write batches into one SQLite study at the same time: 200 trials numbered 0..199 once each,
    every trial with its own parameter, value and attribute (nothing attached to another worker's trial)."""
    import multiprocessing

    from tbot_bot.optimizer.study import close_storage, make_storage

    url = f"sqlite:///{tmp_path}/race.db"
    storage = make_storage(url)
    optuna.create_study(storage=storage, study_name="race")
    storage.engine.dispose()
    ctx = multiprocessing.get_context("fork")
    meet = ctx.Barrier(2)
    workers = [ctx.Process(target=_write_batches, args=(url, w, meet)) for w in (1, 2)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join(timeout=120)
            assert w.exitcode == 0
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
    trials = optuna.load_study(study_name="race", storage=storage).get_trials()
    close_storage(storage)
    assert sorted(t.number for t in trials) == list(range(200))
    assert all(t.value == t.params["x"] for t in trials)
    marks = sorted(tuple(t.user_attrs["mark"]) for t in trials)
    assert marks == sorted((w, i) for w in (1, 2) for i in range(100))
    # each worker's trials keep their order among themselves
    for w in (1, 2):
        mine = [
            t.user_attrs["mark"][1]
            for t in sorted(trials, key=lambda t: t.number)
            if t.user_attrs["mark"][0] == w
        ]
        assert mine == list(range(100))


class _NoBar:
    def update(self, n: int) -> None:
        pass


def test_two_local_jobs_on_sqlite_share_the_grid(
    tmp_path: Path, space_file: Path, planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tbot(run_args(tmp_path, space_file, planted, "--study", "jobs", "--jobs", "2")) == 0
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path}/backtest_results/strategy_tuning/jobs/study.db"
    )
    for fold in (1, 2):
        study = optuna.load_study(study_name=f"jobs.fold{fold}", storage=storage)
        points = [tuple(sorted(t.params.items())) for t in study.get_trials()]
        assert len(points) == 4 and len(set(points)) == 4  # every grid point once, none twice, none failed
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials())
    storage.engine.dispose()


def test_the_workers_start_on_studies_already_filled(
    tmp_path: Path, space_file: Path, planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local run makes every fold's study and queues its grid before it forks its workers: a worker that found
    the queue still being filled waited for it (and joined a short study a fifth of a second late)."""
    from tbot_bot.optimizer import runner
    from tbot_bot.optimizer import study as study_mod

    seen = tmp_path / "seen.txt"
    real_child = runner._child

    def child(cfg: Any, req: Any, prep: Any, position: int, storage: Any, *rest: Any) -> None:
        # in the forked worker, before it opens anything: what the storage holds
        names = {s.study_name: s.user_attrs for s in optuna.get_all_study_summaries(storage)}
        seen.write_text(json.dumps({n: study_mod.GRID_READY_ATTR in a for n, a in sorted(names.items())}))
        real_child(cfg, req, prep, position, storage, *rest)

    monkeypatch.setattr(runner, "_child", child)
    assert tbot(run_args(tmp_path, space_file, planted, "--study", "ready", "--jobs", "2")) == 0
    assert json.loads(seen.read_text()) == {"ready.fold1": True, "ready.fold2": True}


def test_the_charts_come_after_the_numbers_and_the_command_never_imports_matplotlib(
    tmp_path: Path, space_file: Path, planted: Path
) -> None:
    code = (
        "import sys\nfrom rigd_tbot.cli import main\n"
        f"rc = main({run_args(tmp_path, space_file, planted)!r})\n"
        "print(rc, 'matplotlib' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False"  # drawn by the chart worker, not the command
    run = only_run_dir(tmp_path)
    numbers = max((run / n).stat().st_mtime_ns for n in ("trials.csv", "folds.csv", "best.json"))
    charts = [(run / n).stat().st_mtime_ns for n in ("optimization_history.png", "param_slices.png")]
    assert numbers <= min(charts) and max(charts) <= (run / "report.html").stat().st_mtime_ns
    assert (run / "report.html").read_text().count("data:image/png;base64,") == 2


@pytest.mark.parametrize("fork", [True, False])
def test_a_failing_chart_leaves_the_numbers_and_a_report_that_says_so(
    fork: bool, tmp_path: Path, space_file: Path, planted: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from tbot_bot.backtest import chart_worker
    from tbot_bot.optimizer import plots

    def broken(*_args: object) -> Path:
        raise RuntimeError("renderer exploded")

    # patched before the chart worker forks, so the worker draws with it (or this process, without fork)
    monkeypatch.setattr(plots, "plot_slices", broken)
    if not fork:
        monkeypatch.setattr(chart_worker.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    capsys.readouterr()
    assert tbot(run_args(tmp_path, space_file, planted)) == 0
    run = only_run_dir(tmp_path)
    assert all((run / n).stat().st_size > 0 for n in ("trials.csv", "folds.csv", "best.json"))
    assert len(list(csv.DictReader((run / "trials.csv").read_text().splitlines()))) == 8
    report = (run / "report.html").read_text()
    assert "<img" not in report and "Charts missing" in report and "RuntimeError: renderer exploded" in report
    assert json.loads((run / "best.json").read_text())["verdict"]["statement"] in html.unescape(report)
    assert not (run / "param_slices.png").exists()
    assert (
        "note: the charts were not drawn (RuntimeError: renderer exploded); trials.csv"
        in capsys.readouterr().out
    )


def test_the_grid_is_queued_as_enqueue_trial_queues_it(tmp_path: Path) -> None:
    """The bulk queue (two inserts) leaves the rows Optuna's own enqueue_trial leaves: same numbers after the
    study's existing trials, WAITING, the point as fixed_params."""
    from tbot_bot.optimizer.study import _enqueue_all, close_storage, make_storage

    points = [{"STRAT_OPEN_BUFFER": 0.001 * i, "OPEN_MONITORING_TIME": 15 + i % 3} for i in range(1, 30)]
    queued = []
    for bulk in (True, False):
        # the bulk queue into a study file copied from the kept empty one; the other created by Optuna itself
        template = tmp_path / "templates" if bulk else None
        storage = make_storage(f"sqlite:///{tmp_path}/{bulk}.db", template_dir=template)
        study = optuna.create_study(storage=storage, study_name="q")
        study.enqueue_trial({"STRAT_OPEN_BUFFER": 0.5})  # numbering continues after what the study holds
        if bulk:
            _enqueue_all(study, points)
        else:
            for point in points:
                study.enqueue_trial(point)
        queued.append([(t.number, t.state, t.system_attrs, t.params) for t in study.get_trials()])
        close_storage(storage)
    assert len(queued[0]) == 30 and queued[0] == queued[1]
    assert [p.name for p in (tmp_path / "templates").iterdir()] == [
        f"empty-study-optuna-{optuna.__version__}.db"
    ]


@pytest.fixture
def new_york_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time five hours off UTC: Optuna 5 keeps trial times as naive UTC, so a time written in
    local time by a statement that bypasses its ORM would show."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_grid_trial_is_recorded_as_optunas_own_calls_record_it(tmp_path: Path, new_york_time: None) -> None:
    """`_record` (one transaction of plain statements) leaves the rows set_trial_param, set_trial_user_attr and
    set_trial_state_values leave: parameters with their distributions, the metrics attribute, the value, the
    state; a NaN objective fails the trial without a value, as Study.tell does."""
    import sqlite3

    from tbot_bot.optimizer.study import _claim, _enqueue_all, _rdb, _record, close_storage, make_storage

    dists = {
        "STRAT_OPEN_BUFFER": optuna.distributions.CategoricalDistribution([0.001, 0.002, 0.003]),
        "OPEN_MONITORING_TIME": optuna.distributions.CategoricalDistribution([15, 30]),
    }
    points = [{"STRAT_OPEN_BUFFER": 0.002, "OPEN_MONITORING_TIME": 30}, {"STRAT_OPEN_BUFFER": 0.003,
              "OPEN_MONITORING_TIME": 15}, {"STRAT_OPEN_BUFFER": 0.001, "OPEN_MONITORING_TIME": 15}]  # fmt: skip
    results = [1.25, float("nan"), float("inf")]
    rows = []
    for ours in (True, False):
        url = f"sqlite:///{tmp_path}/{ours}.db"
        storage = make_storage(url)
        study = optuna.create_study(storage=storage, study_name="r")
        _enqueue_all(study, points)
        rdb = _rdb(storage)
        for result in results:
            metrics = {"is": {"sharpe": result}, "oos": {}, "is_sharpe_pp": 0.1}
            if ours:
                claimed = _claim(study)
                assert claimed is not None
                trial_id, point = claimed
                _record(rdb, trial_id, point, dists, metrics, result)  # type: ignore[arg-type]
            else:  # Optuna's own: take the waiting trial, read its grid point, beat once, then the three writes
                popped = study._pop_waiting_trial_id()
                assert popped is not None
                trial_id = popped
                point = rdb.get_trial_system_attrs(trial_id)["fixed_params"]
                rdb.record_heartbeat(trial_id)
                for key, value in point.items():
                    rdb.set_trial_param(trial_id, key, dists[key].to_internal_repr(value), dists[key])
                rdb.set_trial_user_attr(trial_id, "metrics", metrics)
                failed = result != result
                rdb.set_trial_state_values(
                    trial_id, TrialState.FAIL if failed else TrialState.COMPLETE, None if failed else [result]
                )
        trials = optuna.load_study(study_name="r", storage=storage).get_trials()
        close_storage(storage)
        # read back (naive local) as the moment they were written
        now = datetime.now()  # noqa: DTZ005 - Optuna shows naive local times
        assert all(abs(t.datetime_start - now) < timedelta(minutes=5) for t in trials)  # type: ignore[operator]
        assert all(abs(t.datetime_complete - now) < timedelta(minutes=5) for t in trials)  # type: ignore[operator]
        with sqlite3.connect(tmp_path / f"{ours}.db") as db:
            tables = [
                db.execute(
                    "SELECT t.number, t.state, t.datetime_complete IS NOT NULL, p.param_name, p.param_value,"
                    " p.distribution_json FROM trials t JOIN trial_params p USING (trial_id)"
                    " ORDER BY t.number, p.param_name"
                ).fetchall(),
                db.execute(
                    "SELECT t.number, a.key, a.value_json FROM trials t JOIN trial_user_attributes a"
                    " USING (trial_id) ORDER BY t.number"
                ).fetchall(),
                db.execute(
                    "SELECT t.number, v.objective, v.value, v.value_type FROM trials t JOIN trial_values v"
                    " USING (trial_id) ORDER BY t.number"
                ).fetchall(),
                db.execute(
                    "SELECT t.number, t.datetime_start IS NOT NULL, count(h.trial_heartbeat_id) FROM trials t"
                    " LEFT JOIN trial_heartbeats h USING (trial_id) GROUP BY t.number ORDER BY t.number"
                ).fetchall(),
            ]
        # the metrics as JSON text: a NaN read back is never equal to another NaN
        seen = [(t.number, t.state, t.params, t.values, json.dumps(t.user_attrs["metrics"])) for t in trials]
        rows.append((tables, seen))
    assert rows[0] == rows[1]
    (tables, seen) = rows[0]
    assert [s[1] for s in seen] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert (
        seen[0][2] == points[0] and seen[0][3] == [1.25] and seen[1][3] is None and seen[2][3] == [math.inf]
    )
    assert len(tables[0]) == 6 and len(tables[1]) == 3 and len(tables[2]) == 2
    assert tables[3] == [(0, 1, 1), (1, 1, 1), (2, 1, 1)]  # each trial started, with its one first heartbeat


def test_a_grid_trial_finished_meanwhile_or_a_changed_space_is_refused(tmp_path: Path) -> None:
    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.study import (
        StudyConfig,
        _check_distributions,
        _claim,
        _enqueue_all,
        _rdb,
        _record,
        _run_grid,
        close_storage,
        make_storage,
    )
    from tbot_bot.optimizer.walk_forward import Fold

    storage = make_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(storage=storage, study_name="r")
    _enqueue_all(study, [{"STRAT_OPEN_BUFFER": 0.002}, {"STRAT_OPEN_BUFFER": 0.003}])
    rdb = _rdb(storage)
    dists = {"STRAT_OPEN_BUFFER": optuna.distributions.CategoricalDistribution([0.002, 0.003])}
    first, second = _claim(study), _claim(study)
    assert first is not None and second is not None
    _record(rdb, first[0], first[1], dists, {}, 1.0)
    rdb.set_trial_state_values(second[0], TrialState.FAIL)  # failed as stale by another worker
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError, match="no longer running"):
        _record(rdb, second[0], second[1], dists, {}, 2.0)
    assert study.get_trials()[1].params == {}  # nothing of the refused record was written
    _check_distributions(rdb, study._study_id, dists)  # the space the study was run with
    other = {"STRAT_OPEN_BUFFER": optuna.distributions.CategoricalDistribution([0.004, 0.005])}
    with pytest.raises(ValueError, match="does not support dynamic value space"):
        _check_distributions(rdb, study._study_id, other)
    # the grid loop checks before it claims anything (no evaluation needed to be refused)
    space = tmp_path / "other.toml"
    space.write_text("[STRAT_OPEN_BUFFER]\nvalues = [0.004, 0.005]\n", encoding="utf-8")
    cfg = StudyConfig("r", "open", "grid_search", "sharpe", load_space("open", space), None, "", 0, 1)
    with pytest.raises(ValueError, match="does not support dynamic value space"):
        _run_grid(cfg, None, Fold(1, (), ()), study, None)  # type: ignore[arg-type]
    close_storage(storage)


def test_a_trial_taken_for_dead_meanwhile_is_left_to_its_new_claimer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another worker failed this worker's slow trial as stale (and queued its point again): the record is
    refused, a warning says so, and the worker goes on with the next grid point instead of ending its fold."""
    import types

    from tbot_bot.optimizer import study as study_mod
    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.walk_forward import Fold

    space = tmp_path / "space.toml"
    space.write_text("[STRAT_OPEN_BUFFER]\nvalues = [0.002, 0.003]\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path}/s.db"
    cfg = study_mod.StudyConfig(
        "d", "open", "grid_search", "sharpe", load_space("open", space), None, url, 0, 1
    )
    storage = study_mod.make_storage(url)
    study = study_mod.open_study(cfg, Fold(1, (), ()), storage)
    rdb = study_mod._rdb(storage)
    evaluated: list[float] = []

    def evaluate_spans(params: dict[str, float], *_spans: object) -> tuple[object, object]:
        evaluated.append(params["STRAT_OPEN_BUFFER"])
        if len(evaluated) == 1:  # the first trial: another worker's sweep fails it while it runs
            (running,) = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            rdb.set_trial_state_values(running._trial_id, TrialState.FAIL)
        result = types.SimpleNamespace(objective=lambda _name: 1.5)
        return result, result

    monkeypatch.setattr(study_mod, "metrics_attr", lambda _ins, _oos: {"is": {}})
    prep = types.SimpleNamespace(evaluate_spans=evaluate_spans)
    progress = types.SimpleNamespace(update=lambda _n: None)
    with caplog.at_level("WARNING", logger="tbot.optimizer"):
        done = study_mod._run_grid(cfg, prep, Fold(1, (), ()), study, progress)  # type: ignore[arg-type]
    assert done == 1 and evaluated == [0.002, 0.003]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.get_trials()[0].params == {} and "not recorded" in caplog.text
    study_mod.close_storage(storage)


def test_defaults_come_from_the_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from helpers import make_settings

    from tbot_bot.optimizer.defaults import request_from_args

    settings = make_settings(OPTIMIZER_ALGORITHM="bayesian", OPTIMIZER_BACKTEST_LOOKBACK_DAYS=40)
    args = argparse.Namespace(
        strategy="open", algorithm=None, start=None, end=date(2011, 1, 14), data_source=None, objective="sharpe",
        walk_forward=1, trials=None, jobs=1, space=None, storage=None, study=None, out=None, seed=0,
        float_="100000", no_progress=True, stale_after=300, min_dsr=0.95,
    )  # fmt: skip
    home = BotHome(tmp_path)
    req = request_from_args(args, home, settings)
    assert req.data_source == SAMPLE and "using the bundled sample" in capsys.readouterr().err
    assert req.algorithm == "bayesian" and req.start == date(2010, 11, 18)  # 40 sessions ending on the 14th
    from tbot_bot.errors import ConfigError

    with pytest.raises(
        ConfigError, match="OPTIMIZER_BACKTEST_LOOKBACK_DAYS"
    ):  # fewer can never make one fold
        make_settings(OPTIMIZER_BACKTEST_LOOKBACK_DAYS=39)
    cache = tmp_path / "data" / "cache" / "bars"
    cache.mkdir(parents=True)
    (cache / "bars_2011-01-14.csv.gz").write_bytes(b"")
    assert request_from_args(args, home, settings).data_source == cache


def _claimed_by_a_killed_worker(
    home: Path, study_name: str, space_file: Path, *, stale_after: int
) -> tuple[str, int]:
    """Study `study_name` of fold 1 in the home's results, one grid point claimed by a worker that then died
    (SIGKILL: no handler runs, the trial stays RUNNING with its first heartbeat): its storage URL and trial id."""
    from tbot_bot.optimizer.space import load_space
    from tbot_bot.optimizer.study import StudyConfig, _claim, close_storage, make_storage, open_study
    from tbot_bot.optimizer.walk_forward import Fold

    run_dir = home / "backtest_results" / "strategy_tuning" / study_name
    run_dir.mkdir(parents=True)
    url = f"sqlite:///{run_dir}/study.db"
    cfg = StudyConfig(
        study_name, "open", "grid_search", "sharpe", load_space("open", space_file), None, url, 0, stale_after
    )
    storage = make_storage(url, stale_after)
    try:
        got = _claim(open_study(cfg, Fold(1, (), ()), storage))
    finally:
        close_storage(storage)
    assert got is not None
    return url, got[0]


def test_a_killed_workers_trial_is_queued_again(tmp_path: Path, space_file: Path, planted: Path) -> None:
    """A worker claims a grid point and dies (SIGKILL: no handler runs). After --stale-after seconds the next
    worker fails that trial and queues its parameters again: the grid ends complete, each point done once."""
    import sqlite3
    from contextlib import closing

    from tbot_bot.optimizer.study import close_storage, make_storage

    url, claimed = _claimed_by_a_killed_worker(tmp_path, "kill", space_file, stale_after=1)
    # the dead worker's last beat, ten seconds ago (instead of waiting out --stale-after)
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db, db:
        assert (
            db.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-10 seconds')").rowcount
            == 1
        )
    assert tbot(run_args(tmp_path, space_file, planted, "--study", "kill", "--stale-after", "1")) == 0
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
    # --stale-after 1 beats every second, as long as the grace period: one late beat on a loaded machine would
    # look dead; five beats a second keep the test about the keeping, not the machine's timing
    storage.heartbeat_interval = 0.2
    study = open_study(cfg, Fold(1, (), ()), storage)
    first, second = _claim(study), _claim(study)
    assert first is not None and second is not None
    # each claim records one beat at the start; `silent` gets nothing more (a killed worker)
    beating, silent = first[0], second[0]
    with trial_heartbeat(storage, beating, recorded=True):
        time.sleep(2.5)  # a trial longer than the grace period
        other = make_storage(url, 1)  # a second worker starting its fold sweeps stale trials
        requeue_stale(optuna.load_study(study_name="slow.fold1", storage=other))
        close_storage(other)
    states = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
    assert states[beating] == optuna.trial.TrialState.RUNNING
    assert states[silent] == optuna.trial.TrialState.FAIL
    close_storage(storage)


def test_readme_example_states_what_the_verdict_says_for_its_numbers() -> None:
    """The README's optimizer example is a run's printed verdict: fed its own numbers, `decide` says exactly the
    same, and a deflated Sharpe below the threshold is never presented as a win."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Strategy optimizer\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n")[3]  # the second fenced block: the example's output
    statement = next(line for line in block.splitlines() if line.startswith(("Keep", "Recommend")))
    num = r"(-?[0-9.]+(?:e[-+][0-9]+)?)"
    won, of = map(int, re.search(r"in (\d+) of (\d+) folds", block).groups())  # type: ignore[union-attr]
    mine, theirs = map(
        float, re.search(rf"sharpe {num} is (?:not )?above the current settings' {num}", block).groups()
    )  # type: ignore[union-attr]
    dsr = float(re.search(rf"deflated Sharpe probability {num}", block).group(1))  # type: ignore[union-attr]
    label = re.search(r"(trial \d+, the in-sample best of fold (\d+) \((\S+)\.\.(\S+)\))", statement)
    assert label is not None and of == 1
    cand = {"fold": int(label.group(2)), "trial": int(label.group(1).split()[1].rstrip(",")),
            "is_start": label.group(3), "is_end": label.group(4), "params": {}, "fold_objectives": [mine]}  # fmt: skip
    # the README's run: the in-sample best is the current settings themselves (it says so instead of the checks)
    same = "has the current settings' values" in statement
    verdict = decide("sharpe", cand, [theirs], {"dsr": dsr}, same_as_current=same)
    assert [c["passed"] for c in verdict["checks"]][0] == (won == 1)
    assert verdict["statement"] == statement
    assert dsr < 0.95 and statement.startswith("Keep the current settings")


def test_a_study_file_another_worker_made_is_never_copied_over(tmp_path: Path) -> None:
    """Two runs of the same study starting together: the second finds the file the first made and keeps it."""
    from tbot_bot.optimizer.study import _from_template

    template = tmp_path / "templates"
    assert _from_template(tmp_path / "first.db", template) is True
    held = tmp_path / "held.db"
    held.write_bytes(b"a study another worker has open")
    assert _from_template(held, template) is False
    assert held.read_bytes() == b"a study another worker has open"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.db", "held.db", "templates"]  # no copy left


def test_the_cache_key_covers_the_code_of_the_cached_indicators() -> None:
    """The session indicators cached beside a preparation: a change to their code must miss the cache."""
    import inspect

    from tbot_bot.enhancements import adx_filter, bollinger_confluence
    from tbot_bot.optimizer import prep_cache
    from tbot_bot.strategy import signals

    package = Path(prep_cache.__file__).resolve().parents[1]
    for made_by in (signals.session_vwap, adx_filter.wilder_adx, bollinger_confluence.bollinger_bands):
        source = Path(inspect.getfile(made_by)).resolve().relative_to(package).as_posix()
        assert source in prep_cache._ALSO_BUILT_BY


def test_a_key_another_window_reads_is_named_before_approval() -> None:
    """STRAT_OPEN_BUFFER is OPEN's breakout buffer and CLOSE's continuation buffer: an OPEN proposal changing
    it changes CLOSE's trading, for which the OPEN study has no evidence."""
    from tbot_bot.optimizer.runner import other_windows

    s = make_settings()
    assert s.STRAT_CLOSE_ENABLED
    (warning,) = other_windows(s, "open", {"STRAT_OPEN_BUFFER": s.STRAT_OPEN_BUFFER + 0.001})
    assert warning.startswith("STRAT_OPEN_BUFFER is read by the CLOSE window too")
    # the same value changes nothing; a key only OPEN reads warns of nothing; a disabled window is not traded
    assert other_windows(s, "open", {"STRAT_OPEN_BUFFER": s.STRAT_OPEN_BUFFER}) == []
    assert other_windows(s, "open", {"OPEN_TRAILING_STOP_PCT": 0.03}) == []
    off = make_settings(STRAT_CLOSE_ENABLED="false")
    assert other_windows(off, "open", {"STRAT_OPEN_BUFFER": off.STRAT_OPEN_BUFFER + 0.001}) == []


def test_operations_keys_are_read_by_no_evaluation_code() -> None:
    """The optimizer's evidence leaves out OPERATIONS_KEYS (an alert channel or a log retention change must not
    make a new study, or refuse an approval): true only while no evaluation code reads them."""
    import re

    from tbot_bot.config.env_bot import OPERATIONS_KEYS, BotSettings

    root = Path(__file__).resolve().parents[1] / "tbot_bot"
    evaluation = [
        *sorted((root / "backtest").glob("*.py")), *sorted((root / "strategy").glob("*.py")),
        *sorted((root / "enhancements").glob("*.py")), root / "optimizer" / "prepared.py",
        root / "trading" / "risk_bot.py", root / "trading" / "fees.py", root / "screeners" / "finnhub_screener.py",
    ]  # fmt: skip
    evaluation.remove(root / "enhancements" / "tuning_tracker.py")  # the live tuning log, never a trial
    assert OPERATIONS_KEYS <= set(BotSettings.model_fields)
    for path in evaluation:
        text = path.read_text(encoding="utf-8")
        read = {k for k in OPERATIONS_KEYS if re.search(rf"\b{k}\b", text)}
        assert not read, f"{path.name} reads {sorted(read)}: remove them from OPERATIONS_KEYS"


def test_an_operations_key_change_neither_makes_a_new_study_nor_refuses_an_approval(
    shaken_out_home: Path, space_file: Path, planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = shaken_out_home
    assert tbot(run_args(home, space_file, planted, "--min-dsr", "0.99")) == 0
    run = only_run_dir(home)
    assert tbot(["config", "set", "LOG_RETENTION_DAYS=47", "--home", str(home)]) == 0
    capsys.readouterr()
    assert tbot(run_args(home, space_file, planted, "--min-dsr", "0.99")) == 0
    assert "(0 evaluated by this worker)" in capsys.readouterr().out and only_run_dir(home) == run
    # the same float written another way is the same study (its text made three studies of one float)
    assert tbot(run_args(home, space_file, planted, "--min-dsr", "0.99", "--float", "100000.0000")) == 0
    assert "(0 evaluated by this worker)" in capsys.readouterr().out and only_run_dir(home) == run
    assert tbot(["optimize", "approve", run.name, "--home", str(home)]) == 0


def _summary_of(stops: list[float], current: float, objective: Any) -> dict[str, Any]:
    """results.summarise over fake folds (one per stop, each fold's winner that OPEN_TRAILING_STOP_PCT) of 20
    sessions each: `objective(stop, blocks)` is a span's objective, `blocks` the fold numbers it covers."""
    from optuna.distributions import CategoricalDistribution

    from tbot_bot.optimizer.results import FoldResult, summarise
    from tbot_bot.optimizer.space import Param, SearchSpace
    from tbot_bot.optimizer.study import StudyConfig

    days = tuple(date(2011, 1, 3) + timedelta(days=i) for i in range(20 * (len(stops) + 1)))
    folds = make_folds(days, len(stops))
    block_of = {d: f.index for f in folds for d in f.out_of_sample}

    class Metrics:
        def __init__(self, stop: float, span: tuple[date, ...]) -> None:
            self.value = objective(stop, sorted({block_of[d] for d in span}))
            self.daily_returns = np.linspace(0.001, 0.003, len(span)) * self.value

        def objective(self, name: str) -> float:
            return float(self.value)

        def to_dict(self) -> dict[str, Any]:
            return {"objective": self.value}

    class Prep:
        def evaluate_spans(self, params: dict[str, Any], *spans: tuple[date, ...]) -> list[Metrics]:
            return [Metrics(params.get("OPEN_TRAILING_STOP_PCT", current), s) for s in spans]

        def baseline_spans(self, *spans: tuple[date, ...]) -> list[Metrics]:
            return self.evaluate_spans({}, *spans)

    values = tuple(sorted({*stops, current}))
    space = SearchSpace("open", (Param("OPEN_TRAILING_STOP_PCT", values),))
    dist = {"OPEN_TRAILING_STOP_PCT": CategoricalDistribution(values)}
    metrics = {"is": {"total_pnl": 1.0, "sessions": 20, "sharpe": 1.0}, "oos": {"total_pnl": 1.0, "sessions": 20,
               "sharpe": 1.0}, "is_sharpe_pp": 0.1}  # fmt: skip
    chosen = [
        optuna.trial.create_trial(
            params={"OPEN_TRAILING_STOP_PCT": v},
            distributions=dist,
            value=1.0,
            user_attrs={"metrics": metrics},
        )
        for v in stops
    ]
    results = [FoldResult(f, [t], t, []) for f, t in zip(folds, chosen, strict=True)]
    cfg = StudyConfig("t", "open", "grid_search", "sharpe", space, None, "sqlite://")
    return summarise(cfg, Prep(), results, {"OPEN_TRAILING_STOP_PCT": current}, 0.5)  # type: ignore[arg-type]


def test_a_candidate_is_never_scored_on_blocks_inside_its_own_in_sample_span() -> None:
    """Anchored folds: fold 2's in-sample span holds fold 1's out-of-sample block. Fold 2's winner shone there
    (where it was chosen) and lost on its only true out-of-sample block: it must be judged on that block alone,
    and the current settings on the same block."""
    # the 2% stop wins block 1 (inside fold 2's in-sample span), loses block 2
    table = {(0.02, 1): 9.0, (0.02, 2): -1.0, (0.005, 1): 1.0, (0.005, 2): 2.0}
    summary = _summary_of(
        [0.005, 0.02], 0.005, lambda stop, blocks: sum(table[(stop, b)] for b in blocks) / len(blocks)
    )
    by_fold = {c["fold"]: c for c in summary["candidates"]}
    assert by_fold[1]["oos_folds"] == [1, 2] and by_fold[1]["fold_objectives"] == [1.0, 2.0]
    # fold 2's winner: block 2 only; its leaked 9.0 on block 1 counts nowhere
    assert by_fold[2]["oos_folds"] == [2] and by_fold[2]["fold_objectives"] == [-1.0]
    # so the pick is fold 1's (mean 1.5), against the current settings (the same values) on blocks 1 and 2
    assert summary["pick"]["fold"] == 1 and summary["current"]["fold_objectives"] == [1.0, 2.0]
    assert summary["verdict"]["recommend"] is False
    assert [f["fold"] for f in summary["verdict"]["folds"]] == [1, 2]


def test_a_candidate_judged_on_fewer_than_half_the_blocks_is_never_the_pick() -> None:
    """Three folds: fold 3's winner is judged on block 3 alone. Its one lucky block (10.0) beat fold 1's winner
    judged on all three (mean 2.0); a best mean over one block is the luckiest, not the best."""
    table = {0.005: 2.0, 0.01: 1.0, 0.02: 10.0}

    def objective(stop: float, blocks: list[int]) -> float:
        return -5.0 if stop == 0.02 and blocks != [3] else table[stop]  # the lucky one shines on block 3 only

    summary = _summary_of([0.005, 0.01, 0.02], 0.01, objective)
    by_fold = {c["fold"]: c for c in summary["candidates"]}
    assert by_fold[3]["oos_folds"] == [3] and by_fold[3]["oos_objective"] == 10.0
    assert summary["pick"]["fold"] == 1 and summary["pick"]["oos_folds"] == [1, 2, 3]


def test_a_study_says_what_it_cannot_simulate_and_its_proposal_carries_it(
    shaken_out_home: Path, space_file: Path, planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SHORT_TYPE_OPEN=LongPut: the bars hold no option prices, so the study scores the bullish trades only while
    the live bot buys puts on the bearish signals; a backtest says so, the optimizer filed an approvable proposal
    without a word. The same notes (backtest_engine.simulation_notes) go with its results and its proposal."""
    from tbot_bot.backtest.backtest_engine import simulation_notes
    from tbot_bot.optimizer.proposals import list_proposals

    home = shaken_out_home
    assert tbot(["config", "set", "SHORT_TYPE_OPEN=LongPut", "--home", str(home)]) == 0
    capsys.readouterr()
    assert tbot(run_args(home, space_file, planted, "--min-dsr", "0.01")) == 0
    err = capsys.readouterr()
    assert "SHORT_TYPE_OPEN=LongPut: the bars hold no option prices" in err.out + err.err
    [proposal] = list_proposals(BotHome(home))
    assert any("SHORT_TYPE_OPEN=LongPut" in w for w in proposal["warnings"])
    # the other two cases, as every backtest and study words them
    settings = load_settings(BotHome(home))
    off = settings.model_copy(update={"STRAT_MID_ENABLED": False})
    assert simulation_notes(off, ["mid"])[0].startswith("the live bot does not run the mid window")
    drawn = settings.model_copy(
        update={"ENABLE_SLIPPAGE_MODEL": True, "SLIPPAGE_SIMULATION_TYPE": "randomized"}
    )
    assert any(n.startswith("SLIPPAGE_SIMULATION_TYPE=randomized") for n in simulation_notes(drawn, ["open"]))


def test_a_study_with_an_unfinished_trial_files_no_verdict(
    shaken_out_home: Path, space_file: Path, planted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker killed mid-trial leaves it RUNNING until --stale-after: the next run said "still running in other
    workers" with none alive, and filed a verdict on the grid without that point (a researcher's review)."""
    home = shaken_out_home
    _claimed_by_a_killed_worker(home, "half", space_file, stale_after=300)
    capsys.readouterr()
    assert tbot(run_args(home, space_file, planted, "--study", "half", "--min-dsr", "0.99")) == 0
    out = capsys.readouterr().out
    assert "some trials are unfinished" in out and "no proposal is filed until they are" in out
    assert not (home / "env_bot.versioned" / "proposals" / "half.json").exists()
