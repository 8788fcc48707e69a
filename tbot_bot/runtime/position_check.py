"""Positions three ways: what the broker holds, what the journal says the bot holds, what the ledger has booked.

One report (`PositionReport`) is computed here and rendered by `tbot positions`, the dashboard's Positions page and
the supervisor's status.json. Quantities are signed (a short is negative); option positions are keyed by their OCC
symbol, as brokers report them. The ledger lags the journal by design (a day is booked at reconciliation and at its
end), so the ledger column is compared as "booked + fills the journal has not booked yet" against the journal.

Failing closed: a broker position or open order the journal cannot account for, or a journal that holds nothing for
the day while the broker or the ledger shows the day's activity, makes `blocks_trading` true. A broker that cannot
be asked is never read as "flat": the report then says it could not compare (`broker_error`) and blocks too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.broker.broker_api import Broker, Order, Position
from tbot_bot.config.error_handler import Severity, classify
from tbot_bot.domain.intents import Intent
from tbot_bot.errors import LedgerError, TbotError
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.runtime.positions import is_final_with_fill, open_trades, position_symbol

IGNORED_PREFIX = "ignored:"  # journal kv: ignored:<SYMBOL> -> {"qty", "by", "at"}
IGNORED_ORDER_PREFIX = "ignored_order:"  # journal kv: ignored_order:<client order id> -> {"by", "at"}


@dataclass(frozen=True, slots=True)
class PositionLine:
    symbol: str
    broker_qty: Decimal | None  # None: the broker could not be asked
    journal_qty: Decimal
    ledger_qty: Decimal  # booked in the ledger (open round trips)
    unbooked_qty: Decimal  # journal fills not in the ledger yet (booked at the next reconciliation / day end)
    ignored_qty: Decimal  # broker quantity the operator chose to leave alone (`--ignore`)
    in_flight_qty: Decimal  # fills the broker reports for orders the journal knows but has not recorded yet
    strategies: tuple[str, ...]
    avg_price: Decimal | None
    mark: Decimal | None
    multiplier: Decimal
    problems: tuple[str, ...]

    @property
    def market_value(self) -> Decimal | None:
        if self.broker_qty is None or self.mark is None:
            return None
        return self.broker_qty * self.mark * self.multiplier

    @property
    def unrealized_pnl(self) -> Decimal | None:
        if self.broker_qty is None or self.mark is None or self.avg_price is None:
            return None
        return (self.mark - self.avg_price) * self.broker_qty * self.multiplier

    def as_row(self) -> dict[str, Any]:
        def text(v: Decimal | None, places: str | None = None) -> str | None:
            if v is None:
                return None
            return format(v.quantize(Decimal(places)) if places else v.normalize(), "f")

        return {
            "symbol": self.symbol,
            "broker_qty": text(self.broker_qty),
            "journal_qty": text(self.journal_qty),
            "ledger_qty": text(self.ledger_qty),
            "unbooked_qty": text(self.unbooked_qty),
            "ignored_qty": text(self.ignored_qty),
            "in_flight_qty": text(self.in_flight_qty),
            "strategies": list(self.strategies),
            "avg_price": text(self.avg_price, "0.0001"),
            "mark": text(self.mark, "0.0001"),
            "market_value": text(self.market_value, "0.01"),
            "unrealized_pnl": text(self.unrealized_pnl, "0.01"),
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class OrderLine:
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    status: str
    in_journal: bool


@dataclass
class PositionReport:
    session_date: str
    checked_at: str
    lines: list[PositionLine] = field(default_factory=list)
    open_orders: list[OrderLine] = field(default_factory=list)
    journal_lost: str | None = None  # why the journal cannot account for the day, when it cannot
    broker_error: str | None = None
    broker_unreachable: bool = False  # broker_error is an outage (the broker did not answer), not a refusal
    ledger_error: str | None = None

    @property
    def unexplained_positions(self) -> list[str]:
        return [ln.symbol for ln in self.lines if any(p.startswith("broker") for p in ln.problems)]

    @property
    def unexplained_orders(self) -> list[str]:
        return [o.client_order_id for o in self.open_orders if not o.in_journal]

    @property
    def differs(self) -> bool:
        return bool(
            any(ln.problems for ln in self.lines)
            or self.unexplained_orders
            or self.journal_lost
            or self.broker_error
            or self.ledger_error
        )

    @property
    def blocks_trading(self) -> bool:
        """New entries stop (and a start refuses) until the operator resolves it (`tbot positions --help`)."""
        return bool(
            self.unexplained_positions or self.unexplained_orders or self.journal_lost or self.broker_error
        )

    def summary(self) -> str:
        """One line naming what differs (alerts, refusals, status.json)."""
        parts = []
        if self.journal_lost:
            parts.append(self.journal_lost)
        if self.broker_error:
            parts.append(f"broker not compared: {self.broker_error}")
        if self.ledger_error:
            parts.append(f"ledger not compared: {self.ledger_error}")
        for ln in self.lines:
            parts += [f"{ln.symbol}: {p}" for p in ln.problems]
        if self.unexplained_orders:
            parts.append("open orders the journal does not know: " + ", ".join(self.unexplained_orders))
        return "; ".join(parts) if parts else "broker, journal and ledger agree"

    def to_json(self) -> dict[str, Any]:
        return {
            "session_date": self.session_date,
            "checked_at": self.checked_at,
            "differs": self.differs,
            "blocks_trading": self.blocks_trading,
            "summary": self.summary(),
            "journal_lost": self.journal_lost,
            "broker_error": self.broker_error,
            "ledger_error": self.ledger_error,
            "positions": [ln.as_row() for ln in self.lines],
            "open_orders": [
                {
                    "client_order_id": o.client_order_id,
                    "symbol": o.symbol,
                    "side": o.side,
                    "qty": format(o.qty.normalize(), "f"),
                    "status": o.status,
                    "in_journal": o.in_journal,
                }
                for o in self.open_orders
            ],
        }


def _signed(intent: Intent, qty: Decimal) -> Decimal:
    return qty if intent.order_side == "buy" else -qty


def journal_positions(intents: list[Intent]) -> tuple[dict[str, Decimal], dict[str, set[str]]]:
    qty: dict[str, Decimal] = {}
    strategies: dict[str, set[str]] = {}
    for tr in open_trades(intents):
        sym = position_symbol(tr.entry)
        qty[sym] = qty.get(sym, Decimal(0)) + _signed(tr.entry, tr.remaining)
        strategies.setdefault(sym, set()).add(str(tr.entry.strategy))
    return qty, strategies


def ledger_positions(ledger: Path) -> dict[str, Decimal]:
    """Open round trips in the ledger, signed by side, per ticker (OCC symbol for options)."""
    from tbot_bot.reporting.ledger_trades import read_trades

    out: dict[str, Decimal] = {}
    for t in read_trades(ledger):
        if t.held:  # what is still open: all of an entry until an exit, the rest after a partial exit
            sign = Decimal(-1) if t.side == "short" else Decimal(1)
            out[t.ticker] = out.get(t.ticker, Decimal(0)) + sign * t.held
    return out


def booked_fitids(ledger: Path, fitids: Iterable[str]) -> set[str]:
    from tbot_bot.accounting.accounting_api import existing_digests
    from tbot_bot.accounting.ledger_schema import open_ledger

    wanted = list(fitids)
    if not wanted:
        return set()
    with open_ledger(ledger, readonly=True) as conn:
        return set(existing_digests(conn, wanted))


def unbooked_positions(intents: list[Intent], booked: set[str]) -> dict[str, Decimal]:
    """The position effect of final fills the ledger does not hold yet (entries add, exits take away)."""
    out: dict[str, Decimal] = {}
    for i in intents:
        if is_final_with_fill(i.status, i.filled_qty) and i.client_order_id not in booked:
            sym = position_symbol(i)
            out[sym] = out.get(sym, Decimal(0)) + _signed(i, i.filled_qty or Decimal(0))
    return out


def ignored_positions(journal: OrderJournal) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, raw in journal.values_with_prefix(IGNORED_PREFIX):
        try:
            out[key[len(IGNORED_PREFIX) :]] = Decimal(json.loads(raw)["qty"])
        except (ValueError, KeyError, TypeError, ArithmeticError):
            continue
    return out


def day_has_ledger_trades(ledger: Path, day: date) -> bool:
    from tbot_bot.reporting.ledger_trades import read_trades

    return bool(read_trades(ledger, day=day))


def _in_flight(intents: list[Intent], orders: dict[str, Order]) -> dict[str, Decimal]:
    """Fills of the journal's working orders that the broker has and the journal has not recorded yet (the
    supervisor syncs them at its next poll; a killed one at its restart)."""
    out: dict[str, Decimal] = {}
    for i in intents:
        o = orders.get(i.client_order_id)
        if o is None or not i.status.is_open or o.filled_qty <= (i.filled_qty or 0):
            continue
        sym = position_symbol(i)
        out[sym] = out.get(sym, Decimal(0)) + _signed(i, o.filled_qty - (i.filled_qty or Decimal(0)))
    return out


def _mark(broker: Broker, p: Position) -> Decimal | None:
    try:
        return broker.get_latest_quote(p.symbol).mid
    except TbotError:
        return None  # no quote: market value and unrealised PnL are left blank, never guessed


def compare_positions(
    broker: Broker,
    journal: OrderJournal,
    ledger: Path,
    day: date,
    now: datetime,
    *,
    since: datetime,
    bot_id: str,
) -> PositionReport:
    """The three views side by side; `since` = the session's start (the broker's orders of the day); the bot's
    own orders are known by their client order id prefix `<bot_id>-<yyyymmdd>-`."""
    report = PositionReport(day.isoformat(), now.isoformat())
    intents = journal.intents()
    j_qty, j_strats = journal_positions(intents)
    held: dict[str, Position] = {}
    orders: list[Order] = []
    try:
        held = {p.symbol: p for p in broker.get_positions() if p.qty != 0}
        orders = broker.list_orders(since=since)
    except TbotError as exc:
        report.broker_error = str(exc)
        # an outage (not a refusal): the supervisor suspends entries, probes, and reconciles when it answers
        report.broker_unreachable = classify(exc).severity is Severity.SUSPEND
    try:
        l_qty = ledger_positions(ledger)
        booked = booked_fitids(ledger, [i.client_order_id for i in intents])
        day_booked_trades = day_has_ledger_trades(ledger, day)
    except (LedgerError, OSError, ValueError) as exc:
        report.ledger_error = str(exc)
        l_qty, booked, day_booked_trades = {}, {i.client_order_id for i in intents}, False
    unbooked = unbooked_positions(intents, booked)
    ignored = ignored_positions(journal)
    known_ids = {i.client_order_id for i in intents}
    # an order someone placed at the broker that the operator chose to leave working is accounted for
    known_ids |= {k[len(IGNORED_ORDER_PREFIX) :] for k, _ in journal.values_with_prefix(IGNORED_ORDER_PREFIX)}
    in_flight = _in_flight(intents, {o.client_order_id: o for o in orders})
    for o in orders:
        if not o.status.is_final:
            report.open_orders.append(
                OrderLine(
                    o.client_order_id,
                    o.symbol,
                    str(o.side),
                    o.qty,
                    str(o.status),
                    o.client_order_id in known_ids,
                )
            )
    symbols = sorted(set(held) | set(j_qty) | {s for s, q in l_qty.items() if q} | set(ignored))
    for sym in symbols:
        p = held.get(sym)
        b = None if report.broker_error else (p.qty if p else Decimal(0))
        j, lq, ub = j_qty.get(sym, Decimal(0)), l_qty.get(sym, Decimal(0)), unbooked.get(sym, Decimal(0))
        ig, fl = ignored.get(sym, Decimal(0)), in_flight.get(sym, Decimal(0))
        problems = []
        if b is not None and b - ig != j + fl:
            what = "holds" if b else "holds nothing of"
            problems.append(
                f"broker {what} {b if b else sym}, journal {j}"
                + (f" (ignored {ig})" if ig else "")
                + (": not the bot's" if j == 0 else "")
            )
        if not report.ledger_error and lq + ub != j:
            problems.append(f"ledger {lq}" + (f" + {ub} to book" if ub else "") + f", journal {j}")
        report.lines.append(
            PositionLine(
                sym, b, j, lq, ub, ig, fl, tuple(sorted(j_strats.get(sym, ()))),
                p.avg_entry_price if p else None, _mark(broker, p) if p else None,
                p.multiplier if p else Decimal(1), tuple(problems),
            )
        )  # fmt: skip
    if not any(i.session_date == day.isoformat() for i in intents):
        activity = []
        ours = f"{bot_id}-{day:%Y%m%d}-"
        if any(o.client_order_id.startswith(ours) for o in orders):
            activity.append("the broker has the bot's orders")
        if set(held) - set(ignored) and not j_qty:
            activity.append("the broker holds positions")
        if day_booked_trades:
            activity.append("the ledger has trades")
        if activity:
            report.journal_lost = (
                f"the journal ({journal.path}) holds nothing for {day} but "
                + " and ".join(activity)
                + " of that day: it is missing, emptied or replaced"
            )
    return report
