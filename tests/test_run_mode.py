"""How a replay waits: as fast as possible, or paced by --speed in steps that serve a stop and the beat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tbot_bot.domain import clock as clock_mod
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.runtime.run_mode import ReplayMode

START = datetime(2011, 1, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall-clock sleeps of the replay clock, recorded instead of slept."""
    calls: list[float] = []
    monkeypatch.setattr(clock_mod._time, "sleep", calls.append)
    return calls


def test_a_paced_replay_serves_a_stop_within_one_wall_second(slept: list[float]) -> None:
    """--speed 60: the hour to the next window was one uninterrupted minute of wall time; a SIGTERM or a Stop
    waited for it (and the watchdog starved). It is now waited for in steps of one wall second; a stop ends the
    pacing, and the replay's time reaches the target at once (the waits that settle exits need their bars)."""
    beats: list[datetime] = []
    clock = ReplayClock(START, speed=60)
    mode = ReplayMode(clock, stop=lambda: len(beats) >= 3, beat=lambda: beats.append(clock.now()))
    assert mode.wait(START + timedelta(hours=1)) is False
    assert slept == [1.0, 1.0, 1.0]  # three steps, then the stop is served: no more wall time
    assert clock.now() == START + timedelta(hours=1)
    assert beats == [*(START + timedelta(minutes=m) for m in (1, 2, 3)), START + timedelta(hours=1)]


def test_a_paced_wait_without_a_stop_reaches_its_time(slept: list[float]) -> None:
    beats: list[datetime] = []
    clock = ReplayClock(START, speed=600)
    mode = ReplayMode(clock, beat=lambda: beats.append(clock.now()))
    assert mode.wait(START + timedelta(minutes=25)) is True
    assert clock.now() == START + timedelta(minutes=25)
    assert slept == [1.0, 1.0, 0.5] and len(beats) == 4  # a beat per step and one at the end


def test_an_unpaced_replay_advances_at_once(slept: list[float]) -> None:
    beats: list[datetime] = []
    clock = ReplayClock(START)
    mode = ReplayMode(clock, beat=lambda: beats.append(clock.now()))
    assert mode.wait(START + timedelta(hours=3)) is True
    assert clock.now() == START + timedelta(hours=3) and slept == [] and len(beats) == 1
    # a time already passed does not move the clock back
    assert mode.wait(START) is True and clock.now() == START + timedelta(hours=3)
