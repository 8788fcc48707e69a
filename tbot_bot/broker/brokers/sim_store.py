"""SQLite persistence of the sim exchange (account cash, orders, fills, positions), so a restarted process
sees the same state. Money and quantities are stored as decimal strings; times as ISO-8601 UTC strings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from tbot_bot.broker.broker_api import (
    AssetClass,
    Fill,
    OptionContract,
    Order,
    OrderStatus,
    OrderType,
    Position,
)
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.support.machine_faults import database_fault, is_file_fault

SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    account_id TEXT NOT NULL,
    cash TEXT NOT NULL,
    starting_cash TEXT NOT NULL,
    currency TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    broker_order_id TEXT NOT NULL UNIQUE,
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    underlying TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    order_type TEXT NOT NULL,
    asset_class TEXT NOT NULL,
    option_expiry TEXT,
    option_strike TEXT,
    option_right TEXT,
    status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0',
    submitted_at TEXT NOT NULL,
    filled_at TEXT,
    reject_reason TEXT,
    last_fill_bar TEXT
);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    fee TEXT NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    symbol TEXT PRIMARY KEY,
    underlying TEXT NOT NULL,
    qty TEXT NOT NULL,
    avg_entry_price TEXT NOT NULL,
    asset_class TEXT NOT NULL,
    option_expiry TEXT,
    option_strike TEXT,
    option_right TEXT
);
"""


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(slots=True)
class OrderRow:
    """One order as stored; mutable while the matcher works on it."""

    seq: int
    broker_order_id: str
    client_order_id: str
    symbol: str  # the position symbol (OCC symbol for an option)
    underlying: str  # the bars that drive fills
    side: OrderSide
    qty: Decimal
    order_type: OrderType
    asset_class: AssetClass
    option: OptionContract | None
    status: OrderStatus
    filled_qty: Decimal
    submitted_at: datetime
    filled_at: datetime | None
    reject_reason: str | None
    last_fill_bar: datetime | None


@dataclass(slots=True)
class PositionRow:
    symbol: str
    underlying: str
    qty: Decimal
    avg_entry_price: Decimal
    asset_class: AssetClass
    option: OptionContract | None

    def to_position(self) -> Position:
        mult = Decimal(100) if self.asset_class is AssetClass.OPTION else Decimal(1)  # sim.OPTION_MULTIPLIER
        return Position(self.symbol, self.qty, self.avg_entry_price, self.asset_class, mult)


def _option(
    expiry: str | None, strike: str | None, right: str | None, underlying: str
) -> OptionContract | None:
    if expiry is None or strike is None or right is None:
        return None
    return OptionContract(underlying, date.fromisoformat(expiry), Decimal(strike), right)


class SimStore:
    def __init__(self, path: Path, *, starting_cash: Decimal, currency: str, account_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            # an existing exchange keeps its cash: starting_cash only seeds a new file
            self._db.execute(
                "INSERT OR IGNORE INTO account (id, account_id, cash, starting_cash, currency) VALUES (1, ?, ?, ?, ?)",
                (account_id, str(starting_cash), str(starting_cash), currency),
            )
        except sqlite3.DatabaseError as exc:  # garbage, a full disk, a read-only home: named with the file
            if not is_file_fault(exc):
                raise
            raise database_fault(exc, path) from exc

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # account
    def account(self) -> tuple[str, Decimal, str]:
        account_id, cash, currency = self._db.execute(
            "SELECT account_id, cash, currency FROM account WHERE id = 1"
        ).fetchone()
        return account_id, Decimal(cash), currency

    def add_cash(self, db: sqlite3.Connection, delta: Decimal) -> None:
        (cash,) = db.execute("SELECT cash FROM account WHERE id = 1").fetchone()
        db.execute("UPDATE account SET cash = ? WHERE id = 1", (str(Decimal(cash) + delta),))

    # orders
    _ORDER_COLS = (
        "seq, broker_order_id, client_order_id, symbol, underlying, side, qty, order_type, asset_class, "
        "option_expiry, option_strike, option_right, status, filled_qty, submitted_at, filled_at, "
        "reject_reason, last_fill_bar"
    )

    def _order(self, row: tuple[object, ...]) -> OrderRow:
        (
            seq,
            boid,
            coid,
            symbol,
            underlying,
            side,
            qty,
            otype,
            aclass,
            exp,
            strike,
            right,
            status,
            fq,
            sub,
            fat,
            rr,
            lfb,
        ) = row
        return OrderRow(
            seq=int(str(seq)),
            broker_order_id=str(boid),
            client_order_id=str(coid),
            symbol=str(symbol),
            underlying=str(underlying),
            side=OrderSide(str(side)),
            qty=Decimal(str(qty)),
            order_type=OrderType(str(otype)),
            asset_class=AssetClass(str(aclass)),
            option=_option(
                None if exp is None else str(exp),
                None if strike is None else str(strike),
                None if right is None else str(right),
                str(underlying),
            ),
            status=OrderStatus(str(status)),
            filled_qty=Decimal(str(fq)),
            submitted_at=parse_iso(str(sub)) or datetime.min.replace(tzinfo=UTC),
            filled_at=parse_iso(None if fat is None else str(fat)),
            reject_reason=None if rr is None else str(rr),
            last_fill_bar=parse_iso(None if lfb is None else str(lfb)),
        )

    def order_by_client_id(self, client_order_id: str) -> OrderRow | None:
        row = self._db.execute(
            f"SELECT {self._ORDER_COLS} FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return self._order(row) if row else None

    def orders(self, *, open_only: bool = False, since: datetime | None = None) -> list[OrderRow]:
        sql = f"SELECT {self._ORDER_COLS} FROM orders"
        where, args = [], []
        if open_only:
            where.append("status IN ('new', 'accepted', 'partially_filled')")
        if since is not None:
            where.append("submitted_at >= ?")
            args.append(iso(since))
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._order(r) for r in self._db.execute(sql + " ORDER BY seq", args)]

    def insert_order(
        self,
        db: sqlite3.Connection,
        *,
        client_order_id: str,
        symbol: str,
        underlying: str,
        side: OrderSide,
        qty: Decimal,
        order_type: OrderType,
        asset_class: AssetClass,
        option: OptionContract | None,
        status: OrderStatus,
        submitted_at: datetime,
        reject_reason: str | None,
    ) -> None:
        (next_seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM orders").fetchone()
        db.execute(
            "INSERT INTO orders (seq, broker_order_id, client_order_id, symbol, underlying, side, qty, order_type, "
            "asset_class, option_expiry, option_strike, option_right, status, submitted_at, reject_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                next_seq,
                f"SIM-{next_seq:08d}",
                client_order_id,
                symbol,
                underlying,
                side.value,
                str(qty),
                order_type.value,
                asset_class.value,
                option.expiry.isoformat() if option else None,
                str(option.strike) if option else None,
                option.right if option else None,
                status.value,
                iso(submitted_at),
                reject_reason,
            ),
        )

    def update_order(self, db: sqlite3.Connection, o: OrderRow) -> None:
        db.execute(
            "UPDATE orders SET status = ?, filled_qty = ?, filled_at = ?, last_fill_bar = ? WHERE seq = ?",
            (
                o.status.value,
                str(o.filled_qty),
                iso(o.filled_at) if o.filled_at else None,
                iso(o.last_fill_bar) if o.last_fill_bar else None,
                o.seq,
            ),
        )

    # fills
    def fills(self, client_order_id: str) -> tuple[Fill, ...]:
        rows = self._db.execute(
            "SELECT fill_id, qty, price, timestamp, fee FROM fills WHERE client_order_id = ? ORDER BY rowid",
            (client_order_id,),
        )
        return tuple(
            Fill(fid, Decimal(q), Decimal(p), parse_iso(ts) or datetime.min.replace(tzinfo=UTC), Decimal(fee))
            for fid, q, p, ts, fee in rows
        )

    def insert_fill(self, db: sqlite3.Connection, client_order_id: str, fill: Fill) -> None:
        db.execute(
            "INSERT INTO fills (fill_id, client_order_id, qty, price, fee, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
            (
                fill.fill_id,
                client_order_id,
                str(fill.qty),
                str(fill.price),
                str(fill.fee),
                iso(fill.timestamp),
            ),
        )

    def to_order(self, o: OrderRow) -> Order:
        fills = self.fills(o.client_order_id)
        avg: Decimal | None = None
        if fills:
            filled = sum((f.qty for f in fills), Decimal(0))
            avg = (sum((f.qty * f.price for f in fills), Decimal(0)) / filled).quantize(Decimal("0.0001"))
        return Order(
            broker_order_id=o.broker_order_id,
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side,
            qty=o.qty,
            status=o.status,
            filled_qty=o.filled_qty,
            filled_avg_price=avg,
            submitted_at=o.submitted_at,
            filled_at=o.filled_at,
            fills=fills,
            reject_reason=o.reject_reason,
            asset_class=o.asset_class,
            order_type=o.order_type,
        )

    # positions
    def positions(self) -> list[PositionRow]:
        rows = self._db.execute(
            "SELECT symbol, underlying, qty, avg_entry_price, asset_class, option_expiry, option_strike, "
            "option_right FROM positions ORDER BY symbol"
        )
        return [
            PositionRow(sym, und, Decimal(q), Decimal(avg), AssetClass(ac), _option(exp, k, r, und))
            for sym, und, q, avg, ac, exp, k, r in rows
        ]

    def position(self, symbol: str) -> PositionRow | None:
        return next((p for p in self.positions() if p.symbol == symbol), None)

    def save_position(self, db: sqlite3.Connection, p: PositionRow) -> None:
        if p.qty == 0:
            db.execute("DELETE FROM positions WHERE symbol = ?", (p.symbol,))
            return
        opt = p.option
        db.execute(
            "INSERT INTO positions (symbol, underlying, qty, avg_entry_price, asset_class, option_expiry, "
            "option_strike, option_right) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(symbol) DO UPDATE SET "
            "qty = excluded.qty, avg_entry_price = excluded.avg_entry_price",
            (
                p.symbol,
                p.underlying,
                str(p.qty),
                str(p.avg_entry_price),
                p.asset_class.value,
                opt.expiry.isoformat() if opt else None,
                str(opt.strike) if opt else None,
                opt.right if opt else None,
            ),
        )

    def set_status(self, db: sqlite3.Connection, client_order_id: str, status: OrderStatus) -> None:
        db.execute("UPDATE orders SET status = ? WHERE client_order_id = ?", (status.value, client_order_id))
