"""Optimizer proposals: the list and one proposal's changes and out-of-sample evidence for every signed-in
role; approving or rejecting is admin-only (CSRF-protected forms). Approval goes through the same function as
`tbot optimize approve`: the whole config is validated, re-encrypted, the previous version kept and the
change audited (config audit, optimizer audit, system log, user activity)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

import tbot_bot.optimizer.proposals as store
from tbot_bot.accounting.float_ledger import float_to_compare
from tbot_bot.core.users import Role
from tbot_bot.errors import ConfigError
from tbot_bot.optimizer.evidence import sig4, verdict_lines

from .auth_web import activity, can, current_user, requires, state, system_event

bp = Blueprint("proposals", __name__)
REPORT_FILES = ("report.html", "best.json", "trials.csv", "folds.csv")


def _actor() -> tuple[str, str | None]:
    user = current_user()
    return (f"web:{user.username}" if user else "web"), (user.username if user else None)


def _system_event(event: str, actor: str, detail: str) -> None:
    system_event(event, actor, detail)  # the optimizer audit log keeps its own record too


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    """A proposal with every field the templates read, numbers as text (4 significant digits); files written by
    older versions may lack some fields."""
    evidence = doc.get("evidence") if isinstance(doc.get("evidence"), dict) else {}
    changes = [c for c in doc.get("changes") or [] if isinstance(c, dict) and "key" in c]
    folds = [f for f in evidence.get("folds") or [] if isinstance(f, dict)]
    verdict = doc.get("verdict") if isinstance(doc.get("verdict"), dict) else None
    return {
        **doc, "run_id": str(doc.get("run_id", "")), "created_at": str(doc.get("created_at", "")),
        "changes": [{"key": c["key"], "old": c.get("old"), "new": c.get("new")} for c in changes],
        "changed": store.changed(doc),
        "evidence": {k: sig4(evidence.get(k)) for k in (
            "oos_objective", "oos_current_objective", "walk_forward_efficiency", "deflated_sharpe")}
        | {"folds": [{"fold": f.get("fold"), "oos_start": f.get("oos_start"), "oos_end": f.get("oos_end"),
                      "candidate": sig4(f.get("candidate")), "current": sig4(f.get("current")),
                      "won": {True: "won", False: "lost"}.get(f.get("won"), "–")} for f in folds]},
        "verdict": verdict,
        "verdict_lines": verdict_lines(verdict),
        "warnings": [str(w) for w in doc.get("warnings") or [] if isinstance(w, str)],
        "recommended": bool(verdict and verdict.get("recommend")),
        "decision": doc.get("decision") if isinstance(doc.get("decision"), dict) else None,
    }  # fmt: skip


@bp.route("/proposals")
@requires(Role.VIEWER)
def page() -> Any:
    items = [_shown(d) for d in store.list_proposals(state().home)]
    return render_template("proposals.html", items=items, admin=can(Role.ADMIN))


@bp.route("/proposals/<segment:run_id>")
@requires(Role.VIEWER)
def detail(run_id: str) -> Any:
    try:
        proposal = store.load_proposal(state().home, run_id)
    except ConfigError:
        abort(404)
    files = [n for n in REPORT_FILES if _result_file(proposal, n) is not None]
    return render_template("proposal.html", p=_shown(proposal), admin=can(Role.ADMIN), files=files)


def _result_file(proposal: dict[str, Any], name: str) -> Path | None:
    """A file of the proposal's run folder, only when that folder lies inside the bot home."""
    root = state().home.root.resolve()
    folder = Path(str(proposal.get("results_dir", ""))).resolve()
    path = folder / name
    if name not in REPORT_FILES or not folder.is_relative_to(root) or not path.is_file():
        return None
    return path


@bp.route("/proposals/<segment:run_id>/files/<segment:name>")
@requires(Role.VIEWER)
def result_file(run_id: str, name: str) -> Any:
    try:
        proposal = store.load_proposal(state().home, run_id)
    except ConfigError:
        abort(404)
    path = _result_file(proposal, name)
    if path is None:
        flash(f"{name} of run {run_id} is not available (moved or deleted).", "error")
        return redirect(url_for("proposals.detail", run_id=run_id))
    # downloaded, not rendered: report.html carries inline style the dashboard's CSP would block
    return Response(
        path.read_bytes(), mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{run_id}_{name}"'},
    )  # fmt: skip


@bp.route("/proposals/<segment:run_id>/approve", methods=["POST"])
@requires(Role.ADMIN)
def approve(run_id: str) -> Any:
    actor, username = _actor()
    trial_text = request.form.get("trial", "").strip()
    trial: int | None = None
    if trial_text:
        # "²" is a digit to str.isdigit, not to int(); a trial number has at most a few digits
        if not (trial_text.isascii() and trial_text.isdigit() and len(trial_text) <= 9):
            flash(f"Trial must be a whole number (found {trial_text!r}); nothing changed.", "error")
            return redirect(url_for("proposals.detail", run_id=run_id))
        trial = int(trial_text)
    try:
        home = state().home
        changes = store.approve(
            home, run_id, actor=actor, trial=trial, force=request.form.get("force") == "1",
            home_float=float_to_compare(home),
        )  # fmt: skip
    except ConfigError as exc:
        activity("proposal_approve_refused", username, f"{run_id}: {'; '.join(exc.problems)}"[:500])
        flash("Not approved, nothing changed: " + " ".join(exc.problems), "error")
        return redirect(url_for("proposals.detail", run_id=run_id))
    state().settings.invalidate()
    detail = f"{run_id}: " + (", ".join(f"{c.key} {c.old}->{c.new}" for c in changes) or "no key changed")
    activity("proposal_approved", username, detail[:500])
    _system_event("proposal_approved", actor, detail)
    flash(f"Approved {run_id}; the config was validated, re-encrypted and the previous one kept.", "info")
    return redirect(url_for("proposals.detail", run_id=run_id))


@bp.route("/proposals/<segment:run_id>/reject", methods=["POST"])
@requires(Role.ADMIN)
def reject(run_id: str) -> Any:
    actor, username = _actor()
    reason = request.form.get("reason", "").strip()[:500]
    try:
        store.reject(state().home, run_id, actor=actor, reason=reason)
    except ConfigError as exc:
        flash("Not rejected: " + " ".join(exc.problems), "error")
        return redirect(url_for("proposals.detail", run_id=run_id))
    activity("proposal_rejected", username, f"{run_id}: {reason}"[:500])
    _system_event("proposal_rejected", actor, f"{run_id}: {reason}")
    flash(f"Rejected {run_id}.", "info")
    return redirect(url_for("proposals.detail", run_id=run_id))
