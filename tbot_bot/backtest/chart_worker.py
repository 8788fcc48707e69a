"""Charts and reports drawn by a worker process while the numbers are computed (issue 25).

Importing matplotlib costs more than simulating a month of minute bars, so `tbot backtest` (and `tbot optimize`)
fork this worker before they load the bars: the worker imports matplotlib while the parent loads and simulates,
lays the charts' canvases out while no job has come (plot_results.lay_out_*), then waits for one job (what to
draw, the report to write). The parent sends the job only once the trades, tables and metrics are on disk
(`submit`), and may print its summary while the worker draws; `result()` waits for the worker's answer (the
files it wrote), so a command that returns has left a complete report. When drawing fails the caller writes the
report without charts, with the failure as one of its warnings; the numbers already written are never touched
by the worker.

A job is any picklable object with `draw() -> dict[str, Path]` (ChartJob here: the backtest's two charts, drawn
side by side by the worker and a process it forks, then the report). Where `fork` is not available the same
steps run in the parent, at `result()` (the import is then paid in sequence).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pandas as pd

from tbot_bot.backtest.report import write_html, write_markdown
from tbot_bot.errors import LogicError
from tbot_bot.support.child_process import end_with_parent
from tbot_bot.support.utils_bot import BACKGROUND_NICENESS

CHART_TIMEOUT_SECONDS = 300.0  # two charts of any span draw in seconds; far beyond that the worker is stuck
T = TypeVar("T")
# matplotlib's import and the canvases' first rendering overlap the simulation instead of following the numbers
BACKTEST_CHARTS = (
    "tbot_bot.backtest.plot_results",
    "tbot_bot.backtest.plot_results:lay_out_equity",
    "tbot_bot.backtest.plot_results:lay_out_daily",
)
BACKTEST_WRITTEN = "the trades, tables, metrics and report are written (--no-plots skips the charts)"

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tbot_bot.backtest.report import BacktestReport


class Job(Protocol):
    def draw(self) -> dict[str, Path]: ...


@dataclass(frozen=True, slots=True)
class ChartJob:
    """The backtest's charts: plain frames and the report (all picklable), and where to write."""

    out_dir: Path
    curve: pd.DataFrame  # performance_metrics.equity_curve
    exits: pd.DataFrame  # exit_time, pnl
    daily_pnl: pd.Series  # net PnL per session date, every session of the range
    label: str
    report: BacktestReport

    def draw(self) -> dict[str, Path]:
        """The two charts (side by side in the worker), then the report listing them; every file written."""
        from tbot_bot.backtest.plot_results import plot_daily_pnl, plot_equity_drawdown

        daily = self.out_dir / "daily_pnl.png"
        title = f"{self.label}: PnL per session, net of fees"
        # the daily chart in a forked copy of the worker while the worker draws the equity chart: the parent
        # only waits by now, so the second core draws instead
        equity = side_by_side(
            lambda: plot_equity_drawdown(
                self.curve,
                self.exits,
                self.out_dir / "equity_drawdown.png",
                f"{self.label}: equity and drawdown",
            ),
            lambda: plot_daily_pnl(self.daily_pnl, daily, title),
        )
        files = {"equity_png": equity, "daily_png": daily}
        images = {"equity and drawdown": files["equity_png"], "PnL per session": files["daily_png"]}
        files["report_md"] = write_markdown(self.report, self.out_dir / "report.md", images)
        files["report_html"] = write_html(self.report, self.out_dir / "report.html", images)
        return files


_IN_WORKER = False  # set in the forked worker: only there may drawing fork again (the caller's process never)


@dataclass(frozen=True, slots=True)
class Drawing:
    """A chart being drawn by a forked copy of the worker; its failure comes back through a pipe."""

    pid: int
    errors: int  # the read end of the pipe the child writes its failure to

    def wait(self) -> None:
        with os.fdopen(self.errors, "rb") as pipe:
            failure = pipe.read().decode("utf-8", "replace")
        _, status = os.waitpid(self.pid, 0)
        if failure or os.waitstatus_to_exitcode(status) != 0:
            raise LogicError(failure or f"a forked drawing ended with exit status {status}")

    def abandon(self) -> None:
        """The other drawing failed: this one must not go on writing a chart the report will not list."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.errors)


def side_by_side(here: Callable[[], T], there: Callable[[], object]) -> T:
    """`here()` while `there()` runs in a forked copy of the chart worker (outside the worker: one after the
    other, in this process). Returns here()'s result once both are done; either failing fails the whole, and the
    forked drawing is never left running."""
    child = fork_drawing(there)
    try:
        first = here()
    except BaseException:
        if child is not None:
            child.abandon()
        raise
    if child is None:
        there()
    else:
        child.wait()
    return first


def fork_drawing(draw: Callable[[], object]) -> Drawing | None:
    """`draw()` in a forked child of the chart worker, or None outside the worker (the caller draws itself)."""
    if not _IN_WORKER or not hasattr(os, "fork"):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return Drawing(pid, read)
    os.close(read)
    code = 0
    try:
        draw()
    except BaseException as exc:
        os.write(write, f"{type(exc).__name__}: {exc}".encode())
        traceback.print_exc(file=sys.stderr)
        code = 1
    finally:
        os._exit(code)  # never back into the worker's loop or its exit handlers


def _serve(
    conn: Connection, preload: tuple[str, ...], parents_end: Connection | None = None, parent_pid: int = 0
) -> None:
    """The worker: import the drawing modules now (the parent is simulating), lay out what can be laid out
    before the numbers, then draw the one job sent. It ends with the command (killed or not): the parent's end of
    the pipe, inherited by the fork, is closed here, so the parent's death is an end of file."""
    global _IN_WORKER
    _IN_WORKER = True
    if parents_end is not None:
        parents_end.close()
    if parent_pid:
        end_with_parent(parent_pid)
    os.setpgid(0, 0)  # its own process group: a stuck worker is killed with any drawing it forked
    # the numbers come first: while the parent loads, simulates and writes them (on every core it has threads
    # for), the import of matplotlib here waits for a core left idle instead of taking one from them
    os.nice(BACKGROUND_NICENESS)
    # Ctrl-C is the parent's to handle: it closes the pipe, and the worker then exits quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prepare(conn, preload)
    try:
        job = conn.recv()
    except EOFError:  # the parent gave up (an error before any output): nothing to draw
        return
    if job is None:
        return
    try:
        conn.send(("ok", job.draw()))
    except LogicError as exc:  # a forked drawing failed: its own message (its traceback went to stderr)
        _answer(conn, ("error", str(exc)))
    except Exception as exc:  # the parent reports it; the traceback helps whoever files the bug
        _answer(conn, ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _prepare(conn: Connection, preload: tuple[str, ...]) -> None:
    """`module` entries are imported (the import is the point: it overlaps the simulation); `module:function`
    entries are called, in order, only while no job has come. A step under way when the numbers arrive is
    finished (one canvas, ~0.1 s at most); the steps left are skipped and their charts drawn from scratch."""
    for entry in preload:
        module, _, step = entry.partition(":")
        if not step:
            importlib.import_module(module)
            continue
        if conn.poll():
            return
        try:
            getattr(importlib.import_module(module), step)()
        # only a head start is lost: drawing from scratch meets, and reports, the same fault
        except Exception:
            pass


def _answer(conn: Connection, message: tuple[str, str]) -> None:
    try:
        conn.send(message)
    except OSError:  # the parent is gone (it gave up waiting): nobody to tell
        pass


class ChartWorker:
    """One forked worker per run: `start()` early, `submit(job)` once the numbers are written, `result()` for
    the files drawn (`draw(job)` does both). `preload`: the modules the worker imports while it waits, and the
    `module:function` steps it then takes while no job has come (laying canvases out);
    `written`: what a drawing failure's message says is on disk all the same."""

    def __init__(self, preload: tuple[str, ...] = BACKTEST_CHARTS, written: str = BACKTEST_WRITTEN) -> None:
        self._preload = preload
        self._written = written
        self._proc: Any = None
        self._conn: Connection | None = None
        self._job: Job | None = None  # without a worker: drawn here, at result()
        self._submitted = False

    def start(self) -> ChartWorker:
        if "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_serve,
                args=(child, self._preload, parent, os.getpid()),
                name="tbot-charts",
                daemon=True,
            )
            try:
                self._proc.start()
            except (AssertionError, OSError):  # inside a daemonic process, or no process left: draw here
                parent.close()
                return self
            finally:
                child.close()
            self._conn = parent
        return self

    def draw(self, job: Job) -> dict[str, Path]:
        """Hand the job over and wait for its files."""
        self.submit(job)
        return self.result()

    def submit(self, job: Job) -> None:
        """Hand the job over; the worker draws while the caller goes on (prints its summary)."""
        self._submitted = True
        if self._conn is None:
            self._job = job
            return
        try:
            self._conn.send(job)
        except OSError:  # the worker is gone: result() says so
            pass

    def result(self) -> dict[str, Path]:
        """The submitted job's files once drawn; LogicError naming the failure when they were not."""
        self._submitted = False  # answered (or given up) once
        status: str
        answer: Any
        if self._conn is None:
            job, self._job = self._job, None
            if job is None:
                raise LogicError("the charts were not drawn (nothing was submitted)")
            try:
                return job.draw()
            except Exception as exc:  # reported like the worker's failure: the numbers stand
                status, answer = "error", f"{type(exc).__name__}: {exc}"
        else:
            try:
                # a worker that hangs (a stuck renderer) must not hang the command: the numbers are on disk
                if not self._conn.poll(CHART_TIMEOUT_SECONDS):
                    raise TimeoutError(f"no charts after {CHART_TIMEOUT_SECONDS:.0f} s")
                status, answer = self._conn.recv()
            except TimeoutError as exc:
                self._kill()  # stuck: nothing more will come from it
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
            raise LogicError(f"the charts were not drawn ({answer.strip().splitlines()[0]}); {self._written}")
        return dict(answer)

    def cancel(self) -> None:
        """No job after all (an error, or --no-plots decided late): let the worker exit. A job already handed
        over (an error after the numbers) is let finish: its charts and report are what the numbers have."""
        if self._submitted:
            try:
                self.result()
            except LogicError:  # drawing failed too: the caller's error is the one to report
                pass
            return
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
            self._kill()
            self._proc.join()

    def _kill(self) -> None:
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)  # the worker and the drawing it forked
        except (ProcessLookupError, PermissionError):
            self._proc.kill()
