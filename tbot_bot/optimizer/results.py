"""From the fold studies to a recommendation: per fold the in-sample winner (or, for the genetic algorithm,
the Pareto-front trial with the best in-sample return per unit of drawdown), its out-of-sample score, the
walk-forward efficiency, the stability of the chosen values across folds and the deflated Sharpe ratio.

The candidate is chosen on OUT-OF-SAMPLE evidence only: every fold's in-sample winner is scored on the
out-of-sample blocks that come after its own in-sample span (its fold's block and the later folds' blocks; the
earlier blocks are inside that span, where it was chosen) and the best mean is the pick (a tie goes to the later
fold); whether it is recommended over the current settings, on the same blocks, is `evidence.decide`'s verdict
(fold wins, mean, deflated Sharpe).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tbot_bot.optimizer.evidence import DSR_THRESHOLD, decide
from tbot_bot.optimizer.metrics import (
    CALMAR_MIN_DRAWDOWN_PCT,
    calmar_objective,
    deflated_sharpe,
    parameter_stability,
    walk_forward_efficiency,
)
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.optimizer.study import StudyConfig
from tbot_bot.optimizer.walk_forward import Fold


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: Fold
    trials: list[FrozenTrial]  # complete trials of the fold's study
    chosen: FrozenTrial
    pareto: list[FrozenTrial]  # genetic only

    def params(self) -> dict[str, Any]:
        return dict(self.chosen.params)


def _param_key(t: FrozenTrial) -> tuple[Any, ...]:
    return tuple(sorted(t.params.items()))


def _choose(cfg: StudyConfig, study: optuna.Study, trials: list[FrozenTrial]) -> tuple[FrozenTrial, list]:
    if cfg.algorithm == "genetic":
        front = study.best_trials

        def score(t: FrozenTrial) -> float:
            pnl, dd = t.values
            return float(pnl) / max(float(dd), CALMAR_MIN_DRAWDOWN_PCT)

        # ties broken on the parameter values, never on trial numbers (which depend on the workers' timing)
        return max(sorted(front, key=_param_key), key=score), sorted(front, key=lambda t: t.number)
    return max(sorted(trials, key=_param_key), key=lambda t: float(t.value)), []  # type: ignore[arg-type]


def collect(cfg: StudyConfig, folds: list[Fold], storage: optuna.storages.BaseStorage) -> list[FoldResult]:
    out = []
    for fold in folds:
        study = optuna.load_study(study_name=cfg.fold_study_name(fold), storage=storage)
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not trials:
            continue
        chosen, pareto = _choose(cfg, study, trials)
        out.append(FoldResult(fold, sorted(trials, key=lambda t: t.number), chosen, pareto))
    return out


def _per_session(metrics: dict[str, Any]) -> float:
    return float(metrics["total_pnl"]) / max(int(metrics["sessions"]), 1)


def summarise(
    cfg: StudyConfig,
    prep: PreparedData,
    results: list[FoldResult],
    baseline: dict[str, Any],
    dsr_threshold: float = DSR_THRESHOLD,
) -> dict[str, Any]:
    """Everything best.json holds (JSON-ready)."""
    folds = []
    for r in results:
        ins, oos = r.chosen.user_attrs["metrics"]["is"], r.chosen.user_attrs["metrics"]["oos"]
        folds.append(
            {
                **r.fold.describe(),
                "trials": len(r.trials),
                "chosen_trial": r.chosen.number,
                "params": r.params(),
                "is": ins,
                "oos": oos,
                "is_objective": _objective(cfg, ins),
                "oos_objective": _objective(cfg, oos),
                "wfe": walk_forward_efficiency([_per_session(ins)], [_per_session(oos)]),
            }
        )
    # every fold's in-sample winner, scored on each out-of-sample block after its own in-sample span and on
    # those blocks together; an earlier fold's block lies inside that span (anchored folds), so it is no evidence
    candidates: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    # values several folds chose are scored once, from the earliest of them: its blocks are the most evidence
    for r in results:
        key = _param_key(r.chosen)
        if key in seen:
            continue
        seen.add(key)
        after = _blocks_after(results, r.fold.in_sample[-1])
        blocks = [b.fold.out_of_sample for b in after]
        pooled, *per_fold = prep.evaluate_spans(r.params(), _joined(blocks), *blocks)
        fold_objectives = [m.objective(cfg.objective) for m in per_fold]
        candidates.append(
            {"fold": r.fold.index, "trial": r.chosen.number, "params": r.params(),
             "is_start": r.fold.in_sample[0].isoformat(), "is_end": r.fold.in_sample[-1].isoformat(),
             "oos_folds": [b.fold.index for b in after], "oos_all": pooled.to_dict(),
             "fold_objectives": fold_objectives,
             "oos_objective": sum(fold_objectives) / len(fold_objectives), "_returns": pooled.daily_returns}
        )  # fmt: skip
    # the pick: the best mean out-of-sample objective over its folds; a tie goes to the most recent in-sample span.
    # Only a candidate judged on at least half the blocks may be it: the last fold's winner has one block, and a
    # best mean over one block is the luckiest, not the best (fold 1's winner, judged on all, always qualifies)
    need = -(-len(results) // 2)  # half the folds' blocks, rounded up
    eligible = [c for c in candidates if len(c["oos_folds"]) >= need]
    best = max(eligible, key=lambda c: (c["oos_objective"], c["fold"])) if eligible else None
    trial_sharpes = [float(t.user_attrs["metrics"]["is_sharpe_pp"]) for r in results for t in r.trials]
    dsr = deflated_sharpe(best["_returns"], trial_sharpes) if best else None
    # the current settings on the pick's blocks, the same sessions the pick is judged on
    judged = [r for r in results if best is not None and r.fold.index in best["oos_folds"]]
    base_oos, base_folds = None, []
    if judged:
        blocks = [r.fold.out_of_sample for r in judged]
        base_oos, *base_folds = prep.baseline_spans(_joined(blocks), *blocks)
    current_folds = [m.objective(cfg.objective) for m in base_folds]
    for c in candidates:
        c.pop("_returns")
    current = {k: baseline.get(k) for k in cfg.space.keys}
    same = best is not None and all(best["params"].get(k) == v for k, v in current.items())
    verdict = decide(
        cfg.objective, best, current_folds, dsr, dsr_threshold, [r.fold.index for r in judged], same
    )
    wfe = walk_forward_efficiency(
        [_per_session(f["is"]) for f in folds], [_per_session(f["oos"]) for f in folds]
    ) if folds else None  # fmt: skip
    return {
        "run_id": cfg.run_id,
        "strategy": cfg.strategy,
        "algorithm": cfg.algorithm,
        "objective": cfg.objective if cfg.algorithm != "genetic" else "pnl vs max drawdown (Pareto)",
        "space": cfg.space.describe(),
        "trials_total": sum(len(r.trials) for r in results),
        "folds": folds,
        "walk_forward_efficiency": wfe,
        "parameter_stability": parameter_stability([f["params"] for f in folds], cfg.space.grid()),
        "candidates": candidates,
        "pick": None
        if best is None
        else {
            "fold": best["fold"],
            "trial": best["trial"],
            "params": best["params"],
            "oos_all": best["oos_all"],
            "oos_folds": best["oos_folds"],
            "fold_objectives": best["fold_objectives"],
            "oos_objective": best["oos_objective"],
        },  # fmt: skip
        "deflated_sharpe": dsr,
        "current": {
            "params": current,
            "oos_all": base_oos.to_dict() if base_oos else None,
            "fold_objectives": current_folds,
            "oos_objective": sum(current_folds) / len(current_folds) if current_folds else None,
        },
        "verdict": verdict,
        "pareto_front": [
            {
                "fold": r.fold.index,
                "trial": t.number,
                "params": dict(t.params),
                "is_pnl": t.values[0],
                "is_max_drawdown": t.values[1],
            }
            for r in results
            for t in r.pareto
        ],  # fmt: skip
    }


def _blocks_after(results: list[FoldResult], last_in_sample: date) -> list[FoldResult]:
    """The folds whose out-of-sample block starts after `last_in_sample`."""
    return [r for r in results if r.fold.out_of_sample[0] > last_in_sample]


def _joined(blocks: list[tuple[date, ...]]) -> tuple[date, ...]:
    return tuple(d for b in blocks for d in b)


def _objective(cfg: StudyConfig, m: dict[str, Any]) -> float:
    if cfg.objective == "sharpe":
        return float(m["sharpe"]) if m["sharpe"] is not None else 0.0
    if cfg.objective == "calmar":
        if "annual_return" not in m:  # a trial recorded by an older version: its floored ratio
            return float(m["calmar"])
        return calmar_objective(m["annual_return"], float(m["max_drawdown_pct"]))
    return float(m["total_pnl"])


def trial_rows(cfg: StudyConfig, results: list[FoldResult]) -> list[dict[str, Any]]:
    """trials.csv: one row per complete trial of every fold."""
    rows = []
    for r in results:
        for t in r.trials:
            row: dict[str, Any] = {"fold": r.fold.index, "trial": t.number}
            row.update({k: t.params.get(k) for k in cfg.space.keys})
            if cfg.algorithm == "genetic":
                row["value_is_pnl"], row["value_is_max_drawdown"] = t.values
            else:
                row["value"] = t.value
            for side in ("is", "oos"):
                for k, v in t.user_attrs["metrics"][side].items():
                    row[f"{side}_{k}"] = v
            row["chosen"] = t.number == r.chosen.number
            row["duration_s"] = (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None
            )
            rows.append(row)
    return rows
