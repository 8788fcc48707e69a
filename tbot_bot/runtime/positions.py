"""Positions and round trips as the journal records them (our own books of what we hold, per strategy)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tbot_bot.runtime.order_journal import Intent, IntentStatus

_FAILED = (IntentStatus.REJECTED, IntentStatus.ABANDONED, IntentStatus.CANCELED)
OPTION_MULTIPLIER = Decimal(100)


@dataclass(frozen=True, slots=True)
class OpenTrade:
    entry: Intent  # filled (at least partly)
    exit: Intent | None  # a live exit order, or None when no exit has been placed (or it failed)


@dataclass(frozen=True, slots=True)
class RoundTrip:
    entry: Intent
    exit: Intent

    @property
    def qty(self) -> Decimal:
        return self.exit.filled_qty or Decimal(0)

    @property
    def multiplier(self) -> Decimal:
        return OPTION_MULTIPLIER if self.entry.instrument == "option" else Decimal(1)

    @property
    def pnl(self) -> Decimal:
        """Realised PnL after fees. A short sale gains when the price falls; every other trade holds the
        instrument long (inverse ETFs and puts included), so it gains when the instrument rises."""
        entry_px = self.entry.filled_price or Decimal(0)
        exit_px = self.exit.filled_price or Decimal(0)
        sign = Decimal(-1) if self.entry.order_side == "sell" else Decimal(1)
        gross = sign * (exit_px - entry_px) * self.qty * self.multiplier
        return gross - (self.entry.fee or Decimal(0)) - (self.exit.fee or Decimal(0))

    @property
    def holding_seconds(self) -> float:
        return (
            datetime.fromisoformat(self.exit.filled_at or "")
            - datetime.fromisoformat(self.entry.filled_at or "")
        ).total_seconds()


def _exits_by_entry(intents: Iterable[Intent]) -> dict[str, list[Intent]]:
    out: dict[str, list[Intent]] = {}
    for i in intents:
        if i.purpose == "exit" and i.entry_client_order_id:
            out.setdefault(i.entry_client_order_id, []).append(i)
    return out


def open_trades(intents: list[Intent]) -> list[OpenTrade]:
    exits = _exits_by_entry(intents)
    out = []
    for e in intents:
        if e.purpose != "entry" or not e.filled_qty:
            continue
        live = [x for x in exits.get(e.client_order_id, []) if x.status not in _FAILED]
        if any(x.status is IntentStatus.FILLED for x in live):
            continue
        out.append(OpenTrade(e, live[-1] if live else None))
    return out


def round_trips(intents: list[Intent]) -> list[RoundTrip]:
    exits = _exits_by_entry(intents)
    out = []
    for e in intents:
        if e.purpose != "entry" or not e.filled_qty:
            continue
        for x in exits.get(e.client_order_id, []):
            if x.status is IntentStatus.FILLED:
                out.append(RoundTrip(e, x))
    return out
