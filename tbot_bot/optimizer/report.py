"""The files of one optimizer run under `<OPTIMIZER_OUTPUT_DIR>/<run_id>/`: trials.csv, folds.csv, best.json,
optimization_history.png, param_slices.png, pareto_front.png (genetic) and report.html, which embeds the
pictures so it can be mailed or archived as one file."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from tbot_bot.optimizer.evidence import sig4
from tbot_bot.optimizer.results import FoldResult
from tbot_bot.support.utils_bot import atomic_write_bytes, atomic_write_json, atomic_write_text

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


def _png(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _value(t: Any, genetic: bool) -> float:
    return float(t.values[0] if genetic else t.value)


def plot_history(results: list[FoldResult], genetic: bool, path: Path) -> Path:
    # bare Figures with fixed margins: tight_layout would render each figure twice (once to measure it)
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.13, top=0.9)
    for r in results:
        xs = [t.number for t in r.trials]
        ys = [_value(t, genetic) for t in r.trials]
        best = [max(ys[: i + 1]) for i in range(len(ys))]
        ax.scatter(xs, ys, s=10, alpha=0.5, label=f"fold {r.fold.index}")
        ax.plot(xs, best, linewidth=1)
    ax.set_xlabel("trial")
    ax.set_ylabel("in-sample net PnL" if genetic else "in-sample objective")
    ax.set_title("Optimisation history (dots: trials, lines: best so far)")
    ax.legend(fontsize=7)
    return _png(fig, path)


def plot_slices(results: list[FoldResult], keys: tuple[str, ...], genetic: bool, path: Path) -> Path:
    fig = Figure(figsize=(4 * len(keys), 3.5))
    axes = fig.subplots(1, len(keys), squeeze=False)
    fig.subplots_adjust(left=0.25 / len(keys), right=0.99, bottom=0.1, top=0.82, wspace=0.3)
    for ax, key in zip(axes[0], keys, strict=True):
        for r in results:
            xs = [t.params.get(key) for t in r.trials]
            ys = [_value(t, genetic) for t in r.trials]
            ax.scatter(xs, ys, s=10, alpha=0.6, label=f"fold {r.fold.index}")
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("in-sample objective")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("Parameter slices")
    return _png(fig, path)


def plot_pareto(results: list[FoldResult], path: Path) -> Path:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    for r in results:
        ax.scatter([t.values[1] for t in r.trials], [t.values[0] for t in r.trials], s=8, alpha=0.3)
        front = sorted(r.pareto, key=lambda t: t.values[1])
        ax.plot(
            [t.values[1] for t in front],
            [t.values[0] for t in front],
            marker="o",
            label=f"fold {r.fold.index}",
        )
    ax.set_xlabel("in-sample max drawdown")
    ax.set_ylabel("in-sample net PnL")
    ax.set_title("Pareto front: return vs drawdown")
    ax.legend(fontsize=7)
    return _png(fig, path)


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


def write_outputs(
    out_dir: Path, summary: dict[str, Any], trials: list[dict[str, Any]], results: list[FoldResult],
    keys: tuple[str, ...],
) -> dict[str, Path]:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    genetic = summary["algorithm"] == "genetic"
    files = {"trials": out_dir / "trials.csv", "folds": out_dir / "folds.csv", "best": out_dir / "best.json"}
    columns = list(dict.fromkeys(k for row in trials for k in row))
    atomic_write_text(files["trials"], _csv(trials, columns))
    atomic_write_text(files["folds"], _csv(fold_rows(summary), FOLD_COLUMNS))
    atomic_write_json(files["best"], summary)
    files["history_png"] = plot_history(results, genetic, out_dir / "optimization_history.png")
    files["slices_png"] = plot_slices(results, keys, genetic, out_dir / "param_slices.png")
    if genetic:
        files["pareto_png"] = plot_pareto(results, out_dir / "pareto_front.png")
    files["report"] = out_dir / "report.html"
    atomic_write_text(
        files["report"], render_html(summary, [p for k, p in files.items() if k.endswith("_png")])
    )
    return files


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


def render_html(summary: dict[str, Any], pngs: list[Path]) -> str:
    s = summary
    rec = s["pick"]
    folds = _table(
        [[f["fold"], f"{f['is_start']}..{f['is_end']}", f"{f['oos_start']}..{f['oos_end']}", f["trials"],
          f["params"], f["is_objective"], f["oos_objective"], f["is"]["total_pnl"], f["oos"]["total_pnl"], f["wfe"]]
         for f in s["folds"]],
        ["fold", "in-sample", "out-of-sample", "trials", "chosen", "IS objective", "OOS objective", "IS net PnL",
         "OOS net PnL", "WFE"],
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
float {html.escape(_money(s.get("float")))}, {s["trials_total"]} trials over {
        len(s["folds"])
    } walk-forward folds.</p>
{rec_html}
<h2>Walk-forward folds</h2>{folds}
<p>Walk-forward efficiency (OOS / IS PnL per session): {_fmt(s["walk_forward_efficiency"])}.
Deflated Sharpe ratio (probability the candidate's out-of-sample Sharpe beats the best of {dsr.get("trials")}
unskilled trials): {_fmt(dsr.get("dsr"))}; a recommendation needs at least {
        _fmt(verdict["dsr_threshold"])
    }.</p>
<h2>Parameter stability</h2>{stability}
<h2>Plots</h2>{images}
<p>{
        "This is a proposal only: nothing changes until a person runs <code>tbot optimize approve "
        + html.escape(s["run_id"])
        + "</code> or approves it on the dashboard."
        if verdict["recommend"]
        else "No proposal was filed: the current settings stay."
    }</p></body></html>
"""
