"""The live supervisor on an early close (Friday 2026-11-27, 13:00 EST = 18:00Z): CLOSE does not fit, and its cron
fires after the close. What a window leaves behind (an entry still working, an exit the broker refused) is dealt
with while the market is open, and the day ends with its last window that runs, not at that cron (a review found
such positions held over the weekend, with no stop and no alert before the close)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange, PartialPlan
from fakes.alpaca_market import asset, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from fakes.cboe_server import CSV, FakeCboeServer, cboe_csv
from test_live_inputs import InjectedClock, provision

from tbot_bot.broker.broker_api import OrderSide
from tbot_bot.config.env_bot import ShortType
from tbot_bot.domain.intents import Intent, IntentStatus, client_order_id
from tbot_bot.domain.vocab import PositionSide, Purpose
from tbot_bot.errors import BrokerError
from tbot_bot.runtime.boot import boot
from tbot_bot.runtime.main import Supervisor

OPEN_AT = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)  # 09:30 EST on the day after Thanksgiving
PLAN = ("open", "mid", "close")


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 11, 27, hh, mm, tzinfo=UTC)


@pytest.fixture()
def day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    clock = InjectedClock(OPEN_AT)
    prices = {"AAPL": 190.0, "SH": 14.0}
    bars = pd.concat(
        [
            synthetic_bars(prices, datetime(2026, 11, 25, 14, 30, tzinfo=UTC), 390, seed=1),
            synthetic_bars(prices, OPEN_AT, 210, seed=2),
            # MSFT: no session before the boot's day (left out by its warm-up), bars from the early close on
            synthetic_bars({"MSFT": 420.0}, OPEN_AT, 210, seed=3),
        ],
        ignore_index=True,
    )
    ex = FakeAlpacaExchange(bars=bars, now=clock.now, prices={"AAPL": "190", "SH": "14", "MSFT": "420"})
    ex.set_assets([asset("AAPL", "NYSE"), asset("SH", "ARCA"), asset("MSFT", "NASDAQ")])
    with FakeCboeServer() as cboe, FakeAlpacaServer(ex) as server:
        cboe.files["/v.csv"] = (200, CSV, cboe_csv([(date(2026, 11, 24), 22.0), (date(2026, 11, 25), 30.0)]))
        home = provision(tmp_path / "home", server, cboe.url("/v.csv"), monkeypatch)
        home.universe_file.parent.mkdir(parents=True, exist_ok=True)
        home.universe_file.write_text("AAPL\nSH\nMSFT\n")
        broker = broker_for(server)
        sup = Supervisor(home, clock=clock)
        r = boot(home, replay_day=None, speed=None, data_source=None, broker=broker, broker_wrapper=None,
                 stop=sup.stop_requested, live_clock=clock)  # fmt: skip
        try:
            ctx = sup._start_live_day(r, PLAN)
            yield {"clock": clock, "ex": ex, "broker": broker, "sup": sup, "r": r, "ctx": ctx, "home": home}
        finally:
            r.close()


def _entry(d: dict[str, Any]) -> Intent:
    """An OPEN entry decided in the breakout (09:51 EST), journaled and sent."""
    ctx, clock = d["ctx"], d["clock"]
    clock._now = at(14, 51)
    entry = Intent(
        client_order_id=client_order_id(ctx.bot_id, ctx.day_key, "open", "AAPL", 1),
        session_date=ctx.day_key, strategy="open", purpose=Purpose.ENTRY, symbol="AAPL", signal_ticker="AAPL",
        direction=PositionSide.LONG, order_side=OrderSide.BUY, instrument="equity", qty=Decimal("2"),
        notional=Decimal("380"), status=IntentStatus.INTENT, created_at=clock.now().isoformat(),
        signal_time=(clock.now() - timedelta(minutes=1)).isoformat(),
    )  # fmt: skip
    ctx.journal.record_intents([entry])
    ctx.orders.place(entry)
    clock._now = OPEN_AT
    return entry


def test_an_entry_still_working_when_its_window_ends_is_cancelled(day: dict[str, Any]) -> None:
    """IBKR keeps an unfilled market order working (a halted symbol); it filled after OPEN had ended, no window
    managed it, and on an early close it was held over the weekend."""
    ex, sup, r, clock = day["ex"], day["sup"], day["r"], day["clock"]
    day["broker"].track_order = lambda cid, order=None: order  # the order stays working, as IBKR's does
    ex.partial_plans.append(PartialPlan(steps=[Decimal(0)], stall=True))
    entry = _entry(day)
    ctx = sup._run_due_window(r, day["ctx"], PLAN, "open")
    order = ex.orders[ex.by_client_id[entry.client_order_id]]
    assert order.status == "canceled" and order.filled_qty == 0
    assert ctx.journal.get(entry.client_order_id).status is IntentStatus.CANCELED
    assert "AAPL" not in ex.positions
    assert clock.now() < at(18, 0)


def test_an_exit_refused_at_its_windows_end_is_retried_and_the_day_ends_before_the_close(
    day: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    ex, sup, r, clock, broker = day["ex"], day["sup"], day["r"], day["clock"], day["broker"]
    real_submit = broker.submit_order
    refused: list[str] = []

    def submit(req: Any) -> Any:
        # AAPL halted from 10:20 to 10:45 EST: sells refused
        if req.symbol == "AAPL" and str(req.side).endswith("sell") and at(15, 20) <= clock.now() < at(15, 45):
            refused.append(f"{clock.now():%H:%M}")
            raise BrokerError("403 order refused: AAPL halted", code="40310000")
        return real_submit(req)

    broker.submit_order = submit
    _entry(day)
    ctx = sup._run_due_window(r, day["ctx"], PLAN, "open")
    assert refused and ex.positions.get("AAPL")  # the window-end exit was refused
    booked: list[datetime] = []
    real_book = ctx.book_day
    ctx.book_day = lambda: (booked.append(clock.now()), real_book())[1]
    with caplog.at_level(logging.WARNING, logger="tbot_bot.trading.notifier_bot"):
        for minute in (32, 33, 34):
            clock._now = at(15, minute)
            sup._close_left_behind(ctx)  # between windows, as the live loop does each poll
    assert "held_after_window" in caplog.text and "AAPL" in caplog.text and ex.positions.get("AAPL")
    assert caplog.text.count("held_after_window") == 1 and booked == []  # alerted once; nothing to book
    clock._now = at(15, 46)  # the halt lifted: the next look sends the exit, and it is booked
    sup._close_left_behind(ctx)
    assert not ex.positions.get("AAPL") and booked == [at(15, 46)]
    # status (and the dashboard) no longer show it held (they did until the next window's first minute)
    shown = json.loads(day["home"].status_json.read_text())["positions"]
    assert [p for p in shown if "AAPL" in json.dumps(p)] == []
    trips = ctx.trips()
    assert [(t.exit.symbol, t.exit.exit_reason) for t in trips] == [("AAPL", "recovered_after_window")]
    # MID is the last window that fits the early close: the day ends with it, not at CLOSE's 14:30 EST cron
    ctx = sup._run_due_window(r, ctx, PLAN, "mid")
    booked = ctx.journal.day_booked(ctx.day_key)
    assert booked is not None and datetime.fromisoformat(booked) < at(18, 0)


def test_a_process_up_for_days_wires_each_with_one_blocklist(day: dict[str, Any]) -> None:
    """Each wired day opened a blocklist connection closed only at exit: a stopped supervisor retrying a flatten
    each poll while the broker was down ran out of file descriptors in minutes (a long-run review)."""
    import os

    from tbot_bot.runtime.wiring import wire_day

    r = day["r"]
    closers, fds = len(r.closers), len(os.listdir("/proc/self/fd"))
    contexts = [wire_day(r, date(2026, 11, 27)) for _ in range(5)]
    assert len({id(c.blocklist) for c in contexts}) == 1
    assert len(r.closers) == closers and len(os.listdir("/proc/self/fd")) == fds


def test_each_new_session_judges_the_whole_listed_universe_again(day: dict[str, Any]) -> None:
    """The boot's warm-up left out MSFT (no session before the boot's day); later sessions warmed up only what the
    boot kept, so MSFT was never traded until a restart."""
    r, sup, clock = day["r"], day["sup"], day["clock"]
    assert "MSFT" not in r.tradable and "MSFT" in (r.listed or [])
    clock._now = datetime(
        2026, 11, 30, 13, 0, tzinfo=UTC
    )  # Monday, 08:00 New York: its previous session is Friday
    sup._rewarm(r, date(2026, 11, 30))
    assert "MSFT" in r.tradable and "MSFT" in r.universe and r.warmup.session == date(2026, 11, 27)


def test_the_puts_volatility_comes_from_the_closes_fetched_at_the_days_start(day: dict[str, Any]) -> None:
    """The day was wired before its VIX closes were fetched: puts were priced with the close of two sessions back
    (on a new home, the 25% default) every day."""
    assert day["ctx"].option_volatility == pytest.approx(
        0.30
    )  # the close of Wednesday 11-25, the session before


def test_a_day_without_close_fetches_the_vix_when_puts_are_bought(day: dict[str, Any]) -> None:
    """The VIX was fetched only for CLOSE's gate: a plan without CLOSE whose bearish signals buy puts priced them
    with the boot's cache (weeks old in a long run, the 25% default on a new home)."""
    r, sup = day["r"], day["sup"]
    r.settings = r.settings.model_copy(update={"SHORT_TYPE_OPEN": ShortType.LONG_PUT})
    for cached in r.home.cache_dir.glob("vix*.csv"):
        cached.unlink()
    r.vix_closes = {}
    ctx = sup._start_live_day(r, ("open", "mid"))
    assert ctx.option_volatility == pytest.approx(0.30)


def test_a_nearly_full_disk_is_alerted_once_a_session(
    day: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk stops the bot at its next write (journal, ledger), possibly with positions open: the operator
    hears of it weeks before, at each session's start (once, restarts included)."""
    import shutil

    from tbot_bot.support import machine_faults

    r, sup = day["r"], day["sup"]
    real = shutil.disk_usage
    total = 25 * 2**30
    monkeypatch.setattr(
        machine_faults.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(total, total - 2**29, 2**29)
    )
    with caplog.at_level("INFO"):
        sup._start_live_day(r, PLAN)
        sup._start_live_day(r, PLAN)  # a restart the same session
    assert caplog.text.count("disk_low") == 1 and "0.50 GiB free of 25.0 GiB" in caplog.text
    monkeypatch.setattr(machine_faults.shutil, "disk_usage", real)
    assert machine_faults.disk_space_warning(r.home.root) is None  # this machine's disk has room
