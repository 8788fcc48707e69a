"""Replies in the shapes Alpaca and Tradier really send, written here after the vendors' published examples.

Each payload names where its shape comes from. Values are ours; the shape (field names, strings vs numbers,
nulls, extra fields, timestamp styles, bare object vs list vs "null") is the vendor's. The fakes serve them
through `FakeJsonServer.reply_with`, so the adapters meet them over real HTTP through their real clients.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

_OCC = re.compile(r"^(?P<root>[A-Z][A-Z0-9.]{0,5})(?P<ymd>\d{6})(?P<right>[PC])(?P<strike>\d{8})$")


def occ_parts(symbol: str) -> dict[str, Any] | None:
    """The fakes' own reading of an OCC option symbol (root, expiry, right, strike), kept apart from the
    product's parser so a fake never agrees with the adapter by sharing its code."""
    m = _OCC.match(symbol)
    if m is None:
        return None
    ymd = m.group("ymd")
    return {
        "root": m.group("root"),
        "expiry": date(2000 + int(ymd[:2]), int(ymd[2:4]), int(ymd[4:])),
        "right": m.group("right"),
        "strike": int(m.group("strike")) / 1000,
    }


# ---------------------------------------------------------------------------------------------- Alpaca
ALPACA_ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"
ALPACA_ASSET_ID = "904837e3-3b76-47ec-b432-046db621571b"


def alpaca_order(**over: Any) -> dict[str, Any]:
    """An order as GET/POST /v2/orders return it. Shape: alpaca-py tests/trading/trading_client/
    test_position_routes.py and test_order_routes.py (every field present, nulls included, `commission` extra),
    docs.alpaca.markets/reference/getorderbyclientorderid."""
    order: dict[str, Any] = {
        "id": ALPACA_ORDER_ID,
        "client_order_id": "B1-open-SPY-1",
        "created_at": "2026-11-16T14:35:01.942282Z",
        "updated_at": "2026-11-16T14:35:02.10443Z",
        "submitted_at": "2026-11-16T14:35:01.937734Z",
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": ALPACA_ASSET_ID,
        "symbol": "SPY",
        "asset_class": "us_equity",
        "notional": None,
        "qty": "10",
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": "market",
        "type": "market",
        "side": "buy",
        "position_intent": "buy_to_open",
        "time_in_force": "day",
        "limit_price": None,
        "stop_price": None,
        "status": "accepted",
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "commission": 0,
        "source": None,
    }
    order.update(over)
    return order


# alpaca-py tests/trading/trading_client/test_position_routes.py: an order placed by amount (`qty: null`,
# `notional: "500"`), still open
ALPACA_NOTIONAL_OPEN = alpaca_order(
    id="71e69015-8549-4bfd-b9c3-01e75843f47e",
    client_order_id="eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4",
    symbol="SPY",
    qty=None,
    notional="500",
    status="accepted",
)

# a person's protective stop (docs.alpaca.markets "Orders": type "stop" with stop_price)
ALPACA_STOP_OPEN = alpaca_order(
    id="81e69015-8549-4bfd-b9c3-01e75843f47f",
    client_order_id="manual-stop-1",
    symbol="SPY",
    side="sell",
    qty="10",
    type="stop",
    order_type="stop",
    stop_price="440.5",
    status="new",
)

# an option order (docs.alpaca.markets "Options Trading": asset_class us_option, OCC symbol, whole contracts)
ALPACA_OPTION_FILLED = alpaca_order(
    id="91e69015-8549-4bfd-b9c3-01e75843f480",
    client_order_id="B1-open-SPY-P",
    symbol="SPY261218P00450000",
    asset_class="us_option",
    qty="2",
    filled_qty="2",
    filled_avg_price="4.35",
    filled_at="2026-11-16T14:35:02.10443Z",
    status="filled",
)


def alpaca_account() -> dict[str, Any]:
    """GET /v2/account. Shape: alpaca-py tests/trading/trading_client/test_account_routes.py (money as strings,
    many extra fields, `crypto_status`, `balance_asof` a bare date)."""
    return {
        "id": "2a87c088-ffb6-472b-a4a3-cd9305c8605c",
        "account_number": "PA3EJQDZ7AIH",
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "buying_power": "262113.632",
        "regt_buying_power": "262113.632",
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": "131056.81",
        "cash": "-23140.2",
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "portfolio_value": "103820.56",
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": "2020-10-31T23:40:50.376107Z",
        "trade_suspended_by_user": False,
        "multiplier": "2",
        "shorting_enabled": True,
        "equity": "103820.56",
        "last_equity": "103529.24",
        "long_market_value": "126960.76",
        "short_market_value": "0",
        "initial_margin": "63480.38",
        "maintenance_margin": "38088.228",
        "last_maintenance_margin": "38000.832",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": "2026-11-13",
        "options_buying_power": "131056.81",
        "options_approved_level": 3,
        "options_trading_level": 3,
    }


# GET /v2/clock: nanosecond fraction and an exchange offset (docs.alpaca.markets/reference/getclock-1)
ALPACA_CLOCK = {
    "timestamp": "2026-11-16T10:06:23.713474479-05:00",
    "is_open": True,
    "next_open": "2026-11-17T09:30:00-05:00",
    "next_close": "2026-11-16T16:00:00-05:00",
}


def alpaca_positions() -> list[dict[str, Any]]:
    """GET /v2/positions: an equity (alpaca-py tests/trading/trading_client/test_position_routes.py) and an
    option (docs.alpaca.markets "Options Trading": asset_class us_option, exchange "", per-share prices, the
    cost basis per contract x 100)."""
    return [
        {
            "asset_id": ALPACA_ASSET_ID,
            "symbol": "AAPL",
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "avg_entry_price": "100.0",
            "qty": "5",
            "qty_available": "5",
            "side": "long",
            "market_value": "600.0",
            "cost_basis": "500.0",
            "unrealized_pl": "100.0",
            "unrealized_plpc": "0.20",
            "unrealized_intraday_pl": "10.0",
            "unrealized_intraday_plpc": "0.0084",
            "current_price": "120.0",
            "lastday_price": "119.0",
            "change_today": "0.0084",
            "asset_marginable": True,
        },
        {
            "asset_id": "a4b8c1f2-0b6e-4d8e-9a51-3f1c2f5d7e90",
            "symbol": "SPY261218P00450000",
            "exchange": "",
            "asset_class": "us_option",
            "avg_entry_price": "4.35",
            "qty": "2",
            "qty_available": "2",
            "side": "long",
            "market_value": "900",
            "cost_basis": "870",
            "unrealized_pl": "30",
            "unrealized_plpc": "0.0344827586206897",
            "unrealized_intraday_pl": "30",
            "unrealized_intraday_plpc": "0.0344827586206897",
            "current_price": "4.5",
            "lastday_price": "4.1",
            "change_today": "0.0975609756097561",
            "asset_marginable": True,
        },
    ]


def alpaca_cancel_all() -> list[dict[str, Any]]:
    """DELETE /v2/orders answers HTTP 207 with one entry per order (docs.alpaca.markets/reference/
    deleteallorders): 200 with the order as `body`, or an error status (404 order not found, 500)."""
    return [
        {"id": ALPACA_ORDER_ID, "status": 200, "body": alpaca_order(status="pending_cancel")},
        {
            "id": "a1e69015-8549-4bfd-b9c3-01e75843f481",
            "status": 404,
            "body": {"code": 40410000, "message": "order not found"},
        },  # fmt: skip
        {
            "id": "b1e69015-8549-4bfd-b9c3-01e75843f482",
            "status": 500,
            "body": {"code": 50010000, "message": "internal server error occurred"},
        },  # fmt: skip
    ]


# GET /v2/stocks/bars: docs.alpaca.markets/reference/stockbars shows bars with only t o h l c v (no `n`/`vw`);
# the live API adds n and vw. Both kinds in one reply, a second symbol absent (no trades).
ALPACA_BARS = {
    "bars": {
        "SPY": [
            {"t": "2026-11-16T14:30:00Z", "o": 450.1, "h": 450.9, "l": 449.8, "c": 450.5, "v": 120311},
            {
                "t": "2026-11-16T14:31:00Z",
                "o": 450.5,
                "h": 451.2,
                "l": 450.3,
                "c": 451.0,
                "v": 98213,
                "n": 1032,
                "vw": 450.77,
            },  # fmt: skip
        ]
    },
    "next_page_token": None,
}

# GET /v2/stocks/quotes/latest (docs.alpaca.markets/reference/stocklatestquotes): nanosecond RFC 3339 stamps
ALPACA_LATEST_QUOTE = {
    "quotes": {
        "SPY": {
            "ap": 450.02,
            "as": 3,
            "ax": "V",
            "bp": 449.98,
            "bs": 2,
            "bx": "V",
            "c": ["R"],
            "t": "2026-11-16T14:35:01.123456789Z",
            "z": "B",
        }
    }
}


def alpaca_activities() -> list[dict[str, Any]]:
    """GET /v2/account/activities: every kind mixed as the endpoint returns them without a type filter
    (docs.alpaca.markets/reference/getaccountactivities-1, alpaca-py tests/trading/test_activities.py):
    a FILL (trade activity, no `date`), DIV, FEE, PTC, and a FEE later cancelled."""
    return [
        {
            "id": "20261116093406977::8efc7b9a-8b2b-4000-9955-d36e7db0df74",
            "activity_type": "FILL",
            "transaction_time": "2026-11-16T14:34:06.977Z",
            "type": "fill",
            "price": "450.01",
            "qty": "10",
            "side": "buy",
            "symbol": "SPY",
            "leaves_qty": "0",
            "order_id": ALPACA_ORDER_ID,
            "cum_qty": "10",
            "order_status": "filled",
        },
        {
            "id": "20261116000000000::5f596936-6f23-4cef-bdf1-3806aae57dbf",
            "activity_type": "DIV",
            "date": "2026-11-16",
            "net_amount": "1.02",
            "symbol": "T",
            "qty": "2",
            "per_share_amount": "0.51",
            "status": "executed",
        },
        {
            "id": "20261117000000000::0b5f2e46-2f7e-4a63-9e39-5d2b3b1b0c11",
            "activity_type": "FEE",
            "date": "2026-11-17",
            "net_amount": "-0.03",
            "description": "REG/TAF fee",
            "symbol": "SPY",
            "qty": "10",
            "per_share_amount": None,
            "status": "executed",
        },
        {
            "id": "20261117000000001::4d1d9a3c-2a8b-4f6e-8b0e-2d3c4b5a6f70",
            "activity_type": "PTC",
            "date": "2026-11-17",
            "net_amount": "-0.01",
            "description": "Pass through charge",
            "symbol": None,
            "status": "executed",
        },
        {
            "id": "20261117000000002::9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "activity_type": "FEE",
            "date": "2026-11-17",
            "net_amount": "-0.05",
            "description": "REG/TAF fee",
            "symbol": "QQQ",
            "status": "canceled",
        },
    ]


# ---------------------------------------------------------------------------------------------- Tradier
# Shapes from documentation.tradier.com/brokerage-api (markets/get-quotes, markets/get-clock,
# accounts/get-account-balance, accounts/get-account-positions, accounts/get-account-orders,
# trading/place-equity-order, markets/get-timesales, markets/get-history): numbers as JSON numbers with long
# fractions, a one-item list as a bare object, an empty list as the string "null".


def tradier_quote(symbol: str = "SPY", last: float = 450.0) -> dict[str, Any]:
    """One quote row: `bid_date`, `ask_date`, `trade_date` in epoch MILLISECONDS (markets/get-quotes)."""
    return {
        "symbol": symbol,
        "description": "SPDR S&P 500",
        "exch": "P",
        "type": "etf",
        "last": last,
        "change": -3.54,
        "volume": 25288395,
        "open": last - 1.5,
        "high": last + 2.0,
        "low": last - 2.5,
        "close": None,
        "bid": round(last - 0.02, 2),
        "ask": round(last + 0.02, 2),
        "change_percentage": -1.68,
        "average_volume": 27215269,
        "last_volume": 100,
        "trade_date": 1794841206000,
        "prevclose": last + 3.54,
        "week_52_high": last + 40.0,
        "week_52_low": last - 120.0,
        "bidsize": 12,
        "bidexch": "Q",
        "bid_date": 1794841206000,
        "asksize": 1,
        "askexch": "Y",
        "ask_date": 1794841207000,
        "root_symbols": symbol,
    }


TRADIER_QUOTE_MS = 1794841206000  # the bid_date above: 2026-11-16T15:00:06Z, as an epoch-millisecond number


def tradier_option_quote(symbol: str, last: float, stamp_ms: int) -> dict[str, Any]:
    """One option row of markets/get-quotes: the equity fields plus the contract's (`underlying`, `strike`,
    `open_interest`, `contract_size`, `expiration_date`, `expiration_type`, `option_type`, `root_symbol`), as
    listed in documentation.tradier.com/brokerage-api/reference/response/quotes; `type` is "option", `exch` and
    the bid/ask exchanges are option exchange codes, the dates epoch milliseconds."""
    parts = occ_parts(symbol)
    assert parts is not None, symbol
    return {
        "symbol": symbol,
        "description": f"{parts['root']} {parts['expiry']:%b %d %Y} ${parts['strike']:g} "
        + ("Put" if parts["right"] == "P" else "Call"),
        "exch": "Z",
        "type": "option",
        "last": last,
        "change": -0.12,
        "volume": 1520,
        "open": last + 0.1,
        "high": last + 0.3,
        "low": last - 0.2,
        "close": None,
        "bid": round(last - 0.05, 2),
        "ask": round(last + 0.05, 2),
        "underlying": parts["root"],
        "strike": parts["strike"],
        "change_percentage": -2.69,
        "average_volume": 0,
        "last_volume": 1,
        "trade_date": stamp_ms,
        "prevclose": last + 0.12,
        "week_52_high": 0.0,
        "week_52_low": 0.0,
        "bidsize": 118,
        "bidexch": "Q",
        "bid_date": stamp_ms,
        "asksize": 60,
        "askexch": "C",
        "ask_date": stamp_ms,
        "open_interest": 24312,
        "contract_size": 100,
        "expiration_date": parts["expiry"].isoformat(),
        "expiration_type": "standard",
        "option_type": "put" if parts["right"] == "P" else "call",
        "root_symbol": parts["root"],
    }


TRADIER_POSITIONS = {
    "positions": {
        "position": [
            {
                "cost_basis": 4500.0,
                "date_acquired": "2026-11-16T14:41:11.405Z",
                "id": 130089,
                "quantity": 10.00000000,
                "symbol": "SPY",
            },  # fmt: skip
            # accounts/get-account-positions lists options by OCC symbol with the total cost (x100 per contract)
            {
                "cost_basis": 4970.00,
                "date_acquired": "2013-12-20T15:42:00.774Z",
                "id": 130090,
                "quantity": 1.00000000,
                "symbol": "DELL140118C00015000",
            },  # fmt: skip
            {
                "cost_basis": -1280.00,
                "date_acquired": "2013-10-01T14:30:00.000Z",
                "id": 130091,
                "quantity": -2.00000000,
                "symbol": "AAPL131019C00400000",
            },  # fmt: skip
        ]
    }
}
TRADIER_ONE_POSITION = {
    "positions": {
        "position": {
            "cost_basis": 4500.0,
            "date_acquired": "2026-11-16T14:41:11.405Z",
            "id": 130089,
            "quantity": 10.00000000,
            "symbol": "SPY",
        }
    }  # fmt: skip
}
TRADIER_NO_POSITIONS = {"positions": "null"}


def tradier_order(**over: Any) -> dict[str, Any]:
    """One order row of accounts/get-account-orders (includeTags=true adds `tag`)."""
    order: dict[str, Any] = {
        "id": 228175,
        "type": "market",
        "symbol": "SPY",
        "side": "buy",
        "quantity": 10.00000000,
        "status": "filled",
        "duration": "day",
        "avg_fill_price": 450.01000000,
        "exec_quantity": 10.00000000,
        "last_fill_price": 450.01000000,
        "last_fill_quantity": 10.00000000,
        "remaining_quantity": 0.00000000,
        "create_date": "2026-11-16T14:35:01.682Z",
        "transaction_date": "2026-11-16T14:35:02.385Z",
        "class": "equity",
        "tag": "B1-open-SPY-1",
    }
    order.update(over)
    return order


# an option order: `symbol` is the underlying, `option_symbol` the contract (accounts/get-account-orders)
TRADIER_OPTION_ORDER = tradier_order(
    id=229063,
    type="market",
    symbol="SPY",
    side="buy_to_open",
    quantity=2.00000000,
    avg_fill_price=4.35,
    exec_quantity=2.00000000,
    last_fill_price=4.35,
    last_fill_quantity=2.00000000,
    option_symbol="SPY261218P00450000",
    tag="B1-open-SPY-P",
    **{"class": "option"},
)
TRADIER_STOP_ORDER = tradier_order(
    id=229064,
    type="stop",
    side="sell",
    status="open",
    stop_price=440.5,
    avg_fill_price=0.00000000,
    exec_quantity=0.00000000,
    last_fill_price=0.00000000,
    last_fill_quantity=0.00000000,
    remaining_quantity=10.00000000,
    tag=None,
)

TRADIER_BALANCES = {
    "balances": {
        "option_short_value": 0,
        "total_equity": 17798.360000000000000000000,
        "account_number": "VA000001",
        "account_type": "margin",
        "close_pl": -4813.000000000000000000,
        "current_requirement": 2557.00000000000000000000,
        "equity": 0,
        "long_market_value": 11434.50000000000000000000,
        "market_value": 11434.50000000000000000000,
        "open_pl": 546.900000000000000000000,
        "option_long_value": 8877.5000000000000000000,
        "option_requirement": 0,
        "pending_orders_count": 0,
        "short_market_value": 0,
        "stock_long_value": 2557.00000000000000000000,
        "total_cash": 6363.860000000000000000000,
        "uncleared_funds": 0,
        "pending_cash": 0,
        "margin": {
            "fed_call": 0,
            "maintenance_call": 0,
            "option_buying_power": 6363.860000000000000000000,
            "stock_buying_power": 12727.7200000000000000000,
            "stock_short_value": 0,
            "sweep": 0,
        },
    }
}

# markets/get-clock: `timestamp` in epoch SECONDS, next_change a bare local time
TRADIER_CLOCK = {
    "clock": {
        "date": "2026-11-16",
        "description": "Market is open from 09:30 to 16:00",
        "state": "open",
        "timestamp": 1794841206,
        "next_change": "16:00",
        "next_state": "postmarket",
    }
}


def alpaca_assets() -> list[dict[str, Any]]:
    """GET /v2/assets (alpaca-py tests/trading/trading_client/test_asset_routes.py): `class`, exchange codes
    such as NYSEARCA, margin fields and `attributes`; an inactive and an OTC row are left out by the adapter."""
    common = {"marginable": True, "shortable": True, "easy_to_borrow": True, "fractionable": True}
    return [
        {"id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415", "class": "us_equity", "exchange": "NASDAQ", "symbol": "AAPL",
         "name": "Apple Inc. Common Stock", "status": "active", "tradable": True,
         "maintenance_margin_requirement": 30, "margin_requirement_long": "30", "margin_requirement_short": "30",
         "attributes": ["fractional_eh_enabled", "has_options"], **common},
        {"id": "b28f4066-5c6d-479b-a2af-85dc1a8f16fb", "class": "us_equity", "exchange": "NYSEARCA", "symbol": "SPY",
         "name": "SPDR S&P 500 ETF Trust", "status": "active", "tradable": True,
         "maintenance_margin_requirement": 30, "attributes": ["has_options"], **common},
        {"id": "7b8ae3a0-5c2f-4d6b-9d84-0c0d3f1f5e21", "class": "us_equity", "exchange": "OTC", "symbol": "GBTC",
         "name": "Grayscale", "status": "active", "tradable": False, "attributes": [], **common},
        {"id": "1c1b8f6e-3a5d-4c7b-8e9f-0a1b2c3d4e5f", "class": "us_equity", "exchange": "NYSE", "symbol": "OLD",
         "name": "Delisted", "status": "inactive", "tradable": False, "attributes": [], **common},
    ]  # fmt: skip


# GET /v2/stocks/snapshots (docs.alpaca.markets/reference/stocksnapshots): keyed by symbol, camelCase sections,
# nanosecond trade/quote stamps; a symbol without data is simply absent
ALPACA_SNAPSHOTS = {
    "SPY": {
        "latestTrade": {
            "t": "2026-11-16T15:00:01.123456789Z",
            "x": "V",
            "p": 450.01,
            "s": 100,
            "c": ["@"],
            "i": 52983525029461,
            "z": "B",
        },  # fmt: skip
        "latestQuote": {
            "t": "2026-11-16T15:00:01.223456789Z",
            "ax": "V",
            "ap": 450.03,
            "as": 3,
            "bx": "V",
            "bp": 449.99,
            "bs": 2,
            "c": ["R"],
            "z": "B",
        },  # fmt: skip
        "minuteBar": {
            "t": "2026-11-16T14:59:00Z",
            "o": 450.0,
            "h": 450.1,
            "l": 449.9,
            "c": 450.05,
            "v": 12001,
            "n": 143,
            "vw": 450.02,
        },  # fmt: skip
        "dailyBar": {
            "t": "2026-11-16T05:00:00Z",
            "o": 448.5,
            "h": 451.0,
            "l": 448.1,
            "c": 450.05,
            "v": 3120011,
            "n": 30211,
            "vw": 449.8,
        },  # fmt: skip
        "prevDailyBar": {
            "t": "2026-11-13T05:00:00Z",
            "o": 447.0,
            "h": 449.0,
            "l": 446.2,
            "c": 448.2,
            "v": 70123456,
            "n": 512001,
            "vw": 447.9,
        },  # fmt: skip
    }
}
