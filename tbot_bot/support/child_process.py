"""Forked helpers that end with the command that forked them.

A chart worker or a study's extra worker forked by `tbot backtest` / `tbot optimize run` kept running when the
command was killed (SIGTERM, SIGKILL, a closed terminal): the chart worker waited on a pipe whose other end it
held itself, and a study worker evaluated the rest of the grid for nobody. Linux's parent-death signal ends such a
child when its parent ends, whatever ended it; elsewhere the child finds its parent gone at its next step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """In a forked child: receive `sig` when the parent `parent_pid` ends; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except (OSError, AttributeError):  # no C library by that name: the pipe's end-of-file still ends it
            pass
    if os.getppid() != parent_pid:  # the parent ended before the signal was asked for: it will never come
        os._exit(0)
