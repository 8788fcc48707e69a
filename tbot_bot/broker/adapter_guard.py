"""The one guard at the adapter boundary: whatever an adapter's public method lets slip (a vendor library's
own exception, a KeyError on a reply shape nobody foresaw, a ValueError from a date) leaves it as a BrokerError
naming the broker, the host it talked to and the method, never as a raw traceback (a LogicError for an
in-process adapter such as the sim, where there is no remote reply to blame: that is a bug).

Adapters still translate the failures they know (NetworkError for a timeout, BrokerError for a refusal); this is
the net under them. `Broker.__init_subclass__` applies it to every public method of the interface, so a new
adapter is covered without remembering to be.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from tbot_bot.errors import BrokerError, LogicError, TbotError

log = logging.getLogger(__name__)

# the public interface of `Broker` (broker_api.py): every one of these is guarded on every adapter class
GUARDED_METHODS = (
    "get_account",
    "get_clock",
    "get_positions",
    "submit_order",
    "get_order_by_client_id",
    "list_orders",
    "cancel_order",
    "cancel_all_orders",
    "close_position",
    "get_latest_quote",
    "get_snapshots",
    "get_bars",
    "list_equities",
    "fee_activities",
)
_MARK = "__tbot_adapter_guard__"


def describe_endpoint(broker: Any) -> str:
    """Where an adapter talks to, for messages: its `endpoint` when it has one, else its name."""
    endpoint = getattr(broker, "endpoint", None)
    return str(endpoint) if endpoint else str(getattr(broker, "name", type(broker).__name__))


def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(method, _MARK, False):
        return method

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except TbotError:
            raise
        except Exception as exc:  # the net under the adapter's own translation: see the module docstring
            where = describe_endpoint(self)
            # the traceback goes to the debug log; the operator reads the one-line BrokerError below
            log.debug("broker at %s: %s failed", where, method.__name__, exc_info=True)
            what = (
                f"broker {getattr(self, 'name', '?')} at {where}: {method.__name__} failed on an unexpected "
                f"reply or state ({type(exc).__name__}: {str(exc)[:300]})"
            )
            if getattr(self, "local", False):  # no remote reply to blame (the sim): a bug, escalated
                raise LogicError(what) from exc
            raise BrokerError(what, code="unexpected_reply") from exc

    setattr(wrapper, _MARK, True)
    return wrapper


def guard_class(cls: type) -> None:
    """Wrap each interface method `cls` has (its own or inherited from a mixin) once."""
    for name in GUARDED_METHODS:
        method = getattr(cls, name, None)
        if callable(method) and not getattr(method, _MARK, False):
            setattr(cls, name, guarded(method))
