"""Per-strategy logs (open.log, mid.log, close.log), unresolved_orders.log and error_tracebacks.log.

Written in LOG_FORMAT (json lines or csv with a fixed header), UTC ISO-8601 timestamps, appended and flushed
per event. Audit artifacts only: nothing reads them back into a ledger.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tbot_bot.reporting.trade_history import report_value
from tbot_bot.support.utils_bot import utc_now

# The owner's required fields for every strategy log line (spec §8 and "Modular Strategy Reporting").
STRATEGY_LOG_FIELDS = (
    "timestamp",
    "strategy_name",
    "event",
    "ticker",
    "signal_ticker",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "PnL",
    "broker",
    "error_code",
    "signal_time",
    "entry_time",
    "exit_time",
    "exit_reason",
    "detail",
)
UNRESOLVED_FIELDS = (
    "timestamp",
    "strategy",
    "broker",
    "error_type",
    "error_code",
    "ticker",
    "client_order_id",
    "raw_exception",
    "detail",
)
ERROR_FIELDS = ("timestamp", "strategy", "reason", "context", "traceback")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _log_value(value: Any) -> Any:
    # A log line must never crash trading: a stray float is written as its exact repr, not refused.
    return repr(value) if isinstance(value, float) else report_value(value)


class StrategyLog:
    """Appends structured lines under one bot's logs directory."""

    def __init__(self, logs_dir: Path, log_format: str, *, now: Callable[[], datetime] = utc_now) -> None:
        if log_format not in ("json", "csv"):
            raise ValueError(f"LOG_FORMAT must be json or csv, got {log_format!r}")
        self.logs_dir = logs_dir
        self.log_format = log_format  # LOG_FORMAT=json: one JSON object per line; csv: header + rows
        self._now = now
        self._lock = threading.Lock()
        self._checked: set[Path] = set()  # files whose format was checked by this writer

    def _archive_other_format(self, path: Path) -> None:
        """LOG_FORMAT changed since the file was written: archive it (x.<day>.log) and start a new one."""
        try:
            with path.open("rb") as fh:
                first = fh.read(1)
        except FileNotFoundError:
            return
        if not first:
            return
        written_as = "json" if first == b"{" else "csv"
        if written_as != self.log_format:
            from tbot_bot.reporting.log_rotation import archive_log

            archive_log(path, datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date())

    def _write(self, path: Path, columns: tuple[str, ...], row: Mapping[str, Any]) -> None:
        known = {k: _log_value(row.get(k)) for k in columns if k != "detail"}
        extra = {k: _log_value(v) for k, v in row.items() if k not in columns or k == "detail"}
        if "detail" in columns:
            known["detail"] = json.dumps(extra, sort_keys=True, default=str) if extra else None
        with self._lock:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            if path not in self._checked:
                self._archive_other_format(path)
                self._checked.add(path)
            new = not path.exists() or path.stat().st_size == 0
            with path.open("a", encoding="utf-8", newline="") as fh:
                if self.log_format == "json":
                    fh.write(json.dumps(known, default=str) + "\n")
                else:
                    buf = io.StringIO()
                    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
                    if new:
                        writer.writeheader()
                    writer.writerow({k: "" if v is None else v for k, v in known.items()})
                    fh.write(buf.getvalue())
                fh.flush()

    def path_for(self, strategy: str) -> Path:
        if not _NAME_RE.match(strategy):
            raise ValueError(f"strategy name {strategy!r} is not a plain lowercase name")
        return self.logs_dir / f"{strategy}.log"

    def event(self, strategy: str, event: str, **fields: Any) -> None:
        """One line in {strategy}.log; unknown keyword fields go into `detail` as JSON."""
        row = {"timestamp": self._now(), "strategy_name": strategy, "event": event, **fields}
        self._write(self.path_for(strategy), STRATEGY_LOG_FIELDS, row)

    def unresolved(
        self,
        strategy: str,
        *,
        broker: str,
        error_type: str,
        error_code: str | None = None,
        raw_exception: str | None = None,
        **fields: Any,
    ) -> None:
        """A rejected, partial or unreconciled order in unresolved_orders.log."""
        row = {
            "timestamp": self._now(),
            "strategy": strategy,
            "broker": broker,
            "error_type": error_type,
            "error_code": error_code,
            "raw_exception": raw_exception,
            **fields,
        }
        self._write(self.logs_dir / "unresolved_orders.log", UNRESOLVED_FIELDS, row)

    def error(
        self, strategy: str, reason: str, context: Mapping[str, Any] | str, exc: BaseException | None = None
    ) -> None:
        """A failure (e.g. a failed self_check) with its context and traceback in error_tracebacks.log."""
        tb = "".join(traceback.format_exception(exc)) if exc is not None else None
        ctx = (
            context
            if isinstance(context, str)
            else json.dumps({k: _log_value(v) for k, v in context.items()}, sort_keys=True, default=str)
        )
        row = {
            "timestamp": self._now(),
            "strategy": strategy,
            "reason": reason,
            "context": ctx,
            "traceback": tb,
        }
        self._write(self.logs_dir / "error_tracebacks.log", ERROR_FIELDS, row)
