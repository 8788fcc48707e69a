"""The broker interface (DESIGN §9) and the factory that builds the one enabled adapter.

Nothing above this module knows which broker library is in use. Adapters translate every vendor error at
their edge into `tbot_bot.errors` classes. Prices and quantities crossing this interface are `Decimal`;
every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tbot_bot.broker.capabilities import BrokerCapabilities
from tbot_bot.checks import REFUSED, CheckResult, cause_of
from tbot_bot.domain.vocab import OrderSide

if TYPE_CHECKING:
    pass


_OCC_SYMBOL = re.compile(r"^(?P<root>[A-Z][A-Z0-9.]{0,5})(?P<ymd>\d{6})(?P<right>[PC])(?P<strike>\d{8})$")


class OrderType(StrEnum):
    MARKET = "market"
    TRAILING_STOP = "trailing_stop"
    # the bot sends only the two above; these name orders a person (or another tool) placed on the account
    STOP = "stop"
    LIMIT = "limit"
    STOP_LIMIT = "stop_limit"


class AssetClass(StrEnum):
    EQUITY = "equity"
    OPTION = "option"


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


@dataclass(frozen=True, slots=True)
class OptionContract:
    underlying: str
    expiry: date
    strike: Decimal
    right: str  # "P" or "C"

    @property
    def occ_symbol(self) -> str:
        """OCC-style symbol, e.g. SPY110121P00127000."""
        strike = int((self.strike * 1000).to_integral_value())
        return f"{self.underlying}{self.expiry:%y%m%d}{self.right}{strike:08d}"

    @classmethod
    def from_occ(cls, symbol: str) -> OptionContract | None:
        """The contract an OCC symbol names, or None when it is not one. The last 15 characters are fixed
        (YYMMDD, P/C, strike x 1000 in 8 digits), so the root is whatever precedes them: adjusted roots carry
        digits (`ABC1`, the sample's `SYN7`) and must parse too."""
        m = _OCC_SYMBOL.match(symbol)
        if m is None:
            return None
        ymd = m.group("ymd")
        try:
            expiry = date(2000 + int(ymd[:2]), int(ymd[2:4]), int(ymd[4:]))
        except ValueError:
            return None
        return cls(m.group("root"), expiry, Decimal(int(m.group("strike"))) / 1000, m.group("right"))


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    order_type: OrderType = OrderType.MARKET
    trail_percent: Decimal | None = None  # a fraction, as in .env_bot: 0.02 = 2%
    asset_class: AssetClass = AssetClass.EQUITY
    option: OptionContract | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str
    qty: Decimal
    price: Decimal
    timestamp: datetime
    fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Order:
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    qty: Decimal
    status: OrderStatus
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    submitted_at: datetime | None = None
    filled_at: datetime | None = None
    fills: tuple[Fill, ...] = ()
    reject_reason: str | None = None
    asset_class: AssetClass = AssetClass.EQUITY
    order_type: OrderType = OrderType.MARKET
    # an order placed by amount (Alpaca's `notional`) has no share quantity until it fills: `qty` is then what
    # has filled so far (0 while open)
    notional: Decimal | None = None

    @property
    def fee(self) -> Decimal:
        """What the broker's fills of this order were charged, together."""
        return sum((f.fee for f in self.fills), Decimal(0))

    def __post_init__(self) -> None:
        # a fill the broker reports again (a replayed execution, a re-sent event) is the same fill: one per
        # fill_id, the first report kept, so nothing downstream (fees, ledger) counts it twice
        seen: dict[str, Fill] = {}
        for f in self.fills:
            seen.setdefault(f.fill_id, f)
        if len(seen) != len(self.fills):
            object.__setattr__(self, "fills", tuple(seen.values()))


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str  # the ticker, or the OCC symbol of an option
    qty: Decimal  # negative for a short position; contracts for an option
    avg_entry_price: Decimal  # per share, also for an option (the premium as quoted, not per contract)
    asset_class: AssetClass = AssetClass.EQUITY
    multiplier: Decimal = Decimal(1)  # shares per unit: 100 for a standard option contract


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    currency: str = "USD"
    status: str = "ACTIVE"


@dataclass(frozen=True, slots=True)
class MarketClock:
    timestamp: datetime
    is_open: bool
    next_open: datetime | None
    next_close: datetime | None


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    timestamp: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def spread_pct(self) -> float:
        mid = self.mid
        return float((self.ask - self.bid) / mid) if mid > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class Bar:
    """A 1-minute bar stamped with its START time (UTC)."""

    symbol: str
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    symbol: str
    price: Decimal
    today_open: Decimal | None
    prev_close: Decimal | None
    prev_volume: int | None
    quote: Quote | None = None


@dataclass(frozen=True, slots=True)
class FeeActivity:
    """A charge the broker posts apart from any fill (Alpaca's regulatory SEC/TAF fees and pass-through
    charges arrive as account activities, often the next day). `amount` > 0 is a charge, < 0 a refund."""

    activity_id: str
    day: date  # the date the broker dates it
    amount: Decimal
    description: str
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class ListedEquity:
    """An active, tradable US equity (or ETF) the broker lists."""

    symbol: str
    exchange: str  # listing exchange as the broker names it: NYSE, NASDAQ, ARCA, AMEX, BATS, ...


class Broker(ABC):
    """One broker account. Every method may raise NetworkError (retryable) or BrokerError (refused)."""

    name: str
    capabilities: BrokerCapabilities
    retries_internally: bool = False  # True: the adapter retries temporary failures itself (API_RETRY_LIMIT)
    endpoint: str = ""  # where the adapter talks to (a URL, host:port), named in every error it raises
    local: bool = False  # True: no remote broker (the sim); an unexpected failure is a bug, not a bad reply

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from tbot_bot.broker.adapter_guard import guard_class

        guard_class(cls)  # nothing but the project's records and error classes leaves an adapter

    @abstractmethod
    def get_account(self) -> Account: ...

    @abstractmethod
    def get_clock(self) -> MarketClock: ...

    @abstractmethod
    def get_positions(self) -> list[Position]: ...

    @abstractmethod
    def submit_order(self, request: OrderRequest) -> Order:
        """Idempotent on client_order_id: an id already known returns that order, never a second one."""

    @abstractmethod
    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    @abstractmethod
    def list_orders(self, since: datetime | None = None) -> list[Order]:
        """Orders known to the broker (all statuses), newest last; `since` limits by submission time."""

    @abstractmethod
    def cancel_order(self, client_order_id: str) -> None: ...

    @abstractmethod
    def cancel_all_orders(self) -> int:
        """Cancel every open order; returns how many were asked to cancel."""

    @abstractmethod
    def close_position(self, symbol: str, client_order_id: str) -> Order | None:
        """Flatten one position with a market order carrying our client_order_id; None if there is none."""

    @abstractmethod
    def get_latest_quote(self, symbol: str) -> Quote: ...

    @abstractmethod
    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]: ...

    @abstractmethod
    def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        """1-minute bars with start time in [start, end)."""

    def list_equities(self, symbols: list[str] | None = None) -> list[ListedEquity]:
        """Active, tradable US equities; with `symbols`, only those (a broker without a master list needs them).

        An adapter that can neither list nor look symbols up raises BrokerError naming what to do instead.
        """
        from tbot_bot.errors import BrokerError

        raise BrokerError(f"broker {self.name} cannot list its tradable equities")

    def fee_activities(self, since: date) -> list[FeeActivity]:
        """Fees and refunds the broker posted on or after `since` apart from fills. A broker whose fills carry
        their fees (the sim, IBKR commissions, Tradier) posts none."""
        return []

    def self_check(self) -> CheckResult:
        """Reachable and authorised: the account answers and is active."""
        try:
            account = self.get_account()
        except Exception as exc:  # any failure here means "not ready"; the reason is reported
            where = self.endpoint or self.name
            return CheckResult(
                False,
                f"broker {self.name} at {where} unreachable: {exc}",
                {"broker": self.name},
                cause_of(exc),
            )
        if account.status.upper() != "ACTIVE":
            return CheckResult(
                False, f"broker account status is {account.status}", {"broker": self.name}, REFUSED
            )
        return CheckResult(True, "ok", {"broker": self.name, "account": account.account_id})
