"""`output/status.json`: the daemon's state for people and the dashboard, written atomically on every change."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from tbot_bot.domain.clock import Clock
from tbot_bot.domain.results import net_pnl
from tbot_bot.support.utils_bot import atomic_write_text


class BotState(StrEnum):
    IDLE = "idle"
    ANALYZING = "analyzing"
    TRADING = "trading"
    MONITORING = "monitoring"
    # the broker stopped answering: new entries wait while it is probed (not the day's end)
    SUSPENDED = "suspended"
    HALTED = "halted"
    SHUTDOWN = "shutdown"
    CLOSED = "closed"


# states in which a supervisor is at work or waiting for its next step (idle: the next window; halted: the next
# session): with no supervisor holding the run lock they are stale at once ("waiting" for a window that no
# process will run). closed and shutdown end a day or a process and stay true without one
RUNNING_STATES = ("idle", "analyzing", "trading", "monitoring", "suspended", "halted")
# ... and those written at least every minute (a suspended one writes when the broker's state changes, so its age
# says nothing)
STALE_AFTER_S = 300
_WRITTEN_EVERY_MINUTE = ("analyzing", "trading", "monitoring")


def is_stale(state: object, written_age_s: float | None, running: bool | None) -> bool:
    """Whether a status.json no longer tells the present: a running state with no supervisor (`running` False, from
    the run lock; None when not known), or a window's state not rewritten for STALE_AFTER_S (a hung supervisor)."""
    if running is False and state in RUNNING_STATES:
        return True
    return state in _WRITTEN_EVERY_MINUTE and written_age_s is not None and written_age_s > STALE_AFTER_S


@dataclass
class StatusBoard:
    """Mutable status; `publish()` writes it (temp file + rename) so readers never see a half-written file."""

    path: Path
    clock: Clock
    version: str
    bot: dict[str, str]
    state: BotState = BotState.IDLE
    session_date: str | None = None
    active_strategy: str | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            s: {"signaled": 0, "entered": 0, "exited": 0} for s in ("open", "mid", "close")
        }
    )
    positions: list[dict[str, str]] = field(default_factory=list)
    realized_pnl_by_strategy: dict[str, Decimal] = field(default_factory=dict)  # gross (the ledger's PnL)
    fees_by_strategy: dict[str, Decimal] = field(default_factory=dict)
    # the day's fees the broker posted apart from fills (Alpaca's regulatory fees): no strategy's, the day's
    account_fees: Decimal = Decimal(0)
    trades_by_strategy: dict[str, int] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=lambda: {"name": "", "healthy": True, "last_error": None})
    api: dict[str, int] = field(default_factory=lambda: {"retries": 0, "errors": 0})
    defense_mode: bool = False
    defense_reason: str | None = None  # why defense mode is on (DEFENSE_MODE_ACTIVE or a trigger)
    kill_switch: dict[str, Any] = field(default_factory=lambda: {"tripped": False, "reason": None})
    pending_confirmations: list[dict[str, str]] = field(default_factory=list)
    message: str | None = None
    reconciliation: dict[str, Any] | None = None  # broker vs journal vs ledger at start and after each window
    trading_stopped: str | None = None  # a Stop ended trading ("<UTC time> <who>"); Start resumes it
    paused: str | None = None  # `tbot pause` in force: "<UTC time> <who>"; exits are still managed
    # entries paused while a rebalance breach is open (REBALANCE_PAUSE_ENTRIES): why, else None
    rebalance_pause: str | None = None
    money: dict[str, Any] = field(default_factory=dict)  # broker equity/cash, exposure, float and caps used
    market_data: dict[str, Any] | None = None  # a window's feed went stale: which window, since when

    def start_day(self, session_date: str) -> None:
        """A new trading day: yesterday's counts, PnL, positions and flags do not carry over."""
        self.session_date = session_date
        self.active_strategy = None
        self.counts = {s: {"signaled": 0, "entered": 0, "exited": 0} for s in ("open", "mid", "close")}
        self.positions = []
        self.realized_pnl_by_strategy = {}
        self.fees_by_strategy = {}
        self.account_fees = Decimal(0)
        self.trades_by_strategy = {}
        self.kill_switch = {"tripped": False, "reason": None}
        self.pending_confirmations = []
        self.market_data = None
        self.broker = {**self.broker, "healthy": True, "last_error": None}
        self.message = None

    def day_totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """The day's gross PnL, fees (the fills' and the account's) and net PnL: the figures every surface shows."""
        gross = sum(self.realized_pnl_by_strategy.values(), Decimal(0))
        fees = sum(self.fees_by_strategy.values(), Decimal(0)) + self.account_fees
        return gross, fees, net_pnl(gross, fees)

    def to_json(self) -> dict[str, Any]:
        gross, fees, net = self.day_totals()
        net_by_strategy = {
            k: net_pnl(v, self.fees_by_strategy.get(k, Decimal(0)))
            for k, v in self.realized_pnl_by_strategy.items()
        }
        return {
            "state": self.state.value,
            "session_date": self.session_date,
            "active_strategy": self.active_strategy,
            "windows": self.windows,
            "counts": self.counts,
            "positions": self.positions,
            # the ledger's figures exactly (4 places); the PnL people read is net of fees (domain/results.py),
            # gross and fees beside it
            "realized_pnl": f"{net:.4f}",
            "realized_pnl_by_strategy": {k: f"{v:.4f}" for k, v in net_by_strategy.items()},
            "gross_pnl": f"{gross:.4f}",
            "gross_pnl_by_strategy": {k: f"{v:.4f}" for k, v in self.realized_pnl_by_strategy.items()},
            "fees": f"{fees:.4f}",
            "fees_by_strategy": {k: f"{v:.4f}" for k, v in self.fees_by_strategy.items()},
            "account_fees": f"{self.account_fees:.4f}",
            "net_pnl": f"{net:.4f}",
            "trades_by_strategy": self.trades_by_strategy,
            "broker": self.broker,
            "api": self.api,
            "defense_mode": self.defense_mode,
            "defense_reason": self.defense_reason,
            "kill_switch": self.kill_switch,
            "pending_confirmations": self.pending_confirmations,
            "reconciliation": self.reconciliation,
            "message": self.message,
            "trading_stopped": self.trading_stopped,
            "paused": self.paused,
            "rebalance_pause": self.rebalance_pause,
            "money": self.money,
            "market_data": self.market_data,
            "version": self.version,
            "bot": self.bot,
            "updated_at": self.clock.now().isoformat(),
        }

    def publish(self, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self, k, v)
        write_status(self.path, self.to_json())


# what an operator's desk changes (a flatten or a close with no supervisor running): what is held now, money and
# the message, whatever session status.json was written for; the day's PnL and fees, of the same session only
DESK_NOW_FIELDS = ("positions", "money", "message")
# the day's figures inside `money` (the rest is the account now): carried by a desk only into its own session
MONEY_DAY_KEYS = ("net_pnl_today", "windows")
DESK_DAY_FIELDS = (
    "realized_pnl", "realized_pnl_by_strategy", "gross_pnl", "gross_pnl_by_strategy", "fees", "fees_by_strategy",
    "account_fees", "net_pnl", "trades_by_strategy",
)  # fmt: skip


def carry_into_status(path: Path, board: StatusBoard) -> bool:
    """Write a desk's figures into status.json: positions, money and message always (a supervisor killed on
    Friday and flattened on Monday must not show Friday's positions), the day's figures when status.json is of
    the desk's session. False when there is no status.json yet. Call only with the run lock held."""
    held = read_status(path)
    if held is None:
        return False
    fresh = board.to_json()
    same_day = held.get("session_date") == board.session_date
    if not same_day:
        # the money block's day figures stay those of the session status.json is of (as its PnL lines do): the
        # account now from the desk, never the desk's own session's day figures
        fresh["money"] = {
            **{k: v for k, v in fresh["money"].items() if k not in MONEY_DAY_KEYS},
            **{k: v for k, v in (held.get("money") or {}).items() if k in MONEY_DAY_KEYS},
        }
    held.update({k: fresh[k] for k in (*DESK_NOW_FIELDS, *(DESK_DAY_FIELDS if same_day else ()))})
    write_status(path, held)
    return True


def write_status(path: Path, data: dict[str, Any]) -> None:
    """status.json as every writer writes it: whole (temp file + rename), so readers never see half of it."""
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def conditions(status: dict[str, Any], when: Callable[[Any], str]) -> list[str]:
    """What is wrong, or was wrong today, with the broker and the market data, for people (`tbot status` and the
    dashboard say the same): an outage or planned maintenance with its start, the time the broker answered again,
    a stale feed with its window and times. `when` formats an ISO time (each surface shows both zones)."""
    out: list[str] = []
    broker: dict[str, Any] = status["broker"] if isinstance(status.get("broker"), dict) else {}
    since, back = broker.get("down_since"), broker.get("resumed_at")
    if since and not broker.get("healthy"):
        kind = "planned maintenance" if broker.get("maintenance") else "outage"
        out.append(f"broker {kind} since {when(since)}: new entries wait, the broker is probed")
    elif since and back:
        out.append(f"broker was away from {when(since)} to {when(back)}; reconciled before entries resumed")
    if isinstance(status.get("rebalance_pause"), str):
        out.append(
            f"new entries paused: {status['rebalance_pause']} (`tbot rebalance status`; they resume when the float "
            "is back inside the band)"
        )
    feed: dict[str, Any] = status["market_data"] if isinstance(status.get("market_data"), dict) else {}
    if feed.get("since"):
        window = str(feed.get("window") or "?").upper()
        state = "stale" if feed.get("stale") else "went stale"
        out.append(
            f"market data {state} in the {window} window at {when(feed['since'])} (last bar {when(feed.get('last_bar_at'))}): "
            "no new entries for the rest of that window"
        )
    return out
