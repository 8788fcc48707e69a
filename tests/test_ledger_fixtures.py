"""Shared builders for the books tests (no tests here): fills of one trading day, a fresh ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tbot_bot.accounting.account_transaction import TradeFill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.ledger_schema import create_ledger, open_ledger
from tbot_bot.support.utils_bot import from_minor

DAY = datetime(2026, 11, 24, tzinfo=UTC)
PUT = "SPY261218P00450000"


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


def fill(fitid: str, **overrides: object) -> TradeFill:
    base: dict[str, object] = {
        "fitid": fitid,
        "strategy": "open",
        "ticker": "AAPL",
        "signal_ticker": "AAPL",
        "side": "long",
        "action": "open",
        "instrument": "equity",
        "qty": Decimal(10),
        "price": Decimal("190.25"),
        "fee": Decimal(0),
        "posted_at": at(14, 45),
        "broker": "ALPACA",
        "client_order_id": f"coid-{fitid}",
        "tag": None,
        "leverage_multiplier": None,
        "exit_reason": None,
        "session_id": "2026-11-24-open",
        "currency_code": "USD",
        "entry_price": None,
    }
    base.update(overrides)
    return TradeFill(**base)  # type: ignore[arg-type]


def day_of_fills() -> list[TradeFill]:
    """Long AAPL (gain), inverse ETF SQQQ (loss), short sale TSLA (gain on cover), long put (gain), with fees."""
    return [
        fill("L1-OPEN", posted_at=at(14, 45)),
        fill(
            "L1-CLOSE",
            action="close",
            price=Decimal("191.4"),
            entry_price=Decimal("190.25"),
            fee=Decimal("0.03"),
            exit_reason="trailing_stop",
            posted_at=at(15, 10),
        ),
        fill(
            "I1-OPEN",
            ticker="SQQQ",
            signal_ticker="QQQ",
            side="long",
            tag="InverseETF",
            leverage_multiplier=Decimal(-3),
            qty=Decimal(25),
            price=Decimal("12.3456"),
            strategy="mid",
            posted_at=at(17, 1, 5),
        ),
        fill(
            "I1-CLOSE",
            ticker="SQQQ",
            signal_ticker="QQQ",
            side="long",
            tag="InverseETF",
            leverage_multiplier=Decimal(-3),
            qty=Decimal(25),
            action="close",
            price=Decimal("12.10"),
            entry_price=Decimal("12.3456"),
            fee=Decimal("0.01"),
            strategy="mid",
            exit_reason="stop_loss",
            posted_at=at(17, 30),
        ),
        fill(
            "S1-OPEN",
            ticker="TSLA",
            signal_ticker="TSLA",
            side="short",
            tag="ShortSell",
            qty=Decimal(5),
            price=Decimal("250.5"),
            strategy="close",
            posted_at=at(20, 0),
        ),
        fill(
            "S1-CLOSE",
            ticker="TSLA",
            signal_ticker="TSLA",
            side="short",
            tag="ShortSell",
            qty=Decimal(5),
            action="close",
            price=Decimal("248.75"),
            entry_price=Decimal("250.5"),
            fee=Decimal("0.02"),
            strategy="close",
            exit_reason="timeout",
            posted_at=at(20, 30),
        ),
        fill(
            "P1-OPEN",
            ticker=PUT,
            signal_ticker="SPY",
            side="long",
            tag="LongPut",
            instrument="option",
            qty=Decimal(2),
            price=Decimal("3.15"),
            fee=Decimal("1.30"),
            strategy="close",
            posted_at=at(20, 5),
        ),
        fill(
            "P1-CLOSE",
            ticker=PUT,
            signal_ticker="SPY",
            side="long",
            tag="LongPut",
            instrument="option",
            qty=Decimal(2),
            action="close",
            price=Decimal("3.60"),
            entry_price=Decimal("3.15"),
            fee=Decimal("1.30"),
            strategy="close",
            exit_reason="timeout",
            posted_at=at(20, 40),
        ),
    ]


def new_ledger(tmp_path: Path, keep: int = 50) -> tuple[Path, LedgerWriter]:
    ledger = tmp_path / "RIGD_USA_main_ALPACA_01_BOT_ledger.db"
    create_ledger(ledger, currency_code="USD")
    return ledger, LedgerWriter(ledger, tmp_path / "ledger_backups", keep)


def account_balances(ledger_path: Path) -> dict[str, Decimal]:
    """account -> debit minus credit over every posting: what the tests check the books against."""
    with open_ledger(ledger_path, readonly=True) as conn:
        rows = conn.execute(
            "SELECT account_code, sum(debit) - sum(credit) FROM splits GROUP BY account_code"
        ).fetchall()
    return {str(code): from_minor(int(bal)) for code, bal in rows}
