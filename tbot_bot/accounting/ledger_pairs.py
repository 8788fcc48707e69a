"""Round trips as the trade history pairs them (`reporting.ledger_trades.fifo`, the pairing of `read_trades`):
per strategy and instrument, first in first out over the originals in time order, each as its corrections leave
it. Shared by the corrections (`ledger_correction`: the exit corrected with its entry) and the reports
(`ledger_read`: the month a correction's trade was opened in); read-only."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from tbot_bot.accounting.account_transaction import fill_of_fee
from tbot_bot.reporting.ledger_trades import fifo, is_exit


def _row(conn: sqlite3.Connection, fitid: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM transactions WHERE fitid = ?", (fitid,)).fetchone()
    return row


def root_of(conn: sqlite3.Connection, row: sqlite3.Row) -> sqlite3.Row:
    """The original a replacement stands for (through replacements of replacements); the row itself when it is
    an original. Its date and place are the trade's, whatever date a correction in a closed month was given."""
    while (
        row["is_correction"] and row["correction_of"] and (up := _row(conn, row["correction_of"])) is not None
    ):
        row = up
    return row


class Pairing(NamedTuple):
    unpaired: list[sqlite3.Row]  # exits left with no entry to close
    reversed_exit: bool  # an exit first in first out gives to the root was reversed without a replacement
    opened_by: dict[str, str]  # an exit's original FITID -> the original FITID of the entry it closed
    # an entry's original FITID -> every exit standing against it, in time order (an exit cancelled after a
    # partial fill closed part of it, the next the rest)
    exits: dict[str, list[sqlite3.Row]]


def pairs(conn: sqlite3.Connection, root: sqlite3.Row, without: str | None = None) -> Pairing:
    """The round trips of `root`'s strategy and instrument as the trade history pairs them (`ledger_trades.fifo`),
    over all its rows: whatever day an exit came (a position carried over night, a correction dated in a later
    month). `without`: pair as if that entry were gone. One read of the instrument's rows."""
    rows = conn.execute(
        "SELECT * FROM transactions WHERE strategy = ? AND ticker = ? ORDER BY dtposted, id",
        (root["strategy"], root["ticker"]),
    ).fetchall()
    exits: dict[str, list[sqlite3.Row]] = {}
    opened_by: dict[str, str] = {}
    unpaired: list[sqlite3.Row] = []
    reversed_exit = False
    for step in fifo(rows, without):
        if step.entry:
            continue
        if step.opener is not None:
            opened_by[step.original["fitid"]] = step.opener["fitid"]
        if step.now is None:
            reversed_exit = reversed_exit or (
                step.opener is not None and step.opener["fitid"] == root["fitid"]
            )
        elif step.opener is not None:
            exits.setdefault(step.opener["fitid"], []).append(step.now)
        else:
            unpaired.append(step.now)
    return Pairing(unpaired, reversed_exit, opened_by, exits)


def trade_date(
    conn: sqlite3.Connection, row: sqlite3.Row, pairings: dict[tuple[str, str], Pairing] | None = None
) -> str:
    """When the trade a row belongs to was opened (its entry's `dtposted`): for a correction, of what it corrects;
    for a trade's fee entry (`X-FEE`), of trade X; for an exit, of the entry the history pairs it with (a position
    carried past a month's end belongs to the month it was opened in). Any other row: its own date. `pairings`: a
    cache of the instruments already paired, for a caller that asks about many rows."""
    root = root_of(conn, row)
    fill = fill_of_fee(str(root["fitid"])) if root["trntype"] == "FEE" else None
    if fill is not None and (trade := _row(conn, fill)):
        root = root_of(conn, trade)
    if root["strategy"] and root["ticker"] and root["trntype"] != "FEE" and is_exit(root):
        key = (str(root["strategy"]), str(root["ticker"]))
        pairing = pairings.get(key) if pairings is not None else None
        if pairing is None:
            pairing = pairs(conn, root)
            if pairings is not None:
                pairings[key] = pairing
        entry = pairing.opened_by.get(root["fitid"])
        opened = _row(conn, entry) if entry is not None else None
        if opened is not None:
            return str(opened["dtposted"])
    return str(root["dtposted"])


def exit_of(conn: sqlite3.Connection, entry: sqlite3.Row) -> tuple[bool, list[sqlite3.Row]]:
    """Whether the round trip `entry` opened has had an exit booked, and its exits as the books hold them now
    (none when there is none, or it was reversed: the books show the position open; several when an exit was
    cancelled after a partial fill and another sold the rest)."""
    root = root_of(conn, entry)
    pairing = pairs(conn, root)
    exits = pairing.exits.get(root["fitid"], [])
    return bool(exits) or pairing.reversed_exit, exits
