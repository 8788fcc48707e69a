"""The live supervisor with its inputs fetched by itself, on an injected clock (nothing waits for real):
a weekend start boots, builds its universe, refreshes VIX and waits for Monday; a stale VIX skips CLOSE with
reason no_vix, logged and alerted once."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_market import asset, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from fakes.cboe_server import CSV, FakeCboeServer, cboe_csv
from integration_test_runner import provision_alpaca as provision_alpaca_home

from rigd_tbot.cli import main
from tbot_bot.inputs import universe
from tbot_bot.runtime.main import EXIT_OK, Supervisor
from tbot_bot.support.path_resolver import BotHome

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
MONDAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PRICES = {"AAPL": "190.00", "MSFT": "37.00", "XOM": "110.00", "SH": "14.00", "SQQQ": "20.00"}


class InjectedClock:
    """Live time without the waiting: `sleep` moves the clock forward at once."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@pytest.fixture()
def cboe() -> Iterator[FakeCboeServer]:
    with FakeCboeServer() as srv:
        srv.files["/fresh.csv"] = (
            200,
            CSV,
            cboe_csv([(date(2026, 11, 25), 18.0), (date(2026, 11, 27), 21.25)]),
        )
        srv.files["/stale.csv"] = (
            200,
            CSV,
            cboe_csv([(date(2026, 11, 20), 18.0), (date(2026, 11, 24), 19.0)]),
        )
        yield srv


def serve(start: datetime, clock: InjectedClock | None = None) -> FakeAlpacaServer:
    clock = clock or InjectedClock(start)
    # the previous session (Friday 2026-11-27) has bars for all but SQQQ, which the warm-up leaves out;
    # Monday 2026-11-30 has bars for AAPL only
    history = {s: float(p) for s, p in PRICES.items() if s != "SQQQ"}
    bars = pd.concat(
        [
            synthetic_bars(history, datetime(2026, 11, 27, 14, 30, tzinfo=UTC), 40, seed=4),
            synthetic_bars({"AAPL": 190.0}, datetime(2026, 11, 30, 14, 30, tzinfo=UTC), 30, seed=5),
        ],
        ignore_index=True,
    )
    exchange = FakeAlpacaExchange(bars=bars, now=clock.now, prices=dict(PRICES))
    exchange.set_assets(
        [asset(s, "ARCA" if s in ("SH", "SQQQ") else "NYSE") for s in PRICES] + [asset("OTCX", "OTC")]
    )
    return FakeAlpacaServer(exchange)


def provision(root: Path, server: FakeAlpacaServer, vix_url: str, monkeypatch: pytest.MonkeyPatch) -> BotHome:
    home = provision_alpaca_home(root, server.url, monkeypatch)
    assert main(["config", "set", "--home", str(root), f"VIX_HISTORY_URL={vix_url}", "SLEEP_TIME=50ms"]) == 0
    return home


def events(home: BotHome) -> list[dict[str, object]]:
    out = []
    for path in sorted(home.root.glob("output/*/logs/*")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
    return out


def _run_until(sup: Supervisor, seen: Callable[[], Any]) -> list[Any]:
    """Run the live supervisor until `seen()` gives something (polled; at most two minutes: a slow boot on a loaded
    machine still gets there), then stop it as systemctl does (a signal ends the process; a Stop by request would
    leave it up, stopped). What `seen` gave, or [] when it never did."""
    found: list[Any] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            value = seen()
            if value:
                found.append(value)
                break
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=watch)
    helper.start()
    try:
        assert sup.run() == EXIT_OK
    finally:
        helper.join()
    return found


def test_weekend_start_builds_its_universe_refreshes_vix_and_waits_for_monday(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(SATURDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
        assert not home.universe_file.exists()
        sup = Supervisor(home, broker=broker_for(server), clock=InjectedClock(SATURDAY))

        def waiting() -> str | None:
            try:
                message = json.loads(home.status_json.read_text()).get("message") or ""
            except (OSError, ValueError):
                return None
            return message if message.startswith("waiting") else None

        waited = _run_until(sup, waiting)
    assert waited and "Mon 2026-11-30" in waited[0] and "09:30 America/New_York = 14:30 UTC" in waited[0]
    assert universe.read_universe(home) == ["AAPL", "MSFT", "XOM", "SH", "SQQQ"]
    logged = json.dumps(events(home))
    assert "universe_built" in logged and "vix_refreshed" in logged and "warmup_progress" in logged
    assert (
        '"warmup_excluded", "ticker": "SQQQ"' in logged
        and "warm-up: no bars in the previous session" in logged
    )
    assert "VIX 21.25 (close of 2026-11-27) for the CLOSE window of 2026-11-30" in logged
    tracebacks = [p for p in home.root.glob("output/*/logs/error_tracebacks.log") if p.read_text().strip()]
    assert tracebacks == []
    assert json.loads(home.status_json.read_text())["state"] == "closed"


def test_stale_vix_skips_close_with_no_vix_logged_and_alerted_once(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tbot_bot.runtime.boot import boot
    from tbot_bot.runtime.window_runner import WindowRunner

    with serve(MONDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/stale.csv"), monkeypatch)
        home.universe_file.parent.mkdir(parents=True, exist_ok=True)
        home.universe_file.write_text("AAPL\nSH\n")
        clock = InjectedClock(MONDAY)
        sup = Supervisor(home, clock=clock)
        r = boot(
            home,
            replay_day=None,
            speed=None,
            data_source=None,
            broker=broker_for(server),
            broker_wrapper=None,
            stop=sup.stop_requested,
            live_clock=clock,
        )
        try:
            with caplog.at_level(logging.INFO, logger="tbot_bot.trading.notifier_bot"):
                ctx = sup._start_live_day(r, ("open", "mid", "close"))
                first = WindowRunner(ctx, "close").run()
                again = WindowRunner(ctx, "close").run()  # a second pass (e.g. after a restart) stays quiet
        finally:
            r.close()
    assert first.status == "skipped" and first.note.startswith(
        "no_vix: no VIX close for the session before 2026-11-30"
    )
    assert first.denials == {"no_vix": 1} and again.status == "skipped"
    alerts = [rec for rec in caplog.records if "alert" in rec.getMessage() and "no_vix" in rec.getMessage()]
    assert len(alerts) == 1 and alerts[0].levelno == logging.WARNING
    logged = json.dumps(events(home))
    assert "vix_reading" in logged and "newest close 2026-11-24" in logged and "window_skipped" in logged
    assert Decimal(str(r.broker_current_float)) > 0


def test_a_bot_running_for_days_warms_up_again_for_each_session(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.runtime.boot import boot

    clock = InjectedClock(SATURDAY)
    with serve(SATURDAY, clock) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
        home.universe_file.parent.mkdir(parents=True, exist_ok=True)
        home.universe_file.write_text("AAPL\nMSFT\nSH\n")
        sup = Supervisor(home, clock=clock)
        r = boot(
            home, replay_day=None, speed=None, data_source=None, broker=broker_for(server), broker_wrapper=None,
            stop=sup.stop_requested, live_clock=clock,
        )  # fmt: skip
        try:
            assert r.warmup is not None and r.warmup.session == date(2026, 11, 27)
            assert set(r.warmup.prev_volumes()) == {"AAPL", "MSFT", "SH"}
            assert r.warm_volumes(date(2026, 11, 30)) is not None  # Monday: Friday's volumes
            clock.sleep(3 * 86400)  # Tuesday 2026-12-01 15:00 UTC
            sup._start_live_day(r, ("open", "mid", "close"))
            assert r.warmup.session == date(2026, 11, 30)
            assert set(r.warmup.prev_volumes()) == {"AAPL"}  # only AAPL traded on Monday in the fake
            assert r.warm_volumes(date(2026, 12, 1)) == r.warmup.prev_volumes()
            assert r.warm_volumes(date(2026, 12, 3)) is None  # never another session's figures
        finally:
            r.close()


def _aapl_home(
    tmp_path: Path, server: FakeAlpacaServer, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> BotHome:
    """A home on the fake Alpaca server trading AAPL and SH, VIX fresh."""
    home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
    home.universe_file.parent.mkdir(parents=True, exist_ok=True)
    home.universe_file.write_text("AAPL\nSH\n")
    return home


def _booted(home: BotHome, server: FakeAlpacaServer, clock: InjectedClock) -> tuple[Supervisor, object]:
    from tbot_bot.runtime.boot import boot

    sup = Supervisor(home, clock=clock)
    r = boot(
        home, replay_day=None, speed=None, data_source=None, broker=broker_for(server), broker_wrapper=None,
        stop=sup.stop_requested, live_clock=clock,
    )  # fmt: skip
    return sup, r


def test_a_restart_after_the_close_finishes_the_day_instead_of_running_its_windows_again(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.runtime.order_journal import OrderJournal

    after_close = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # Monday 17:00 EST
    clock = InjectedClock(after_close)
    with serve(after_close, clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        journal = OrderJournal(home.state_dir / "journal.db")
        try:  # the machine went down during MID and came back after the close
            journal.set_window("2026-11-30", "open", "done", actual_start="2026-11-30T14:30:00+00:00")
            journal.set_window("2026-11-30", "mid", "running", actual_start="2026-11-30T15:30:00+00:00")
        finally:
            journal.close()
        sup, r = _booted(home, server, clock)
        try:
            plan = ("open", "mid", "close")
            ctx = sup._start_live_day(r, plan)
            assert sup._resume_day(ctx, plan) == []  # MID's minutes are not run again at 17:00
            windows = {w["strategy"]: w for w in json.loads(home.status_json.read_text())["windows"]}
            assert ctx.journal.day_booked("2026-11-30") is not None  # the end of the session ran
        finally:
            r.close()  # type: ignore[attr-defined]
    assert windows["open"]["status"] == "done"
    assert windows["mid"]["status"] == "halted" and windows["mid"]["note"].startswith(
        "interrupted: the supervisor was down until 17:00 America/New_York = 22:00 UTC"
    )
    assert windows["close"]["status"] == "skipped" and windows["close"]["note"].startswith("missed: ")


def test_a_holiday_runs_no_window_and_no_end_of_session(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    thanksgiving = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)  # OPEN's cron fires at 09:30 EST
    clock = InjectedClock(thanksgiving)
    with serve(thanksgiving, clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        sup, r = _booted(home, server, clock)
        try:
            plan = ("open", "mid", "close")
            ctx = None
            for name, hour in (("open", 14), ("mid", 15), ("close", 19)):
                clock._now = thanksgiving.replace(hour=hour)
                ctx = sup._run_due_window(r, ctx, plan, name)  # type: ignore[arg-type]
            assert ctx is not None and ctx.journal.day_booked("2026-11-26") is None
        finally:
            r.close()  # type: ignore[attr-defined]
    status = json.loads(home.status_json.read_text())
    assert (
        status["message"].startswith("market closed today (")
        and "next window open on Fri 2026-11-27" in (status["message"])
    )
    logged = events(home)
    assert not [e for e in logged if e.get("event") == "window_start"]
    assert len([e for e in logged if e.get("event") == "holiday"]) == 1


def _held_position(home: BotHome, server: FakeAlpacaServer, clock: InjectedClock, *, booked: bool) -> None:
    """An OPEN entry of 2 AAPL filled at the clock's time (booked or not), then the machine goes down."""
    from tbot_bot.broker.broker_api import OrderSide
    from tbot_bot.domain.intents import Intent, IntentStatus, client_order_id
    from tbot_bot.domain.vocab import PositionSide, Purpose

    at = clock.now()
    sup, r = _booted(home, server, clock)
    try:
        ctx = sup._start_live_day(r, ("open", "mid", "close"))
        entry = Intent(
            client_order_id=client_order_id(ctx.bot_id, ctx.day_key, "open", "AAPL", 1),
            session_date=ctx.day_key, strategy="open", purpose=Purpose.ENTRY, symbol="AAPL",
            signal_ticker="AAPL", direction=PositionSide.LONG, order_side=OrderSide.BUY, instrument="equity",
            qty=Decimal("2"), notional=Decimal("380"), status=IntentStatus.INTENT,
            created_at=at.isoformat(), signal_time=at.isoformat(),
        )  # fmt: skip
        ctx.journal.record_intents([entry])
        ctx.orders.place(entry)
        ctx.orders.sync()
        if booked:
            ctx.book_day()
    finally:
        r.close()  # type: ignore[attr-defined]


def _booked_aapl(home: BotHome) -> set[str]:
    import sqlite3

    from tbot_bot.accounting.accounting_config import load_binding

    with sqlite3.connect(f"file:{load_binding(home).ledger_path}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT fitid FROM transactions WHERE ticker = 'AAPL'")}


def test_a_fill_of_an_earlier_day_left_unbooked_is_booked_at_the_next_start(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between a fill and its booking, restarted on the next session: each booking took its own day's
    intents only, so the earlier day's fill never reached the ledger (a calendar review)."""
    clock = InjectedClock(datetime(2026, 11, 27, 14, 35, tzinfo=UTC))
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        _held_position(home, server, clock, booked=False)
        clock._now = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday, before the open
        sup, r = _booted(home, server, clock)
        try:
            sup._start_live_day(r, ("open", "mid", "close"))
        finally:
            r.close()  # type: ignore[attr-defined]
    assert "TB01-20261127-open-AAPL-1" in _booked_aapl(home)
    # and in Friday's statement, where its posting date puts it (the later ones' cash runs on from it)
    from tbot_bot.accounting.accounting_config import load_binding

    friday = home.session_ofx(load_binding(home).scope, date(2026, 11, 27)).read_text()
    assert "<FITID>TB01-20261127-open-AAPL-1</FITID>" in friday


def test_a_position_left_over_a_weekend_is_held_until_the_open_and_closed_by_the_first_window(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart while the market is closed sent the leftover's market exit at once: the broker holds it for the
    open, the adapter cancelled it unfilled, and the log said "positions_closed: 1" (a live operator's review). It
    is held, said (status, log, a critical alert) and closed when the next session's first window starts."""
    clock = InjectedClock(datetime(2026, 11, 27, 14, 35, tzinfo=UTC))
    plan = ("open", "mid", "close")
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        _held_position(home, server, clock, booked=True)
        for when in (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), datetime(2026, 11, 30, 14, 0, tzinfo=UTC)):
            clock._now = when  # Saturday; Monday before the open
            sup, r = _booted(home, server, clock)
            try:
                ctx = sup._start_live_day(r, plan)
                exits = [i for i in ctx.journal.intents() if i.purpose == "exit"]
                status = json.loads(home.status_json.read_text())
                assert exits == [] and [p["symbol"] for p in status["positions"]] == ["AAPL"], when
                # status is published every minute: it lists the carried position without reading the whole
                # journal each time (about a second at 50,000 intents)
                whole_reads: list[int] = []
                real = ctx.journal.intents

                def counting(
                    *args: Any, _real: Any = real, _seen: list[int] = whole_reads, **kwargs: Any
                ) -> Any:
                    _seen.extend([1] if not args and not kwargs else [])
                    return _real(*args, **kwargs)

                monkeypatch.setattr(ctx.journal, "intents", counting)
                for _ in range(3):
                    ctx.publish_positions(None)
                assert whole_reads == [] and ctx.status.positions[0]["symbol"] == "AAPL"
                monkeypatch.setattr(ctx.journal, "intents", real)
                if when.day == 30:  # the open: OPEN's cron fires, its window closes the leftover first
                    clock._now = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
                    sup._run_due_window(r, ctx, plan, "open")
            finally:
                r.close()  # type: ignore[attr-defined]
    logged = events(home)
    assert [e for e in logged if e.get("event") == "held_until_open"]
    assert "TB01-20261130-open-AAPL-1" in _booked_aapl(home)  # Monday's exit, at the open
    status = json.loads(home.status_json.read_text())
    assert status["positions"] == []
    # after a window, status names the next one (it kept saying "open window running ...")
    assert status["message"].startswith("waiting: next window mid on Mon 2026-11-30"), status["message"]


def test_an_early_close_day_finished_at_a_restart_is_not_finished_again_by_the_close_cron(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2026-11-27 closes at 13:00 EST: CLOSE does not fit, yet its cron fires at 14:30 EST. A restart at 13:30 finished
    the day; the cron then ran the end of the session again: booked, synced, started the optimizer twice (a diff
    review)."""
    clock = InjectedClock(datetime(2026, 11, 27, 18, 30, tzinfo=UTC))  # 13:30 EST, after the early close
    plan = ("open", "mid", "close")
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        sup, r = _booted(home, server, clock)
        try:
            ctx = sup._start_live_day(r, plan)
            assert sup._resume_day(ctx, plan) == []
            first = ctx.journal.day_booked("2026-11-27")
            assert first is not None
            clock._now = datetime(2026, 11, 27, 19, 30, tzinfo=UTC)  # CLOSE's cron
            sup._run_due_window(r, ctx, plan, "close")
            assert ctx.journal.day_booked("2026-11-27") == first
        finally:
            r.close()  # type: ignore[attr-defined]
    resumed = [e for e in events(home) if e.get("event") == "end_of_session_resumed"]
    assert len(resumed) == 1


def test_a_session_cut_off_by_a_crash_is_finished_by_the_next_days_start(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine died during Friday's OPEN and came back on Monday: Friday's window read "running" for ever and
    the day was never booked (a live operator's review)."""
    from tbot_bot.runtime.order_journal import OrderJournal

    clock = InjectedClock(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        journal = OrderJournal(home.state_dir / "journal.db")
        try:
            journal.set_window("2026-11-27", "open", "running", actual_start="2026-11-27T14:30:00+00:00")
        finally:
            journal.close()
        sup, r = _booted(home, server, clock)
        try:
            ctx = sup._start_live_day(r, ("open", "mid", "close"))
            row = ctx.journal.window("2026-11-27", "open")
            assert row["status"] == "halted" and row["note"].startswith(
                "interrupted: the supervisor was down until"
            )
            assert ctx.journal.day_booked("2026-11-27") is not None
            assert ctx.journal.running_before(ctx.day_key) == []
        finally:
            r.close()  # type: ignore[attr-defined]


def test_an_end_of_day_whose_exit_is_refused_says_so_and_stays_up(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The end of the day's exit refused (HTTP 403): raising it shut the supervisor down, systemd restarted it,
    the restart ran the end of the day again and was refused again, every ten seconds until the close (a diff
    review). It is said (status, a critical alert), the day is booked, and the supervisor goes on."""
    clock = InjectedClock(datetime(2026, 11, 30, 14, 35, tzinfo=UTC))
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        _held_position(home, server, clock, booked=True)
        clock._now = datetime(2026, 11, 30, 20, 10, tzinfo=UTC)  # 15:10 EST, the market open
        server.inject("POST", "/v2/orders", "status", status=403, times=99)  # every order refused from now
        sup, r = _booted(home, server, clock)
        try:
            ctx = sup._start_live_day(r, ("open", "mid", "close"))  # its reconciliation's exit is refused too
            with caplog.at_level(logging.INFO, logger="tbot_bot.trading.notifier_bot"):
                sup._end_of_session(ctx)  # raised before
            assert ctx.journal.day_booked("2026-11-30") is not None
        finally:
            r.close()  # type: ignore[attr-defined]
    status = json.loads(home.status_json.read_text())
    assert (
        status["message"].startswith("closing failed: 2 AAPL still held (exit ")
        and status["state"] == "halted"
    )
    assert [p["symbol"] for p in status["positions"]] == ["AAPL"]
    assert [r for r in caplog.records if '"trigger": "closing_failed"' in r.getMessage()]


def test_a_flatten_while_the_market_is_closed_sends_nothing_and_says_why(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbot flatten` on a Saturday (the operator acting on the held-until-open alert) sent a market order the
    broker would hold for Monday's open and the adapter cancel unfilled (a diff review)."""
    from tbot_bot.runtime.flatten import flatten

    with _saturday_with_aapl_held(tmp_path, cboe, monkeypatch) as (home, ctx):
        result = flatten(ctx, "cli:ops")
        assert [i for i in ctx.journal.intents() if i.purpose == "exit"] == []
        assert "the market is closed: no order is sent until it opens" in result.not_closed["AAPL"]
        # held between windows is not "monitoring" (nothing rewrites status each minute then: it read stale)
        assert json.loads(home.status_json.read_text())["state"] != "monitoring"


@contextmanager
def _saturday_with_aapl_held(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BotHome, Any]]:
    """A live day started on Saturday 2026-11-28 with 2 AAPL held (bought and booked on Friday): (home, its day)."""
    clock = InjectedClock(datetime(2026, 11, 27, 14, 35, tzinfo=UTC))
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        _held_position(home, server, clock, booked=True)
        clock._now = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # Saturday
        sup, r = _booted(home, server, clock)
        try:
            yield home, sup._start_live_day(r, ("open", "mid", "close"))
        finally:
            r.close()  # type: ignore[attr-defined]


def test_a_restart_after_the_close_with_a_position_held_never_says_session_complete(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarted at 17:00 with a position held: nothing can be sent, yet the day ended "session complete" beside
    the position in status (a held-positions review). And `tbot positions --close` while closed adopted the
    position, sent nothing, and said there was nothing to close."""
    from types import SimpleNamespace

    from tbot_bot.errors import UsageError
    from tbot_bot.runtime.operator_desk import close

    clock = InjectedClock(datetime(2026, 11, 30, 14, 35, tzinfo=UTC))
    plan = ("open", "mid", "close")
    with serve(clock.now(), clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        _held_position(home, server, clock, booked=True)
        clock._now = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # 17:00 EST
        sup, r = _booted(home, server, clock)
        try:
            ctx = sup._start_live_day(r, plan)
            assert sup._resume_day(ctx, plan) == []
            with pytest.raises(UsageError, match="the market is closed: no order for AAPL is sent now"):
                close(SimpleNamespace(ctx=ctx), "AAPL", "open", "cli:ops")  # type: ignore[arg-type]
        finally:
            r.close()  # type: ignore[attr-defined]
    status = json.loads(home.status_json.read_text())
    assert status["message"].startswith("closing failed: 2 AAPL still held")
    assert "the market is closed: held until the next session's first window" in status["message"]
    assert status["state"] == "halted" and [p["symbol"] for p in status["positions"]] == ["AAPL"]


def test_a_halt_while_the_market_is_closed_says_the_positions_are_held(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The kill switch's own closing (its trip possible on a weekend once a position is adopted) halted with its
    reason alone: the exits were not sent (the market closed) and nothing said so (a held-positions review)."""
    with _saturday_with_aapl_held(tmp_path, cboe, monkeypatch) as (home, ctx):
        with caplog.at_level(logging.INFO, logger="tbot_bot.trading.notifier_bot"):
            ctx.halt("kill switch tripped: daily loss 2.1% of the float")
        assert [i for i in ctx.journal.intents() if i.purpose == "exit"] == []
    status = json.loads(home.status_json.read_text())
    assert status["message"] == (
        "kill switch tripped: daily loss 2.1% of the float; the market is closed: 2 AAPL held until it opens"
    )
    assert [r for r in caplog.records if '"trigger": "held_until_open"' in r.getMessage()]


def test_status_shows_what_is_still_held_after_a_partial_exit(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exit cancelled after a partial fill closed part of the position: status showed the entry's whole
    quantity and an exposure (and unrealised PnL) on shares no longer held."""
    from tbot_bot.broker.broker_api import OrderSide
    from tbot_bot.domain.intents import Intent, IntentStatus, client_order_id
    from tbot_bot.domain.vocab import PositionSide, Purpose

    at = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # Monday 10:00 EST
    clock = InjectedClock(at)
    with serve(at, clock) as server:
        home = _aapl_home(tmp_path, server, cboe, monkeypatch)
        sup, r = _booted(home, server, clock)
        try:
            ctx = sup._start_live_day(r, ("open", "mid", "close"))
            entry_id = client_order_id(ctx.bot_id, ctx.day_key, "open", "AAPL", 1)
            entry = Intent(
                client_order_id=entry_id, session_date=ctx.day_key, strategy="open", purpose=Purpose.ENTRY,
                symbol="AAPL", signal_ticker="AAPL", direction=PositionSide.LONG, order_side=OrderSide.BUY,
                instrument="equity", qty=Decimal("2"), notional=Decimal("380"), status=IntentStatus.INTENT,
                created_at=at.isoformat(), signal_time=at.isoformat(),
            )  # fmt: skip
            ctx.journal.record_intents([entry])
            ctx.orders.place(entry)
            ctx.orders.sync()
            held = ctx.journal.get(entry_id)
            assert held is not None and held.filled_qty == 2 and held.filled_price
            # one of the two sold, the rest of the exit order cancelled
            ctx.journal.record_intents(
                [
                    Intent(
                        client_order_id=f"{entry_id}-x", session_date=ctx.day_key, strategy="open",
                        purpose=Purpose.EXIT, symbol="AAPL", signal_ticker="AAPL", direction=PositionSide.LONG,
                        order_side=OrderSide.SELL, instrument="equity", qty=Decimal("2"),
                        status=IntentStatus.CANCELED, created_at=at.isoformat(), filled_qty=Decimal("1"),
                        filled_price=held.filled_price, filled_at=at.isoformat(), fee=Decimal(0),
                        entry_client_order_id=entry_id,
                    )
                ]
            )  # fmt: skip
            ctx.publish_positions(None)
        finally:
            r.close()  # type: ignore[attr-defined]
        status = json.loads(home.status_json.read_text())
        (row,) = status["positions"]
        assert row["qty"] == "1"
        assert Decimal(status["money"]["open_exposure"]) == (held.filled_price or 0).quantize(Decimal("0.01"))


def test_the_rebalance_check_between_windows_runs_on_the_supervisors_thread(
    tmp_path: Path, cboe: FakeCboeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's interval check called the broker from the scheduler's thread, beside the supervisor's own
    calls: ib_async serves one thread (its replies are read by that thread's event loop). It is queued now."""
    from apscheduler.triggers.interval import IntervalTrigger

    from tbot_bot.reporting.rebalance_notifier import read_state
    from tbot_bot.runtime import main as runtime_main

    with serve(SATURDAY) as server:
        home = provision(tmp_path / "home", server, cboe.url("/fresh.csv"), monkeypatch)
        assert main(["config", "set", "--home", str(home.root), "REBALANCE_ENABLED=true"]) == 0
        monkeypatch.setattr(
            runtime_main, "rebalance_trigger", lambda s: IntervalTrigger(seconds=1, timezone="UTC")
        )
        broker = broker_for(server)
        callers: list[threading.Thread] = []
        real = broker.get_account

        def recording():  # type: ignore[no-untyped-def]
            callers.append(threading.current_thread())
            return real()

        monkeypatch.setattr(broker, "get_account", recording)
        sup = Supervisor(home, broker=broker, clock=InjectedClock(SATURDAY))
        seen = _run_until(sup, lambda: (read_state(home).get("last_check") or {}).get("reason") == "interval")
    assert seen == [True]  # the scheduled check ran (then the shutdown's own)
    assert callers and set(callers) == {threading.main_thread()}
