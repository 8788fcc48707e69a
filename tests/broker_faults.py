"""Broker faults on the simulated exchange for in-process replays (feed gaps, outages), and readers of what the
supervisor logged and alerted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tbot_bot.config.settings_bot import update_env_values
from tbot_bot.errors import NetworkError


def at(hh: int, mm: int) -> datetime:
    return datetime(2011, 1, 25, hh, mm, tzinfo=UTC)


class Faults:
    """The sim broker with a feed gap (get_bars answers no bars) and/or an outage (every call a NetworkError)
    while the replay clock is inside the given spans; `on_outage` runs once when the outage begins; from
    `reconnect_at` on it reports one reconnect made inside a call (`reconnects`, as the IBKR adapter does)."""

    def __init__(
        self,
        inner: Any,
        *,
        gap: tuple[datetime, datetime] | None = None,
        down: tuple[datetime, datetime] | None = None,
        on_outage: Any = None,
        armed_by: str | None = None,
        reconnect_at: datetime | None = None,
    ) -> None:
        self._inner, self._gap, self._down, self._on_outage = inner, gap, down, on_outage
        self._armed_by = armed_by  # the outage starts at the first call of this method (after boot)
        self.refused = 0
        self._reconnect_at = reconnect_at

    @property
    def reconnects(self) -> int:
        """As IBKR counts them: a reconnect made inside a call (no error ever reached the caller)."""
        return int(self._reconnect_at is not None and self._inner._clock.now() >= self._reconnect_at)

    def _inside(self, span: tuple[datetime, datetime] | None) -> bool:
        return span is not None and span[0] <= self._inner._clock.now() < span[1]

    def __getattr__(self, item: str) -> Any:
        value = getattr(self._inner, item)
        if not callable(value) or item in ("close", "capabilities"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if item == self._armed_by:
                self._armed_by = None
            if self._armed_by is None and self._inside(self._down):
                if self._on_outage is not None:
                    hook, self._on_outage = self._on_outage, None
                    hook(self._inner)
                self.refused += 1
                raise NetworkError(f"connection refused ({item})")
            if item == "get_bars" and self._inside(self._gap):
                return {}
            return value(*args, **kwargs)

        return call


def logged_events(home: Any) -> list[dict[str, Any]]:
    """The supervisor's and the windows' logs, in replay-time order (the supervisor's first within a second)."""
    logs = next(home.output_dir.rglob("supervisor.log")).parent
    out = []
    for name in ("supervisor", "open", "mid", "close"):
        for line in (logs / f"{name}.log").read_text().splitlines():
            row = json.loads(line)
            detail = row.get("detail")
            row["d"] = json.loads(detail) if isinstance(detail, str) and detail.startswith("{") else {}
            out.append(row)
    return sorted(out, key=lambda r: r["timestamp"])


def when(row: dict[str, Any]) -> str:
    return str(row["timestamp"])


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if name in (e.get("event"), e.get("event_type"), e.get("action"))]


def alerts(caplog: pytest.LogCaptureFixture, trigger: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tbot_bot.trading.notifier_bot" and f'"trigger": "{trigger}"' in r.getMessage()
    ]


def entries(events: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    return [e for e in named(events, "entry_order") if e.get("strategy_name") == strategy]


def maintenance(home: Any, value: str) -> None:
    update_env_values(home, {"BROKER_MAINTENANCE_WINDOW": value, "API_RETRY_LIMIT": "0"}, actor="test")


def no_retries(
    home: Any,
) -> None:  # a refused call fails at once (the retries' back-off sleeps are real time)
    update_env_values(home, {"API_RETRY_LIMIT": "0"}, actor="test")
