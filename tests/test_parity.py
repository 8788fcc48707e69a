"""Parity (DESIGN §7): each strategy run bar by bar through the LiveEvaluator and the simulated exchange
(tbot_bot.broker.brokers.sim, driven by a ReplayClock) gives exactly the trades of the vectorised
simulate() on the same data: tickers, sides, entry/exit times and prices, exit reasons."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_settings
from strategy_bars import comparable

from tbot_bot.backtest.load_historical_data import load_bars, load_vix
from tbot_bot.broker.broker_api import OrderRequest
from tbot_bot.broker.brokers.sim import SimBroker
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix
from tbot_bot.strategy.decisions import OpenPosition
from tbot_bot.strategy.strategy_router import strategy_module
from tbot_bot.support.path_resolver import package_file

SAMPLE = package_file("data", "sample")
SYMBOLS = ["SPY"] + [f"SYN{i}" for i in range(1, 9)]
DAYS = [date(2011, 1, 10), date(2011, 3, 16)]  # the demo day, and a day after the DST change (every
# sample day is covered without the sim broker in test_replay_results.py)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    frame = load_bars(SAMPLE, start=DAYS[0], end=DAYS[-1], symbols=SYMBOLS)
    return frame[frame["timestamp"].dt.date.isin(DAYS)].reset_index(drop=True)


def live_through_sim(
    strategy_name: str, day: date, frame: pd.DataFrame, vix: float | None, db: Path
) -> pd.DataFrame:
    strategy = strategy_module(strategy_name)
    ev = strategy.live_for(day, make_settings(), vix_at_start=vix)
    w = ev.window
    assert w.session_open is not None and w.session_close is not None
    clock = ReplayClock(w.start)
    broker = SimBroker(db, clock=clock, bars=frame)
    positions: dict[str, OpenPosition] = {}
    entries: dict[str, dict[str, object]] = {}
    rows = []
    traded: set[str] = set()
    seq = 0

    def submit(symbol: str, side: OrderSide) -> tuple[pd.Timestamp, float]:
        nonlocal seq
        seq += 1
        order = broker.submit_order(OrderRequest(f"parity-{strategy_name}-{seq}", symbol, side, Decimal(1)))
        assert order.fills, f"order for {symbol} did not fill at {clock.now()}"
        return pd.Timestamp(order.fills[0].timestamp), float(order.fills[0].price)

    now = w.start + timedelta(minutes=1)
    try:
        while now <= w.session_close:
            clock.advance_to(now)
            bars = broker.get_bars(sorted(frame["symbol"].unique()), w.session_open, now)
            decisions = ev.evaluate(now, bars, list(positions.values()))
            for x in decisions.exits:
                pos = positions.pop(x.symbol)
                t, px = submit(x.symbol, OrderSide.SELL if pos.direction.sign > 0 else OrderSide.BUY)
                rows.append(
                    {**entries.pop(x.symbol), "exit_time": t, "exit_price": px, "exit_reason": x.reason.value}
                )
            for e in decisions.entries:
                if e.symbol in traded:
                    continue
                traded.add(e.symbol)
                # the order goes to the signal ticker itself (bearish = short sale) so prices compare 1:1
                t, px = submit(e.symbol, OrderSide.BUY if e.direction.sign > 0 else OrderSide.SELL)
                positions[e.symbol] = OpenPosition(e.symbol, e.direction, t.to_pydatetime())
                entries[e.symbol] = {
                    "symbol": e.symbol, "direction": e.direction.value, "signal_time": pd.Timestamp(e.signal_time),
                    "entry_time": t, "entry_price": px,
                }  # fmt: skip
            if not positions and now > w.breakout_end:
                break
            now += timedelta(minutes=1)
    finally:
        broker.close()
    assert not positions, "a position outlived the session"
    return pd.DataFrame(rows)


@pytest.mark.parametrize("strategy_name", ["open", "mid", "close"])
@pytest.mark.parametrize("day", DAYS)
def test_live_through_sim_equals_simulate(
    strategy_name: str, day: date, sample: pd.DataFrame, tmp_path: Path
) -> None:
    frame = sample[sample["timestamp"].dt.date == day].reset_index(drop=True)
    vix = previous_close_vix(load_vix(SAMPLE / "vix.csv"), day)
    strategy = strategy_module(strategy_name)
    expected = strategy.simulate(
        frame, strategy.params_from_settings(make_settings()), vix={day: vix} if vix else None
    )
    live = live_through_sim(strategy_name, day, frame, vix, tmp_path / "sim.db")
    assert len(expected) > 0, "the sample day should trade"
    assert comparable(live) == comparable(expected)


def test_pre_and_post_market_bars_change_nothing_in_a_backtest_or_a_replay(tmp_path: Path) -> None:
    """Bars outside the regular session (`tbot data fetch` keeps whole UTC days) were taken for the day's open
    and counted in the previous session's volume: a 19:00 EST bar 12% up made every entry of the day fail the
    gap screen, in the backtest and in the replay alike (a calendar review). Only regular-session bars count."""
    import shutil

    from integration_test_runner import provision_demo_home
    from replay_parity import backtested_by_day, replayed_by_day

    from tbot_bot.backtest.backtest_engine import backtest_float, run_backtest
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.runtime.main import Supervisor

    day = date(2011, 1, 25)
    bars = load_bars(SAMPLE, start=date(2011, 1, 24), end=day)
    last = bars[bars["timestamp"].dt.date == date(2011, 1, 24)].groupby("symbol").tail(1)
    extra = []
    for start in (pd.Timestamp("2011-01-25T00:00Z"), pd.Timestamp("2011-01-25T13:00Z")):  # 19:00 / 08:00 EST
        for minute in range(30):
            e = last.copy()
            e["timestamp"] = start + pd.Timedelta(minutes=minute)
            for col in ("open", "high", "low", "close"):
                e[col] = e["close"] * 1.12
            extra.append(e)
    data = tmp_path / "data"
    data.mkdir()
    whole = pd.concat([bars, *extra]).sort_values(["timestamp", "symbol"])
    whole.to_csv(data / "bars.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    for name in ("vix.csv", "fundamentals.json"):
        shutil.copy(SAMPLE / name, data / name)
    home = provision_demo_home(tmp_path / "home")
    settings, float_ = load_settings(home), backtest_float(None, home)
    plain = run_backtest(
        settings, "all", SAMPLE, day, day, tmp_path / "a", broker_current_float=float_, plots=False
    )
    extended = run_backtest(
        settings, "all", data, day, day, tmp_path / "b", broker_current_float=float_, plots=False
    )
    expected = backtested_by_day(plain.trades)[day]
    assert len(expected) >= 2 and backtested_by_day(extended.trades)[day] == expected
    # from a bar store of the same files: its partitions holding those bars are masked as they are read
    from tbot_bot.data.bar_import import import_bars

    import_bars(data, tmp_path / "store")
    stored = run_backtest(settings, "all", tmp_path / "store", day, day, tmp_path / "c", broker_current_float=float_, plots=False)  # fmt: skip
    assert backtested_by_day(stored.trades)[day] == expected
    assert Supervisor(home, replay_day=day, data_source=data).run() == 0
    assert replayed_by_day(home)[day] == expected


def test_a_bar_outside_the_calendar_is_no_session_and_fails_nothing(tmp_path: Path) -> None:
    """A long history (or a mistyped year) reaching before the exchange calendar's first session made every
    regular-session read fail with "outside the XNYS calendar", naming a date nobody asked for (a diff review)."""
    rows = ["timestamp,symbol,open,high,low,close,volume", "2004-06-01T14:30:00Z,SPY,1,1,1,1,100"]
    rows += [
        f"2024-06-0{d}T{h}:00:00Z,SPY,2,2,2,2,100" for d in (3, 4) for h in ("12", "14")
    ]  # 08:00/10:00 EDT
    (tmp_path / "bars.csv").write_text("\n".join(rows) + "\n")
    ranged = load_bars(tmp_path, start=date(2024, 6, 3), end=date(2024, 6, 4), regular_session="XNYS")
    assert [str(t) for t in ranged["timestamp"]] == ["2024-06-03 14:00:00+00:00", "2024-06-04 14:00:00+00:00"]
    whole = load_bars(tmp_path, regular_session="XNYS")  # the 2004 bar: no session the calendar knows
    assert len(whole) == 2
