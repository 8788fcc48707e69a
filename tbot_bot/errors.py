"""Error classes named by what happens next (see support/architecture.md, "Errors").

ConfigError: a human must act; the CLI prints it and exits 2. NetworkError: temporary, retried with
backoff. BrokerError: the broker refused (logged to unresolved_orders). LogicError: a bug or an
impossible state; escalated. LedgerError: a batch the ledger refused; nothing was written.
Vendor exceptions are translated into these at the adapter edge with `raise X(...) from e`.
"""

from __future__ import annotations

from typing import Any


class TbotError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(TbotError):
    """Configuration, secrets or provisioning are wrong; carries every problem found, not just the first."""

    label = "Configuration error"

    def __init__(
        self,
        problems: str | list[str],
        *,
        source: str | None = None,
        known_values: dict[str, Any] | None = None,
    ) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        # the keys that were individually valid, so later checks (preflight) still run on them
        self.known_values = dict(known_values or {})
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.label} in {self.source}" if self.source else self.label
        if len(self.problems) == 1:
            return f"{head}: {self.problems[0]}"
        lines = [f"{head}: {len(self.problems)} problems"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(ConfigError):
    """A command-line argument or a value typed by a person is not acceptable (a short password, an
    unknown role, an end date before the start); exit 2. A ConfigError, so existing handlers still catch it."""

    label = "Invalid input"


class DataError(TbotError):
    """An input data file (bars, VIX) is unreadable or inconsistent: names the file, the row and the problem."""

    label = "Data error"


class NetworkError(TbotError):
    """A temporary failure talking to a remote service (timeout, connection refused, 429, 5xx)."""

    # False on a subclass whose service answered "no" (a wrong key, 401/403): a restart will not help (exit 2)
    transient = True


class BrokerError(TbotError):
    """The broker refused or failed an operation in a way a retry will not fix (reject, 403, 422)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class PositionsStillHeld(BrokerError):
    """A closing (end of day, a stop) left positions held: their exits were refused or cancelled. Said and alerted;
    the supervisor stays up (a restart would only send the same refused order again), and the next session's first
    window tries again."""


class LogicError(TbotError):
    """An impossible state or a bug; escalated to an operator."""


class LedgerError(TbotError):
    """The ledger refused a batch or failed verification; nothing was written."""


class DamagedLedger(LedgerError):
    """A ledger file that is not (or no longer) SQLite: a person restores or moves it (exit 2: a restart would meet
    the same file)."""


class MarketDataError(NetworkError):
    """Market data could not be obtained; the watchdog treats a persistent one as a full-shutdown event."""


class MarketDataUnreachable(MarketDataError):
    """The market data host did not answer (connection failed, timed out, 5xx, 429): an outage, ridden out as one
    (entries suspended, the broker probed, reconciled, the window resumed), not a shutdown. With Alpaca one host
    serves orders and data, and the minute's bar request is what meets an outage first."""


class OrderStateUnknown(NetworkError):
    """A submission failed in a way that leaves it unknown whether the broker holds the order, and the
    look-up by client_order_id also failed. The supervisor must reconcile before sending anything new."""

    def __init__(self, message: str, *, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(message)


class MachineFault(TbotError):
    """The machine, not the bot or its input: disk full (`transient`: worth a restart, exit 75), a read-only file
    system or a permission denied (a person must act, exit 2). The message names the file and the next step."""

    def __init__(self, message: str, *, transient: bool) -> None:
        self.transient = transient
        super().__init__(message)
