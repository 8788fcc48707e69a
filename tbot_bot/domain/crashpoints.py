"""Named crash points for the crash-recovery tests (a test seam, inert unless TBOT_CRASH_AT is set).

On the ground floor so that every layer it instruments (ledger, config, orders, runtime) can call it.

TBOT_CRASH_AT="after_journal" (or "after_journal:3" for the third time the point is reached) makes the
process SIGKILL itself there, exactly like a power cut: no cleanup, no flush beyond what is already durable.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_hits: Counter[str] = Counter()


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("TBOT_CRASH_AT")
    if not spec:
        return None
    name, _, nth = spec.partition(":")
    return name, int(nth or 1)


def crashpoint(name: str) -> None:
    target = _target()
    if target is None or target[0] != name:
        return
    _hits[name] += 1
    if _hits[name] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
