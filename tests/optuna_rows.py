"""Finished trials of every kind, written into a fresh study both by the optimizer's batch write and by Optuna's
own `Study.add_trials`, and the rows each leaves in Optuna's trial tables (to compare them, on any backend)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from sqlalchemy import text

from tbot_bot.optimizer.study import _write_trials, close_storage, make_storage

TABLES = ("trials", "trial_params", "trial_values", "trial_user_attributes", "trial_system_attributes")


def finished_trials() -> list[optuna.trial.FrozenTrial]:
    """Two objectives; finite, infinite and failed (NaN) trials; float, int and categorical parameters; a user
    attribute and a sampler's system attribute."""
    local = optuna.create_study(directions=["maximize", "minimize"])
    for value in ((1.5, 0.25), (math.inf, -2.0), (math.nan, 1.0), (-0.125, 3.0)):
        trial = local.ask()
        trial.suggest_float("x", 0.0005, 0.005, step=0.0005)
        trial.suggest_int("n", 1, 9)
        trial.suggest_categorical("c", ["a", "b", 0.25])
        trial.set_user_attr("metrics", {"is": {"sharpe": value[0]}, "oos": [1, 2]})
        local._storage.set_trial_system_attr(trial._trial_id, "NSGAIISampler:generation", 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Optuna's "The value nan is not acceptable": failed
            local.tell(trial, list(value))
    return local.get_trials()


def rows_both_ways(url_for: Callable[[str], str]) -> dict[str, dict[str, list[Any]]]:
    """{"ours": rows, "optuna": rows}: each writer's rows per table, after one trial already in the study."""
    done = finished_trials()
    writers: dict[str, Callable[[optuna.Study], object]] = {
        "ours": lambda study: _write_trials(study, done),
        "optuna": lambda study: study.add_trials(done),
    }
    rows = {}
    for name, write in writers.items():
        storage = make_storage(url_for(name))
        try:
            study = optuna.create_study(storage=storage, study_name="w", directions=["maximize", "minimize"])
            study.add_trial(done[0])  # numbered after a trial already there
            write(study)
            with storage.engine.connect() as conn:
                rows[name] = {
                    t: list(conn.execute(text(f"SELECT * FROM {t} ORDER BY 1")).all()) for t in TABLES
                }  # noqa: S608
        finally:
            close_storage(storage)
    return rows
