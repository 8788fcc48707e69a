"""The systemd watchdog never fires on a slow broker (issue 10 item 8): WATCHDOG=1 keeps reaching NOTIFY_SOCKET
while a broker call hangs past WatchdogSec, and stops when the supervisor is hung anywhere else."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.runtime.liveness import Liveness, Watched
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.service_bot import ServiceNotifier

WATCHDOG_SEC = 2.0  # the unit's WatchdogSec, shortened for the test (pings every second)
HANG = 5.0  # a broker call hanging well past it


class _Listener:
    """A real NOTIFY_SOCKET: a unix datagram socket collecting (monotonic time, message)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def pings(self, start: float, end: float) -> list[float]:
        return [t for t, m in self.messages if "WATCHDOG=1" in m and start <= t <= end]


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Listener]:
    path = tmp_path / "notify.sock"
    lst = _Listener(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_SEC * 1_000_000)))
    yield lst
    lst.close()


class _HangingBroker:
    """The sim broker, except that the first get_positions hangs for HANG seconds of wall time."""

    def __init__(self, inner: Any, hung: list[tuple[float, float]]) -> None:
        self._inner = inner
        self._hung = hung

    def __getattr__(self, item: str) -> Any:
        target = getattr(self._inner, item)
        if item != "get_positions" or self._hung:
            return target

        def hang(*a: Any, **k: Any) -> Any:
            start = time.monotonic()
            time.sleep(HANG)
            self._hung.append((start, time.monotonic()))
            return target(*a, **k)

        return hang


def _max_gap(times: list[float], start: float, end: float) -> float:
    points = [start, *times, end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def test_watchdog_pings_continue_while_a_broker_call_hangs(tmp_path: Path, listener: _Listener) -> None:
    home = provision_demo_home(tmp_path / "home")
    hung: list[tuple[float, float]] = []
    sup = Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _HangingBroker(b, hung))
    assert sup.run() == 0
    assert hung, "the broker call never hung"
    start, end = hung[0]
    assert end - start >= HANG
    pings = listener.pings(start, end)
    # systemd would kill the service after WatchdogSec without a ping; half of it is what we promise
    assert _max_gap(pings, start, end) < WATCHDOG_SEC, pings
    assert len(pings) >= int(HANG / WATCHDOG_SEC)
    assert sup.service.unhealthy is None


class _Clock:
    """Liveness's monotonic clock, moved by the test: what alive() answers never depends on thread timing."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _until(condition: Any, deadline: float = 30.0) -> bool:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_keepalive_stops_when_the_main_thread_is_stuck_outside_external_calls(listener: _Listener) -> None:
    clock = _Clock()
    service = ServiceNotifier()
    liveness = Liveness(stale_after=0.4, max_external=0.8, monotonic=clock)
    service.start_keepalive(liveness.alive, interval=0.02)

    def pings() -> int:
        return len(listener.pings(0, float("inf")))

    def hung_said(what: str) -> bool:
        # the keep-alive thread says "hung" after its last ping: once the listener has it, it has every ping
        return any("STATUS=hung" in m and what in m for _, m in listener.messages)

    def silent_for(seconds: float) -> bool:
        before = pings()
        time.sleep(seconds)  # fifteen keep-alive periods
        return pings() == before

    try:
        liveness.beat()
        assert _until(lambda: pings() > 0), "no ping while beating recently"
        clock.now = 1.2  # no beat, no external call for 1.2 s: a hung main thread
        assert _until(lambda: hung_said("no progress")), "never said hung"
        assert silent_for(0.3), "kept pinging for a main thread stuck outside any call"
        with liveness.external("broker.get_clock"):  # an external call that never returns in time
            clock.now = 1.6
            before = pings()
            assert _until(lambda: pings() > before), "no ping while inside an external call"
            clock.now = 2.1  # 0.9 s inside the call: past max_external
            assert _until(lambda: hung_said("broker.get_clock")), "never said the call is hung"
            assert silent_for(0.3), "kept pinging for an external call past max_external"
            assert service.unhealthy is not None and "broker.get_clock" in service.unhealthy
    finally:
        service.close()


def test_watched_keeps_the_wrapped_objects_attributes() -> None:
    class Adapter:
        retries_internally = True
        name = "X"

        def get_clock(self) -> str:
            return "clock"

    liveness = Liveness(stale_after=0.0, max_external=10)
    proxy = Watched(Adapter(), liveness, "broker")
    method = proxy.get_clock
    assert method() == "clock"
    assert proxy.name == "X" and method.__self__.retries_internally is True
    seen: list[tuple[bool, str]] = []

    def slow() -> None:
        seen.append(liveness.alive())

    proxy2 = Watched(type("S", (), {"slow": staticmethod(slow)})(), liveness, "fundamentals")
    time.sleep(0.01)
    assert liveness.alive()[0] is False  # stale_after=0: not beating
    proxy2.slow()
    assert seen[0][0] is True and "fundamentals.slow" in seen[0][1]


class _SlowBoot:
    """The sim broker whose first call (the boot's) takes HANG seconds of wall time."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.hung = inner, False

    def __getattr__(self, item: str) -> Any:
        target = getattr(self._inner, item)
        if not callable(target) or self.hung:
            return target

        def hang(*a: Any, **k: Any) -> Any:
            self.hung = True
            time.sleep(HANG)
            return target(*a, **k)

        return hang


def test_a_long_boot_extends_the_start_timeout_while_it_progresses(
    tmp_path: Path, listener: _Listener
) -> None:
    """systemd gives a Type=notify start TimeoutStartSec (90 s by default) to say READY=1; a boot that warms up a
    few thousand symbols from the broker takes longer, was killed as a failed start, and every restart began it
    again. The keep-alive runs from before the boot and each ping extends the timeout systemd is running (the
    start's, then the stop's while a closing goes on); a hung boot would extend nothing."""
    home = provision_demo_home(tmp_path / "home")
    slow: list[_SlowBoot] = []

    def wrap(b: Any) -> Any:
        slow.append(_SlowBoot(b))
        return slow[-1]

    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0
    assert slow and slow[0].hung, "the boot never called the broker"
    ready = next(t for t, m in listener.messages if "READY=1" in m)
    extended = [m for t, m in listener.messages if t < ready and "EXTEND_TIMEOUT_USEC=" in m]
    assert len(extended) >= int(HANG / WATCHDOG_SEC), listener.messages[:5]
    assert all("WATCHDOG=1" in m and "EXTEND_TIMEOUT_USEC=3000000" in m for m in extended)  # 3 pings of 1 s
