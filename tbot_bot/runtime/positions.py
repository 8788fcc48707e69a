"""Positions and round trips as the journal records them (our own books of what we hold, per strategy).

Quantities are counted from fills, not from order sizes: an exit cancelled after a partial fill closed part of the
position, and the next exit only sends what is still held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tbot_bot.runtime.order_journal import Intent, IntentStatus

OPTION_MULTIPLIER = Decimal(100)


@dataclass(frozen=True, slots=True)
class OpenTrade:
    entry: Intent  # filled at least partly
    exit: Intent | None  # a working exit order, or None when none is working
    remaining: Decimal  # quantity still held: entry fills minus exit fills


@dataclass(frozen=True, slots=True)
class RoundTrip:
    entry: Intent
    exit: Intent  # a final exit order with fills (FILLED, or cancelled after a partial fill)

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


def _filled_final(i: Intent) -> bool:
    return bool(i.filled_qty) and not i.status.is_open


def open_trades(intents: list[Intent]) -> list[OpenTrade]:
    """Entries with fills whose quantity is not yet all sold back (or whose entry order is still working)."""
    exits = _exits_by_entry(intents)
    out = []
    for e in intents:
        if e.purpose != "entry" or not e.filled_qty:
            continue
        mine = exits.get(e.client_order_id, [])
        sold = sum((x.filled_qty or Decimal(0) for x in mine if _filled_final(x)), Decimal(0))
        working = [x for x in mine if x.status.is_open]
        remaining = (e.filled_qty or Decimal(0)) - sold
        if remaining > 0 or e.status.is_open:
            out.append(OpenTrade(e, working[-1] if working else None, max(remaining, Decimal(0))))
    return out


def round_trips(intents: list[Intent]) -> list[RoundTrip]:
    exits = _exits_by_entry(intents)
    out = []
    for e in intents:
        if e.purpose != "entry" or not e.filled_qty:
            continue
        out += [RoundTrip(e, x) for x in exits.get(e.client_order_id, []) if _filled_final(x)]
    return out


def is_final_with_fill(status: IntentStatus, filled_qty: Decimal | None) -> bool:
    return bool(filled_qty) and not status.is_open
