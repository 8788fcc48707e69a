"""Automatic defense mode (DESIGN §8): the realised drawdown and win rate of the day's closed trades, after
fees, switch defense mode on for the rest of the session and the next.

The risk manager owns the thresholds and the reduced limits (`RiskManager.observe_performance`); this module
measures the day, remembers a switch in the order journal (so a restart and the next session keep it) and
says who it was: `disaster_mode.log`, an alert and status.json are written by the day (DayContext).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from tbot_bot.domain.results import is_win
from tbot_bot.market_time import previous_session_date
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.runtime.positions import RoundTrip

DEFENSE_LOG = "disaster_mode.log"


def _key(day: date) -> str:
    return f"defense_mode:{day.isoformat()}"


def _cleared_key(day: date) -> str:
    return f"defense_cleared:{day.isoformat()}"


@dataclass(frozen=True, slots=True)
class Performance:
    drawdown: float | None  # peak-to-trough of cumulative net PnL, as a fraction of the float
    win_rate: float | None  # closed trades with net PnL > 0 / closed trades (None: nothing closed yet)


def realised_performance(
    trips: Sequence[RoundTrip], float_amount: Decimal, *, leave_out: frozenset[str] = frozenset()
) -> Performance:
    """The day's closed round trips in exit order, net of fees (a win is net > 0); `leave_out`: the exits (client
    order ids) closed before an operator cleared defense mode (judged again, they would switch it back on), by id,
    since an exit learned late may sort before them."""
    kept = [t for t in trips if t.exit.client_order_id not in leave_out]
    ordered = sorted(kept, key=lambda t: (t.exit.filled_at or t.exit.created_at, t.exit.client_order_id))
    # a trade sold in two exits is one result, judged once it is wholly sold (as the books count it); the
    # drawdown still follows each exit's money
    by_entry: dict[str, Decimal] = {}
    results = []
    for t in ordered:
        by_entry[t.entry.client_order_id] = by_entry.get(t.entry.client_order_id, Decimal(0)) + t.pnl
        if t.closes:
            results.append(by_entry[t.entry.client_order_id])
    return performance_of([t.pnl for t in ordered], float_amount, results=results)


def performance_of(
    net_pnls: Sequence[Decimal], float_amount: Decimal, *, results: Sequence[Decimal] | None = None
) -> Performance:
    """Drawdown of net PnL in exit order and win rate of closed trades (the live day and the backtest).
    `results`: each wholly closed trade's net PnL, when an exit is not a trade (default: `net_pnls`)."""
    if not net_pnls:
        return Performance(None, None)
    running = peak = worst = Decimal(0)
    for pnl in net_pnls:
        running += pnl
        peak = max(peak, running)
        worst = max(worst, peak - running)
    judged = net_pnls if results is None else results
    wins = sum(1 for p in judged if is_win(p))
    drawdown = float(worst / float_amount) if float_amount > 0 else None
    return Performance(drawdown, wins / len(judged) if judged else None)


def self_check(journal: OrderJournal, calendar: str, day: date) -> tuple[bool, str]:
    """The triggers' arithmetic on a known day (a loss after a gain is a drawdown from the peak; a trade sold in
    two exits is one result) and this session's carried switch readable from the journal, as boot needs them."""
    drawdown = performance_of([Decimal(10), Decimal(-30), Decimal(5)], Decimal(100)).drawdown
    split = performance_of([Decimal(-1), Decimal(3)], Decimal(100), results=[Decimal(2)])
    if drawdown is None or abs(drawdown - 0.30) > 1e-12 or split.win_rate != 1.0:
        return False, "defense mode's drawdown or win-rate arithmetic is wrong"
    try:
        DefenseMonitor(journal, calendar, day).carried_reason()
    except sqlite3.Error as exc:
        return False, f"defense mode cannot read its switch for {day}: {exc}"
    return True, "ok"


class DefenseMonitor:
    """Whether a trigger fired on this session or the previous one, and recording a new switch."""

    def __init__(self, journal: OrderJournal, calendar: str, day: date) -> None:
        self.journal = journal
        self.day = day
        self._previous = previous_session_date(day, calendar)

    def carried_reason(self) -> str | None:
        """The reason of a switch made earlier today (before a restart) or during the previous session."""
        today = self.journal.get_value(_key(self.day))
        if today:
            return today
        if self.journal.get_value(_cleared_key(self.day)):  # an operator ended it for this session
            return None
        earlier = self.journal.get_value(_key(self._previous))
        return f"carried over from {self._previous}: {earlier}" if earlier else None

    def record(self, reason: str) -> None:
        self.journal.set_value(_key(self.day), reason)

    @property
    def previous_session(self) -> date:
        return self._previous

    def clear(self, stamp: str, closed_exits: Sequence[str]) -> None:
        """An operator ended defense mode for this session (what carried over, and a switch made today); the
        triggers then judge only the trades closed after the clear (`closed_exits`: the exits closed before it)."""
        self.journal.delete_value(_key(self.day))
        self.journal.set_value(
            _cleared_key(self.day), json.dumps({"by": stamp, "before": sorted(closed_exits)})
        )

    def cleared_exits(self) -> frozenset[str]:
        """The exits of today's trades the triggers leave out (none: no clear today)."""
        raw = self.journal.get_value(_cleared_key(self.day))
        try:
            before = json.loads(raw)["before"] if raw else []
        except (ValueError, KeyError, TypeError):
            return frozenset()
        return frozenset(str(x) for x in before) if isinstance(before, list) else frozenset()
