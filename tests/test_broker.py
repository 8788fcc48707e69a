"""The owner's manual check: ONE real paper trade on Alpaca (buy 1 share, then close it with our own id).

Skipped unless explicitly asked for, because it leaves 127.0.0.1:
    TBOT_REAL_PAPER_TRADE=1 ALPACA_API_KEY=... ALPACA_SECRET_KEY=... .venv/bin/pytest -q tests/test_broker.py
Paper only: a live endpoint is refused. Optional TBOT_PAPER_SYMBOL (default SPY); it must not be held already.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from tbot_bot.broker.broker_api import OrderRequest, OrderStatus
from tbot_bot.broker.brokers.alpaca import AlpacaBroker
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.support.utils_bot import utc_now

KEY = os.environ.get("ALPACA_API_KEY", "")
SECRET = os.environ.get("ALPACA_SECRET_KEY", "")
ASKED = os.environ.get("TBOT_REAL_PAPER_TRADE") == "1"

pytestmark = pytest.mark.skipif(
    not (ASKED and KEY and SECRET),
    reason="real paper trade: set TBOT_REAL_PAPER_TRADE=1, ALPACA_API_KEY and ALPACA_SECRET_KEY to run it",
)


def test_one_real_paper_trade_opened_and_closed() -> None:
    base_url = os.environ.get("ALPACA_BASE_URL") or None
    if base_url is not None and "paper" not in base_url:
        pytest.fail(f"ALPACA_BASE_URL={base_url} is not a paper endpoint; this test trades on paper only")
    symbol = os.environ.get("TBOT_PAPER_SYMBOL", "SPY").upper()
    broker = AlpacaBroker(
        KEY,
        SECRET,
        paper=True,
        base_url=base_url,
        data_url=os.environ.get("ALPACA_DATA_URL") or None,
        timeout=15,
        retry=RetryPolicy(retries=2),
        fill_timeout=60,
        poll_interval=1,
    )
    try:
        assert broker.self_check().ok
        if not broker.get_clock().is_open:
            pytest.skip("the market is closed: a paper market order would wait for the open")
        if any(p.symbol == symbol for p in broker.get_positions()):
            pytest.skip(f"the paper account already holds {symbol}; pick TBOT_PAPER_SYMBOL that it does not")
        quote = broker.get_latest_quote(symbol)
        assert quote.ask > 0
        stamp = utc_now().strftime("%Y%m%dT%H%M%S")
        entry = broker.submit_order(
            OrderRequest(f"tbot-papertest-{stamp}-open", symbol, OrderSide.BUY, Decimal(1))
        )
        assert entry.status is OrderStatus.FILLED and entry.filled_qty == Decimal(1)
        assert entry.filled_avg_price is not None and entry.filled_avg_price > 0
        assert (
            broker.submit_order(
                OrderRequest(entry.client_order_id, symbol, OrderSide.BUY, Decimal(1))
            ).broker_order_id
            == entry.broker_order_id
        )  # the duplicate id returns the same order
        exit_order = broker.close_position(symbol, f"tbot-papertest-{stamp}-close")
        assert exit_order is not None and exit_order.status is OrderStatus.FILLED
        assert exit_order.side is OrderSide.SELL and exit_order.filled_qty == Decimal(1)
        assert all(p.symbol != symbol for p in broker.get_positions())
        ids = {o.client_order_id for o in broker.list_orders(since=entry.submitted_at)}
        assert exit_order.client_order_id in ids
    finally:
        broker.close()
