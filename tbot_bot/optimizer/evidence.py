"""What an optimizer run may claim (issue 21): the minimum data a run needs before it starts, and the one verdict
of a finished run — which trial, recommended or not, and why — computed here once and rendered as it is by the
report, `tbot optimize run|show`, the dashboard and the scheduled run's alert.

A candidate is recommended only when all three hold:
- it beats the current settings out of sample in a strict majority of the folds (a fold is won when the
  candidate's objective on that fold's out-of-sample block is strictly above the current settings' on the same
  block);
- its mean out-of-sample objective over the folds is strictly above the current settings' mean;
- its deflated Sharpe probability (out-of-sample daily returns against the best Sharpe expected from every
  trial tried) is at least the threshold (default 0.95, `--min-dsr`).
Otherwise the verdict is "keep the current settings", with the checks that failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tbot_bot.errors import ConfigError

DSR_THRESHOLD = 0.95
# sessions a fold's block needs before its objective means anything: a Sharpe ratio (or the deflated Sharpe
# that gates every recommendation, whatever the objective) from fewer daily returns is mostly noise; Calmar
# annualises a span's return, which a few sessions blow up
MIN_SESSIONS_PER_FOLD = {"sharpe": 20, "calmar": 20, "pnl": 20}
# trades the current settings must make over the whole range: below ~30 observations a mean and a standard
# deviation (hence a Sharpe ratio) are not worth reporting
MIN_TRADES = 30
MAX_AUTO_FOLDS = 3


def sig4(value: Any) -> str:
    """A number for people: 4 significant digits (money is shown in cents elsewhere); None as 'n/a'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def min_sessions_per_fold(objective: str) -> int:
    return MIN_SESSIONS_PER_FOLD.get(objective, max(MIN_SESSIONS_PER_FOLD.values()))


def require_sessions(sessions: int, folds: int, objective: str) -> None:
    """Refuse a range whose walk-forward blocks are shorter than the objective needs."""
    need = min_sessions_per_fold(objective)
    per_block = sessions // (folds + 1)
    if per_block < need:
        raise ConfigError(
            f"too little data for {folds} walk-forward fold(s): the range has {sessions} sessions with bars, "
            f"{per_block} per block, and the {objective} objective needs at least {need} sessions per fold "
            f"({need * (folds + 1)} sessions for {folds + 1} blocks); widen --start/--end"
            + (" or lower --walk-forward" if folds > 1 else " (one fold is the least)"),
            source="tbot optimize run",
        )


def auto_folds(sessions: int, objective: str) -> int:
    """As many folds as the data allow (up to MAX_AUTO_FOLDS); at least 1, which `require_sessions` refuses
    when even one fold does not fit."""
    return max(1, min(MAX_AUTO_FOLDS, sessions // min_sessions_per_fold(objective) - 1))


def require_trades(trades: int, start: str, end: str) -> None:
    if trades < MIN_TRADES:
        raise ConfigError(
            f"too few trades for a useful Sharpe ratio: the current settings make {trades} trades in "
            f"{start}..{end} and the optimizer needs at least {MIN_TRADES}; widen --start/--end or add symbols",
            source="tbot optimize run",
        )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def pick_label(pick: dict[str, Any]) -> str:
    """Where a candidate comes from, without implying a fold score: the fold whose in-sample search chose it."""
    return (
        f"trial {pick['trial']}, the in-sample best of fold {pick['fold']} "
        f"({pick['is_start']}..{pick['is_end']})"
    )


def decide(
    objective: str,
    candidate: dict[str, Any] | None,
    current_folds: Sequence[float],
    dsr: dict[str, Any] | None,
    threshold: float = DSR_THRESHOLD,
    fold_indices: Sequence[int] | None = None,
    same_as_current: bool = False,
) -> dict[str, Any]:
    """The run's verdict. `candidate`: fold, trial, is_start, is_end, params and `fold_objectives` (its
    out-of-sample objective per fold); `current_folds`: the current settings' on the same blocks."""
    if candidate is None:
        return {
            "recommend": False, "pick": None, "checks": [], "dsr_threshold": threshold, "objective": objective,
            "statement": "Keep the current settings: no trial completed, so there is nothing to compare.",
        }  # fmt: skip
    mine = [float(x) for x in candidate["fold_objectives"]]
    theirs = [float(x) for x in current_folds]
    won = sum(1 for a, b in zip(mine, theirs, strict=True) if a > b)
    needed = len(mine) // 2 + 1
    mean_mine, mean_theirs = _mean(mine), _mean(theirs)
    p = (dsr or {}).get("dsr")
    checks: list[dict[str, Any]] = [
        {
            "name": "fold_wins", "passed": won >= needed,
            "text": f"it beat the current settings out of sample in {won} of {len(mine)} folds "
                    f"(needs {needed})",
        },
        {
            "name": "mean_oos", "passed": mean_mine > mean_theirs,
            "text": f"its mean out-of-sample {objective} {sig4(mean_mine)} is "
                    f"{'above' if mean_mine > mean_theirs else 'not above'} the current settings' {sig4(mean_theirs)}",
        },
        {
            "name": "deflated_sharpe", "passed": p is not None and p >= threshold,
            "text": (
                f"its deflated Sharpe probability {sig4(p)} is "
                f"{'at least' if p >= threshold else 'below'} {sig4(threshold)}"
                if p is not None else
                "its deflated Sharpe probability cannot be computed (fewer than 3 out-of-sample sessions or "
                f"no variation in its daily returns), and {sig4(threshold)} is required"
            ),
        },
    ]  # fmt: skip
    recommend = all(c["passed"] for c in checks)
    pick = {k: candidate[k] for k in ("fold", "trial", "is_start", "is_end", "params")}
    label = pick_label(pick)
    if recommend:
        statement = f"Recommend {label}: " + _join([c["text"] for c in checks]) + "."
    elif same_as_current:
        statement = (
            f"Keep the current settings: the best candidate, {label}, has the current settings' values."
        )
    else:
        failed = [c["text"] for c in checks if not c["passed"]]
        statement = (
            f"Keep the current settings: the best candidate, {label}, is not recommended because "
            + _join(failed) + "."
        )  # fmt: skip
    return {
        "recommend": recommend, "pick": {**pick, "label": label}, "checks": checks, "statement": statement,
        "dsr_threshold": threshold, "objective": objective, "dsr": p,
        "folds": [{"fold": k, "candidate": a, "current": b, "won": a > b}
                  for k, a, b in zip(fold_indices or range(1, len(mine) + 1), mine, theirs, strict=True)],
    }  # fmt: skip


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def verdict_lines(verdict: dict[str, Any] | None) -> list[str]:
    """The verdict as text lines: the statement, then every check with its outcome."""
    if not verdict:
        return ["verdict: not recorded (a run of an older version: judge the evidence below yourself)"]
    lines = [str(verdict.get("statement", ""))]
    for c in verdict.get("checks") or []:
        lines.append(f"  [{'pass' if c.get('passed') else 'FAIL'}] {c.get('text')}")
    return lines
