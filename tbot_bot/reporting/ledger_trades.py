"""Round trips read back from the bot ledger (read-only) for people: `tbot trades`, `tbot plot day`.

The ledger is the book of record, so listings show its numbers: prices and realised PnL exactly as stored (ten-
thousandths, as Decimal), fees from the `{fitid}-FEE` entries. An exit row (it carries `exit_reason`) closes its
quantity of the earliest still-open entry of the same strategy and instrument: an exit cancelled after a partial
fill closed part of the position and the next exit the rest, so one trade may have several exits (its PnL and fees
are theirs together, its exit price their average by quantity). An entry not wholly closed is listed as open (with
the PnL of what was sold so far).
Corrections (`tbot ledger correct`) apply: a reversed entry or exit counts only through its replacement (its
figures, the original's time); a trade touched by one names it in `correction`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from tbot_bot.domain.results import closed_result, is_loss, is_win, net_pnl
from tbot_bot.domain.vocab import ADOPTED_MEMO, DEFENSE_MODE_MEMO
from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import from_minor, readonly_uri

ENTRY_TYPES = ("BUY", "SELLSHORT", "BUYTOOPEN")
EXIT_TYPES = ("SELL", "BUYTOCOVER", "SELLTOCLOSE")


def is_exit(row: Any) -> bool:
    """A ledger row that closes a position: an exit type, or any row carrying an exit reason."""
    return row["trntype"] in EXIT_TYPES or bool(row["exit_reason"])


def is_entry(row: Any) -> bool:
    """A ledger row that opens a position (an entry type carrying no exit reason)."""
    return row["trntype"] in ENTRY_TYPES and not row["exit_reason"]


@dataclass(frozen=True, slots=True)
class LedgerTrade:
    session: str  # UTC date of the entry, YYYY-MM-DD
    strategy: str
    ticker: str
    signal_ticker: str
    side: str  # long | short: the position in the instrument
    direction: str  # bullish | bearish: the signal's view (an inverse ETF or put is long and bearish)
    size: Decimal
    entry_time: datetime | None
    exit_time: datetime | None
    entry_price: Decimal | None
    exit_price: Decimal | None
    pnl: Decimal | None  # realised, before fees; None while open
    fees: Decimal
    exit_reason: str | None
    tag: str | None
    client_order_id: str  # the entry's
    correction: str | None = None  # "<original FITID> -> <correction FITID>" for every corrected leg
    defense_mode: bool = False  # entered while defense mode was on (the entry's ledger memo)
    # taken over from the broker (`tbot positions --adopt/--close`: opened by hand), the entry's ledger memo
    adopted: bool = False
    held: Decimal = Decimal(0)  # what is still open of `size` (all of it until an exit; 0 once closed)

    @property
    def net_pnl(self) -> Decimal | None:
        return None if self.pnl is None else net_pnl(self.pnl, self.fees)

    def as_row(self) -> dict[str, Any]:
        """Strings only (exact decimals, UTC ISO times with Z): what CSV and JSON listings write."""

        def text(v: object) -> str | None:
            if v is None:
                return None
            if isinstance(v, datetime):
                return v.isoformat().replace("+00:00", "Z")
            return format(v, "f") if isinstance(v, Decimal) else str(v)

        row = {k: text(getattr(self, k)) for k in self.__slots__}  # type: ignore[attr-defined]
        row["net_pnl"] = text(self.net_pnl)
        return row


def _ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _money(minor: int | None) -> Decimal | None:
    return None if minor is None else from_minor(minor)


def _rows(
    ledger: Path, since: str | None, until: str | None, without: frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    """The transactions dated in [since, until) in time order, each with `fee`: the minor units of its fee entry
    (`<fitid>-FEE`) and of every correction of it, corrections of corrections too (`<fitid>-FEE-COR-COR`).
    `without`: transaction ids read as if never posted (the corrections a closed month's reports do not hold)."""
    if not ledger.is_file():
        raise LedgerError(f"no ledger at {ledger}")
    try:
        con = sqlite3.connect(readonly_uri(Path(ledger)), uri=True)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open the ledger {ledger}: {exc}") from None
    con.row_factory = sqlite3.Row
    where, params = ["1=1"], []
    if since:
        where.append("t.dtposted >= ?")
        params.append(since)
    if until:
        where.append("t.dtposted < ?")
        params.append(until)
    try:
        rows = con.execute(
            f"SELECT t.* FROM transactions t WHERE {' AND '.join(where)} ORDER BY t.dtposted, t.id", params
        ).fetchall()
        # every fee entry's 5xxx amount at once, each given to the trade(s) its FITID names (a per-row sub-query
        # could use no index: a ledger of 10,000 rows took most of a minute)
        fees: dict[str, int] = {}
        fixed: dict[str, tuple[int, str]] = {}  # a trade's fee corrections: the latest one, by posting order
        for transaction_id, fitid, amount in con.execute(
            "SELECT f.id, f.fitid, sum(s.debit) - sum(s.credit) FROM transactions f "
            "JOIN splits s ON s.transaction_id = f.id WHERE f.fitid LIKE '%-FEE%' AND s.account_code LIKE '5%' "
            "GROUP BY f.id"
        ):
            if transaction_id in without:
                continue
            at = fitid.find("-FEE")
            while at >= 0:
                rest = fitid[at:]
                if rest == "-FEE" or rest.startswith("-FEE-"):
                    fees[fitid[:at]] = fees.get(fitid[:at], 0) + int(amount)
                    if rest != "-FEE" and transaction_id > fixed.get(fitid[:at], (-1, ""))[0]:
                        fixed[fitid[:at]] = (transaction_id, fitid)
                at = fitid.find("-FEE", at + 1)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read trades from {ledger}: {exc}") from None
    finally:
        con.close()
    return [
        {
            **dict(row),
            "fee": fees.get(row["fitid"], 0),
            # named in the listing as a fill's own correction is ("F-FEE -> F-FEE-COR")
            "fee_correction": f"{row['fitid']}-FEE -> {fixed[row['fitid']][1]}"
            if row["fitid"] in fixed
            else None,
        }
        for row in rows
        if row["id"] not in without
    ]


def read_trades(
    ledger: Path,
    *,
    day: date | None = None,
    since: date | None = None,
    strategy: str | None = None,
    without: frozenset[int] = frozenset(),
) -> list[LedgerTrade]:
    """Round trips whose entry falls on `day` (or on/after `since`), optionally of one strategy; time order.

    Exits are looked up from the first selected day onwards, so a trade is complete even if its exit row came
    later; trades are chosen by their entry date. `without`: transaction ids read as if never posted (a closed
    day's summary rebuilt as it was closed leaves out the corrections posted after the close)."""
    first = day or since
    until = None if day is None else date.fromordinal(day.toordinal() + 1).isoformat()
    rows = _rows(ledger, first.isoformat() if first else None, None, without)
    pairs: list[tuple[str, Any, list[Any]]] = []  # the entry's original FITID, its row, its exits
    at: dict[str, int] = {}  # an entry's original FITID -> its place in `pairs`
    still: dict[str, Decimal] = {}  # what each entry still holds once every exit is counted
    for step in fifo(rows, held=still):
        if step.now is None:
            continue  # reversed without a replacement: no longer part of any trade
        row = _effective(step)
        if step.entry:
            at[step.original["fitid"]] = len(pairs)
            pairs.append((step.original["fitid"], row, []))
        elif step.opener is not None:
            pairs[at[step.opener["fitid"]]][2].append(row)
    out = []
    for fitid, entry, exits in pairs:
        if until is not None and entry["dtposted"] >= until:
            continue
        if strategy and entry["strategy"] != strategy:
            continue
        out.append(_trade(entry, exits, still.get(fitid, Decimal(0))))
    return out


class Step(NamedTuple):
    """One original transaction of a trade as first in first out sees it (`fifo`)."""

    original: Any  # the row as booked
    now: Any  # as its corrections leave it (the last replacement); None: reversed without a replacement
    chain: list[str]  # the FITIDs of its replacements, in order
    entry: bool  # opens a position (else it closes one)
    # an exit's: the original of the entry it closes (reversed: the one it closed); None: none open
    opener: Any


def fill_size(row: Any) -> Decimal:
    """A fill's quantity (unsigned); 0 when the row records none."""
    try:
        return abs(Decimal(row["size"] or 0))
    except ArithmeticError:
        return Decimal(0)


def fifo(
    rows: Sequence[Any], without: str | None = None, held: dict[str, Decimal] | None = None
) -> Iterator[Step]:
    """The entries and exits of `rows` (a ledger's transactions in time order, corrections included) paired as
    the trade history pairs them: per strategy and instrument, an exit closes its quantity of the earliest entry
    still open (the entry stays open until its exits have closed all of it; an exit of no recorded quantity
    closes it whole), each original counted as its corrections leave it, at its own place in time. An entry reversed without a
    replacement opens nothing; an exit reversed so closes nothing, and names the entry it had closed. `without`:
    pair as if that entry (an original FITID) were gone. `held`, when given, receives each entry's (original FITID)
    quantity still open once every row is paired: an exit that sold more than its entry's remainder closes the next
    open entry's too (two held at once), which no single pairing shows. The one pairing of the trade history
    (`read_trades`) and of the corrections (`accounting.ledger_pairs`)."""
    reversed_ = {r["correction_of"] for r in rows if r["is_correction"] and r["trntype"] == "CORRECTION"}
    replaced = {r["correction_of"]: r for r in rows if r["is_correction"] and r["trntype"] != "CORRECTION"}
    # the open entries' originals, oldest first, each with the quantity its exits have not closed yet
    waiting: dict[tuple[str, str], list[list[Any]]] = {}
    for original in rows:
        if not original["strategy"] or not original["ticker"] or original["is_correction"]:
            continue
        now, chain = original, []
        while now is not None and now["fitid"] in reversed_:
            now = replaced.get(now["fitid"])
            if now is not None:
                chain.append(now["fitid"])
        row = original if now is None else now
        queue = waiting.setdefault((row["strategy"], row["ticker"]), [])
        if is_entry(row):
            if now is not None and original["fitid"] != without:
                queue.append([original, fill_size(row)])
            yield Step(original, now, chain, True, None)
        elif is_exit(row):
            # a reversed exit closes nothing now, yet it belonged to the entry it closed when booked
            opener = queue[0][0] if queue else None
            if queue and now is not None:
                closes = fill_size(row)
                if not closes:  # no recorded quantity: it closes its entry whole
                    queue.pop(0)
                # what it sold beyond its entry's remainder closes the next open entry's (two held at once)
                while closes > 0 and queue:
                    taken = min(closes, queue[0][1])
                    queue[0][1] -= taken
                    closes -= taken
                    if queue[0][1] <= 0:
                        queue.pop(0)
            yield Step(original, now, chain, False, opener)
    if held is not None:
        held.update(
            {entry["fitid"]: max(left, Decimal(0)) for queue in waiting.values() for entry, left in queue}
        )


def _effective(step: Step) -> dict[str, Any]:
    """A step's row as the listing shows it: the last replacement's figures at the original's time (a
    correction of a closed period is posted later, the trade stays on its day), its corrections named."""
    row = dict(step.now)
    row["dtposted"] = step.original["dtposted"]
    row["correction"] = f"{step.original['fitid']} -> {step.chain[-1]}" if step.chain else None
    if step.chain:  # fees are the original fill's (its FITID names its fee entry)
        row["fee"], row["fee_correction"] = step.original["fee"], step.original["fee_correction"]
    return row


def _exit_price(exits: list[Any]) -> Decimal | None:
    """The exits' price, their average by quantity when there are several (to the ledger's 1/10,000)."""
    if len(exits) == 1:
        return _money(exits[0]["exit_price"])
    sizes = [fill_size(x) for x in exits]
    prices = [_money(x["exit_price"]) for x in exits]
    if not exits or any(p is None for p in prices) or not sum(sizes):
        return None
    worth = sum((q * p for q, p in zip(sizes, prices, strict=True) if p is not None), Decimal(0))
    return (worth / sum(sizes)).quantize(Decimal("0.0001"))


def _trade(entry: Any, exits: list[Any], held: Decimal) -> LedgerTrade:
    """`held`: what fifo left open of it once every exit was counted."""
    size = Decimal(entry["size"] or "0")
    done = bool(exits) and not held  # wholly closed: its exits (or a later one's excess) sold what it bought
    last = exits[-1] if exits else None
    fees = from_minor(entry["fee"] + sum(x["fee"] for x in exits))
    pnls = [_money(x["pnl"]) for x in exits]
    return LedgerTrade(
        session=entry["dtposted"][:10],
        strategy=entry["strategy"],
        ticker=entry["ticker"],
        signal_ticker=entry["signal_ticker"] or entry["ticker"],
        side=entry["side"] or "long",
        direction=_direction(entry),
        size=size,
        entry_time=_ts(entry["dtposted"]),
        exit_time=_ts(last["dtposted"]) if last is not None and done else None,
        entry_price=_money(entry["entry_price"]),
        exit_price=_exit_price(exits),
        # what the exits so far realised (the ledger's gain or loss on their days), a part while some is held
        pnl=sum((p for p in pnls if p is not None), Decimal(0)) if exits else None,
        fees=fees,
        exit_reason=last["exit_reason"] if last is not None and done else None,  # "open" while some is held
        tag=entry["tag"],
        client_order_id=entry["client_order_id"] or entry["fitid"],
        correction="; ".join(c for r in (entry, *exits) for c in (r["correction"], r["fee_correction"]) if c)
        or None,
        defense_mode=entry["memo"] == DEFENSE_MODE_MEMO,
        adopted=entry["memo"] == ADOPTED_MEMO,
        held=held,
    )


def _direction(entry: Any) -> str:
    """The ledger's `direction` (schema 2); older ledgers: a short position is bearish, a tagged one too."""
    if "direction" in entry.keys() and entry["direction"]:
        return str(entry["direction"])
    return "bearish" if entry["side"] == "short" or entry["tag"] in ("InverseETF", "LongPut") else "bullish"


def totals(trades: Iterable[LedgerTrade], account_fees: Decimal = Decimal(0)) -> dict[str, Any]:
    """Count, wins, losses, open, PnL, fees and net over the listed trades. `account_fees`: the fees the broker
    posted apart from fills over the same days (ledger_read.account_fees), part of `fees` and `net_pnl` as in the
    daily summary's totals, and shown apart."""
    all_ = list(trades)
    # a trade partly sold counts its realised PnL in the money (as the ledger does) and is open until all is sold
    closed = [t for t in all_ if closed_result(t.pnl, t.fees, t.exit_time) is not None]
    pnl = sum((t.pnl for t in all_ if t.pnl is not None), Decimal(0))
    fees = sum((t.fees for t in all_), Decimal(0)) + account_fees
    return {
        "trades": len(all_),
        "closed": len(closed),
        "open": len(all_) - len(closed),
        # one win: net of fees > 0 (domain/results.py)
        "wins": sum(1 for t in closed if is_win(t.net_pnl)),
        "losses": sum(1 for t in closed if is_loss(t.net_pnl)),
        "pnl": pnl,
        "fees": fees,
        "account_fees": account_fees,
        "net_pnl": pnl - fees,
    }
