"""Positions and round trips as the journal records them (our own books of what we hold, per strategy).

Quantities are counted from fills, not from order sizes: an exit cancelled after a partial fill closed part of the
position, and the next exit only sends what is still held.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tbot_bot.accounting.account_transaction import ledger_fee, realised_pnl
from tbot_bot.domain.intents import Intent, IntentStatus
from tbot_bot.domain.vocab import OPTION_MULTIPLIER_DEC as OPTION_MULTIPLIER


@dataclass(frozen=True, slots=True)
class OpenTrade:
    entry: Intent  # filled at least partly
    exit: Intent | None  # a working exit order, or None when none is working
    remaining: Decimal  # quantity still held: entry fills minus exit fills


@dataclass(frozen=True, slots=True)
class RoundTrip:
    entry: Intent
    exit: Intent  # a final exit order with fills (FILLED, or cancelled after a partial fill)
    carries_entry_fee: bool = True  # the entry's fee counts once: with the first exit that filled
    closes: bool = True  # the exit that sold the rest: the trade is counted once, when it is wholly closed

    @property
    def qty(self) -> Decimal:
        return self.exit.filled_qty or Decimal(0)

    @property
    def multiplier(self) -> Decimal:
        return OPTION_MULTIPLIER if self.entry.instrument == "option" else Decimal(1)

    @property
    def gross_pnl(self) -> Decimal:
        """Realised PnL before fees, by the ledger's own formula (so status, kill switch and books agree).
        A short sale gains when the price falls; every other trade holds the instrument long (inverse ETFs and
        puts included), so it gains when the instrument rises."""
        return realised_pnl(
            self.qty,
            self.entry.filled_price or Decimal(0),
            self.exit.filled_price or Decimal(0),
            self.multiplier,
            short=position_side(self.entry) == "short",
        )

    @property
    def fees(self) -> Decimal:
        """The exit's fee plus, on the first exit of the entry, the entry's fee (as booked: 1/10,000)."""
        entry_fee = ledger_fee(self.entry.fee or Decimal(0)) if self.carries_entry_fee else Decimal(0)
        return entry_fee + ledger_fee(self.exit.fee or Decimal(0))

    @property
    def pnl(self) -> Decimal:
        """Realised PnL after fees (the kill switch's and status's figure)."""
        return self.gross_pnl - self.fees

    @property
    def holding_seconds(self) -> float:
        return (
            datetime.fromisoformat(self.exit.filled_at or "")
            - datetime.fromisoformat(self.entry.filled_at or "")
        ).total_seconds()


def position_side(entry: Intent) -> str:
    """What we hold: short only for a short sale (entry sells); inverse ETFs and puts are bought, so long."""
    return "short" if entry.order_side == "sell" else "long"


def signal_direction(intent: Intent) -> str:
    """The signal's view: the journal's direction long/short maps to bullish/bearish."""
    return "bearish" if intent.direction == "short" else "bullish"


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
        filled = [x for x in exits.get(e.client_order_id, []) if _filled_final(x)]
        sold = Decimal(0)
        for n, x in enumerate(filled):
            sold += x.filled_qty or Decimal(0)
            out.append(RoundTrip(e, x, n == 0, closes=sold >= (e.filled_qty or Decimal(0))))
    return out


def round_trip_for(intents: list[Intent], exit_intent: Intent) -> RoundTrip | None:
    """The round trip an exit fill closes (None without its entry), fee attribution as in round_trips."""
    for trip in round_trips(intents):
        if trip.exit.client_order_id == exit_intent.client_order_id:
            return trip
    return None


def is_final_with_fill(status: IntentStatus, filled_qty: Decimal | None) -> bool:
    """An order that is over and executed something: what position keeping counts and booking books."""
    return bool(filled_qty) and not status.is_open


def position_symbol(intent: Intent) -> str:
    """The symbol the broker reports the intent's position under (an option's OCC symbol)."""
    if intent.option_json:
        from tbot_bot.trading.orders_bot import option_from_json

        return option_from_json(intent.option_json).occ_symbol
    return intent.symbol
