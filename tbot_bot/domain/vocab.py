"""The closed sets of the trading day as `StrEnum`s: each compares equal to its stored string, so journal
rows, ledger columns and JSON stay as they were, while signatures say which set a value belongs to."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

# shares per listed US equity option contract (OCC standard); every layer prices and books with this one
OPTION_MULTIPLIER = 100
OPTION_MULTIPLIER_DEC = Decimal(OPTION_MULTIPLIER)
# the ledger memo of a trade entered while defense mode was on (booking writes it, trade history reads it)
DEFENSE_MODE_MEMO = "defense_mode"
# a position the bot did not open, taken into its books by `tbot positions --adopt` (client order id suffix, memo)
ADOPTED_MARK = "-adopted"
ADOPTED_MEMO = "external_adopted"


class StrategyName(StrEnum):
    OPEN = "open"
    MID = "mid"
    CLOSE = "close"


STRATEGY_NAMES: tuple[StrategyName, ...] = tuple(StrategyName)


class Purpose(StrEnum):
    """Why an order exists."""

    ENTRY = "entry"
    EXIT = "exit"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class PositionSide(StrEnum):
    """The position held in the traded instrument (an inverse ETF or a put is LONG on a bearish signal)."""

    LONG = "long"
    SHORT = "short"


class Direction(StrEnum):
    """The signal's view of the signal ticker."""

    BULLISH = "bullish"
    BEARISH = "bearish"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.BULLISH else -1


class InstrumentType(StrEnum):
    EQUITY = "equity"
    OPTION = "option"


class InstrumentTag(StrEnum):
    """How a bearish signal was expressed (the ledger's and trade history's `tag`)."""

    INVERSE_ETF = "InverseETF"
    LONG_PUT = "LongPut"
    SHORT_SELL = "ShortSell"


class WindowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    STOPPED = "stopped"
    HALTED = "halted"
    INTERRUPTED = "interrupted"  # status.json only: the journal says running, no process runs it


class ExitReason(StrEnum):
    # the strategies' own exits
    TRAILING_STOP = "trailing_stop"
    STOP_LOSS = "stop_loss"
    VWAP_TOUCH = "vwap_touch"
    TIMEOUT = "timeout"
    SESSION_CLOSE = "session_close"
    # exits the supervisor forces
    WINDOW_END = "window_end"
    KILL_SWITCH = "kill_switch"
    MANUAL_STOP = "manual_stop"
    BROKER_OUTAGE = "broker_outage"
    RECOVERED_AFTER_WINDOW = "recovered_after_window"
    FORCED_EXIT = "forced_exit"


class DenialCode(StrEnum):
    """Why a signal was not traded: one code set for the live day and the backtest."""

    # risk_bot (the window denies with `risk:<code>`)
    HALTED = "halted"
    ENTRIES_PAUSED = "entries_paused"
    TRADES_DISABLED = "trades_disabled"
    PRICE_OUT_OF_RANGE = "price_out_of_range"
    VOLUME_TOO_LOW = "volume_too_low"
    SPREAD_TOO_WIDE = "spread_too_wide"
    MISSING_MARKET_DATA = "missing_market_data"
    MAX_TRADES = "max_trades"
    MAX_OPEN_POSITIONS = "max_open_positions"
    SESSION_CAP_USED = "session_cap_used"
    ZERO_QUANTITY = "zero_quantity"
    # instrument choice (SHORT_TYPE_X) and the filters that only ever block
    SHORT_TYPE_DISABLED = "short_type_disabled"
    INVERSE_ETF_UNAVAILABLE = "inverse_etf_unavailable"
    SHORT_SELL_UNSUPPORTED = "short_sell_unsupported"
    OPTIONS_UNSUPPORTED = "options_unsupported"
    NO_OPTION_DATA = "no_option_data"
    SCREENER = "screener"
    TICKER_BLOCKLIST = "ticker_blocklist"
    BLACK_SCHOLES_FILTER = "black_scholes_filter"
    IMBALANCE = "imbalance_scanner"
    GAP_TOO_LARGE = "gap_too_large"
    MARKET_CAP = "market_cap"
    NO_BARS = "no_bars"
