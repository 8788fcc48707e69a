"""Trade history files `{scope}_BOT_trade_history.csv` / `.json`: one row per trade, audit artifacts only.

Live trading and backtests (mode=backtest) share the record type. Nothing ever reads these back into a ledger.
Money and sizes are written as exact decimal strings; times as UTC ISO-8601 with a Z suffix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tbot_bot.domain.results import net_pnl
from tbot_bot.support.utils_bot import atomic_write_text


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One trade (entry to exit, or a rejected/partial attempt with error_code) as reported."""

    timestamp: datetime  # when the record was made (exit time for a closed trade)
    strategy_name: str  # open | mid | close
    ticker: str  # instrument traded
    signal_ticker: str  # ticker whose signal triggered the trade
    side: str  # long | short
    size: Decimal
    entry_price: Decimal | None
    exit_price: Decimal | None
    PnL: Decimal | None  # realised, before fees: the ledger's value (computed once, at ingestion)
    broker: str
    error_code: str | None = None  # rejection, partial fill, ...
    signal_time: datetime | None = None
    entry_time: datetime | None = None
    exit_time: datetime | None = None
    exit_reason: str | None = None  # stop_loss, trailing_stop, timeout, ...
    holding_seconds: int | None = None
    mode: str = "live"  # live | paper | backtest
    tag: str | None = None  # InverseETF, LongPut, ShortSell
    direction: str | None = (
        None  # bullish | bearish: the signal's view (an inverse ETF is side=long, bearish)
    )
    fees: Decimal | None = None  # commissions and fees of the round trip (ledger FEE entries, Dr 5010)
    defense_mode: bool = False  # entered while defense mode was on (DEFENSE_MODE_ACTIVE or a trigger)
    adopted: bool = False  # a position opened by hand, taken over by `tbot positions --adopt/--close`
    correction: str | None = None  # ledger corrections applied: "<original FITID> -> <correction FITID>"


TRADE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TradeRecord))
NET = (
    "net_PnL"  # written beside PnL (before fees) and fees: what the trade left the account, as people read it
)
# the files' columns: the record's, with the net result right after the fees it is net of
FILE_FIELDS: tuple[str, ...] = (
    *TRADE_FIELDS[: TRADE_FIELDS.index("fees") + 1],
    NET,
    *TRADE_FIELDS[TRADE_FIELDS.index("fees") + 1 :],
)


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def report_value(value: Any) -> Any:
    """A JSON/CSV-safe value: Decimal -> exact string, datetime -> UTC ISO-8601; refuses binary floats."""
    if isinstance(value, float):
        raise TypeError("report values must not be binary floats; pass Decimal")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return utc_iso(value)
    return value


def record_dict(record: TradeRecord) -> dict[str, Any]:
    row = {name: report_value(getattr(record, name)) for name in TRADE_FIELDS}
    if row["holding_seconds"] is None and record.entry_time and record.exit_time:
        row["holding_seconds"] = int((record.exit_time - record.entry_time).total_seconds())
    return with_net(row)


def with_net(row: dict[str, Any]) -> dict[str, Any]:
    """The row (file form) with its net result: PnL - fees (domain/results.net_pnl); none while PnL is none. A row
    of a file written before the column gets it too."""
    if row.get(NET) in (None, "") and row.get("PnL") not in (None, ""):
        try:
            net = net_pnl(Decimal(str(row["PnL"])), Decimal(str(row.get("fees") or 0)))
        except InvalidOperation:  # a hand-edited file: its figures are shown as they are, without a net
            net = None
        row = {**row, NET: None if net is None else format(net, "f")}
    return {name: row.get(name) for name in FILE_FIELDS}


def trade_history_paths(trades_dir: Path, scope: str) -> dict[str, Path]:
    return {fmt: trades_dir / f"{scope}_BOT_trade_history.{fmt}" for fmt in ("csv", "json")}


def write_trade_history(
    trades_dir: Path,
    scope: str,
    records: Sequence[TradeRecord],
    log_format: str | None = None,
    *,
    kept_rows: Sequence[dict[str, Any]] = (),
) -> list[Path]:
    """Rewrite the trade history: `kept_rows` (rows already in file form, earlier sessions) then `records`; both
    formats when log_format is None."""
    rows = [*(with_net(dict(r)) for r in kept_rows), *(record_dict(r) for r in records)]
    if log_format not in (None, "csv", "json"):
        raise ValueError(f"log_format must be csv or json, got {log_format!r}")
    paths = trade_history_paths(trades_dir, scope)
    written: list[Path] = []
    # LOG_FORMAT=csv|json: only that format; None (exports) writes both.
    if log_format in (None, "csv"):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FILE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if row.get(k) is None else row[k] for k in FILE_FIELDS} for row in rows)
        atomic_write_text(paths["csv"], buf.getvalue())
        written.append(paths["csv"])
    if log_format in (None, "json"):
        atomic_write_text(paths["json"], json.dumps(rows, indent=2) + "\n")
        written.append(paths["json"])
    return written
