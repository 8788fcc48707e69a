"""Sim exchange: next-bar-open fills (with and without slippage), idempotency, persistence across a restart,
reject and partial-fill switches, fees, shorts, puts, and no look-ahead in market data."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_settings

from tbot_bot.backtest.slippage import SlippageModel
from tbot_bot.broker.broker_api import AssetClass, OptionContract, OrderRequest, OrderStatus, OrderType
from tbot_bot.broker.brokers.sim import SimBroker
from tbot_bot.broker.factory import build_broker
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import BrokerError, MarketDataError
from tbot_bot.support.path_resolver import BotHome

D = Decimal
DAY1 = datetime(2011, 1, 3, 14, 30, tzinfo=UTC)
DAY2 = datetime(2011, 1, 4, 14, 30, tzinfo=UTC)


def make_bars() -> pd.DataFrame:
    """AAA: day 1 ten bars, day 2 thirty bars; open = 100 + minute index, close = open + 0.5."""
    rows = []
    for day, n in ((DAY1, 10), (DAY2, 30)):
        for i in range(n):
            for sym, base in (("AAA", 100.0), ("BBB", 20.0)):
                o = base + i
                rows.append((day + timedelta(minutes=i), sym, o, o + 1, o - 1, o + 0.5, 1000.0 * (i + 1)))
    frame = pd.DataFrame(rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


BARS = make_bars()


def at(minute: int, second: int = 0) -> datetime:
    return DAY2 + timedelta(minutes=minute, seconds=second)


def broker(tmp_path: Path, clock: ReplayClock, **kw: object) -> SimBroker:
    return SimBroker(tmp_path / "sim.db", clock=clock, bars=BARS, starting_cash=D(100_000), **kw)  # type: ignore[arg-type]


def buy(cid: str, qty: str = "10", symbol: str = "AAA") -> OrderRequest:
    return OrderRequest(cid, symbol, OrderSide.BUY, D(qty))


def test_market_order_fills_at_next_bar_open(tmp_path: Path) -> None:
    clock = ReplayClock(at(5, 30))
    b = broker(tmp_path, clock)
    order = b.submit_order(buy("c1"))
    assert order.status is OrderStatus.ACCEPTED and order.filled_qty == 0
    clock.advance_to(at(5, 59))
    assert b.get_order_by_client_id("c1").status is OrderStatus.ACCEPTED  # type: ignore[union-attr]
    clock.advance_to(at(8))
    filled = b.get_order_by_client_id("c1")
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert filled.filled_avg_price == D("106.0000")  # open of the 14:36 bar, not a later one
    assert filled.filled_at == at(6)
    assert [f.fill_id for f in filled.fills] == ["c1-F1"]
    (pos,) = b.get_positions()
    assert (pos.symbol, pos.qty, pos.avg_entry_price) == ("AAA", D(10), D("106.000000"))
    acct = b.get_account()
    assert acct.cash == D(100_000) - D(1060)
    assert acct.equity == D(100_000) - D(1060) + 10 * D("107.5")  # marked at the 14:37 close


def test_order_at_bar_start_fills_on_that_bar(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = broker(tmp_path, clock)
    assert b.submit_order(buy("c1")).filled_avg_price == D("105.0000")


def test_slippage_moves_price_against_the_trader(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = broker(tmp_path, clock, slippage=SlippageModel(kind="rule_based", mean_pct=0.15))
    assert b.submit_order(buy("c1")).filled_avg_price == D("105.1575")  # 105 * 1.0015
    assert b.submit_order(OrderRequest("c2", "AAA", OrderSide.SELL, D(10))).filled_avg_price == D("104.8425")


def test_randomized_slippage_is_reproducible(tmp_path: Path) -> None:
    prices = []
    for run in range(2):
        clock = ReplayClock(at(5))
        b = SimBroker(
            tmp_path / f"r{run}.db",
            clock=clock,
            bars=BARS,
            slippage=SlippageModel("randomized", 0.1, 0.05),
            seed=7,
        )
        prices.append(b.submit_order(buy("c1")).filled_avg_price)
    assert prices[0] == prices[1] and prices[0] != D("105.0000")


def test_same_client_order_id_twice_is_one_order(tmp_path: Path) -> None:
    clock = ReplayClock(at(5, 30))
    b = broker(tmp_path, clock)
    first = b.submit_order(buy("dup", "10"))
    second = b.submit_order(buy("dup", "99"))
    assert second.broker_order_id == first.broker_order_id and second.qty == D(10)
    clock.advance_to(at(7))
    assert b.submit_order(buy("dup", "10")).status is OrderStatus.FILLED
    assert len(b.list_orders()) == 1
    assert b.get_positions()[0].qty == D(10)


def test_state_survives_reopening_the_database(tmp_path: Path) -> None:
    clock = ReplayClock(at(5, 30))
    b = broker(tmp_path, clock)
    b.submit_order(buy("c1"))
    b.close()  # the process "dies" before the fill was matched
    clock.advance_to(at(9))
    again = SimBroker(
        tmp_path / "sim.db", clock=clock, bars=BARS, starting_cash=D(5)
    )  # starting cash ignored
    o = again.get_order_by_client_id("c1")
    assert o is not None and o.status is OrderStatus.FILLED and o.filled_avg_price == D("106.0000")
    assert again.submit_order(buy("c1")).broker_order_id == o.broker_order_id
    assert again.get_account().cash == D(100_000) - D(1060)
    assert len(again.list_orders()) == 1


_CHILD = """
import sys
from datetime import datetime
from decimal import Decimal
import pandas as pd
from tbot_bot.broker.broker_api import OrderRequest
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.broker.brokers.sim import SimBroker
from tbot_bot.domain.clock import ReplayClock
bars = pd.read_pickle(sys.argv[2])
b = SimBroker(__import__("pathlib").Path(sys.argv[1]), clock=ReplayClock(datetime.fromisoformat(sys.argv[3])), bars=bars)
o = b.submit_order(OrderRequest("c1", "AAA", OrderSide.BUY, Decimal("10")))
print(o.broker_order_id, o.status.value, len(b.list_orders()), b.get_account().cash)
"""


def test_restart_in_a_new_process_sees_the_same_state(tmp_path: Path) -> None:
    clock = ReplayClock(at(5, 30))
    b = broker(tmp_path, clock)
    submitted = b.submit_order(buy("c1"))
    b.close()
    BARS.to_pickle(tmp_path / "bars.pkl")
    args = [
        sys.executable,
        "-c",
        _CHILD,
        str(tmp_path / "sim.db"),
        str(tmp_path / "bars.pkl"),
        at(9).isoformat(),
    ]
    child = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    assert child == [submitted.broker_order_id, "filled", "1", "98940.0000"]


def test_reject_switch(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = broker(tmp_path, clock, reject_symbols={"BBB": "halted for news"})
    o = b.submit_order(buy("r1", symbol="BBB"))
    assert o.status is OrderStatus.REJECTED and o.reject_reason == "halted for news"
    assert b.submit_order(buy("r1", symbol="BBB")).status is OrderStatus.REJECTED  # idempotent
    assert b.get_positions() == []
    assert (
        b.submit_order(buy("r2", symbol="ZZZ")).reject_reason
        == "unknown symbol ZZZ: no bars in the replay data"
    )
    trail = OrderRequest("r3", "AAA", OrderSide.SELL, D(1), OrderType.TRAILING_STOP, D("2"))
    assert b.submit_order(trail).status is OrderStatus.REJECTED
    assert not b.capabilities.trailing_stop and b.capabilities.options and b.capabilities.short_sell


def test_insufficient_buying_power_is_rejected(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = SimBroker(tmp_path / "sim.db", clock=clock, bars=BARS, starting_cash=D(1000))
    o = b.submit_order(buy("big", "100"))
    assert o.status is OrderStatus.REJECTED and "buying power" in (o.reject_reason or "")


def test_partial_fill_switch_fills_rest_on_next_bar(tmp_path: Path) -> None:
    clock = ReplayClock(at(5, 30))
    b = broker(tmp_path, clock, partial_fill_fraction=D("0.3"))
    b.submit_order(buy("p1", "10"))
    clock.advance_to(at(6))
    part = b.get_order_by_client_id("p1")
    assert part is not None and part.status is OrderStatus.PARTIALLY_FILLED and part.filled_qty == D(3)
    clock.advance_to(at(7))
    done = b.get_order_by_client_id("p1")
    assert done is not None and done.status is OrderStatus.FILLED
    assert [(f.fill_id, f.qty, f.price) for f in done.fills] == [
        ("p1-F1", D(3), D("106.0000")),
        ("p1-F2", D(7), D("107.0000")),
    ]
    assert done.filled_avg_price == D("106.7000")


def test_fee_schedule(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = broker(tmp_path, clock, fee_per_share=D("0.005"), fee_per_order=D("1"))
    o = b.submit_order(buy("f1", "10"))
    assert o.fills[0].fee == D("1.050")
    assert b.get_account().cash == D(100_000) - D(1050) - D("1.05")


def test_short_sell_and_close_position(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = broker(tmp_path, clock)
    b.submit_order(OrderRequest("s1", "BBB", OrderSide.SELL, D(10)))
    (pos,) = b.get_positions()
    assert pos.qty == D(-10) and pos.avg_entry_price == D(25)
    clock.advance_to(at(8))
    close = b.close_position("BBB", "s1-exit")
    assert close is not None and close.side is OrderSide.BUY and close.filled_avg_price == D(28)
    assert b.get_positions() == []
    assert b.get_account().cash == D(100_000) - D(30)
    assert b.close_position("BBB", "s1-exit-again") is None


def test_long_put_priced_by_black_scholes(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    b = broker(tmp_path, clock)
    contract = OptionContract("AAA", date(2011, 1, 21), D(105), "P")
    quote = b.get_latest_quote(contract.occ_symbol)
    assert D(0) < quote.bid < quote.ask < D(10)
    o = b.submit_order(
        OrderRequest("o1", "AAA", OrderSide.BUY, D(2), asset_class=AssetClass.OPTION, option=contract)
    )
    assert o.status is OrderStatus.FILLED and o.symbol == "AAA110121P00105000"
    premium = o.filled_avg_price
    assert premium is not None and D(1) < premium < D(5)
    (pos,) = b.get_positions()
    assert pos.asset_class is AssetClass.OPTION and pos.qty == 2
    assert b.get_account().cash == D(100_000) - 2 * 100 * premium
    mixed = OrderRequest("o2", "AAA", OrderSide.BUY, D(1), option=contract)  # contract but asset_class equity
    assert b.submit_order(mixed).status is OrderStatus.REJECTED
    clock.advance_to(at(7))
    assert b.close_position(contract.occ_symbol, "o1-exit") is not None
    assert b.get_positions() == []


def test_cancel_before_fill(tmp_path: Path) -> None:
    clock = ReplayClock(at(5, 30))
    b = broker(tmp_path, clock)
    b.submit_order(buy("c1"))
    b.submit_order(buy("c2", symbol="BBB"))
    b.cancel_order("c1")
    assert b.cancel_all_orders() == 1
    clock.advance_to(at(9))
    assert {o.status for o in b.list_orders()} == {OrderStatus.CANCELED}
    assert b.get_positions() == []
    with pytest.raises(BrokerError):
        b.cancel_order("nope")


def test_get_bars_has_no_look_ahead(tmp_path: Path) -> None:
    clock = ReplayClock(at(10))
    b = broker(tmp_path, clock)
    bars = b.get_bars(["AAA", "ZZZ"], DAY2, DAY2 + timedelta(days=1))
    assert bars["ZZZ"] == []
    assert bars["AAA"][-1].timestamp == at(9) and len(bars["AAA"]) == 10
    clock.advance_to(at(10, 59))
    assert b.get_bars(["AAA"], DAY2, DAY2 + timedelta(days=1))["AAA"][-1].timestamp == at(9)
    assert len(b.get_bars(["AAA"], at(2), at(5))["AAA"]) == 3  # [start, end)


def test_quotes_and_snapshots_from_bars(tmp_path: Path) -> None:
    clock = ReplayClock(at(3))
    b = broker(tmp_path, clock, half_spread_pct=D("0.001"))
    q = b.get_latest_quote("AAA")  # last closed bar: 14:32, close 102.5
    assert (q.bid, q.ask, q.timestamp) == (D("102.3975"), D("102.6025"), at(3))
    snap = b.get_snapshots(["AAA", "ZZZ"])
    assert set(snap) == {"AAA"}
    s = snap["AAA"]
    assert s.today_open == D(100) and s.prev_close == D("109.5") and s.prev_volume == 55_000
    early = ReplayClock(DAY1)
    with pytest.raises(MarketDataError):
        SimBroker(tmp_path / "e.db", clock=early, bars=BARS).get_latest_quote("AAA")


def test_clock_from_sessions_in_data(tmp_path: Path) -> None:
    clock = ReplayClock(at(3))
    b = broker(tmp_path, clock)
    mc = b.get_clock()
    assert mc.is_open and mc.next_close == at(30) and mc.next_open is None
    clock.advance_to(at(31))
    assert not b.get_clock().is_open


def test_build_broker_from_settings(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    clock = ReplayClock(at(5))
    b = build_broker(make_settings(), home, clock=clock, bars=BARS, starting_cash=D(2500))
    assert isinstance(b, SimBroker) and b.self_check().ok
    assert (home.state_dir / "sim_exchange.db").is_file()
    assert b.get_account().cash == D(2500)
