"""How a run passes time, chosen once at boot: live (wall clock), replay (a recorded day) or check (boot only).

The mode owns the clock, waiting, the stop check and how long exits are given to settle, so no other code
asks which kind of clock it holds. The supervisor hands it the two things of the process it cannot know:
a heartbeat (systemd watchdog, liveness) and whether a stop was asked for (signal or control file).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tbot_bot.domain.clock import Clock, ReplayClock


class RunKind(StrEnum):
    LIVE = "live"
    REPLAY = "replay"
    CHECK = "check"


def _never() -> bool:
    return False


def _nothing() -> None:
    return None


class RunMode(ABC):
    kind: RunKind
    # exit orders still working when trading ends get this many steps of this length to fill
    settle_steps: int
    settle_step: timedelta

    def __init__(
        self, clock: Clock, *, stop: Callable[[], bool] = _never, beat: Callable[[], None] = _nothing
    ) -> None:
        self.clock = clock
        self._stop = stop
        self._beat = beat

    def stop_requested(self) -> bool:
        return self._stop()

    @abstractmethod
    def wait(self, t: datetime) -> bool:
        """Until `t` (sleeping or advancing the clock); False when a stop was requested meanwhile."""


class LiveMode(RunMode):
    kind = RunKind.LIVE
    # two minutes of wall-clock time, inside systemd's TimeoutStopSec
    settle_steps, settle_step = 6, timedelta(seconds=20)

    def __init__(
        self,
        clock: Clock,
        poll_seconds: float,
        *,
        stop: Callable[[], bool] = _never,
        beat: Callable[[], None] = _nothing,
    ) -> None:
        super().__init__(clock, stop=stop, beat=beat)
        self.poll_seconds = poll_seconds  # SLEEP_TIME: control files and the heartbeat at least this often

    def wait(self, t: datetime) -> bool:
        while True:
            if self.stop_requested():
                return False
            self._beat()
            remaining = (t - self.clock.now()).total_seconds()
            if remaining <= 0:
                return True
            self.clock.sleep(min(self.poll_seconds, remaining))


class ReplayMode(RunMode):
    kind = RunKind.REPLAY
    # five bars of replay time
    settle_steps, settle_step = 5, timedelta(minutes=1)

    def __init__(
        self, clock: ReplayClock, *, stop: Callable[[], bool] = _never, beat: Callable[[], None] = _nothing
    ) -> None:
        super().__init__(clock, stop=stop, beat=beat)
        self.replay_clock = clock

    def wait(self, t: datetime) -> bool:
        # --speed N: waited in steps of one wall second, so a SIGTERM, a Stop and the watchdog's beat are served
        # between them as a live wait serves them (one step to the next window took up to hours of wall time). A
        # stop ends the pacing, not the replay's time: the rest is advanced at once, as an unpaced replay would, so
        # the waits that settle exits after a stop still see their bars
        speed = self.replay_clock.speed
        while (now := self.replay_clock.now()) < t:
            if not speed or self.stop_requested():
                self.replay_clock.advance_to(t, paced=False)
                break
            self.replay_clock.advance_to(now + min(t - now, timedelta(seconds=min(speed, 86400.0))))
            self._beat()
        self._beat()
        return not self.stop_requested()


class CheckMode(RunMode):
    """`tbot check`: boots exactly as start would, then never waits and never runs a window."""

    kind = RunKind.CHECK
    settle_steps, settle_step = 0, timedelta(0)

    def wait(self, t: datetime) -> bool:
        return True


def market_closed(ctx: Any) -> bool:
    """Live, outside the regular session of today's exchange date (before the open, after the close, a day with
    none): a market order sent now waits for the next open at the broker, and the adapter cancels it unfilled.
    A replay's simulated exchange fills at any minute of its day: never closed there."""
    from tbot_bot.market_time import session_bounds, session_date_at

    if ctx.mode.kind is not RunKind.LIVE:
        return False
    # today's exchange date, not the context's: a supervisor up since an earlier day has that day's context until
    # the first window of today starts a new one
    now, calendar = ctx.clock.now(), ctx.settings.MARKET_CALENDAR
    bounds = session_bounds(session_date_at(now, calendar), calendar)
    return bounds is None or not bounds[0] <= now < bounds[1]
