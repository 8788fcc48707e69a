"""Following a submitted market order to its end, for adapters whose broker answers by polling (Alpaca, Tradier).

Poll the broker's order by client id every `poll_interval` until it is final; at `fill_timeout` cancel the
remainder, then poll a few more times for the cancel to settle. What comes back is the broker's last word on the
order (final, or the last state seen when the broker never settles). An order the broker no longer knows at all is
`OrderStateUnknown`: the caller keeps it SENT and reconciles it later, never resends blindly. So is a broker error
while following it (a reply the client library cannot read, a cancel refused for a reason other than the order
being final): the order was placed, so no error after that may read as the order refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tbot_bot.broker.broker_api import Order
from tbot_bot.errors import BrokerError, NetworkError, OrderStateUnknown

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def track_until_final(
    client_order_id: str,
    order: Order | None,
    *,
    get_order: Callable[[str], Order | None],
    cancel: Callable[[str], None],
    fill_timeout: float,
    poll_interval: float,
    sleep: Callable[[float], None],
    settle_polls: int = 3,
) -> Order:
    get_order = _placed(get_order, client_order_id)
    cancel = _placed(cancel, client_order_id)
    polls = max(1, int(fill_timeout / poll_interval)) if poll_interval > 0 else 1
    current = order
    for attempt in range(polls):
        if current is not None and current.status.is_final:
            return current
        if attempt > 0 or current is not None:  # the first look at an order we were not handed is immediate
            sleep(poll_interval)
        current = get_order(client_order_id) or current
    if current is None:
        raise OrderStateUnknown(
            f"order {client_order_id} vanished while tracking", client_order_id=client_order_id
        )
    if current.status.is_final:
        return current
    log.warning(
        "order %s not final after %.1fs (%s, %s of %s filled): cancelling the remainder",
        client_order_id,
        fill_timeout,
        current.status,
        current.filled_qty,
        current.qty,
    )
    cancel(client_order_id)
    for _ in range(max(1, settle_polls)):
        latest = get_order(client_order_id)
        if latest is not None and latest.status.is_final:
            return latest
        current = latest or current
        sleep(poll_interval)
    return current


def _placed(call: Callable[[str], _T], client_order_id: str) -> Callable[[str], _T]:
    """`call` on an order already placed: a broker error is no refusal of the order (an unknown status the client
    library rejects, a cancel refused) but its state unknown; an outage stays an outage."""

    def guarded(cid: str) -> _T:
        try:
            return call(cid)
        except NetworkError:
            raise
        except BrokerError as exc:
            raise OrderStateUnknown(
                f"order {client_order_id} was placed, and following it failed: {exc}; it is reconciled by its "
                "client order id",
                client_order_id=client_order_id,
            ) from exc

    return guarded
