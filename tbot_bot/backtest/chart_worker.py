"""The backtest's charts and report, drawn by a worker process while the simulation runs (issue 25).

Importing matplotlib costs more than simulating a month of minute bars, so `tbot backtest` forks this worker
before it loads the bars: the worker imports matplotlib while the parent loads and simulates, then waits for one
job (the curves to draw, the report to write). The parent sends the job only once the trades, tables and
metrics are on disk; the worker draws the PNGs, then writes report.md and report.html listing exactly the charts
it drew, and answers with their paths. The parent waits for that answer before `run_backtest` returns, so a
finished command always leaves a complete report. When drawing fails the parent writes the report without
charts, with the failure as one of its warnings; the numbers already written are never touched by the worker.

Where `fork` is not available the same steps run in the parent (the import is then paid in sequence).
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tbot_bot.backtest.report import write_html, write_markdown
from tbot_bot.errors import LogicError

CHART_TIMEOUT_SECONDS = 300.0  # two charts of any span draw in seconds; far beyond that the worker is stuck

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tbot_bot.backtest.report import BacktestReport


@dataclass(frozen=True, slots=True)
class ChartJob:
    """What the worker needs: plain frames and the report (all picklable), and where to write."""

    out_dir: Path
    curve: pd.DataFrame  # performance_metrics.equity_curve
    exits: pd.DataFrame  # exit_time, pnl
    daily_pnl: pd.Series  # net PnL per session date, every session of the range
    label: str
    report: BacktestReport


def draw(job: ChartJob) -> dict[str, Path]:
    """Draw the two charts, then the report listing them; returns every file written (key -> path)."""
    from tbot_bot.backtest.plot_results import plot_daily_pnl, plot_equity_drawdown

    files = {
        "equity_png": plot_equity_drawdown(
            job.curve, job.exits, job.out_dir / "equity_drawdown.png", f"{job.label}: equity and drawdown"
        ),
        "daily_png": plot_daily_pnl(
            job.daily_pnl, job.out_dir / "daily_pnl.png", f"{job.label}: PnL per session, net of fees"
        ),
    }
    images = {"equity and drawdown": files["equity_png"], "PnL per session": files["daily_png"]}
    files["report_md"] = write_markdown(job.report, job.out_dir / "report.md", images)
    files["report_html"] = write_html(job.report, job.out_dir / "report.html", images)
    return files


def _serve(conn: Connection) -> None:
    """The worker: import matplotlib now (the parent is simulating), then draw the one job it is sent."""
    # Ctrl-C is the parent's to handle: it closes the pipe, and the worker then exits quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import tbot_bot.backtest.plot_results  # noqa: F401 - the import is the point: it overlaps the simulation

    try:
        job = conn.recv()
    except EOFError:  # the parent gave up (an error before any output): nothing to draw
        return
    if job is None:
        return
    try:
        conn.send(("ok", draw(job)))
    except Exception as exc:  # the parent reports it; the traceback helps whoever files the bug
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


class ChartWorker:
    """One forked worker per backtest run; `start()` early, `draw(job)` once the numbers are written."""

    def __init__(self) -> None:
        self._proc: Any = None
        self._conn: Connection | None = None

    def start(self) -> ChartWorker:
        if "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child,), name="tbot-backtest-charts", daemon=True)
            try:
                self._proc.start()
            except (AssertionError, OSError):  # inside a daemonic process, or no process left: draw here
                parent.close()
                return self
            finally:
                child.close()
            self._conn = parent
        return self

    def draw(self, job: ChartJob) -> dict[str, Path]:
        """Hand the job over and wait for the charts and the report (in the parent when no worker runs)."""
        status: str
        answer: Any
        if self._conn is None:
            try:
                return draw(job)
            except Exception as exc:  # reported like the worker's failure: the numbers stand
                status, answer = "error", f"{type(exc).__name__}: {exc}"
        else:
            try:
                self._conn.send(job)
                # a worker that hangs (a stuck renderer) must not hang the backtest: the numbers are on disk
                if not self._conn.poll(CHART_TIMEOUT_SECONDS):
                    raise TimeoutError(f"no charts after {CHART_TIMEOUT_SECONDS:.0f} s")
                status, answer = self._conn.recv()
            except TimeoutError as exc:
                self._proc.kill()  # stuck: nothing more will come from it
                status, answer = "error", f"the chart worker gave no answer: {exc}"
            except (EOFError, OSError):
                self._finish()
                status, answer = (
                    "error",
                    f"the chart worker exited unexpectedly (exit code {self._proc.exitcode})",
                )
            finally:
                if self._conn is not None:
                    self._finish()
        if status != "ok":
            raise LogicError(
                f"the charts were not drawn ({answer.strip().splitlines()[0]}); the trades, tables, metrics and "
                "report are written (--no-plots skips the charts)"
            )
        return dict(answer)

    def cancel(self) -> None:
        """No job after all (an error, or --no-plots decided late): let the worker exit."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            self._finish()

    def _finish(self) -> None:
        assert self._conn is not None
        self._conn.close()
        self._conn = None
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
