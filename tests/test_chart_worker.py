"""Backtest charts drawn by a forked worker (issue 25): the numbers are on disk before the charts, the command's
own process never imports matplotlib, the report lists the charts drawn, and a failing chart leaves the numbers
and a report that says what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers import make_settings

from tbot_bot.backtest import chart_worker
from tbot_bot.backtest.backtest_engine import finish_charts, run_backtest
from tbot_bot.support.path_resolver import package_file
from tbot_bot.support.utils_bot import BACKGROUND_NICENESS

SAMPLE = package_file("data", "sample")
DAY = date(2011, 1, 10)
CHARTS = ("equity_drawdown.png", "daily_pnl.png")


def test_the_worker_draws_after_the_numbers_and_the_command_never_imports_matplotlib(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom datetime import date\nfrom pathlib import Path\n"
        "sys.path.insert(0, 'tests')\nfrom helpers import make_settings\n"
        "from tbot_bot.backtest.backtest_engine import run_backtest\n"
        "from tbot_bot.support.path_resolver import package_file\n"
        f"r = run_backtest(make_settings(), 'open', package_file('data', 'sample'), date(2011, 1, 10), "
        f"date(2011, 1, 10), Path({str(tmp_path)!r}))\n"
        "print(sorted(k for k in r.files if k.endswith('_png')), 'matplotlib' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['daily_png', 'equity_png'] False"
    numbers = max((tmp_path / n).stat().st_mtime_ns for n in ("trade_history_backtest.csv", "metrics.json"))
    charts = [(tmp_path / n).stat().st_mtime_ns for n in CHARTS]
    assert numbers <= min(charts) and max(charts) <= (tmp_path / "report.html").stat().st_mtime_ns
    md = (tmp_path / "report.md").read_text()
    assert all(f"({name})" in md for name in CHARTS)
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 2


@pytest.mark.parametrize("fork", [True, False])
def test_a_failing_chart_keeps_the_numbers_and_the_report_says_so(
    fork: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.backtest import plot_results

    def broken(*_args: object) -> Path:
        raise RuntimeError("renderer exploded")

    # patched before the worker forks, so the worker draws with it (or the parent, without fork)
    monkeypatch.setattr(plot_results, "plot_daily_pnl", broken)
    if not fork:
        monkeypatch.setattr(chart_worker.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    result = run_backtest(make_settings(), "open", SAMPLE, DAY, DAY, tmp_path)
    warning = result.report.warnings[-1]
    assert "charts were not drawn (RuntimeError: renderer exploded)" in warning
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "trade_history_backtest.csv").is_file()
    md = (tmp_path / "report.md").read_text()
    assert ".png" not in md and "renderer exploded" in md
    assert "daily_png" not in result.files


def test_without_fork_the_charts_are_drawn_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chart_worker.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    result = run_backtest(make_settings(), "open", SAMPLE, DAY, DAY, tmp_path)
    assert all((tmp_path / name).is_file() for name in CHARTS)
    assert result.files["report_html"].read_text().count("data:image/png;base64,") == 2


def test_a_stuck_chart_worker_is_given_up_and_the_numbers_stand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from tbot_bot.backtest import plot_results

    def stuck(*_args: object) -> Path:
        time.sleep(60)  # a renderer that never returns
        raise AssertionError("unreachable")

    monkeypatch.setattr(plot_results, "plot_daily_pnl", stuck)  # before the fork: the worker hangs
    monkeypatch.setattr(chart_worker, "CHART_TIMEOUT_SECONDS", 1.0)
    started = time.monotonic()
    result = run_backtest(make_settings(), "open", SAMPLE, DAY, DAY, tmp_path)
    assert time.monotonic() - started < 30  # given up after the timeout, not after the renderer's minute
    assert "the chart worker gave no answer: no charts after 1 s" in result.report.warnings[-1]
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "trade_history_backtest.csv").is_file()
    assert "daily_png" not in result.files


def test_the_command_prints_while_the_charts_are_drawn(tmp_path: Path) -> None:
    """run_backtest(wait_for_charts=False) (what `tbot backtest` calls) returns once the numbers are on disk,
    the worker still drawing; finish_charts waits for the charts and the report listing them."""
    worker = chart_worker.ChartWorker().start()
    result = run_backtest(
        make_settings(), "open", SAMPLE, DAY, DAY, tmp_path, charts=worker, wait_for_charts=False
    )
    assert result.charts is worker
    assert (tmp_path / "metrics.json").is_file() and "report_html" not in result.files
    done = finish_charts(result)
    assert done.charts is None and set(done.stages) >= {"outputs", "charts"}
    assert done.metrics == result.metrics and done.files["daily_png"] == tmp_path / "daily_pnl.png"
    assert done.files["report_html"].read_text().count("data:image/png;base64,") == 2


class _Note:
    """A job that writes one file (picklable: defined at module level)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def draw(self) -> dict[str, Path]:
        self.path.write_text("drawn")
        return {"note": self.path}


def test_the_worker_lays_out_ahead_and_a_failing_step_only_costs_the_head_start(tmp_path: Path) -> None:
    """`module:function` preload steps run while no job has come; one that fails leaves the worker drawing."""
    import time

    _MARK["ready"] = tmp_path / "ready"  # set before the fork: the worker's step touches it when done
    worker = chart_worker.ChartWorker(
        preload=("tbot_bot.backtest.chart_worker:_no_such_step", f"{__name__}:_leave_a_mark")
    ).start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.submit(_Mark(tmp_path / "drawn.txt"))
    assert worker.result() == {"note": tmp_path / "drawn.txt"}
    assert (tmp_path / "drawn.txt").read_text() == "laid out ahead"


def test_the_steps_left_are_skipped_once_a_job_has_come(tmp_path: Path) -> None:
    """The job comes while the first step runs: that step finishes, the next one never runs."""
    _MARK["ready"] = tmp_path / "ready"
    _MARK["submitted"] = tmp_path / "submitted"
    worker = chart_worker.ChartWorker(
        preload=(f"{__name__}:_wait_for_the_job", f"{__name__}:_leave_a_mark")
    ).start()
    worker.submit(_Mark(tmp_path / "drawn.txt"))  # while the first step still runs
    (tmp_path / "submitted").touch()  # the first step ends only now
    assert worker.result() == {"note": tmp_path / "drawn.txt"}
    assert (tmp_path / "drawn.txt").read_text() == "from scratch" and not (tmp_path / "ready").exists()


_MARK: dict[str, object] = {"text": "from scratch"}


def _wait_for_the_job() -> None:
    """A step that lasts until the test has handed the job over."""
    import time

    deadline = time.monotonic() + 60
    while not Path(str(_MARK["submitted"])).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _leave_a_mark() -> None:
    _MARK["text"] = "laid out ahead"  # in the worker only: the test's process keeps its own copy
    Path(str(_MARK["ready"])).touch()


class _Mark:
    """A job that writes what the worker's preload steps left it (picklable: defined at module level)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def draw(self) -> dict[str, Path]:
        self.path.write_text(str(_MARK["text"]))
        return {"note": self.path}


def test_an_error_after_the_job_was_handed_over_lets_the_worker_finish(tmp_path: Path) -> None:
    """cancel() after submit() (an error once the numbers were written): the job is finished, not killed."""
    worker = chart_worker.ChartWorker(preload=()).start()
    worker.submit(_Note(tmp_path / "report.html"))
    worker.cancel()
    assert (tmp_path / "report.html").read_text() == "drawn"


def test_a_failing_drawing_never_leaves_its_forked_sibling_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(chart_worker, "_IN_WORKER", True)  # as in the worker: the second drawing is forked
    late = tmp_path / "late.png"

    def slow() -> None:
        time.sleep(30)
        late.write_text("drawn after the report said it was missing")

    def broken() -> Path:
        raise RuntimeError("renderer exploded")

    forked: list[chart_worker.Drawing] = []
    real_fork = chart_worker.fork_drawing

    def recorded(draw: Any) -> chart_worker.Drawing | None:
        child = real_fork(draw)
        if child is not None:
            forked.append(child)
        return child

    monkeypatch.setattr(chart_worker, "fork_drawing", recorded)
    with pytest.raises(RuntimeError, match="renderer exploded"):
        chart_worker.side_by_side(broken, slow)
    # the sibling is gone before side_by_side raised: killed and reaped (a live or zombie child still has a pid)
    assert len(forked) == 1
    with pytest.raises(ProcessLookupError):
        os.kill(forked[0].pid, 0)
    assert not late.exists()


def test_a_summary_cut_short_still_leaves_the_charts_and_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tbot backtest ... | head`: printing fails after the numbers; the charts and report are still written."""
    from tbot_bot.backtest import backtest_engine

    def closed_pipe(*_args: object) -> None:
        raise BrokenPipeError

    monkeypatch.setattr(backtest_engine, "_print_summary", closed_pipe)
    argv = ["--strategy", "open", "--start", "2011-01-10", "--end", "2011-01-10", "--data-source", str(SAMPLE),
            "--out", str(tmp_path), "--home", str(tmp_path), "--quiet"]  # fmt: skip
    with pytest.raises(BrokenPipeError):
        backtest_engine.main(argv)
    assert all((tmp_path / name).is_file() for name in CHARTS)
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 2


def test_the_worker_yields_the_cores_to_the_numbers() -> None:
    # the worker's import of matplotlib overlaps the load and the simulation: at a lower priority it takes only
    # a core they leave idle (at the same one it took one of the bar store's two reading threads' cores)
    worker = chart_worker.ChartWorker(preload=()).start()
    try:
        assert worker._proc is not None
        pid = worker._proc.pid
        deadline = time.monotonic() + 10
        while os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0):
            assert time.monotonic() < deadline, "the worker never lowered its priority"
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICENESS
        )
    finally:
        worker.cancel()
