"""Neutral result type of every `self_check()` (strategies, filters, safety modules, brokers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# what a failed check asks of whoever reads it (the launch's exit code, DESIGN/README "Exit codes")
BUG = "bug"  # an impossible result of our own code: exit 1
# the configuration, a file, an account: a person must act, exit 2 (systemd does not restart)
REFUSED = "refused"
TRANSIENT = "transient"  # the broker or the machine for now: worth a restart, exit 75


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    reason: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    cause: str = BUG  # of a failure: BUG, REFUSED or TRANSIENT


def cause_of(exc: BaseException) -> str:
    """The cause of a check that failed on `exc`: a service that did not answer may after a restart (TRANSIENT), one
    that said no or a fault a person must fix will not (REFUSED), anything else is ours (BUG)."""
    from tbot_bot.errors import BrokerError, MachineFault, NetworkError, TbotError

    if isinstance(exc, NetworkError | MachineFault):
        return TRANSIENT if exc.transient else REFUSED
    if isinstance(exc, BrokerError) and exc.code == "malformed_reply":
        return TRANSIENT  # an HTML error page or a cut-off body: what a struggling service sends
    return REFUSED if isinstance(exc, TbotError) else BUG
