"""Fees (issue 12 item 5): the sim's commission/fee model from `.env_bot`, booked Dr 5010 / Cr 1030."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from helpers import make_settings
from test_sim_broker import BARS, at

from tbot_bot.accounting.account_transaction import TradeFill, entries_for_fill
from tbot_bot.broker.broker_api import OrderRequest
from tbot_bot.broker.brokers.sim import SimBroker
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.trading.fees import FeeSchedule

D = Decimal
IBKR_LIKE = FeeSchedule(
    per_share=D("0.005"),
    minimum=D("1.00"),
    sec_fee_rate=D("0.0000278"),
    taf_per_share=D("0.000166"),
    taf_max=D("8.30"),
)


def test_template_keys_build_the_schedule() -> None:
    # SIM_FEE_PROFILE=custom: the template's SIM_* keys (an IBKR-style schedule) are the schedule
    assert FeeSchedule.from_settings(make_settings(SIM_FEE_PROFILE="custom")) == IBKR_LIKE
    pct = FeeSchedule.from_settings(
        make_settings(SIM_FEE_PROFILE="custom", SIM_COMMISSION_PCT="0.0005", SIM_COMMISSION_PER_ORDER="0.35")
    )
    assert (pct.pct_notional, pct.per_order) == (D("0.0005"), D("0.35"))


def test_commission_minimum_percent_and_sell_side_regulatory_fees() -> None:
    # buy 100 @ 50: 0.50 per share, lifted to the 1.00 minimum; no regulatory fees on a buy
    assert IBKR_LIKE.fee(D(100), D(50), D(1), sell=False, option=False, first_fill=True) == D("1.00")
    # sell 1000 @ 50: commission 5.00; SEC 50,000 x 0.0000278 = 1.39; TAF 1000 x 0.000166 = 0.166 -> 0.17
    assert IBKR_LIKE.fee(D(1000), D(50), D(1), sell=True, option=False, first_fill=True) == D("6.56")
    # a later partial fill of the same order: no minimum, per-share only
    assert IBKR_LIKE.fee(D(10), D(50), D(1), sell=False, option=False, first_fill=False) == D("0.05")
    # TAF is capped per trade
    assert IBKR_LIKE.regulatory(D(100_000), D(0), sell=True, option=False) == D("8.30")
    # percent of notional and per order
    pct = FeeSchedule(per_order=D("0.35"), pct_notional=D("0.0005"))
    assert pct.fee(D(10), D(100), D(1), sell=False, option=False, first_fill=True) == D("0.85")
    # options: per contract, no equity regulatory fees
    assert IBKR_LIKE.fee(D(2), D("3.15"), D(100), sell=True, option=True, first_fill=True) == D("1.00")


def test_sim_fills_carry_the_schedule_and_cash_pays_it(tmp_path: Path) -> None:
    clock = ReplayClock(at(5))
    sim = SimBroker(tmp_path / "sim.db", clock=clock, bars=BARS, starting_cash=D(100_000), fees=IBKR_LIKE)
    buy = sim.submit_order(OrderRequest("b1", "AAA", OrderSide.BUY, D(10)))
    assert buy.fills[0].fee == D("1.00")
    clock.advance_to(at(8))
    sell = sim.submit_order(OrderRequest("s1", "AAA", OrderSide.SELL, D(10)))
    proceeds = sell.fills[0].price * 10
    sec = (proceeds * D("0.0000278")).quantize(D("0.01"), rounding="ROUND_CEILING")
    assert sell.fills[0].fee == D("1.00") + sec + D("0.01")
    spent = buy.fills[0].price * 10
    assert sim.get_account().cash == D(100_000) - spent + proceeds - buy.fills[0].fee - sell.fills[0].fee


def test_a_fill_fee_is_booked_dr_5010_cr_1030_beside_the_trade() -> None:
    common = {
        "strategy": "open",
        "ticker": "AAPL",
        "signal_ticker": "AAPL",
        "side": "long",
        "instrument": "equity",
        "posted_at": datetime(2011, 1, 10, 15, tzinfo=UTC),
        "broker": "IBKR",
        "tag": None,
        "leverage_multiplier": None,
        "exit_reason": None,
        "session_id": "TB01-2011-01-10",
        "currency_code": "USD",
    }
    close = TradeFill(
        "X1", action="close", qty=D(100), price=D("191.40"), fee=D("1.3412"), client_order_id="X1",
        entry_price=D("190.25"), **common,  # type: ignore[arg-type]
    )  # fmt: skip
    trade, fee = entries_for_fill(close)
    assert trade.pnl == D("115.00")  # realised PnL before fees: the fee is its own entry
    assert (fee.fitid, fee.trntype, fee.client_order_id) == ("X1-FEE", "FEE", "X1")
    assert {s.account_code: (s.debit, s.credit) for s in fee.splits} == {
        "5010": (D("1.3412"), 0),
        "1030": (0, D("1.3412")),
    }
