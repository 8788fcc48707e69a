"""Postings per DESIGN §6: long equity, inverse ETF, long put, short sale and cover, fees; the float ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from test_ledger_fixtures import PUT, fill

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.float_ledger import broker_current_float, float_movement
from tbot_bot.errors import LedgerError

D = Decimal


def legs(fitid: str, **overrides: object) -> tuple[str, dict[str, tuple[Decimal, Decimal]], Decimal | None]:
    entries = entries_for_fill(fill(fitid, **overrides))
    trade = entries[0]
    return trade.trntype, {s.account_code: (s.debit, s.credit) for s in trade.splits}, trade.pnl


def test_long_equity_buy_and_sell_with_gain_and_loss() -> None:
    assert legs("B", qty=D(10), price=D("190.25")) == (
        "BUY",
        {"1110": (D("1902.50"), 0), "1030": (0, D("1902.50"))},
        None,
    )
    gain = legs("S", action="close", qty=D(10), price=D("191.40"), entry_price=D("190.25"))
    assert gain == (
        "SELL",
        {"1030": (D("1914.00"), 0), "1110": (0, D("1902.50")), "4010": (0, D("11.50"))},
        D("11.50"),
    )
    loss = legs("S2", action="close", qty=D(10), price=D("189"), entry_price=D("190.25"))
    assert loss == (
        "SELL",
        {"1030": (D("1890"), 0), "1110": (0, D("1902.50")), "4010": (D("12.50"), 0)},
        D("-12.50"),
    )


def test_inverse_etf_is_a_long_position_recorded_side_long_bearish_with_tag_and_leverage() -> None:
    entries = entries_for_fill(
        fill(
            "I",
            ticker="SQQQ",
            signal_ticker="QQQ",
            side="long",
            tag="InverseETF",
            leverage_multiplier=D(-3),
            qty=D(25),
            price=D("12.3456"),
        )
    )
    trade = entries[0]
    assert (
        trade.trntype,
        trade.side,
        trade.direction,
        trade.tag,
        trade.leverage_multiplier,
        trade.signal_ticker,
    ) == (
        "BUY",
        "long",
        "bearish",
        "InverseETF",
        D(-3),
        "QQQ",
    )
    assert {s.account_code: (s.debit, s.credit) for s in trade.splits} == {
        "1110": (D("308.64"), 0),
        "1030": (0, D("308.64")),
    }


def test_long_put_posts_through_1120_and_4020_with_contract_multiplier() -> None:
    common = {
        "ticker": PUT,
        "signal_ticker": "SPY",
        "side": "long",
        "tag": "LongPut",
        "instrument": "option",
        "qty": D(2),
    }
    assert legs("P", price=D("3.15"), **common) == (
        "BUYTOOPEN",
        {"1120": (D("630"), 0), "1030": (0, D("630"))},
        None,
    )
    closed = legs("P2", action="close", price=D("3.60"), entry_price=D("3.15"), **common)
    assert closed == (
        "SELLTOCLOSE",
        {"1030": (D("720"), 0), "1120": (0, D("630")), "4020": (0, D("90"))},
        D("90"),
    )


def test_short_sale_credits_the_2030_liability_and_cover_clears_it_gain_and_loss() -> None:
    common = {"ticker": "TSLA", "signal_ticker": "TSLA", "side": "short", "tag": "ShortSell", "qty": D(5)}
    assert legs("S", price=D("250.5"), **common) == (
        "SELLSHORT",
        {"1030": (D("1252.5"), 0), "2030": (0, D("1252.5"))},
        None,
    )
    gain = legs("C", action="close", price=D("248.75"), entry_price=D("250.5"), **common)
    assert gain == (
        "BUYTOCOVER",
        {"2030": (D("1252.5"), 0), "1030": (0, D("1243.75")), "4010": (0, D("8.75"))},
        D("8.75"),
    )
    loss = legs("C2", action="close", price=D("252"), entry_price=D("250.5"), **common)
    assert loss == (
        "BUYTOCOVER",
        {"2030": (D("1252.5"), 0), "1030": (0, D("1260")), "4010": (D("7.5"), 0)},
        D("-7.5"),
    )
    sale = entries_for_fill(fill("S3", price=D("250.5"), **common))[0]
    assert (sale.side, sale.direction) == ("short", "bearish")


def test_fee_is_its_own_entry_dr_5010_cr_1030() -> None:
    entries = entries_for_fill(fill("F", fee=D("0.0312")))
    assert [e.fitid for e in entries] == ["F", "F-FEE"]
    fee = entries[1]
    assert fee.trntype == "FEE" and {s.account_code: (s.debit, s.credit) for s in fee.splits} == {
        "5010": (D("0.0312"), 0),
        "1030": (0, D("0.0312")),
    }
    assert len(entries_for_fill(fill("G"))) == 1  # no fee, no fee entry


def test_every_posting_balances_exactly() -> None:
    for overrides in (
        {"qty": D("0.3333"), "price": D("123.4567")},
        {"action": "close", "qty": D("0.3333"), "price": D("123.4599"), "entry_price": D("123.456789")},
    ):
        trade = entries_for_fill(fill("R", **overrides))[0]
        assert sum(s.debit for s in trade.splits) == sum(s.credit for s in trade.splits)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"side": "short", "tag": None}, "needs tag ShortSell"),
        ({"side": "short", "tag": "InverseETF"}, "side=long, not side=short"),
        ({"tag": "ShortSell"}, "side=short, not side=long"),
        ({"tag": "LongPut"}, "trades option"),
        ({"direction": "bearish"}, "needs its tag"),
        ({"tag": "InverseETF", "direction": "bullish"}, "bearish expression"),
        ({"action": "close"}, "entry_price"),
        ({"qty": D(0)}, "positive"),
        ({"price": 190.25}, "Decimal"),
        ({"side": "sideways"}, "long or short"),
        ({"posted_at": datetime(2026, 11, 24, 15)}, "timezone-aware"),
    ],
)
def test_invalid_fills_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        entries_for_fill(fill("X", **overrides))


def test_float_ledger_injection_and_return_legs() -> None:
    at = datetime(2026, 11, 24, 13, tzinfo=UTC)
    inject = float_movement(D("2500.00"), currency_code="USD", posted_at=at, fitid="FLOAT-OPEN")
    assert (inject.trntype, {s.account_code: (s.debit, s.credit) for s in inject.splits}) == (
        "FLOAT_IN",
        {"1010": (D("2500.00"), 0), "3010": (0, D("2500.00"))},
    )
    back = float_movement(D("200"), currency_code="USD", posted_at=at, fitid="FLOAT-OUT", returned=True)
    assert (back.trntype, {s.account_code: (s.debit, s.credit) for s in back.splits}) == (
        "FLOAT_OUT",
        {"3010": (D("200"), 0), "1020": (0, D("200"))},
    )
    for bad in (D(0), D("-1")):
        with pytest.raises(LedgerError, match="positive Decimal"):
            float_movement(bad, currency_code="USD", posted_at=at, fitid="X")


def test_broker_current_float_refuses_a_bot_ledger(tmp_path: Path) -> None:
    from tbot_bot.accounting.ledger_schema import create_ledger

    create_ledger(tmp_path / "bot.db", currency_code="USD")
    with pytest.raises(LedgerError, match="not a float ledger"):
        broker_current_float(tmp_path / "bot.db")
