"""Neutral result type of every `self_check()` (strategies, filters, safety modules, brokers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    reason: str = ""
    context: dict[str, Any] = field(default_factory=dict)
