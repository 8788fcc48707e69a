"""The files of one optimizer run under `<OPTIMIZER_OUTPUT_DIR>/<run_id>/`: trials.csv, folds.csv, best.json,
optimization_history.png, param_slices.png, pareto_front.png (genetic) and report.html, which embeds the
pictures so it can be mailed or archived as one file."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.backtest.chart_worker import ChartWorker, side_by_side
from tbot_bot.errors import LogicError
from tbot_bot.optimizer.evidence import sig4
from tbot_bot.optimizer.results import FoldResult
from tbot_bot.support.utils_bot import atomic_write_json, atomic_write_text, counted

OPTIMIZER_CHARTS = ("tbot_bot.optimizer.plots",)  # what the optimizer's chart worker imports while it waits
OPTIMIZER_WRITTEN = "trials.csv, folds.csv, best.json and report.html (without charts) are written"


def chart_worker() -> ChartWorker:
    """The optimizer's chart worker, started: matplotlib is imported while the study runs."""
    return ChartWorker(OPTIMIZER_CHARTS, OPTIMIZER_WRITTEN).start()


FOLD_COLUMNS = [
    "fold", "is_start", "is_end", "is_sessions", "oos_start", "oos_end", "oos_sessions", "trials",
    "chosen_trial", "params", "is_objective", "oos_objective", "is_total_pnl", "oos_total_pnl", "is_sharpe",
    "oos_sharpe", "is_trades", "oos_trades", "wfe",
]  # fmt: skip


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _value(t: Any, genetic: bool) -> float:
    return float(t.values[0] if genetic else t.value)


def fold_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for f in summary["folds"]:
        row = {k: f.get(k) for k in FOLD_COLUMNS if k in f}
        row["params"] = json.dumps(f["params"], sort_keys=True)
        for side in ("is", "oos"):
            for k in ("total_pnl", "sharpe", "trades"):
                row[f"{side}_{k}"] = f[side][k]
        rows.append(row)
    return rows


@dataclass(frozen=True, slots=True)
class FoldSeries:
    """One fold's complete trials as plain lists (what the charts draw; cheap to send to the chart worker)."""

    fold: int
    numbers: list[int]
    values: list[float]  # in-sample objective (genetic: in-sample net PnL)
    params: dict[str, list[Any]]  # per key, the value of each trial
    drawdowns: list[float]  # genetic: each trial's in-sample max drawdown
    front_values: list[float]  # genetic: the Pareto front by drawdown
    front_drawdowns: list[float]

    @classmethod
    def of(cls, r: FoldResult, keys: tuple[str, ...], genetic: bool) -> FoldSeries:
        front = sorted(r.pareto, key=lambda t: t.values[1])
        return cls(
            r.fold.index, [t.number for t in r.trials], [_value(t, genetic) for t in r.trials],
            {k: [t.params.get(k) for t in r.trials] for k in keys},
            [float(t.values[1]) for t in r.trials] if genetic else [],
            [float(t.values[0]) for t in front], [float(t.values[1]) for t in front],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReportJob:
    """The charts and report.html of one run (chart_worker.Job): drawn once the numbers are on disk."""

    out_dir: Path
    summary: dict[str, Any]
    series: tuple[FoldSeries, ...]
    keys: tuple[str, ...]

    def draw(self) -> dict[str, Path]:
        """The charts (the slices in a forked copy of the chart worker while it draws the others), then the
        report embedding them."""
        from tbot_bot.optimizer.plots import plot_history, plot_pareto, plot_slices

        genetic = self.summary["algorithm"] == "genetic"
        slices = self.out_dir / "param_slices.png"
        history = side_by_side(
            lambda: plot_history(self.series, genetic, self.out_dir / "optimization_history.png"),
            lambda: plot_slices(self.series, self.keys, slices),
        )
        files = {"history_png": history, "slices_png": slices}
        if genetic:
            files["pareto_png"] = plot_pareto(self.series, self.out_dir / "pareto_front.png")
        files["report"] = write_report(
            self.out_dir, self.summary, [p for k, p in files.items() if k.endswith("_png")]
        )
        return files


def write_report(
    out_dir: Path, summary: dict[str, Any], pngs: list[Path], missing: str | None = None
) -> Path:
    path = out_dir / "report.html"
    atomic_write_text(path, render_html(summary, pngs, missing))
    return path


def write_numbers(out_dir: Path, summary: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Path]:
    """trials.csv, folds.csv and best.json: the run's results, written before any chart."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"trials": out_dir / "trials.csv", "folds": out_dir / "folds.csv", "best": out_dir / "best.json"}
    columns = list(dict.fromkeys(k for row in trials for k in row))
    atomic_write_text(files["trials"], _csv(trials, columns))
    atomic_write_text(files["folds"], _csv(fold_rows(summary), FOLD_COLUMNS))
    atomic_write_json(files["best"], summary)
    return files


def submit_outputs(
    out_dir: Path, summary: dict[str, Any], trials: list[dict[str, Any]], results: list[FoldResult],
    keys: tuple[str, ...], charts: ChartWorker,
) -> dict[str, Path]:  # fmt: skip
    """The numbers written, the charts and report.html handed to `charts` (finish_outputs waits for them)."""
    files = write_numbers(out_dir, summary, trials)
    genetic = summary["algorithm"] == "genetic"
    charts.submit(ReportJob(out_dir, summary, tuple(FoldSeries.of(r, keys, genetic) for r in results), keys))
    return files


def finish_outputs(
    out_dir: Path, summary: dict[str, Any], charts: ChartWorker
) -> tuple[dict[str, Path], str | None]:
    """The charts and report.html once drawn; when drawing failed, report.html without charts saying what is
    missing, and that text."""
    try:
        return charts.result(), None
    except LogicError as exc:  # a charting bug or a stuck renderer: the numbers stand, the report says so
        return {"report": write_report(out_dir, summary, [], missing=str(exc))}, str(exc)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return sig4(v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return "n/a" if v is None else str(v)


def _money(v: Any) -> str:
    try:
        return f"{Decimal(str(v)):,.2f}"
    except ArithmeticError:
        return "n/a"


def render_html(summary: dict[str, Any], pngs: list[Path], missing: str | None = None) -> str:
    s = summary
    rec = s["pick"]
    folds = _table(
        [[f["fold"], f"{f['is_start']}..{f['is_end']}", f"{f['oos_start']}..{f['oos_end']}", f["trials"],
          f["params"], f["is_objective"], f["oos_objective"], _money(f["is"]["total_pnl"]), f["is"].get("trades"),
          _money(f["oos"]["total_pnl"]), f["oos"].get("trades"), f["wfe"]]
         for f in s["folds"]],
        ["fold", "in-sample", "out-of-sample", "trials", "chosen", "IS objective", "OOS objective", "IS net PnL",
         "IS trades", "OOS net PnL", "OOS trades", "WFE"],
    )  # fmt: skip
    stability = _table(
        [[k, v["per_fold"], v["mode"], v["mode_share"], v["stable"]] for k, v in s["parameter_stability"].items()],
        ["key", "chosen per fold", "most chosen", "share", "stable (within one step)"],
    )  # fmt: skip
    dsr = s["deflated_sharpe"] or {}
    images = "".join(
        f'<h3>{html.escape(p.stem)}</h3><img alt="{html.escape(p.stem)}" '
        f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in pngs
    )
    verdict = s["verdict"]
    checks = "".join(
        f"<li>{'pass' if c['passed'] else '<b>FAIL</b>'}: {html.escape(c['text'])}</li>"
        for c in verdict["checks"]
    )
    versus = _table(
        [[f["fold"], f["candidate"], f["current"], "won" if f["won"] else "lost"] for f in verdict.get("folds", [])],
        ["fold", f"candidate OOS {verdict['objective']}", f"current OOS {verdict['objective']}", "candidate"],
    )  # fmt: skip
    rec_html = (
        f'<p id="verdict"><b>{html.escape(verdict["statement"])}</b></p><ul>{checks}</ul>'
        + (f"<p>Candidate: {html.escape(_fmt(rec['params']))}.</p>{versus}" if rec else "")
    )  # fmt: skip
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Optimizer {
        html.escape(s["run_id"])
    }</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;
padding:3px 6px;font-size:13px}}img{{max-width:100%}}</style></head><body>
<h1>Optimizer run {html.escape(s["run_id"])}</h1>
<p>Strategy <b>{html.escape(s["strategy"])}</b>, algorithm {html.escape(s["algorithm"])}, objective
{html.escape(s["objective"])} (every PnL net of fees; {html.escape(s.get("fee_profile", "SIM_* fee keys"))}),
float {html.escape(_money(s.get("float")))}, {counted(s["trials_total"], "trial")} over {
        counted(len(s["folds"]), "walk-forward fold")
    }.</p>
{rec_html}
<h2>Walk-forward folds</h2>{folds}
<p>Walk-forward efficiency (OOS / IS PnL per session): {_fmt(s["walk_forward_efficiency"])}.
Deflated Sharpe ratio (probability the candidate's out-of-sample Sharpe beats the best of {dsr.get("trials")}
unskilled trials): {_fmt(dsr.get("dsr"))}; a recommendation needs at least {
        _fmt(verdict["dsr_threshold"])
    }.</p>
<h2>Parameter stability</h2>{stability}
<h2>Plots</h2>{images}{
        f'<p id="charts-missing"><b>Charts missing:</b> {html.escape(missing)}</p>' if missing else ""
    }
<p>{
        "This is a proposal only: nothing changes until a person runs <code>tbot optimize approve "
        + html.escape(s["run_id"])
        + "</code> or approves it on the dashboard."
        if verdict["recommend"]
        else "No proposal was filed: the current settings stay."
    }</p></body></html>
"""
