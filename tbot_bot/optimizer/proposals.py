"""Optimizer proposals: a run never changes the live configuration; it writes a proposal (keys old -> new,
the out-of-sample evidence, the run id) to `env_bot.versioned/proposals/<run_id>.json`. Only a person makes
it live: `approve` validates the whole resulting config, saves it through the encrypted config path (which
versions the previous file and audits the keys) and records who/when; `reject` records who/when/why.
Every decision is also appended to `logs/optimizer_audit.log`. No optimizer import here: the dashboard uses it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.config.config_versions import PREFIX
from tbot_bot.config.env_bot import BotSettings, parse_env_text, settings_from_text, trading_values
from tbot_bot.config.settings_bot import (
    config_lock,
    config_version,
    read_env_text,
    replace_values,
    save_env_text,
)
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_json, utc_now

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
# a run whose verdict is "keep the current settings": recorded (so `show` and the dashboard can say why), never
# filed as an improvement, never approvable
KEEP_CURRENT = "keep_current"


def proposals_dir(home: BotHome) -> Path:
    return home.versioned_env_dir / "proposals"


def env_value(v: Any) -> str:
    """A parameter value as `.env_bot` text."""
    if isinstance(v, float):
        return repr(round(v, 10))
    return str(v)


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: str | None
    new: str


def base_digests(settings: BotSettings, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Per key (but `exclude`), a digest of its value: what a study's trials assumed, recorded in its proposal
    without writing any value (secrets included) into it."""
    skip = set(exclude)
    return {
        k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16]
        for k, v in trading_values(settings).items()  # an alert channel or a log setting is no evidence's
        if k not in skip
    }


def _evaluated_values(evaluated: BotSettings, live_text: str, keys: list[str]) -> dict[str, str]:
    """The evaluated base value of each of `keys` that differs from the live config's (as `.env_bot` text)."""
    ours, live = base_digests(evaluated), base_digests(settings_from_text(live_text))
    values = trading_values(evaluated)
    return {k: env_value(values[k]) for k in keys if k in values and ours.get(k) != live.get(k)}


def base_differences(recorded: dict[str, str], live: BotSettings) -> list[str]:
    """The keys whose live value is not the one the study evaluated (base_digests)."""
    now = base_digests(live)
    return sorted(k for k, digest in recorded.items() if now.get(k) != digest)


class AlreadyDecided(Exception):
    """A person already approved or rejected this run's proposal: its record is never rewritten."""

    def __init__(self, proposal: dict[str, Any]) -> None:
        d = proposal.get("decision") or {}
        super().__init__(
            f"proposal {proposal['run_id']} was already {proposal['status']} by {d.get('actor')} at {d.get('at')}: "
            "its record is kept as decided (this run's results are in its results folder)"
        )


def write_proposal(
    home: BotHome,
    summary: dict[str, Any],
    results_dir: Path,
    evaluated: BotSettings | None = None,
    warnings: Iterable[str] = (),
) -> Path | None:
    """The record of a finished run: a pending proposal when its verdict recommends the pick, else a
    `keep_current` record of the best candidate and why it is not recommended; None without any candidate.
    `evaluated`: the base settings the trials ran on (digests kept: approve refuses a live config that differs).
    `warnings`: what a person should know before approving (shown by `show`, the run and the dashboard).
    Raises AlreadyDecided when the run's proposal was approved or rejected (a resumed run)."""
    rec = summary.get("pick")
    verdict = summary.get("verdict") or {}
    if not rec:
        return None
    path = proposals_dir(home) / f"{summary['run_id']}.json"
    if path.is_file():
        held = load_proposal(home, summary["run_id"])
        # the decision (who, when, what was applied) is the audit record: a re-run never replaces it
        if held["status"] in (APPROVED, REJECTED):
            raise AlreadyDecided(held)
    text = read_env_text(home)
    current, _ = parse_env_text(text)
    # "old" is the value the study scored as the current settings (an --env-file run's, which may not be the live
    # one); "live" what the live config held when this was filed (approve refuses it changed since)
    evaluated_old = _evaluated_values(evaluated, text, list(rec["params"])) if evaluated is not None else {}
    changes = [
        {"key": k, "old": evaluated_old.get(k, current.get(k)), "live": current.get(k), "new": env_value(v)}
        for k, v in sorted(rec["params"].items())
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        path,
        {
            "run_id": summary["run_id"],
            "strategy": summary["strategy"],
            "algorithm": summary["algorithm"],
            "objective": summary["objective"],
            "created_at": utc_now().isoformat(),
            "status": PENDING if verdict.get("recommend") else KEEP_CURRENT,
            "verdict": verdict,
            "trial": {"fold": rec["fold"], "trial": rec["trial"]},
            "changes": changes,
            "unchanged": all(c["old"] == c["new"] for c in changes),
            "warnings": list(warnings),
            "evidence": {
                "oos_recommended": rec["oos_all"],
                "oos_objective": rec["oos_objective"],
                "oos_current": summary["current"]["oos_all"],
                "oos_current_objective": summary["current"]["oos_objective"],
                "walk_forward_efficiency": summary["walk_forward_efficiency"],
                "deflated_sharpe": (summary.get("deflated_sharpe") or {}).get("dsr"),
                "float": summary.get("float"),
                # the pick against the current settings on each out-of-sample block after its in-sample span
                "folds": [
                    {
                        "fold": f["fold"],
                        "oos_start": f["oos_start"],
                        "oos_end": f["oos_end"],
                        **_versus(verdict, f["fold"]),
                    }
                    for f in summary["folds"]
                    if f["fold"] in rec.get("oos_folds", [f["fold"]])
                ],  # fmt: skip
            },
            "results_dir": str(results_dir),
            # every trading key's value the evidence holds for (digests), the tuned keys' base values included:
            # approve compares the live config's
            "base": None if evaluated is None else base_digests(evaluated),
            "decision": None,
        },
        mode=0o600,
    )
    return path


def _versus(verdict: dict[str, Any], fold: int) -> dict[str, Any]:
    row: dict[str, Any] = next((v for v in verdict.get("folds") or [] if v.get("fold") == fold), {})
    return {"candidate": row.get("candidate"), "current": row.get("current"), "won": row.get("won")}


def improvements(proposals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Proposals filed as improvements (not the records of runs that said "keep the current settings")."""
    return [p for p in proposals if p.get("status") != KEEP_CURRENT]


def changed(proposal: dict[str, Any]) -> list[dict[str, Any]]:
    """The keys a proposal would change (its value differs from the live one when it was written): what every
    surface lists and counts (the record keeps the unchanged keys of the candidate too)."""
    return [
        c
        for c in proposal.get("changes") or []
        if isinstance(c, dict) and "key" in c and c.get("old") != c.get("new")
    ]


def list_proposals(home: BotHome) -> list[dict[str, Any]]:
    folder = proposals_dir(home)
    out = []
    for p in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        # a file that is no proposal (hand-edited, half-copied) is passed over, as an unreadable one is
        if isinstance(doc, dict) and isinstance(doc.get("run_id"), str):
            out.append(doc)
    return sorted(out, key=lambda d: str(d.get("created_at", "")), reverse=True)


def load_proposal(home: BotHome, run_id: str) -> dict[str, Any]:
    path = proposals_dir(home) / f"{run_id}.json"
    # a run id is a file name the optimizer made (well under 200 characters): anything else is no proposal, never
    # a question to the file system (a 300-character name is an OSError there)
    if "/" in run_id or run_id.startswith(".") or len(run_id.encode()) > 200 or not path.is_file():
        known = [d["run_id"] for d in list_proposals(home)]
        hint = f"; proposals: {', '.join(known[:10])}" if known else "; there is no proposal yet"
        raise ConfigError(f"no optimizer proposal {run_id!r}{hint} (see `tbot optimize list`)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"proposal {path} cannot be read ({exc}): it was damaged or is no proposal; move it away (`tbot optimize "
            "list` leaves such files out) or restore it from a backup"
        ) from None
    missing = (
        [k for k in ("run_id", "status", "changes") if k not in doc] if isinstance(doc, dict) else ["all"]
    )
    if missing or not isinstance(doc.get("changes"), list):
        raise ConfigError(
            f"proposal {path} is incomplete (missing {', '.join(missing) or 'changes'}): not usable"
        )
    return doc  # type: ignore[no-any-return]


def _save(home: BotHome, proposal: dict[str, Any]) -> None:
    atomic_write_json(proposals_dir(home) / f"{proposal['run_id']}.json", proposal, mode=0o600)


def _audit(home: BotHome, record: dict[str, Any]) -> None:
    log = home.root / "logs" / "optimizer_audit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def _trial_params(proposal: dict[str, Any], trial: int) -> dict[str, str]:
    """`--trial N`: trial N of the run's last fold (trials.csv), the most recent in-sample span."""
    path = Path(proposal["results_dir"]) / "trials.csv"
    if not path.is_file():
        raise ConfigError(f"--trial needs the run's trials.csv, which is missing: {path}")
    keys = [c["key"] for c in proposal["changes"]]
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    last = max(int(r["fold"]) for r in rows) if rows else 0
    for r in rows:
        if int(r["fold"]) == last and int(r["trial"]) == trial:
            return {k: r[k] for k in keys}
    numbers = sorted(int(r["trial"]) for r in rows if int(r["fold"]) == last)
    raise ConfigError(
        f"run {proposal['run_id']} has no trial {trial} in its last fold ({last}); "
        f"trials there: {numbers[0]}..{numbers[-1]}"
        if numbers
        else f"run {proposal['run_id']} has no trials"
    )


def _pending(home: BotHome, run_id: str) -> dict[str, Any]:
    """The proposal, refused unless it is still pending (call under the config lock)."""
    proposal = load_proposal(home, run_id)
    _refuse_kept(proposal)
    if proposal["status"] != PENDING:
        d = proposal.get("decision") or {}
        raise ConfigError(
            f"proposal {run_id} is already {proposal['status']} (by {d.get('actor')} at {d.get('at')}); "
            "nothing changed"
        )
    return proposal


def approve(
    home: BotHome,
    run_id: str,
    *,
    actor: str,
    trial: int | None = None,
    force: bool = False,
    home_float: Decimal | None = None,
) -> list[Change]:
    """Apply a pending proposal (or trial N of it) to the live config; returns the changes made. The decision
    is one transition under the config lock: of concurrent approvals and rejections exactly one wins, and no
    other config save can slip between reading the live values and writing the new ones."""
    with config_lock(home):
        return _approve_locked(home, run_id, actor=actor, trial=trial, force=force, home_float=home_float)


def _approve_locked(
    home: BotHome, run_id: str, *, actor: str, trial: int | None, force: bool, home_float: Decimal | None
) -> list[Change]:
    proposal = _pending(home, run_id)
    text = read_env_text(home)
    current, _ = parse_env_text(text)
    wanted = (
        _trial_params(proposal, trial)
        if trial is not None
        else {c["key"]: c["new"] for c in proposal["changes"]}
    )
    stale = [
        f"{c['key']} was {c.get('live', c['old'])} when proposed and is {current.get(c['key'])} now"
        for c in proposal["changes"]
        if current.get(c["key"]) != c.get("live", c["old"])
    ]
    # the evidence holds for the settings the trials ran on: a run with --env-file, or a config changed since
    other = base_differences(proposal["base"], settings_from_text(text)) if proposal.get("base") else []
    if other:
        stale.append(
            f"the study evaluated other values than the live config's for {', '.join(other)} (a run with "
            "--env-file, or the config changed since the run): its evidence does not hold for the live config"
        )
    # --float: the evidence holds for the float it was sized from (a study of another float trades other sizes)
    studied = (proposal.get("evidence") or {}).get("float")
    if studied is not None and home_float is not None and Decimal(str(studied)) != home_float:
        stale.append(f"the study sized its trades from a float of {studied}, the home's is {home_float}")
    if stale and not force:
        raise ConfigError(
            ["the live config changed since this proposal was made:", *stale,
             "re-run the optimizer, or approve with --force to apply the proposal's values anyway"],
            source=f"proposal {run_id}",
        )  # fmt: skip
    changes = [Change(k, current.get(k), v) for k, v in wanted.items() if current.get(k) != v]
    versions_before = set(_versions(home))
    save_env_text(
        home,
        replace_values(text, wanted),
        actor=f"{actor} (optimizer approve {run_id})",
        expected_version=config_version(text),
    )
    new_versions = sorted(set(_versions(home)) - versions_before)
    decision = {
        "action": APPROVED, "actor": actor, "at": utc_now().isoformat(), "trial": trial,
        "applied": [{"key": c.key, "old": c.old, "new": c.new} for c in changes],
        "previous_version": new_versions[-1] if new_versions else None,
    }  # fmt: skip
    proposal.update(status=APPROVED, decision=decision)
    _save(home, proposal)
    _audit(home, {"run_id": run_id, **decision})
    return changes


def reject(home: BotHome, run_id: str, *, actor: str, reason: str = "") -> None:
    with config_lock(home):  # the same lock as approve: one decision per proposal
        proposal = _pending(home, run_id)
        decision = {"action": REJECTED, "actor": actor, "at": utc_now().isoformat(), "reason": reason}
        proposal.update(status=REJECTED, decision=decision)
        _save(home, proposal)
        _audit(home, {"run_id": run_id, **decision})


def _refuse_kept(proposal: dict[str, Any]) -> None:
    if proposal["status"] == KEEP_CURRENT:
        statement = (proposal.get("verdict") or {}).get("statement", "")
        raise ConfigError(
            f"run {proposal['run_id']} filed no improvement, so there is nothing to approve or reject. {statement} "
            "To try its candidate anyway, set the keys yourself (`tbot config set KEY=VALUE`)."
        )


def _versions(home: BotHome) -> list[str]:
    folder = home.versioned_env_dir
    return [p.name[len(PREFIX) :] for p in folder.glob(PREFIX + "*")] if folder.exists() else []
