"""Planned broker pauses (issue 24): BROKER_MAINTENANCE_WINDOW, e.g. IB's nightly restart.

A broker that stops answering inside its maintenance window is a planned pause: the supervisor suspends new
entries and probes it exactly as for an outage, but logs it as maintenance and raises no outage alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from tbot_bot.config.env_bot import IBKR_NIGHTLY_RESTART, MAINTENANCE_ZONE, BotSettings


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    start: time
    end: time  # may be earlier than start: the window then spans midnight (23:45-00:45)
    zone: str

    def contains(self, t: datetime) -> bool:
        local = t.astimezone(ZoneInfo(self.zone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def describe(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone}"


def maintenance_window(settings: BotSettings) -> MaintenanceWindow | None:
    """The broker's daily maintenance window, or None (the value is validated by env_bot)."""
    text = settings.BROKER_MAINTENANCE_WINDOW
    # BROKER_MAINTENANCE_WINDOW=auto: IBKR restarts nightly; the other brokers announce no daily pause
    if text == "auto":
        text = IBKR_NIGHTLY_RESTART if settings.BROKER_NAME == "IBKR" else "none"
    if text == "none":
        return None
    span, _, zone = text.partition(" ")
    start, end = (time.fromisoformat(x) for x in span.split("-"))
    return MaintenanceWindow(start, end, zone or MAINTENANCE_ZONE)


def self_check() -> tuple[bool, str]:
    night = MaintenanceWindow(time(23, 45), time(0, 45), MAINTENANCE_ZONE)
    probe = datetime.fromisoformat("2026-01-06T05:00:00+00:00")  # 00:00 in New York: inside
    if not night.contains(probe) or night.contains(probe.replace(hour=6)):
        return False, "maintenance window arithmetic is wrong across midnight"
    return True, "ok"
