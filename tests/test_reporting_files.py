"""Report files carry every required field: strategy logs, unresolved orders, tracebacks, trade history, summary."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tbot_bot.reporting.daily_summary import build_daily_summary, write_daily_summary
from tbot_bot.reporting.log_rotation import rotate_logs
from tbot_bot.reporting.trade_history import TRADE_FIELDS, TradeRecord, write_trade_history
from tbot_bot.trading.logs_bot import STRATEGY_LOG_FIELDS, StrategyLog

T0 = datetime(2026, 11, 24, 14, 45, tzinfo=UTC)
# The owner's required fields (system instruction 8, trade_history.json, Modular Strategy Reporting).
REQUIRED_TRADE = {"timestamp", "strategy_name", "ticker", "side", "size", "entry_price", "exit_price", "PnL", "broker", "error_code",
                  "signal_time", "entry_time", "exit_time", "exit_reason", "holding_seconds"}  # fmt: skip
SCOPE = "RIGD_USA_ALPACA_TB01"


def trade(strategy: str, ticker: str, pnl: str | None, minutes: int, **kw: object) -> TradeRecord:
    base: dict[str, object] = {
        "timestamp": T0 + timedelta(minutes=minutes),
        "strategy_name": strategy,
        "ticker": ticker,
        "signal_ticker": ticker,
        "side": "long",
        "size": Decimal(10),
        "entry_price": Decimal("100.00"),
        "exit_price": Decimal("101.00"),
        "PnL": None if pnl is None else Decimal(pnl),
        "broker": "ALPACA",
        "signal_time": T0 - timedelta(seconds=30),
        "entry_time": T0,
        "exit_time": T0 + timedelta(minutes=minutes),
        "exit_reason": "timeout",
    }
    base.update(kw)
    return TradeRecord(**base)  # type: ignore[arg-type]


RECORDS = [
    trade("open", "AAPL", "10.00", 10),
    trade("open", "MSFT", "-4.50", 20),
    trade("open", "AAPL", "2.50", 30),
    trade("mid", "SQQQ", "-1.25", 5, side="short", tag="InverseETF", signal_ticker="QQQ"),
    trade("mid", "TSLA", None, 0, error_code="rejected", exit_price=None, exit_time=None, exit_reason=None),
]


def test_trade_history_csv_and_json_carry_every_field(tmp_path: Path) -> None:
    paths = write_trade_history(tmp_path, SCOPE, RECORDS)
    assert [p.name for p in paths] == [f"{SCOPE}_BOT_trade_history.csv", f"{SCOPE}_BOT_trade_history.json"]
    rows = json.loads(paths[1].read_text())
    assert len(rows) == 5 and all(REQUIRED_TRADE | {"mode", "tag", "signal_ticker"} <= set(r) for r in rows)
    assert (
        rows[0]["PnL"] == "10.00"
        and rows[0]["timestamp"] == "2026-11-24T14:55:00Z"
        and rows[0]["holding_seconds"] == 600
    )
    assert rows[0]["mode"] == "live" and rows[3]["tag"] == "InverseETF"
    with paths[0].open() as fh:
        reader = csv.DictReader(fh)
        # every record field, and the net result right after the fees it is net of
        fields = tuple(reader.fieldnames or ())
        assert fields[: fields.index("net_PnL")] + fields[fields.index("net_PnL") + 1 :] == TRADE_FIELDS
        assert fields[fields.index("net_PnL") - 1] == "fees"
        csv_rows = list(reader)
    assert csv_rows[4]["error_code"] == "rejected" and csv_rows[4]["exit_price"] == ""
    assert csv_rows[4]["net_PnL"] == "" and csv_rows[0]["net_PnL"] == rows[0]["net_PnL"] == "10.00"  # no fees


def test_trade_history_rows_carry_their_net_result(tmp_path: Path) -> None:
    """PnL is before fees (the ledger's realised gain); net_PnL is what people read: PnL - fees. Rows kept from
    a file written before the column get it on the next rewrite."""
    first = trade("open", "SPY", "3.3400", 5, fees=Decimal("0.0300"))
    paths = write_trade_history(tmp_path, SCOPE, [first])
    old = [{k: v for k, v in row.items() if k != "net_PnL"} for row in json.loads(paths[1].read_text())]
    later = trade("mid", "QQQ", "-1.0000", 9, fees=Decimal("0.0250"))
    rows = json.loads(write_trade_history(tmp_path, SCOPE, [later], kept_rows=old)[1].read_text())
    assert [(r["PnL"], r["fees"], r["net_PnL"]) for r in rows] == [
        ("3.3400", "0.0300", "3.3100"),
        ("-1.0000", "0.0250", "-1.0250"),
    ]
    backtest = write_trade_history(
        tmp_path / "bt", "BT", [trade("close", "SPY", "1", 1, mode="backtest")], log_format="json"
    )
    assert [p.suffix for p in backtest] == [".json"] and json.loads(backtest[0].read_text())[0][
        "mode"
    ] == "backtest"


def test_trade_history_refuses_binary_float_money(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="binary floats"):
        write_trade_history(tmp_path, SCOPE, [trade("open", "AAPL", None, 1, PnL=1.5)])


def test_daily_summary_metrics(tmp_path: Path) -> None:
    summary = build_daily_summary(RECORDS, {"open": 6, "mid": 2}, {"open": 1, "close": 3})
    opened = summary["strategies"]["open"]
    assert opened["total_trades"] == 3 and opened["wins"] == 2 and opened["losses"] == 1
    assert (
        opened["win_rate"] == "0.6667" and opened["total_pnl"] == "8.00" and opened["average_pnl"] == "2.6667"
    )
    assert (opened["max_gain"], opened["max_loss"]) == ("10.00", "-4.50")
    assert (opened["signals_triggered"], opened["denials"], opened["trades_vs_signals"]) == (6, 1, "0.5000")
    assert opened["average_holding_seconds"] == "1200.0000"
    assert opened["best_ticker"] == {"ticker": "AAPL", "pnl": "12.50"}
    assert opened["worst_ticker"] == {"ticker": "MSFT", "pnl": "-4.50"}
    mid = summary["strategies"]["mid"]
    assert (mid["total_trades"], mid["errors"]) == (1, 1)
    close = summary["strategies"]["close"]
    assert (close["total_trades"], close["win_rate"], close["best_ticker"], close["denials"]) == (
        0,
        None,
        None,
        3,
    )
    assert summary["totals"]["total_trades"] == 4
    path = write_daily_summary(tmp_path, SCOPE, summary, generated_at=T0, session_date=date(2026, 11, 24))
    assert path.name == "daily_summary_2026-11-24.json"
    doc = json.loads(path.read_text())
    assert doc["session_date"] == "2026-11-24" and doc["format"] == "tbot.daily_summary/1"
    # a second session gets its own file; the index lists both, oldest first, with the headline figures
    write_daily_summary(tmp_path, SCOPE, summary, generated_at=T0, session_date=date(2026, 11, 25))
    assert json.loads(path.read_text())["session_date"] == "2026-11-24"
    index = json.loads((tmp_path / "daily_summary_index.json").read_text())
    assert [(r["session_date"], r["file"], r["total_trades"]) for r in index["sessions"]] == [
        ("2026-11-24", "daily_summary_2026-11-24.json", 4),
        ("2026-11-25", "daily_summary_2026-11-25.json", 4),
    ]
    assert index["sessions"][0]["total_pnl"] == doc["totals"]["total_pnl"]
    required = {"win_rate", "total_trades", "average_pnl", "max_gain", "max_loss", "signals_triggered", "trades_vs_signals",
                "average_holding_seconds", "best_ticker", "worst_ticker"}  # fmt: skip
    assert all(required <= set(doc["strategies"][s]) for s in ("open", "mid", "close"))
    assert doc["scope"] == SCOPE and doc["generated_at"] == "2026-11-24T14:45:00Z"


@pytest.mark.parametrize("log_format", ["json", "csv"])
def test_strategy_logs_unresolved_and_tracebacks(tmp_path: Path, log_format: str) -> None:
    log = StrategyLog(tmp_path, log_format, now=lambda: T0)
    log.event(
        "open",
        "entry",
        ticker="AAPL",
        side="long",
        size=Decimal(10),
        entry_price=Decimal("190.25"),
        broker="ALPACA",
        signal_time=T0,
        entry_time=T0,
        note="breakout",
    )
    log.event(
        "open",
        "exit",
        ticker="AAPL",
        side="long",
        size=Decimal(10),
        exit_price=Decimal("191"),
        PnL=Decimal("7.5"),
        broker="ALPACA",
        exit_time=T0,
        exit_reason="timeout",
    )
    log.unresolved(
        "mid",
        broker="ALPACA",
        error_type="BrokerError",
        error_code="422",
        raw_exception="insufficient buying power",
        ticker="SQQQ",
    )
    try:
        raise ValueError("boom")
    except ValueError as exc:
        log.error("close", "self_check failed", {"threshold": Decimal("0.02")}, exc)

    def rows(path: Path) -> list[dict[str, str]]:
        if log_format == "json":
            return [json.loads(line) for line in path.read_text().splitlines()]
        with path.open() as fh:
            return list(csv.DictReader(fh))

    events = rows(tmp_path / "open.log")
    assert len(events) == 2 and all(set(STRATEGY_LOG_FIELDS) <= set(e) for e in events)
    assert REQUIRED_TRADE - {"holding_seconds"} <= set(events[0]) | {"holding_seconds"}
    assert events[0]["timestamp"] == "2026-11-24T14:45:00Z" and events[0]["strategy_name"] == "open"
    assert events[0]["entry_price"] == "190.25" and json.loads(events[0]["detail"]) == {"note": "breakout"}
    assert events[1]["PnL"] == "7.5" and events[1]["exit_reason"] == "timeout"
    unresolved = rows(tmp_path / "unresolved_orders.log")[0]
    assert {k: unresolved[k] for k in ("strategy", "broker", "error_type", "error_code", "ticker")} == {
        "strategy": "mid", "broker": "ALPACA", "error_type": "BrokerError", "error_code": "422", "ticker": "SQQQ"}  # fmt: skip
    error = rows(tmp_path / "error_tracebacks.log")[0]
    assert error["reason"] == "self_check failed" and "ValueError: boom" in error["traceback"]
    assert json.loads(error["context"]) == {"threshold": "0.02"}
    with pytest.raises(ValueError):
        log.event("../escape", "x")


def test_log_rotation_respects_retention(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    active = tmp_path / "open.log"
    active.write_text("yesterday\n")
    yesterday = (now - timedelta(days=1)).timestamp()
    os.utime(active, (yesterday, yesterday))
    (tmp_path / "mid.log").write_text("today\n")
    os.utime(tmp_path / "mid.log", (now.timestamp(), now.timestamp()))
    old = tmp_path / "close.2026-10-01.log"
    old.write_text("old\n")
    kept = tmp_path / "close.2026-11-01.log"
    kept.write_text("recent\n")
    result = rotate_logs(tmp_path, 30, now=now)
    assert result.rotated == [tmp_path / "open.2026-11-23.log"] and result.deleted == [old]
    assert (tmp_path / "mid.log").exists() and kept.exists() and not active.exists()
