"""Order submission through the journal: journal first, then the broker, never twice (DESIGN §8).

Every intent is written to the journal before anything is sent. Sending first asks the broker whether it
already knows the client_order_id (a crash between send and record leaves exactly that state), so a restart
never creates a second order. Fills are read back from the broker's own order records.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from tbot_bot.broker.broker_api import AssetClass, Broker, OptionContract, Order, OrderRequest, OrderStatus
from tbot_bot.config.error_handler import ErrorHandler
from tbot_bot.domain.clock import Clock
from tbot_bot.domain.crashpoints import crashpoint
from tbot_bot.domain.intents import Intent, IntentStatus
from tbot_bot.domain.vocab import OrderSide, Purpose
from tbot_bot.errors import BrokerError, NetworkError
from tbot_bot.runtime.order_journal import OrderJournal

log = logging.getLogger(__name__)

_STATUS = {
    OrderStatus.NEW: IntentStatus.SENT,
    OrderStatus.ACCEPTED: IntentStatus.SENT,
    OrderStatus.PARTIALLY_FILLED: IntentStatus.PARTIALLY_FILLED,
    OrderStatus.FILLED: IntentStatus.FILLED,
    OrderStatus.CANCELED: IntentStatus.CANCELED,
    OrderStatus.EXPIRED: IntentStatus.CANCELED,
    OrderStatus.REJECTED: IntentStatus.REJECTED,
}


class OrderEvents(Protocol):
    def unresolved(self, strategy: str, **fields: Any) -> Any: ...


def option_to_json(contract: OptionContract) -> str:
    return json.dumps(
        {
            "underlying": contract.underlying,
            "expiry": contract.expiry.isoformat(),
            "strike": str(contract.strike),
            "right": contract.right,
        }
    )


def option_from_json(text: str) -> OptionContract:
    d = json.loads(text)
    return OptionContract(d["underlying"], date.fromisoformat(d["expiry"]), Decimal(d["strike"]), d["right"])


def to_request(intent: Intent) -> OrderRequest:
    option = option_from_json(intent.option_json) if intent.option_json else None
    return OrderRequest(
        client_order_id=intent.client_order_id,
        symbol=option.occ_symbol if option else intent.symbol,
        side=OrderSide(intent.order_side),
        qty=intent.qty,
        asset_class=AssetClass.OPTION if option else AssetClass.EQUITY,
        option=option,
    )


@dataclass
class OrderRouter:
    broker: Broker
    journal: OrderJournal
    errors: ErrorHandler
    clock: Clock
    events: OrderEvents
    confirmation_required: bool = False
    is_confirmed: Any = None  # callable(client_order_id) -> bool
    on_filled: Any = None  # callable(intent) once, when an intent reaches FILLED
    # callable(intent) once, when an entry ends without trading: REJECTED with nothing filled, or its confirmation expired
    on_rejected: Any = None

    def place(self, intent: Intent, *, confirm_until: datetime | None = None) -> Intent:
        """Journal (idempotent) then send, unless it waits for a confirmation."""
        intent = self.journal.record_intent(intent)
        if (
            not intent.status.is_open
            or intent.status is not IntentStatus.INTENT
            and intent.status is not IntentStatus.AWAITING_CONFIRMATION
        ):
            return intent
        crashpoint("after_journal")
        # TRADE_CONFIRMATION_REQUIRED=true: entries wait for `tbot confirm ID` until their breakout window ends
        if self.confirmation_required and intent.purpose == "entry":
            if not (self.is_confirmed and self.is_confirmed(intent.client_order_id)):
                if confirm_until is not None and self.clock.now() >= confirm_until:
                    expired = self.journal.update(
                        intent.client_order_id,
                        status=IntentStatus.ABANDONED,
                        note="confirmation window expired",
                    )
                    if self.on_rejected is not None:
                        self.on_rejected(expired)  # it never traded: its slot and notional go back
                    return expired
                if intent.status is not IntentStatus.AWAITING_CONFIRMATION:
                    intent = self.journal.update(
                        intent.client_order_id, status=IntentStatus.AWAITING_CONFIRMATION
                    )
                return intent
        return self._send(intent)

    def _send(self, intent: Intent) -> Intent:
        known = self.errors.call(self.broker.get_order_by_client_id, intent.client_order_id)
        if known is not None:
            return self._apply(intent, known)
        try:
            order = self.errors.call(self.broker.submit_order, to_request(intent))
        except NetworkError:
            # the broker may have accepted it: from now on only a client_order_id look-up may resolve it
            self.journal.update(
                intent.client_order_id,
                status=IntentStatus.SENT,
                sent_at=self.clock.now().isoformat(),
                note="submission outcome unknown; resolved by client_order_id look-up",
            )
            raise
        except BrokerError as exc:
            self._unresolved(intent, "order_rejected", exc.code or "rejected", str(exc))
            refused = self.journal.update(
                intent.client_order_id,
                status=IntentStatus.REJECTED,
                note=str(exc),
                sent_at=self.clock.now().isoformat(),
            )
            if self.on_rejected:
                self.on_rejected(refused)
            return refused
        intent = self.journal.update(
            intent.client_order_id,
            status=IntentStatus.SENT,
            sent_at=self.clock.now().isoformat(),
            broker_order_id=order.broker_order_id,
        )
        crashpoint("after_send")
        return self._apply(intent, order)

    def _unresolved(self, intent: Intent, event: str, error_code: str, reason: str) -> None:
        """One line in unresolved_orders.log for an order the broker refused or we could not resolve."""
        self.events.unresolved(
            intent.strategy,
            event=event,
            ticker=intent.symbol,
            client_order_id=intent.client_order_id,
            error_code=error_code,
            reason=reason,
        )

    def apply_broker_record(self, intent: Intent, order: Order) -> Intent:
        """Bring a journaled intent in line with the broker's record of its order (used by recovery)."""
        return self._apply(intent, order)

    def _apply(self, intent: Intent, order: Order) -> Intent:
        if not order.status.is_final and order.filled_qty < (intent.filled_qty or Decimal(0)):
            # cumulative quantities only grow: a lower one from a working order is an older state read late
            # (a lagging replica, a replayed event); the broker's final word, whatever it says, still wins
            log.info(
                "order %s: broker reports %s filled, journal already has %s: stale state ignored",
                intent.client_order_id,
                order.filled_qty,
                intent.filled_qty,
            )
            return intent
        status = _STATUS[order.status]
        fields: dict[str, Any] = {"status": status, "broker_order_id": order.broker_order_id}
        if intent.sent_at is None:
            fields["sent_at"] = (order.submitted_at or self.clock.now()).isoformat()
        if order.filled_qty > 0:
            fee = order.fee
            when = order.filled_at or (order.fills[-1].timestamp if order.fills else self.clock.now())
            fields.update(
                filled_qty=order.filled_qty,
                filled_price=order.filled_avg_price,
                filled_at=when.isoformat(),
                fee=fee,
            )
        if order.status is OrderStatus.REJECTED:
            fields["note"] = order.reject_reason
            self._unresolved(intent, "order_rejected", "rejected", order.reject_reason or "")
        changed = any(getattr(intent, k) != v for k, v in fields.items())
        if not changed:
            return intent
        updated = self.journal.update(intent.client_order_id, **fields)
        # reported once, when the order becomes final with fills (filled, or cancelled after a partial fill)
        if updated.filled_qty and not updated.status.is_open and intent.status.is_open and self.on_filled:
            self.on_filled(updated)
        # refused after it was sent (on placing it, or found at a sync): nothing traded
        rejected = updated.status is IntentStatus.REJECTED and not updated.filled_qty
        if rejected and intent.status.is_open and self.on_rejected:
            self.on_rejected(updated)
        return updated

    def sync(self, intents: list[Intent] | None = None) -> None:
        """Refresh open intents from the broker (fills are reported through `on_filled`)."""
        for listed in intents if intents is not None else self.journal.open_intents():
            intent = self.journal.get(listed.client_order_id)  # fresh: a nested sync may have moved it on
            if intent is None or not intent.status.is_open:
                continue
            if intent.status in (IntentStatus.INTENT, IntentStatus.AWAITING_CONFIRMATION):
                continue
            order = self.errors.call(self.broker.get_order_by_client_id, intent.client_order_id)
            if order is None:
                continue
            self._apply(intent, order)

    def abandon(self, intent: Intent, reason: str) -> Intent:
        """An entry never sent (journaled, or waiting for a confirmation) that may no longer be: abandoned, its
        slot and notional given back."""
        abandoned = self.journal.update(intent.client_order_id, status=IntentStatus.ABANDONED, note=reason)
        if self.on_rejected is not None:
            self.on_rejected(abandoned)
        return abandoned

    def cancel(self, intent: Intent, reason: str) -> Intent:
        """Cancel one working order (or abandon it if never sent) and bring its fills up to date."""
        if intent.status in (IntentStatus.INTENT, IntentStatus.AWAITING_CONFIRMATION):
            return self.abandon(intent, reason)
        try:
            self.errors.call(self.broker.cancel_order, intent.client_order_id)
        except BrokerError as exc:
            self._unresolved(intent, "cancel_failed", exc.code or "cancel_failed", str(exc))
        self.sync([intent])
        return self.journal.get(intent.client_order_id) or intent

    def cancel_open(self, reason: str, *, purpose: Purpose | None = None) -> int:
        """Cancel every sent-but-unfilled order and abandon every unsent intent (only entries with purpose="entry")."""
        n = 0
        for intent in self.journal.open_intents():
            if purpose is not None and intent.purpose != purpose:
                continue
            if intent.status in (IntentStatus.INTENT, IntentStatus.AWAITING_CONFIRMATION):
                self.abandon(intent, reason)
                continue
            try:
                self.errors.call(self.broker.cancel_order, intent.client_order_id)
                n += 1
            except BrokerError as exc:
                self._unresolved(intent, "cancel_failed", exc.code or "cancel_failed", str(exc))
        self.sync()
        return n
