"""Order intents: what the bot decided to send, recorded before it is sent (the journal's rows).

Client order ids are deterministic (bot, date, strategy, ticker, sequence), so a restarted supervisor that
reaches the same decision finds the intent it already recorded and never sends a second order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tbot_bot.domain.vocab import ExitReason, InstrumentType, OrderSide, PositionSide, Purpose, StrategyName


class IntentStatus(StrEnum):
    INTENT = "intent"  # journaled, not yet known to the broker
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    SENT = "sent"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELED = "canceled"
    ABANDONED = "abandoned"  # never sent; its moment passed (e.g. found unsent after a restart)

    @property
    def is_open(self) -> bool:
        return self in (
            IntentStatus.INTENT,
            IntentStatus.AWAITING_CONFIRMATION,
            IntentStatus.SENT,
            IntentStatus.PARTIALLY_FILLED,
        )


@dataclass(frozen=True, slots=True)
class Intent:
    client_order_id: str
    session_date: str
    strategy: StrategyName
    purpose: Purpose
    symbol: str
    signal_ticker: str
    direction: PositionSide  # the position held in the instrument (journal column `direction`)
    order_side: OrderSide
    instrument: InstrumentType
    qty: Decimal
    status: IntentStatus
    created_at: str
    notional: Decimal | None = None
    tag: str | None = None
    leverage: Decimal | None = None
    option_json: str | None = None
    entry_client_order_id: str | None = None
    signal_time: str | None = None
    exit_reason: ExitReason | None = None
    sent_at: str | None = None
    filled_qty: Decimal | None = None
    filled_price: Decimal | None = None
    filled_at: str | None = None
    fee: Decimal | None = None
    broker_order_id: str | None = None
    note: str | None = None
    defense_mode: bool = False  # an entry made while defense mode was on (tagged in history and ledger)


def client_order_id(bot_id: str, session_date: str, strategy: StrategyName, ticker: str, seq: int) -> str:
    """Deterministic: the same decision after a restart yields the same id."""
    return f"{bot_id}-{session_date.replace('-', '')}-{strategy}-{ticker}-{seq}"


_DECIMALS = ("qty", "notional", "leverage", "filled_qty", "filled_price", "fee")
_ENUMS: dict[str, type[StrEnum]] = {
    "status": IntentStatus,
    "strategy": StrategyName,
    "purpose": Purpose,
    "direction": PositionSide,
    "order_side": OrderSide,
    "instrument": InstrumentType,
    "exit_reason": ExitReason,
}


def intent_to_row(intent: Intent) -> dict[str, object]:
    """Plain strings and None, as the journal stores them."""
    row: dict[str, object] = {}
    for f in fields(Intent):
        v = getattr(intent, f.name)
        row[f.name] = str(v) if isinstance(v, Decimal | StrEnum) else v
    return row


def intent_from_row(data: dict[str, Any]) -> Intent:
    """An intent from stored strings: decimals and closed sets typed (an unknown value is refused)."""
    data = dict(data)
    for k in _DECIMALS:
        if data.get(k) is not None:
            data[k] = Decimal(data[k])
    data["defense_mode"] = bool(data.get("defense_mode"))
    for k, enum in _ENUMS.items():
        if data.get(k) is not None:
            data[k] = enum(data[k])
    return Intent(**data)
