"""Start and Stop mean what they say on a live supervisor (issue 22 point 3, DESIGN §8): a Stop by request ends
trading (orders, positions, books) and the process stays up, stopped; it stays stopped across a restart; `tbot
start` on the running, stopped supervisor resumes it; a signal (systemctl stop) ends the process. On the
injected live clock of test_live_inputs (nothing waits for real) against the fake Alpaca server."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.alpaca_server import broker_for
from fakes.cboe_server import CSV, FakeCboeServer, cboe_csv
from test_live_inputs import SATURDAY, InjectedClock, events, provision, serve

from rigd_tbot.cli import main
from tbot_bot.runtime.control import request_stop, running_supervisor, stopped_file
from tbot_bot.runtime.main import EXIT_OK, Supervisor

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture()
def cboe() -> Iterator[FakeCboeServer]:
    from datetime import date

    with FakeCboeServer() as srv:
        srv.files["/fresh.csv"] = (
            200,
            CSV,
            cboe_csv([(date(2026, 11, 25), 18.0), (date(2026, 11, 27), 21.25)]),
        )
        yield srv


def _wait_for(home: Any, test: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            status = json.loads(home.status_json.read_text())
        except (OSError, ValueError):
            status = {}
        if status and test(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"status never showed {what}")


def _run_with(sup: Supervisor, operator: Callable[[], None]) -> int:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            operator()
        except BaseException as exc:  # the assertion is re-raised in the test's thread
            errors.append(exc)
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=guarded)
    helper.start()
    try:
        code = sup.run()
    finally:
        helper.join()
    if errors:
        raise errors[0]
    return code


def _waiting(s: dict[str, Any]) -> bool:
    return str(s.get("message") or "").startswith("waiting")


def test_stop_leaves_the_supervisor_up_and_stopped_across_a_restart_until_start(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(SATURDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
        seen: dict[str, Any] = {}

        def stop_then_signal() -> None:
            _wait_for(home, _waiting, "the wait for Monday")
            request_stop(home, "cli:ops")
            seen["stopped"] = _wait_for(home, lambda s: bool(s.get("trading_stopped")), "trading stopped")
            seen["up"] = running_supervisor(home) is not None  # the process did not exit
            os.kill(os.getpid(), signal.SIGTERM)  # systemctl stop

        sup = Supervisor(home, broker=broker_for(server), clock=InjectedClock(SATURDAY))
        assert _run_with(sup, stop_then_signal) == EXIT_OK
        assert seen["up"] and seen["stopped"]["state"] == "closed"
        assert (
            seen["stopped"]["bot"]["mode"] == "paper"
        )  # an Alpaca paper account (ALPACA_PAPER defaults to true)
        assert seen["stopped"]["trading_stopped"].endswith("cli:ops")
        # one time, the Stop request's: "<UTC time> cli:ops" (it was stamped twice)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\S+ cli:ops", stopped_file(home).read_text().strip())
        assert stopped_file(home).exists() and not home.control_stop.exists()

        def start_after_restart() -> None:
            # the first run's status still says stopped: wait for the restarted supervisor's own announcement
            deadline = time.monotonic() + 60
            while [e.get("event") for e in events(home)].count("trading_stopped") < 2:
                assert time.monotonic() < deadline, "the restarted supervisor never said it is stopped"
                time.sleep(0.02)
            seen["restarted"] = _wait_for(home, lambda s: "Start resumes" in str(s.get("message")), "stopped")
            assert main(["start", "--home", str(home.root)]) == 0  # the running supervisor resumes
            seen["resumed"] = _wait_for(
                home, lambda s: not s.get("trading_stopped") and _waiting(s), "trading again"
            )
            os.kill(os.getpid(), signal.SIGTERM)

        # a restart (reboot, systemctl restart) keeps it stopped until Start
        sup = Supervisor(home, broker=broker_for(server), clock=InjectedClock(SATURDAY))
        assert _run_with(sup, start_after_restart) == EXIT_OK
    assert seen["restarted"]["trading_stopped"].endswith("cli:ops")
    assert "Mon 2026-11-30" in seen["resumed"]["message"]
    assert not stopped_file(home).exists() and not home.control_start.exists()
    logged = [e.get("event") for e in events(home)]
    # stopped after the Stop, and again when the restarted supervisor came up; started once
    assert logged.count("trading_stopped") == 2 and logged.count("trading_started") == 1
    asked = [json.dumps(e) for e in events(home) if e.get("event") == "stop_requested"]
    # the operator's Stop, then the signal that ended the resumed run
    assert len(asked) == 2 and "cli:ops" in asked[0] and '\\"by\\": \\"signal\\"' in asked[1]


class _Unplugged:
    """The Alpaca adapter with its network cable pulled while `down` is set: every call a NetworkError."""

    def __init__(self, inner: Any, down: threading.Event) -> None:
        self._inner, self._down = inner, down

    def __getattr__(self, item: str) -> Any:
        from tbot_bot.errors import NetworkError

        value = getattr(self._inner, item)
        if not callable(value) or item in ("close", "capabilities"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._down.is_set():
                raise NetworkError(f"connection refused ({item})")
            return value(*args, **kwargs)

        return call


def test_a_live_broker_down_at_the_start_is_probed_between_windows_and_reconciled_when_it_answers(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from test_live_inputs import MONDAY, InjectedClock

    clock = InjectedClock(MONDAY)  # 07:00 New York: OPEN is hours away, so only the poll loop can probe
    with serve(MONDAY, clock) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
        down = threading.Event()
        broker = _Unplugged(broker_for(server), down)
        seen: dict[str, Any] = {}
        real_reconcile = Supervisor._reconcile

        def unplug_then_reconcile(self: Supervisor, ctx: Any) -> None:
            down.set()  # the start's reconciliation finds the broker gone (boot itself had reached it)
            real_reconcile(self, ctx)

        monkeypatch.setattr(Supervisor, "_reconcile", unplug_then_reconcile)

        def plug_back_in() -> None:
            seen["down"] = _wait_for(
                home, lambda s: bool((s.get("broker") or {}).get("down_since")), "the outage"
            )
            down.clear()
            clock.sleep(20)  # past the first probe's back-off (15 s)
            seen["back"] = _wait_for(
                home, lambda s: bool((s.get("broker") or {}).get("resumed_at")), "the return"
            )
            deadline = time.monotonic() + 30
            while not any(e.get("event") == "reconciled" for e in events(home)):
                assert time.monotonic() < deadline, "no reconciliation after the broker answered"
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGTERM)

        sup = Supervisor(home, broker=broker, clock=clock)
        assert _run_with(sup, plug_back_in) == EXIT_OK
    assert seen["down"]["broker"]["healthy"] is False
    assert seen["back"]["broker"]["healthy"] is True
    assert (
        seen["down"]["state"] == "suspended" and seen["back"]["state"] == "idle"
    )  # the outage's suspension ends with it
    assert seen["back"]["broker"]["resumed_at"] >= (MONDAY + timedelta(seconds=20)).isoformat()
    logged = [e.get("event") for e in events(home)]
    # suspended at the start, probed from the poll loop, then the start's reconciliation, in that order
    assert logged.index("broker_outage") < logged.index("broker_resumed") < logged.index("reconciled")


def test_a_stop_whose_closing_fails_stays_a_stop_after_the_restart(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Stop pressed while the broker is down: the closing fails, the supervisor exits 1 and systemd restarts it.
    The Stop was consumed before the closing and the stopped marker written only after it, so the restarted
    supervisor traded again; the marker is written when the Stop is taken."""
    from tbot_bot.errors import NetworkError

    with serve(SATURDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)

        def broker_down(self: Supervisor, ctx: Any, reason: str) -> None:
            raise NetworkError("connection refused (close_position)")

        monkeypatch.setattr(Supervisor, "_close_positions", broker_down)

        def operator() -> None:
            _wait_for(home, _waiting, "waiting")
            request_stop(home, "cli:ops")

        sup = Supervisor(home, broker=broker_for(server), clock=InjectedClock(SATURDAY))
        assert _run_with(sup, operator) == 1
        assert "closing failed" in json.loads(home.status_json.read_text())["message"]
        assert stopped_file(home).exists() and "cli:ops" in stopped_file(home).read_text()


def _restarted_stopped(home: Any, server: Any, then: Callable[[], None]) -> int:
    """A supervisor stopped by `tbot stop` and ended; another started in its place comes up stopped, `then` runs
    once it has, and a SIGTERM ends it: its exit code."""

    def stop_then_end() -> None:
        _wait_for(home, _waiting, "waiting")
        request_stop(home, "cli:ops")
        _wait_for(home, lambda s: bool(s.get("trading_stopped")), "trading stopped")
        os.kill(os.getpid(), signal.SIGTERM)

    assert (
        _run_with(Supervisor(home, broker=broker_for(server), clock=InjectedClock(SATURDAY)), stop_then_end)
        == 0
    )

    def operator() -> None:
        deadline = time.monotonic() + 60
        while [e.get("event") for e in events(home)].count("trading_stopped") < 2:
            assert time.monotonic() < deadline, "the restarted supervisor never came up stopped"
            time.sleep(0.05)
        then()
        os.kill(os.getpid(), signal.SIGTERM)

    return _run_with(Supervisor(home, broker=broker_for(server), clock=InjectedClock(SATURDAY)), operator)


def test_a_supervisor_that_came_up_stopped_serves_a_flatten(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarted while stopped, the supervisor had no trading day wired and never served `tbot flatten` (which
    cannot act itself: the supervisor holds the run lock), so the command gave up after two minutes."""
    from tbot_bot.runtime.control import flatten_result_path, request_flatten

    with serve(SATURDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
        answered: dict[str, Any] = {}

        def flatten() -> None:
            path = flatten_result_path(home, request_flatten(home, "cli:ops", symbol=None, strategy=None))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not path.exists():
                time.sleep(0.05)
            answered["result"] = json.loads(path.read_text()) if path.exists() else None

        assert _restarted_stopped(home, server, flatten) == 0
        assert answered["result"] is not None
        assert stopped_file(home).exists()  # still stopped: a flatten is no Start


def test_a_flatten_that_fails_while_stopped_leaves_the_supervisor_up(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker down during a flatten served while stopped: the error ended the supervisor, systemd restarted it
    into the same request, and so on. It is said, the request waits for the next poll, the supervisor stays up."""
    from tbot_bot.errors import NetworkError
    from tbot_bot.runtime import flatten as flatten_mod
    from tbot_bot.runtime.control import request_flatten

    with serve(SATURDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)

        def broker_down(*args: Any, **kwargs: Any) -> None:
            raise NetworkError("connection refused (positions)")

        def flatten() -> None:
            monkeypatch.setattr(flatten_mod, "flatten", broker_down)
            request_flatten(home, "cli:ops", symbol=None, strategy=None)
            deadline = time.monotonic() + 60
            while "flatten_not_served" not in [e.get("event") for e in events(home)]:
                assert time.monotonic() < deadline, "the failure was never said"
                time.sleep(0.05)

        assert _restarted_stopped(home, server, flatten) == 0  # up until the signal, not ended by the error
        assert (home.control_dir / "control_flatten.json").exists()  # the request waits for the broker
        said = [e for e in events(home) if e.get("event") == "flatten_not_served"]
        assert len(said) == 1 and "connection refused" in json.dumps(said[0])  # once, not at every poll


def test_a_sigterm_during_the_last_window_is_kept_through_its_exits_settling(tmp_path: Path) -> None:
    """`systemctl stop` as the day's last window ends: the end of the session let its exits settle and cleared the
    stop to make its waits wait, so the supervisor never saw it and systemd killed it after TimeoutStopSec (and the
    nightly optimizer it had just started). The stop is kept; the day then ends through the stop's own closing."""
    import signal as signals
    from datetime import UTC, date, datetime, timedelta
    from types import SimpleNamespace

    from tbot_bot.domain.vocab import WindowStatus
    from tbot_bot.runtime import main as runtime_main
    from tbot_bot.runtime.run_mode import RunKind
    from tbot_bot.runtime.window_runner import WindowOutcome
    from tbot_bot.support.path_resolver import BotHome

    sup = runtime_main.Supervisor(BotHome(tmp_path))
    now = datetime(2026, 12, 1, 20, 58, tzinfo=UTC)  # 15:58 in New York: the CLOSE window's end
    still_open = [[object()], [object()], []]  # an exit still working for two looks
    ended: list[str] = []
    from helpers import make_settings

    settings = make_settings()  # the template's windows: CLOSE is the day's last that fits
    ctx = SimpleNamespace(
        session_date=date(2026, 12, 1), day_key="2026-12-01", settings=settings,
        mode=SimpleNamespace(kind=RunKind.LIVE, settle_steps=6, settle_step=timedelta(seconds=20)),
        clock=SimpleNamespace(now=lambda: now), wait=lambda t: not sup._stop_signal,
        orders=SimpleNamespace(sync=lambda: None),
        journal=SimpleNamespace(open_intents=lambda: still_open.pop(0) if still_open else [],
                                day_booked=lambda d: None),
    )  # fmt: skip
    sup._on_signal(signals.SIGTERM, None)
    sup._settle(ctx)  # type: ignore[arg-type]
    assert sup.stop_requested() and still_open == []  # the exits were waited for, and the stop kept
    r = SimpleNamespace(settings=settings, clock=ctx.clock, vix_lookup=lambda d: 20.0)
    stopped = WindowOutcome("close", WindowStatus.STOPPED, "stopped")
    sup._window_through_outages = lambda c, n: (SimpleNamespace(feed=None), stopped)  # type: ignore[method-assign]
    for name in ("_check_after_window", "_record_bars", "_announce_next_window"):
        setattr(sup, name, lambda *a: None)
    sup._end_of_session = lambda c: ended.append("end of session")  # type: ignore[method-assign]
    sup._start_optimizer = lambda c, p: ended.append("optimizer")  # type: ignore[method-assign]
    original = runtime_main.close_overdue
    runtime_main.close_overdue = lambda c: None  # type: ignore[assignment]
    try:
        sup._run_due_window(r, ctx, ("open", "mid", "close"), "close")  # type: ignore[arg-type]
    finally:
        runtime_main.close_overdue = original  # type: ignore[assignment]
    assert ended == [] and sup.stop_requested()  # left to the stop's closing, which the main loop runs next
