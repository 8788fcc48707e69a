"""Forked helpers end with the command that forked them, however it ended (issue: a killed `tbot backtest` left
its chart worker waiting for ever, a killed `tbot optimize run --jobs 2` its study worker evaluating trials)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _gone(pid: int, within: float = 10.0) -> bool:
    """The process has ended (or is a zombie nobody reaped yet) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _orphaned_child(code: str) -> int:
    """Run `code` in a fresh interpreter that prints a child's pid; kill that interpreter with SIGKILL (no handler,
    no clean-up) and return the child's pid."""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with proc.stdout:
        pid = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return pid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_chart_worker_ends_when_its_command_is_killed() -> None:
    pid = _orphaned_child(
        "import time\nfrom tbot_bot.backtest.chart_worker import ChartWorker\n"
        "w = ChartWorker(preload=()).start()\nprint(w._proc.pid, flush=True)\ntime.sleep(60)\n"
    )
    assert _gone(pid), "the chart worker outlived the killed command"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_forked_worker_ends_with_its_parent() -> None:
    pid = _orphaned_child(
        "import os, time\nfrom tbot_bot.support.child_process import end_with_parent\nparent = os.getpid()\n"
        "child = os.fork()\nif child == 0:\n    end_with_parent(parent)\n    time.sleep(60)\n    os._exit(0)\n"
        "print(child, flush=True)\ntime.sleep(60)\n"
    )
    assert _gone(pid), "the forked worker outlived its parent"


def test_a_child_whose_parent_is_already_gone_exits() -> None:
    """The parent may end between the fork and the child's request for the signal: the child checks."""
    child = os.fork()
    if child == 0:  # pragma: no cover - the child exits inside
        from tbot_bot.support.child_process import end_with_parent

        end_with_parent(os.getppid() + 1_000_000)  # not its parent: taken for a parent that ended
        os._exit(3)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
