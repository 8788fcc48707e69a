"""Research results: backtest runs under backtest_results/ (metrics, charts, report downloads) and optimizer
proposals listed read-only (approving one is the optimizer's page and `tbot optimize approve`)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template

from tbot_bot.core.users import Role

from .auth_web import requires, state
from .history_readers import SAFE_NAME, backtest_file, backtest_runs, proposals
from .numbers_web import metric

bp = Blueprint("research", __name__)


@bp.route("/research")
@requires(Role.VIEWER)
def page() -> Any:
    home = state().home
    # the optimizer's own page, when that blueprint is installed, is where a proposal is approved
    approve_endpoint = next(
        (
            ep
            for ep in ("optimizer.proposals", "proposals.page", "optimizer.page")
            if ep in current_app.view_functions
        ),
        None,
    )
    return render_template(
        "research.html",
        runs=backtest_runs(home),
        proposals=proposals(home),
        approve_endpoint=approve_endpoint,
        detail_endpoint="proposals.detail" if "proposals.detail" in current_app.view_functions else None,
    )


# metrics.json's names that would mislead as labels: its PnL sums are after fees ("gross" is the profit factor's
# word for the winners' sum, not "before fees"), as the CLI and report.md say
METRIC_LABELS = {
    "gross_profit": "net PnL of winning trades", "gross_loss": "net PnL of losing trades (as a loss)",
    "total_pnl": "net PnL (after fees)", "total_fees": "fees",
}  # fmt: skip


@bp.route("/research/backtest/<segment:run>")
@requires(Role.VIEWER)
def run(run: str) -> Any:
    home = state().home
    metrics_file = backtest_file(home, run, "report.md")
    folder = home.backtest_results_dir / run
    if not SAFE_NAME.match(run) or not (folder / "metrics.json").is_file():
        abort(404)
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        abort(404)
    if not isinstance(metrics, dict):  # a damaged file: no run to show (the list passes it over too)
        abort(404)
    # numbers for people: percentages, cents, two-decimal ratios (metrics.json keeps full precision)
    shown = {
        METRIC_LABELS.get(k, k.replace("_", " ")): metric(k, v)
        for k, v in metrics.items()
        if not isinstance(v, list | dict)
    }
    images = [n for n in ("equity_drawdown.png", "daily_pnl.png") if (folder / n).is_file()]
    # what the report warns of (fees eating small orders, too few sessions for annualised figures, fills without
    # a spread): shown beside the numbers, as the CLI and report.md show them
    warnings = [
        w
        for key in ("fee_warnings", "notes")
        if isinstance(metrics.get(key), list)
        for w in metrics[key]
        if isinstance(w, str)
    ]
    return render_template(
        "backtest_run.html", run=run, metrics=shown, images=images, has_md=metrics_file is not None,
        has_html=(folder / "report.html").is_file(), warnings=warnings,
    )  # fmt: skip


@bp.route("/research/backtest/<segment:run>/<segment:name>")
@requires(Role.VIEWER)
def run_file(run: str, name: str) -> Any:
    path = backtest_file(state().home, run, name)
    if path is None:
        abort(404)
    # read whole (reports and charts are small) so no file handle outlives the request
    if name.endswith(".png"):
        return Response(path.read_bytes(), mimetype="image/png")
    # reports are downloaded and opened locally: report.html carries its own inline style, which this
    # dashboard's Content-Security-Policy (no inline style) would strip
    mimetype = "text/html" if name.endswith(".html") else "text/markdown"
    return Response(
        path.read_bytes(),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{run}_{name}"'},
    )
