"""The supervisor: lifecycle, routing, control files, safety reactions, scheduling (issue 5)."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from integration_test_runner import check_outputs, ledger_rows, provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.errors import NetworkError
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome

_BASELINE: dict[str, Path] = {}


def _fresh_home(tmp_path: Path, **config: str) -> BotHome:
    home = provision_demo_home(tmp_path / "home")
    if config:
        from tbot_bot.config.settings_bot import update_env_values

        update_env_values(home, {k: str(v) for k, v in config.items()}, actor="test")
    return home


def _sim_orders(home: BotHome) -> list[tuple[str, str]]:
    db = home.state_dir / "sim_exchange.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        table = "orders" if "orders" in tables else tables[0]
        return [(str(r[0]), str(r[1])) for r in conn.execute(f"SELECT client_order_id, symbol FROM {table}")]


def _status(home: BotHome) -> dict:  # type: ignore[type-arg]
    return json.loads(home.status_json.read_text())


def test_full_replay_day_runs_every_strategy_and_closes(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert check_outputs(home, DEMO_DAY) == []
    status = _status(home)
    for s in ("open", "mid", "close"):
        assert status["counts"][s]["entered"] >= 1, (s, status["counts"])
    assert [w["status"] for w in status["windows"]] == ["done", "done", "done"]


def test_replaying_a_booked_day_is_refused_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rigd_tbot.cli import main

    home = _fresh_home(tmp_path)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    before, orders, status = ledger_rows(home), _sim_orders(home), _status(home)
    capsys.readouterr()
    for command in ("start", "check"):  # what start refuses, check refuses first
        assert main([command, "--home", str(home.root), "--replay", DEMO_DAY.isoformat()]) == 2
        err = capsys.readouterr().err
        assert f"{DEMO_DAY} was already replayed and booked in this home" in err
        assert f"tbot demo --home NEW_HOME --day {DEMO_DAY}" in err
    assert ledger_rows(home) == before and _sim_orders(home) == orders and _status(home) == status
    # `tbot demo` on the same home shows the booked day's results instead of failing
    assert main(["demo", "--home", str(home.root), "--day", DEMO_DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "already replayed" in out and f"Replayed {DEMO_DAY}" in out


def test_strategy_override_runs_only_that_strategy(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path, STRATEGY_OVERRIDE="mid")
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    strategies = {cid.split("-")[2] for cid, _ in _sim_orders(home)}
    assert strategies == {"mid"}
    assert [w["strategy"] for w in _status(home)["windows"]] == ["mid"]


def test_replay_of_a_holiday_is_refused_naming_it(tmp_path: Path) -> None:
    import pytest

    from tbot_bot.errors import ConfigError

    home = _fresh_home(tmp_path)
    holiday = date(2011, 1, 17)  # Martin Luther King Jr. Day: XNYS closed
    with pytest.raises(
        ConfigError, match="not a XNYS trading session .a holiday: Dr. Martin Luther King Jr. Day"
    ):
        Supervisor(home, replay_day=holiday).run()
    assert _sim_orders(home) == []
    assert not home.status_json.exists()


def test_disable_all_trades_sends_nothing(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path, DISABLE_ALL_TRADES="true")
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert _sim_orders(home) == []
    status = _status(home)
    assert sum(c["signaled"] for c in status["counts"].values()) >= 1
    assert status["state"] == "closed"
    assert "DISABLE_ALL_TRADES" in (home.root / "output").joinpath(
        *_scope_logs(home), "open.log"
    ).read_text() + _all_logs(home)


def _scope_logs(home: BotHome) -> tuple[str, ...]:
    scope = next(p.name for p in (home.root / "output").iterdir() if p.is_dir())
    return (scope, "logs")


def _all_logs(home: BotHome) -> str:
    d = home.root.joinpath("output", *_scope_logs(home))
    return "".join(p.read_text() for p in d.glob("*.log"))


def test_daily_loss_limit_halts_closes_and_stops_ordering(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path, DAILY_LOSS_LIMIT="0.00001")
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    status = _status(home)
    assert status["kill_switch"]["tripped"] is True
    logs = _all_logs(home)
    assert "trading halted: kill switch" in logs
    orders = _sim_orders(home)
    from tbot_bot.runtime.order_journal import OrderJournal

    j = OrderJournal(home.state_dir / "journal.db")
    try:
        intents = j.intents(DEMO_DAY.isoformat())
    finally:
        j.close()
    first_loss_exit = min(i.filled_at for i in intents if i.purpose == "exit" and i.filled_at)
    later_entries = [i for i in intents if i.purpose == "entry" and i.created_at > first_loss_exit]
    assert later_entries == []
    assert all(i.status.value in ("filled", "rejected", "canceled", "abandoned") for i in intents)
    assert len(orders) == len({cid for cid, _ in orders})
    # the trip is the day's: a later start re-adds the losses against the limit as it is then (a float the
    # accounting API assigns again, a limit changed), and must not find the day open to trade again
    from tbot_bot.config.settings_bot import update_env_values
    from tbot_bot.runtime.operator_desk import open_desk

    update_env_values(home, {"DAILY_LOSS_LIMIT": "0.5"}, actor="test")
    with open_desk(home, lock=True, replay_day=DEMO_DAY) as desk:
        assert not desk.ctx.kill.tripped  # the day's losses alone no longer reach the limit
        assert desk.ctx.risk.state.value == "halted" and (desk.ctx.halted_reason or "").startswith(
            "kill switch: "
        )
        # and status and the day's summary say so (they read the switch, which the losses alone no longer trip)
        assert (
            desk.ctx.status.kill_switch["tripped"] is True and desk.ctx.kill_switch_state()["tripped"] is True
        )


def test_stop_file_mid_window_closes_positions_ingests_and_exits_0(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path)
    sup = Supervisor(home, replay_day=DEMO_DAY)
    from tbot_bot.runtime import window_runner

    original = window_runner.WindowRunner._collect_fills
    fired = {"done": False}

    def stop_after_first_fill(self):  # type: ignore[no-untyped-def]
        original(self)
        if not fired["done"] and self.ctx.open_position_count():
            fired["done"] = True
            from tbot_bot.runtime.control import request_stop

            request_stop(home, "test")

    window_runner.WindowRunner._collect_fills = stop_after_first_fill  # type: ignore[method-assign]
    try:
        assert sup.run() == 0
    finally:
        window_runner.WindowRunner._collect_fills = original  # type: ignore[method-assign]
    assert fired["done"]
    status = _status(home)
    assert status["state"] == "closed"
    assert status["positions"] == []
    assert ledger_rows(home)
    assert not home.control_stop.exists()


class _FailingBroker:
    """Wraps the sim broker; from replay time `fail_from` on, every call raises NetworkError (a broker outage)."""

    def __init__(self, inner, fail_from: datetime) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._fail_from = inner, fail_from
        self.name, self.capabilities = inner.name, inner.capabilities

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        target = getattr(self._inner, item)
        if not callable(target) or item == "close":
            return target

        def call(*a, **k):  # type: ignore[no-untyped-def]
            if self._inner._clock.now() >= self._fail_from:
                raise NetworkError("broker API unreachable (injected outage)")
            return target(*a, **k)

        return call

    def self_check(self):  # type: ignore[no-untyped-def]
        return self._inner.self_check()


def test_broker_outage_suspends_trading(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path, API_RETRY_LIMIT="0")
    outage = datetime.combine(DEMO_DAY, datetime.min.time(), tzinfo=UTC).replace(hour=15, minute=40)
    sup = Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _FailingBroker(b, outage))
    code = sup.run()
    status = _status(home)
    assert status["broker"]["healthy"] is False
    assert "broker outage" in _all_logs(home)
    assert [(o.strategy, o.status) for o in sup.outcomes] == [
        ("open", "done"),
        ("mid", "halted"),
        ("close", "halted"),
    ]
    assert code == 0
    assert status["state"] == "closed"
    assert "broker_unreachable" in _all_logs(home) or not ledger_rows(home)
    orders_after = [cid for cid, _ in _sim_orders(home) if "-mid-" in cid or "-close-" in cid]
    assert orders_after == []


def test_cron_triggers_fire_at_configured_exchange_times_on_trading_days() -> None:
    from helpers import make_settings

    s = make_settings(START_TIME_MID="10:45", TRADING_DAYS="mon,wed,fri")
    # 2011-03-13 is the DST change: 10:45 New York is 15:45Z before it and 14:45Z after it
    fires = next_fire_times(s, "mid", datetime(2011, 3, 4, 16, 0, tzinfo=UTC), 4)
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2011, 3, 7, 15, 45, tzinfo=UTC),
        datetime(2011, 3, 9, 15, 45, tzinfo=UTC),
        datetime(2011, 3, 11, 15, 45, tzinfo=UTC),
        datetime(2011, 3, 14, 14, 45, tzinfo=UTC),
    ]
    utc = make_settings(
        START_TIME_MID="15:45", WINDOW_TIMEZONE="UTC", TRADING_DAYS="mon", STRATEGY_SEQUENCE="mid"
    )
    assert next_fire_times(utc, "mid", datetime(2011, 3, 11, tzinfo=UTC), 1)[0].astimezone(UTC) == datetime(
        2011, 3, 14, 15, 45, tzinfo=UTC
    )


def test_morning_plan_logs_exchange_and_utc_times_across_dst() -> None:
    from helpers import make_settings

    from tbot_bot.runtime.schedule import morning_plan

    s = make_settings()
    assert morning_plan(s, date(2011, 3, 11))[0] == "open: 09:30 America/New_York = 14:30 UTC"
    assert morning_plan(s, date(2011, 3, 14))[0] == "open: 09:30 America/New_York = 13:30 UTC"


def test_sigterm_equivalent_stop_before_start_closes_cleanly(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path)
    sup = Supervisor(home, replay_day=DEMO_DAY)
    timer = threading.Timer(0, lambda: setattr(sup, "_stop_signal", True))
    timer.start()
    timer.join()
    assert sup.run() == 0
    assert _status(home)["state"] == "closed"


def test_trade_confirmation_required_waits_for_tbot_confirm_and_expires(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path, TRADE_CONFIRMATION_REQUIRED="true")
    from tbot_bot.runtime.control import write_confirmation

    # client order ids are deterministic, so the operator's confirmation of the mid entry can be given up front;
    # every other entry waits for a confirmation that never comes and expires with its breakout window
    write_confirmation(home, "TB01-20110125-mid-SH-1", "test")
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    orders = {cid for cid, _ in _sim_orders(home)}
    assert orders == {"TB01-20110125-mid-SH-1", "TB01-20110125-mid-SH-2"}
    from tbot_bot.runtime.order_journal import OrderJournal

    j = OrderJournal(home.state_dir / "journal.db")
    try:
        expired = [i for i in j.intents(DEMO_DAY.isoformat()) if i.status.value == "abandoned"]
    finally:
        j.close()
    assert expired and all(i.note == "confirmation window expired" for i in expired)
    # an expired entry never traded: it uses no slot or cap of its window (status showed "500.00 used / 0.00 left
    # (1/4 entries)" beside "entered 0")
    windows = _status(home)["money"]["windows"]
    entered = {w: sum(1 for i in _journal_entries(home) if i.strategy == w and i.filled_qty) for w in windows}
    assert all(windows[w]["trades"] == entered[w] for w in windows), (windows, entered)
    assert windows["open"]["trades"] == 0 and windows["open"]["cap_used"] == "0.00"


class _PauseThenConfirm:
    """At 15:48 replay time (an entry of MID waits for its confirmation) the operator pauses entries, and the
    confirmation, already on its way, arrives after the pause."""

    def __init__(self, inner, home: BotHome) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._home, self.done = inner, home, False
        self.name, self.capabilities = inner.name, inner.capabilities

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        return getattr(self._inner, item)

    def get_bars(self, *a, **k):  # type: ignore[no-untyped-def]
        from tbot_bot.runtime.control import request_pause, write_confirmation

        if not self.done and self._inner._clock.now() >= datetime(2011, 1, 25, 15, 48, tzinfo=UTC):
            self.done = True
            request_pause(self._home, "operator")
            for i in _journal_entries(self._home):
                if i.status.value == "awaiting_confirmation":
                    write_confirmation(self._home, i.client_order_id, "operator")
        return self._inner.get_bars(*a, **k)


def test_an_entry_confirmed_after_a_pause_is_never_sent(tmp_path: Path) -> None:
    """The pending loop sent a confirmed entry without asking the risk gate: a full-size entry opened while the
    operator had paused entries (or a reconciliation block had halted the day)."""
    home = _fresh_home(tmp_path, TRADE_CONFIRMATION_REQUIRED="true")
    hook: list[_PauseThenConfirm] = []
    sup = Supervisor(
        home, replay_day=DEMO_DAY, broker_wrapper=lambda b: hook.append(_PauseThenConfirm(b, home)) or hook[0]
    )
    assert sup.run() == 0 and hook[0].done
    assert _sim_orders(home) == []
    held = [i for i in _journal_entries(home) if i.strategy == "mid"]
    assert held and all(i.status.value == "abandoned" for i in held)
    notes = [i.note or "" for i in held]
    assert any(n.startswith("not sent: entries paused:") and n.endswith("operator") for n in notes), notes
    assert _status(home)["money"]["windows"]["mid"]["cap_used"] == "0.00"


def _journal_entries(home: BotHome):  # type: ignore[no-untyped-def]
    from tbot_bot.runtime.order_journal import OrderJournal

    j = OrderJournal(home.state_dir / "journal.db")
    try:
        return [i for i in j.intents(DEMO_DAY.isoformat()) if i.purpose == "entry"]
    finally:
        j.close()


class _NoMarketData(_FailingBroker):
    """Market data fails from `fail_from` on; orders still work."""

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        target = getattr(self._inner, item)
        if item not in ("get_bars", "get_snapshots", "get_latest_quote"):
            return target

        def call(*a, **k):  # type: ignore[no-untyped-def]
            if self._inner._clock.now() >= self._fail_from:
                from tbot_bot.errors import MarketDataError

                raise MarketDataError("market data feed down (injected)")
            return target(*a, **k)

        return call


def test_market_data_failure_is_a_full_shutdown(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path, API_RETRY_LIMIT="0")
    outage = datetime.combine(DEMO_DAY, datetime.min.time(), tzinfo=UTC).replace(hour=15, minute=40)
    sup = Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _NoMarketData(b, outage))
    assert sup.run() == 1
    assert _status(home)["state"] == "shutdown"
    assert "market data feed down" in _all_logs(home)
    # the broker's data failed: status says the broker is not healthy (it said healthy beside the shutdown)
    assert _status(home)["broker"]["healthy"] is False


def test_tbot_status_prints_the_status_for_a_person(tmp_path: Path) -> None:
    import subprocess
    import sys

    home = _fresh_home(tmp_path)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    r = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "status", "--home", str(home.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    assert "state      closed" in r.stdout and "REPLAY of 2011-01-25" in r.stdout
    assert re.search(r"open\s+done\s+09:30 EST / 14:30Z", r.stdout)  # the windows table


class _LateFills:
    """Live brokers report fills a moment after the minute; the sim fills exactly on it. Shift fill times +0.7 s."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self._inner = inner
        self.name, self.capabilities = inner.name, inner.capabilities

    def _late(self, order):  # type: ignore[no-untyped-def]
        from dataclasses import replace
        from datetime import timedelta

        if order is None or order.filled_at is None:
            return order
        return replace(order, filled_at=order.filled_at + timedelta(milliseconds=700))

    def submit_order(self, request):  # type: ignore[no-untyped-def]
        return self._late(self._inner.submit_order(request))

    def get_order_by_client_id(self, cid):  # type: ignore[no-untyped-def]
        return self._late(self._inner.get_order_by_client_id(cid))

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        return getattr(self._inner, item)


def test_regression_live_fill_a_moment_after_the_minute_still_times_out_in_its_window(tmp_path: Path) -> None:
    home = _fresh_home(tmp_path)
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=_LateFills).run() == 0
    from tbot_bot.runtime.order_journal import OrderJournal

    j = OrderJournal(home.state_dir / "journal.db")
    try:
        intents = j.intents(DEMO_DAY.isoformat())
    finally:
        j.close()
    exits = [i for i in intents if i.purpose == "exit"]
    assert exits and all(i.exit_reason != "end_of_day" for i in exits)
    assert all(
        i.exit_reason
        in ("timeout", "trailing_stop", "stop_loss", "vwap_touch", "session_close", "window_end")
        for i in exits
    )
    assert _status(home)["positions"] == []


def test_regression_partial_fills_never_oversell_or_leave_shares_behind(tmp_path: Path) -> None:
    from decimal import Decimal

    home = _fresh_home(tmp_path)

    def half_fills(sim):  # type: ignore[no-untyped-def]
        sim.partial_fill_fraction = Decimal("0.5")  # each order fills half on its bar, the rest on the next
        return sim

    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=half_fills).run() == 0
    from tbot_bot.runtime.order_journal import OrderJournal

    j = OrderJournal(home.state_dir / "journal.db")
    try:
        intents = j.intents(DEMO_DAY.isoformat())
    finally:
        j.close()
    entries = [i for i in intents if i.purpose == "entry" and i.filled_qty]
    assert entries
    for e in entries:
        sold = sum(
            (x.filled_qty or Decimal(0)) for x in intents if x.entry_client_order_id == e.client_order_id
        )
        assert sold == e.filled_qty, (e.client_order_id, e.filled_qty, sold)
    assert check_outputs(home, DEMO_DAY) == []


def test_regression_status_counts_and_pnl_do_not_carry_into_the_next_day() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from tbot_bot.domain.clock import ReplayClock
    from tbot_bot.runtime.status_bot import StatusBoard

    board = StatusBoard(Path("/dev/null"), ReplayClock(datetime(2011, 1, 25, tzinfo=UTC)), "v1.0.0", {})
    board.counts["open"]["entered"] = 3
    board.realized_pnl_by_strategy["open"] = Decimal("5")
    board.kill_switch = {"tripped": True, "reason": "x"}
    board.start_day("2011-01-26")
    assert board.counts["open"]["entered"] == 0 and board.realized_pnl_by_strategy == {}
    assert board.kill_switch["tripped"] is False and board.session_date == "2011-01-26"


@contextlib.contextmanager
def _restarted(
    tmp_path: Path, windows: dict[str, tuple[str, str | None]]
) -> Iterator[tuple[Supervisor, Any]]:
    """A home whose journal holds `windows` (name -> (status, actual start)) for DEMO_DAY, booted again as a
    restart finds it; yields the supervisor and the day's context."""
    from tbot_bot.runtime.boot import boot
    from tbot_bot.runtime.order_journal import OrderJournal

    home = _fresh_home(tmp_path)
    j = OrderJournal(home.state_dir / "journal.db")
    for name, (status, began) in windows.items():
        j.set_window(DEMO_DAY.isoformat(), name, status, actual_start=began)
    j.close()
    sup = Supervisor(home, replay_day=DEMO_DAY)
    r = boot(
        home, replay_day=DEMO_DAY, speed=None, data_source=None, broker=None, broker_wrapper=None,
        stop=sup.stop_requested,
    )  # fmt: skip
    try:
        yield sup, sup._start_live_day(r, ("open", "mid", "close"))
    finally:
        r.close()


def test_live_restart_resumes_a_window_that_was_running(tmp_path: Path) -> None:
    with _restarted(tmp_path, {"open": ("done", None), "mid": ("running", None)}) as (sup, ctx):
        assert ctx.session_date == DEMO_DAY
        assert sup._windows_to_resume(ctx, ("open", "mid", "close")) == ["mid"]
        assert _status(ctx.home)["session_date"] == DEMO_DAY.isoformat()


def test_a_restart_after_the_last_window_but_before_the_booking_finishes_the_day(tmp_path: Path) -> None:
    """Killed after the day's last window was marked done, before the end of the session: the restart has no
    window to run again, and used to leave the day unbooked (no end-of-day flatten, no booking, no sync)."""
    every = {name: ("done", None) for name in ("open", "mid", "close")}
    with _restarted(tmp_path, every) as (sup, ctx):
        assert ctx.journal.day_booked(DEMO_DAY.isoformat()) is None
        assert sup._resume_day(ctx, ("open", "mid", "close")) == []
        assert ctx.journal.day_booked(DEMO_DAY.isoformat()) is not None
        assert _status(ctx.home)["message"] == "session complete"
        # a day already booked is not finished twice
        booked = ctx.journal.day_booked(DEMO_DAY.isoformat())
        assert sup._resume_day(ctx, ("open", "mid", "close")) == []
        assert ctx.journal.day_booked(DEMO_DAY.isoformat()) == booked


def test_a_window_that_ran_before_a_halt_is_shown_ended_not_skipped(tmp_path: Path) -> None:
    """MID was monitoring when the supervisor died; a flatten meanwhile halted the day. The restart ran nothing
    more, and showed MID "skipped" with its real start and no end."""
    from tbot_bot.runtime.window_runner import WindowRunner

    began = datetime(2011, 1, 25, 15, 30, tzinfo=UTC).isoformat()
    with _restarted(tmp_path, {"open": ("done", None), "mid": ("running", began)}) as (_, ctx):
        ctx.halted_reason = "flatten requested by cli:op"
        outcome = WindowRunner(ctx, "mid").run()
        row = ctx.journal.window(ctx.day_key, "mid")
        assert outcome.status == "halted" and row["status"] == "halted"
        assert row["actual_start"] == began and row["actual_end"]
        (shown,) = [w for w in ctx.status.windows if w["strategy"] == "mid"]
        assert shown["status"] == "halted" and shown["actual_start"] == began and shown["actual_end"]
        # a window that never began is halted too, never begun: status says what the journal says (it showed
        # "skipped" until a restart read the journal's "halted": a live operator's review)
        assert WindowRunner(ctx, "close").run().status == "halted"
        (close,) = [w for w in ctx.status.windows if w["strategy"] == "close"]
        assert close["status"] == "halted" and not close.get("actual_start")
        assert ctx.journal.window(ctx.day_key, "close")["status"] == "halted"


def test_the_run_lock_is_held_while_the_boot_checks_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decrypting and checking take seconds on a small machine: a `tbot stop` then said "no supervisor is running",
    and the supervisor came up trading. The lock is taken first, so the stop (or a second start) finds it."""
    from tbot_bot.runtime import boot as boot_module
    from tbot_bot.runtime.control import running_supervisor

    home = _fresh_home(tmp_path)
    seen: list[Any] = []
    real = boot_module.preflight

    def watching(h: BotHome, **kwargs: Any) -> Any:
        seen.append(running_supervisor(h))
        return real(h, **kwargs)

    monkeypatch.setattr(boot_module, "preflight", watching)
    r = boot_module.boot(
        home,
        replay_day=DEMO_DAY,
        speed=None,
        data_source=None,
        broker=None,
        broker_wrapper=None,
        dry_run=True,
    )
    r.close()
    assert seen and seen[0] is not None and seen[0]["pid"] == __import__("os").getpid()
    assert running_supervisor(home) is None  # released with the rest


def test_a_replay_reads_the_fundamentals_of_its_data_source(tmp_path: Path) -> None:
    """A backtest of --data-source X reads X/fundamentals.json; the replay of the same source read the bundled
    file, so the two screened with different inputs."""
    from tbot_bot.runtime.boot import boot
    from tbot_bot.support.path_resolver import package_file

    home = _fresh_home(tmp_path)
    source = tmp_path / "data"
    source.mkdir()
    for f in package_file("data", "sample").iterdir():
        if f.is_file() and f.suffix in (".gz", ".csv", ".json"):
            (source / f.name).write_bytes(f.read_bytes())
    r = boot(
        home,
        replay_day=DEMO_DAY,
        speed=None,
        data_source=source,
        broker=None,
        broker_wrapper=None,
        dry_run=True,
    )
    try:
        assert r.fundamentals is not None and r.fundamentals.path == source / "fundamentals.json"  # type: ignore[attr-defined]
    finally:
        r.close()


def next_fire_times(settings: Any, strategy: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` times the live scheduler would start `strategy`'s window (its own cron trigger)."""
    from tbot_bot.runtime.schedule import cron_trigger

    trigger = cron_trigger(settings, strategy)
    out: list[datetime] = []
    prev: datetime | None = None
    now = after
    for _ in range(count):
        nxt = trigger.get_next_fire_time(prev, now)
        if nxt is None:
            break
        out.append(nxt)
        prev, now = nxt, nxt + timedelta(seconds=1)
    return out
