"""Backtest throughput: bars/second of the vectorised simulate() path (bundled sample; seeded synthetic
100 symbols x 30 sessions) and of the bar-by-bar LiveEvaluator path, their ratio, and peak memory.

Run: .venv/bin/python benchmarks/bench_backtest.py [--json] [--end-to-end]
A "trial" is one strategy's simulate() over a prepared SessionGrid (what each optimizer trial runs).

--end-to-end (issue 25): 20 copies of the sample's SPY January as 20 symbols (with passing fundamentals, or the
screener refuses them all) and the sample's SH (the inverse ETF the month's bearish signals trade), written as CSV and imported into the bar store; the whole `tbot backtest --strategy S
--quiet` command (backtest_engine.main) in a fresh interpreter, so matplotlib's import is paid as a user pays it,
from CSV and from the store, with charts and with --no-plots, for `--strategy open` (the OPEN window alone: no
signal in these days, so the least simulation) and `--strategy all` (the three windows of a live day). Times
per run, none counting the interpreter's start or the import of tbot_bot:
- "total": `run_backtest` from its call until the numbers are on disk (loading, simulation, trades, tables,
  metrics); the command prints its summary then, while the chart worker it forked first thing draws;
- "charts": from then until the charts and the report listing them are written (the command waits for them
  before it returns: a finished command leaves a complete report);
- "command": `main()` from its call to its return (settings, the exchange calendar's first build, the run, the
  summary, the charts).
"simulation" is arrays + signals + fills (BacktestResult.stages). Prints total / simulation (target <= 1.5),
charts / simulation (the outputs' cost after the numbers, against the simulation's), (total + charts) /
simulation, and the store-vs-CSV load time ratio.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import make_settings  # noqa: E402

from tbot_bot.backtest.load_historical_data import load_bars, load_vix  # noqa: E402
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix  # noqa: E402
from tbot_bot.market_time import market_calendar, session_bounds  # noqa: E402
from tbot_bot.strategy.grid import build_grid  # noqa: E402
from tbot_bot.strategy.strategy_meta import signal_universe  # noqa: E402
from tbot_bot.strategy.strategy_router import strategy_module  # noqa: E402
from tbot_bot.support.path_resolver import package_file  # noqa: E402

STRATEGIES = ("open", "mid", "close")
SAMPLE = package_file("data", "sample")


def synthetic(symbols: int = 100, sessions: int = 30, seed: int = 42) -> pd.DataFrame:
    """Seeded random-walk minute bars on real XNYS sessions from 2011-01-03."""
    rng = np.random.default_rng(seed)
    cal = market_calendar("XNYS")
    days = [d.date() for d in cal.sessions_in_range("2011-01-03", "2011-06-30")[:sessions]]
    frames = []
    for d in days:
        o, c = session_bounds(d)  # type: ignore[misc]
        n = int((c - o) / timedelta(minutes=1))
        ts = pd.date_range(o, periods=n, freq="min")
        r = rng.normal(0, 0.0012, (symbols, n))
        close = 20 * (1 + rng.uniform(0, 4, (symbols, 1))) * np.cumprod(1 + r, axis=1)
        open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
        wiggle = np.abs(rng.normal(0, 0.0005, (symbols, n)))
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": np.tile(ts, symbols),
                    "symbol": np.repeat([f"S{i:03d}" for i in range(symbols)], n),
                    "open": open_.ravel(),
                    "high": (np.maximum(open_, close) * (1 + wiggle)).ravel(),
                    "low": (np.minimum(open_, close) * (1 - wiggle)).ravel(),
                    "close": close.ravel(),
                    "volume": rng.integers(1_000, 50_000, symbols * n).astype(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def passing_fundamentals(folder: Path, frame: pd.DataFrame) -> None:
    """Passing SPY-like fundamentals for every symbol of `frame`: the screener refuses an equity without them."""
    metrics = {
        "marketCapitalization": 2600.0,
        "peNormalizedAnnual": 14.2,
        "totalDebt/totalEquityAnnual": 0.45,
    }
    (folder / "fundamentals.json").write_text(json.dumps({str(s): metrics for s in frame["symbol"].unique()}))


def timed(fn, repeat: int = 3) -> tuple[float, object]:  # noqa: ANN001
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def vectorised(frame: pd.DataFrame, vix: dict[date, float], label: str) -> dict[str, object]:
    settings = make_settings()
    t_grid, grid = timed(
        lambda: build_grid(frame, symbols=signal_universe(sorted(frame["symbol"].unique()))), 1
    )
    result: dict[str, object] = {
        "data": label,
        "bars": grid.bars,
        "rows": grid.rows,
        "grid_build_s": round(t_grid, 4),
    }
    for name in STRATEGIES:
        strat = strategy_module(name)
        params = strat.params_from_settings(settings)
        t, trades = timed(lambda strat=strat, params=params: strat.simulate(grid, params, vix=vix))
        result[name] = {"trial_s": round(t, 4), "bars_per_s": round(grid.bars / t), "trades": len(trades)}  # type: ignore[arg-type]
    return result


def bar_by_bar(frame: pd.DataFrame, vix: dict[date, float], day: date) -> dict[str, object]:
    """The LiveEvaluator called once per minute through each strategy's window on one session."""
    settings = make_settings()
    one = frame[
        (frame["timestamp"].dt.date == day)
        & frame["symbol"].isin(signal_universe(sorted(frame["symbol"].unique())))
    ]
    bars = len(one)
    out: dict[str, object] = {"day": day.isoformat(), "bars": bars}
    for name in STRATEGIES:
        ev = strategy_module(name).live_for(day, settings, vix_at_start=vix.get(day))
        w = ev.window
        minutes = int((w.monitoring_end - w.start) / timedelta(minutes=1))
        t0 = time.perf_counter()
        for m in range(1, minutes + 1):
            ev.evaluate(w.start + timedelta(minutes=m), one)
        t = time.perf_counter() - t0
        out[name] = {
            "calls": minutes,
            "s": round(t, 4),
            "ms_per_call": round(1000 * t / minutes, 2),
            "bars_per_s": round(bars / t),
        }
    return out


_RUN = """
import json, sys, time
from pathlib import Path
from tbot_bot.backtest import backtest_engine
runs, run_s = [], []
real = backtest_engine.run_backtest
def recording(*args, **kwargs):
    t = time.perf_counter()
    runs.append(real(*args, **kwargs))
    run_s.append(time.perf_counter() - t)
    return runs[-1]
backtest_engine.run_backtest = recording
argv = ["--strategy", {strategy!r}, "--start", "2011-01-03", "--end", "2011-01-31", "--data-source", {source!r},
        "--out", {out!r}, "--home", {home!r}, "--quiet"] + {extra!r}
t0 = time.perf_counter()
code = backtest_engine.main(argv)
total = time.perf_counter() - t0
r = runs[0]
print(json.dumps({{"code": code, "command_s": total, "total_s": run_s[0], "stages": r.stages, "trades": len(r.trades),
                  "charts": sorted(k for k in r.files if k.endswith("_png"))}}))
"""


def end_to_end() -> dict[str, object]:
    """20 x SPY January through a whole backtest, from CSV and from the bar store."""
    from tbot_bot.data.bar_import import import_bars

    spy = load_bars(SAMPLE, start=date(2010, 12, 31), end=date(2011, 1, 31), symbols=["SPY"])
    # and the sample's SH, the inverse ETF a bearish signal trades (without it every signal of the month was
    # skipped as inverse_etf_unavailable: a backtest of no trade measured no fills)
    sh = load_bars(SAMPLE, start=date(2010, 12, 31), end=date(2011, 1, 31), symbols=["SH"])
    copies = pd.concat([*(spy.assign(symbol=f"SPY{i:02d}") for i in range(20)), sh], ignore_index=True)
    out: dict[str, object] = {"bars": len(copies)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "csv"
        folder.mkdir()
        frame = copies.assign(timestamp=copies["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        frame[["timestamp", "symbol", "open", "high", "low", "close", "volume"]].to_csv(
            folder / "bars.csv", index=False
        )
        (folder / "vix.csv").write_bytes((SAMPLE / "vix.csv").read_bytes())
        passing_fundamentals(folder, copies)
        store = Path(tmp) / "store"
        t0 = time.perf_counter()
        import_bars(folder, store)
        out["import_s"] = round(time.perf_counter() - t0, 3)
        kw = {"start": date(2010, 12, 31), "end": date(2011, 1, 31)}
        t_csv, _ = timed(lambda: load_bars(folder, **kw))
        t_store, _ = timed(lambda: load_bars(store, **kw))
        out["load_csv_s"], out["load_store_s"] = round(t_csv, 3), round(t_store, 3)
        out["load_ratio_store_over_csv"] = round(t_store / t_csv, 3)
        for strategy, label, source in itertools.product(("open", "all"), ("csv", "store"), (folder, store)):
            if (label == "csv") != (source == folder):
                continue
            for plots in (True, False):
                code = _RUN.format(
                    source=str(source), out=f"{tmp}/out_{strategy}_{label}_{plots}", home=tmp,
                    strategy=strategy, extra=[] if plots else ["--no-plots"],
                )  # fmt: skip
                done = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                )
                run = json.loads(done.stdout.strip().splitlines()[-1])
                st = run["stages"]
                sim = st["arrays"] + st["signals"] + st["fills"]
                charts = st.get("charts", 0.0)
                out[f"{strategy}_{label}{'' if plots else '_no_plots'}"] = {
                    "command_s": round(run["command_s"], 3),
                    "total_s": round(run["total_s"], 3),
                    "charts_s": round(charts, 3),
                    "stages_s": {k: round(v, 3) for k, v in st.items()},
                    "simulation_s": round(sim, 3),
                    "total_over_simulation": round(run["total_s"] / sim, 2),
                    "charts_over_simulation": round(charts / sim, 2),
                    "total_and_charts_over_simulation": round((run["total_s"] + charts) / sim, 2),
                    "trades": run["trades"],
                    "charts": run["charts"],
                }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--end-to-end", action="store_true", help="whole backtest runs, CSV vs bar store")
    args = parser.parse_args()
    if args.end_to_end:
        e2e = end_to_end()
        if args.json:
            print(json.dumps(e2e, indent=2))
            return 0
        for key, value in e2e.items():
            print(f"{key}: {json.dumps(value)}")
        print(f"load time store / CSV: {e2e['load_ratio_store_over_csv']}")
        for strategy, label in itertools.product(
            ("open", "all"), ("csv", "store", "csv_no_plots", "store_no_plots")
        ):
            run = e2e[f"{strategy}_{label}"]
            assert isinstance(run, dict)
            print(
                f"{strategy:>4} {label:>14}: command {run['command_s']:.3f} s; total {run['total_s']:.3f} s = load "
                f"{run['stages_s']['load']:.3f} + simulation {run['simulation_s']:.3f} + numbers "
                f"{run['stages_s']['outputs']:.3f}; charts after the numbers {run['charts_s']:.3f} s; "
                f"total / simulation {run['total_over_simulation']:.2f} (target <= 1.5)"
                + (
                    f", charts / simulation {run['charts_over_simulation']:.2f}, (total + charts) / simulation "
                    f"{run['total_and_charts_over_simulation']:.2f}"
                    if "no_plots" not in label
                    else ""
                )
            )
        return 0
    sample = load_bars(SAMPLE)
    vix_closes = load_vix(SAMPLE / "vix.csv")
    days = sorted(sample["timestamp"].dt.date.unique())
    vix = {d: v for d in days if (v := previous_close_vix(vix_closes, d)) is not None}
    report: dict[str, object] = {
        "vectorised_sample": vectorised(sample, vix, "sample (SPY + 8 synthetic, 43 sessions)")
    }
    synth = synthetic()
    synth_vix = {d: 20.0 for d in synth["timestamp"].dt.date.unique()}
    report["vectorised_synthetic"] = vectorised(synth, synth_vix, "synthetic 100 x 30")
    # peak Python-heap memory (numpy buffers included) of grid build + one trial per strategy, traced apart
    # from the timings because tracing slows allocation-heavy code
    tracemalloc.start()
    grid = build_grid(synth)
    for name in STRATEGIES:
        strat = strategy_module(name)
        strat.simulate(grid, strat.params_from_settings(make_settings()), vix=synth_vix)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report["peak_memory_synthetic_mb"] = round(peak / 2**20, 1)
    live = bar_by_bar(sample, vix, date(2011, 1, 5))
    report["bar_by_bar_sample_day"] = live
    vec = report["vectorised_sample"]
    report["ratio_vectorised_over_bar_by_bar"] = {
        n: round(vec[n]["bars_per_s"] / live[n]["bars_per_s"])
        for n in STRATEGIES  # type: ignore[index]
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
