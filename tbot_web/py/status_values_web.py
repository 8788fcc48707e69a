"""Shape-checks every status.json value the dashboard shows: a value of the wrong type, a NaN or a non-integer
count becomes the text "unavailable" (or an empty list/map), so a damaged status file never gives a 500."""

from __future__ import annotations

import re
from typing import Any

from tbot_bot.domain.results import cents

from .numbers_web import finite_decimal, money, price, qty

UNAVAILABLE = "unavailable"
_STATE = re.compile(r"^[a-z_]{1,32}$")
# the same rule as the confirm route: ids outside it are shown but never turned into a URL
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TEXT_MAX = 500


def count(value: Any) -> int | str:
    """A non-negative integer count, or "unavailable"."""
    if isinstance(value, bool):
        return UNAVAILABLE
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 19:
        return int(value.strip())
    return UNAVAILABLE


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)[:_TEXT_MAX]
    return UNAVAILABLE


def _money_text(value: Any) -> str | None:
    """Money for people: rounded to the cent (status.json keeps the ledger's four places)."""
    if value is None:
        return None
    number = finite_decimal(value)
    return UNAVAILABLE if number is None else f"{cents(number):.2f}"


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A row for a table: scalars kept as text, anything nested shown as unavailable."""
    return {str(k): _text(v) for k, v in record.items()}


POSITION_NUMBERS = {"qty": qty, "entry_price": price, "last_price": price, "unrealized_pnl": money}


def position_row(record: dict[str, Any]) -> dict[str, Any]:
    """A position for people: quantity, prices and unrealised PnL rounded (status.json keeps full precision); the
    Status and Positions pages show it alike."""
    row = _flat(record)
    for key, shown in POSITION_NUMBERS.items():
        if row.get(key) not in (None, UNAVAILABLE):
            row[key] = shown(record[key])
    return row


def position_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [position_row(p) for p in _dicts(status.get("positions"))]


def clean_status(status: dict[str, Any]) -> dict[str, Any]:
    """The compact status with every field of the expected shape."""
    out = dict(status)
    state = status.get("state")
    out["state"] = state if isinstance(state, str) and _STATE.match(state) else UNAVAILABLE
    for key in ("session_date", "active_strategy", "updated_at", "version", "error", "message", "paused",
                "trading_stopped"):  # fmt: skip
        if key in status:
            out[key] = _text(status[key])
    for key in ("realized_pnl", "gross_pnl", "fees", "net_pnl"):
        if key in status:
            out[key] = _money_text(status[key])
    by_strategy = status.get("realized_pnl_by_strategy")
    out["realized_pnl_by_strategy"] = (
        {str(k): _money_text(v) or UNAVAILABLE for k, v in by_strategy.items()}
        if isinstance(by_strategy, dict)
        else {}
    )
    trades = status.get("trades_by_strategy")
    out["trades_by_strategy"] = (
        {str(k): count(v) for k, v in trades.items()} if isinstance(trades, dict) else {}
    )
    counts = status.get("counts")
    out["counts"] = (
        {
            str(s): {k: count(v) for k, v in c.items()} if isinstance(c, dict) else {}
            for s, c in counts.items()
        }
        if isinstance(counts, dict)
        else {}
    )
    out["windows"] = [_flat(w) for w in _dicts(status.get("windows"))]
    raw_money = status.get("money") if isinstance(status.get("money"), dict) else {}
    cleaned: dict[str, Any] = {
        k: _money_text(raw_money[k])
        for k in ("equity", "cash", "open_exposure", "net_pnl_today", "float", "session_cap")
        if k in raw_money
    }
    for k in ("account_read_at", "account_error", "currency"):
        if raw_money.get(k) is not None:
            cleaned[k] = _text(raw_money[k])
    windows = raw_money.get("windows")
    cleaned["windows"] = (
        {str(k): _flat(v) for k, v in windows.items() if isinstance(v, dict)}
        if isinstance(windows, dict)
        else {}
    )
    out["money"] = cleaned
    if "positions" in status:
        out["positions"] = position_rows(status)
    pending = []
    for p in _dicts(status.get("pending_confirmations")):
        row = _flat(p)
        row["confirmable"] = isinstance(p.get("client_order_id"), str) and bool(
            CLIENT_ORDER_ID.match(p["client_order_id"])
        )
        pending.append(row)
    out["pending_confirmations"] = pending
    broker = status.get("broker")
    out["broker"] = (
        {
            "name": _text(broker.get("name")) or "",
            "healthy": broker.get("healthy") is True,
            "last_error": _text(broker.get("last_error")),
            "maintenance": broker.get("maintenance") is True,
            "down_since": _text(broker.get("down_since")),
            "resumed_at": _text(broker.get("resumed_at")),
        }
        if isinstance(broker, dict)
        else None
    )
    feed = status.get("market_data")
    out["market_data"] = (
        {
            "stale": feed.get("stale") is True,
            "window": _text(feed.get("window")),
            "since": _text(feed.get("since")),
            "last_bar_at": _text(feed.get("last_bar_at")),
        }
        if isinstance(feed, dict)
        else None
    )
    api = status.get("api")
    out["api"] = (
        {"retries": count(api.get("retries", 0)), "errors": count(api.get("errors", 0))}
        if isinstance(api, dict)
        else None
    )
    kill = status.get("kill_switch")
    out["kill_switch"] = (
        {"tripped": kill.get("tripped") is True, "reason": _text(kill.get("reason"))}
        if isinstance(kill, dict)
        else None
    )
    out["defense_mode"] = status.get("defense_mode") is True
    bot = status.get("bot")
    out["bot"] = _flat(bot) if isinstance(bot, dict) else None
    return out
