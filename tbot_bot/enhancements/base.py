"""The decision every blocking enhancement returns: allow or deny, with a reason for the strategy log.

Denies are logged by the caller to the strategy log and counted in the summary; never written to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FilterDecision:
    allowed: bool
    reason: str
    filter: str
    context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def allow(cls, filter_name: str, reason: str, **context: Any) -> FilterDecision:
        return cls(True, reason, filter_name, context)

    @classmethod
    def deny(cls, filter_name: str, reason: str, **context: Any) -> FilterDecision:
        return cls(False, reason, filter_name, context)
