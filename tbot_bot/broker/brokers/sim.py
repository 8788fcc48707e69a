"""The simulated paper exchange (DESIGN §9): a real broker adapter over replayed 1-minute bars, driven by a
Clock, with its state in SQLite. Market orders fill at the open of the first bar starting at or after
submission (plus the slippage model); fills are matched lazily on every call, up to clock.now().
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tbot_bot.backtest.slippage import SlippageModel
from tbot_bot.broker.broker_api import (
    Account,
    AssetClass,
    Bar,
    Broker,
    Fill,
    ListedEquity,
    MarketClock,
    OptionContract,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Snapshot,
)
from tbot_bot.broker.brokers.sim_market import (
    DEFAULT_HALF_SPREAD_PCT,
    PRICE_QUANTUM,
    BarIndex,
    from_ns,
    price_decimal,
    quote_around,
    to_ns,
)
from tbot_bot.broker.brokers.sim_store import OrderRow, PositionRow, SimStore
from tbot_bot.broker.capabilities import BrokerCapabilities, capabilities_for
from tbot_bot.domain.vocab import OPTION_MULTIPLIER, OrderSide
from tbot_bot.errors import BrokerError, MarketDataError
from tbot_bot.trading.fees import FeeSchedule

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.domain.clock import Clock
    from tbot_bot.support.path_resolver import BotHome

DEFAULT_STARTING_CASH = Decimal("100000")
QTY_QUANTUM = Decimal("0.0001")


class SimBroker(Broker):
    """Deterministic paper exchange. Test switches: `reject_symbols` (symbol -> reason) and
    `partial_fill_fraction` (first fill takes that fraction, the rest fills on the next bar)."""

    name = "SIM"
    endpoint = "the simulated exchange (in-process)"
    local = True

    def __init__(
        self,
        db_path: Path,
        *,
        clock: Clock,
        bars: pd.DataFrame,
        starting_cash: Decimal | None = None,
        slippage: SlippageModel | None = None,
        seed: int = 0,
        half_spread_pct: Decimal = DEFAULT_HALF_SPREAD_PCT,
        fee_per_share: Decimal = Decimal(0),
        fee_per_order: Decimal = Decimal(0),
        fees: FeeSchedule | None = None,
        partial_fill_fraction: Decimal | None = None,
        reject_symbols: Mapping[str, str] | None = None,
        option_volatility: float = 0.25,
        risk_free_rate: float = 0.045,
        currency: str = "USD",
        account_id: str = "SIM-PAPER",
        capabilities: BrokerCapabilities | None = None,
    ) -> None:
        # trailing-stop orders are not matched here (exits are decided on closes by the strategies), so the
        # declared SIM capabilities are narrowed rather than promising something the matcher does not do
        self.capabilities = capabilities or replace(capabilities_for("SIM"), trailing_stop=False)
        self._clock = clock
        self._index = BarIndex(bars)
        self._slippage = slippage or SlippageModel()
        self._seed = seed
        self.half_spread_pct = Decimal(half_spread_pct)
        # fee_per_share / fee_per_order: shorthand for a FeeSchedule with only those two (tests)
        self.fees = fees or FeeSchedule(per_share=Decimal(fee_per_share), per_order=Decimal(fee_per_order))
        self.partial_fill_fraction = partial_fill_fraction
        self.reject_symbols: dict[str, str] = dict(reject_symbols or {})
        self.option_volatility = option_volatility
        self.risk_free_rate = risk_free_rate
        self._lock = threading.RLock()
        self._store = SimStore(
            db_path,
            starting_cash=DEFAULT_STARTING_CASH if starting_cash is None else Decimal(starting_cash),
            currency=currency,
            account_id=account_id,
        )

    @classmethod
    def from_settings(
        cls,
        settings: BotSettings,
        home: BotHome,
        *,
        clock: Clock,
        bars: pd.DataFrame,
        starting_cash: Decimal | None = None,
        seed: int = 0,
        **kw: Any,
    ) -> SimBroker:
        kw.setdefault("risk_free_rate", settings.RISK_FREE_RATE)
        # SIM_FEE_PROFILE (custom: the SIM_COMMISSION_* / SIM_SEC_FEE_RATE / SIM_FINRA_TAF_* keys): what each fill costs
        kw.setdefault("fees", FeeSchedule.from_settings(settings))
        kw.setdefault("currency", settings.CURRENCY_CODE)
        db_path = kw.pop("db_path", home.state_dir / "sim_exchange.db")
        return cls(
            db_path,
            clock=clock,
            bars=bars,
            starting_cash=starting_cash,
            # ENABLE_SLIPPAGE_MODEL / SLIPPAGE_SIMULATION_TYPE pick how far each fill moves against us
            slippage=SlippageModel.from_settings(settings, seed=seed),
            seed=seed,
            **kw,
        )

    def close(self) -> None:
        self._store.close()

    # ------------------------------------------------------------------ prices
    def _now_ns(self) -> int:
        return to_ns(self._clock.now())

    def _option_price(self, contract: OptionContract, spot: float, at: datetime) -> float:
        # the demo's option market: Black-Scholes at a fixed volatility (no chain, any strike/expiry trades);
        # imported here because scipy is slow to import and most runs never touch options
        from tbot_bot.enhancements.black_scholes_filter import bsm_price, years_to_expiry

        years = years_to_expiry(at, contract.expiry)
        return bsm_price(
            spot, float(contract.strike), years, self.risk_free_rate, self.option_volatility, contract.right
        )

    def _mark(self, symbol: str, underlying: str, option: OptionContract | None) -> Decimal | None:
        i = self._index.last_closed(underlying, self._now_ns())
        if i is None:
            return None
        spot = self._index.close_at(underlying, i)
        if option is not None:
            return price_decimal(self._option_price(option, spot, self._clock.now()))
        return price_decimal(spot)

    def _fill_price(self, o: OrderRow, bar_i: int, fill_id: str) -> Decimal:
        raw = self._index.bar_open(o.underlying, bar_i)
        if o.option is not None:
            raw = self._option_price(o.option, raw, from_ns(self._index.bar_start_ns(o.underlying, bar_i)))
        m = self._slippage
        # one model per fill, seeded from the fill id: the same fill gets the same slippage after a restart
        per_fill = SlippageModel(
            kind=m.kind,
            mean_pct=m.mean_pct,
            stddev_pct=m.stddev_pct,
            seed=zlib.crc32(f"{self._seed}:{fill_id}".encode()),
        )
        return price_decimal(per_fill.adjust(raw, "buy" if o.side is OrderSide.BUY else "sell"))

    # ------------------------------------------------------------------ matching
    def _sync(self) -> None:
        """Fill every open order against the bars that have started by clock.now()."""
        now_ns = self._now_ns()
        for o in self._store.orders(open_only=True):
            while not o.status.is_final:
                after = o.submitted_at if o.last_fill_bar is None else o.last_fill_bar
                start_ns = to_ns(after) + (1 if o.last_fill_bar is not None else 0)
                i = self._index.first_bar_from(o.underlying, start_ns, now_ns)
                if i is None:
                    break
                self._fill(o, i)

    def _fill(self, o: OrderRow, bar_i: int) -> None:
        remaining = o.qty - o.filled_qty
        fill_qty = remaining
        if self.partial_fill_fraction is not None and o.filled_qty == 0:
            part = remaining * self.partial_fill_fraction
            part = part.to_integral_value(ROUND_DOWN) if remaining == remaining.to_integral_value() else part
            part = part.quantize(QTY_QUANTUM, rounding=ROUND_DOWN)
            if 0 < part < remaining:
                fill_qty = part
        n_fills = len(self._store.fills(o.client_order_id))
        fill_id = f"{o.client_order_id}-F{n_fills + 1}"
        price = self._fill_price(o, bar_i, fill_id)
        option = o.asset_class is AssetClass.OPTION
        mult = OPTION_MULTIPLIER if option else 1
        fee = self.fees.fee(
            fill_qty,
            price,
            Decimal(mult),
            sell=o.side is OrderSide.SELL,
            option=option,
            first_fill=n_fills == 0,
        )
        bar_start = from_ns(self._index.bar_start_ns(o.underlying, bar_i))
        fill = Fill(fill_id, fill_qty, price, bar_start, fee)
        signed = fill_qty if o.side is OrderSide.BUY else -fill_qty
        o.filled_qty += fill_qty
        o.last_fill_bar = bar_start
        o.status = OrderStatus.FILLED if o.filled_qty >= o.qty else OrderStatus.PARTIALLY_FILLED
        if o.status is OrderStatus.FILLED:
            o.filled_at = bar_start
        with self._store.transaction() as db:
            self._store.insert_fill(db, o.client_order_id, fill)
            self._store.update_order(db, o)
            self._store.add_cash(db, -signed * price * mult - fee)
            self._store.save_position(db, self._apply(o, signed, price))

    def _apply(self, o: OrderRow, signed: Decimal, price: Decimal) -> PositionRow:
        pos = self._store.position(o.symbol) or PositionRow(
            o.symbol, o.underlying, Decimal(0), Decimal(0), o.asset_class, o.option
        )
        old = pos.qty
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            avg = (abs(old) * pos.avg_entry_price + abs(signed) * price) / abs(new)
        elif abs(signed) <= abs(old):
            avg = pos.avg_entry_price  # reducing keeps the entry price
        else:
            avg = price  # flipped through zero: the remainder opened at this fill
        return replace(pos, qty=new, avg_entry_price=avg.quantize(Decimal("0.000001")))

    # ------------------------------------------------------------------ account
    def _equity_and_exposure(self) -> tuple[Decimal, Decimal, Decimal]:
        _, cash, _ = self._store.account()
        value = Decimal(0)
        gross = Decimal(0)
        for p in self._store.positions():
            mark = self._mark(p.symbol, p.underlying, p.option) or p.avg_entry_price
            mult = OPTION_MULTIPLIER if p.asset_class is AssetClass.OPTION else 1
            value += p.qty * mark * mult
            gross += abs(p.qty * mark * mult)
        return cash, cash + value, gross

    def get_account(self) -> Account:
        with self._lock:
            self._sync()
            account_id, _, currency = self._store.account()
            cash, equity, gross = self._equity_and_exposure()
            # no margin: buying power is the equity not already tied up in positions
            buying_power = max(Decimal(0), equity - gross)
            return Account(
                account_id,
                cash.quantize(PRICE_QUANTUM),
                buying_power.quantize(PRICE_QUANTUM),
                equity.quantize(PRICE_QUANTUM),
                currency,
            )

    def get_clock(self) -> MarketClock:
        now = self._clock.now()
        is_open, next_open, next_close = self._index.session_clock(to_ns(now))
        return MarketClock(
            now,
            is_open,
            from_ns(next_open) if next_open is not None else None,
            from_ns(next_close) if next_close is not None else None,
        )

    def get_positions(self) -> list[Position]:
        with self._lock:
            self._sync()
            return [p.to_position() for p in self._store.positions()]

    # ------------------------------------------------------------------ orders
    def _refusal(self, request: OrderRequest, underlying: str) -> str | None:
        if request.qty <= 0:
            return f"quantity {request.qty} must be positive"
        if request.order_type is not OrderType.MARKET:
            return f"{request.order_type} orders are not supported by the sim exchange"
        if not self._index.has(underlying):
            return f"unknown symbol {underlying}: no bars in the replay data"
        if underlying in self.reject_symbols or request.symbol in self.reject_symbols:
            return self.reject_symbols.get(request.symbol) or self.reject_symbols[underlying]
        if (request.option is not None) != (request.asset_class is AssetClass.OPTION):
            return "an option order needs asset_class=option and a contract, and only an option order has one"
        if request.asset_class is AssetClass.OPTION:
            if not self.capabilities.options or request.option is None:
                return "option order without an option contract, or options not enabled"
            if request.qty != request.qty.to_integral_value():
                return "option quantity must be whole contracts"
            if request.option.expiry < self._clock.now().date():
                return f"option expired on {request.option.expiry}"
        elif request.qty != request.qty.to_integral_value() and not self.capabilities.fractional:
            return "fractional quantity not supported"
        return self._buying_power_refusal(request, underlying)

    def _buying_power_refusal(self, request: OrderRequest, underlying: str) -> str | None:
        symbol = request.option.occ_symbol if request.option else request.symbol
        pos = self._store.position(symbol)
        held = pos.qty if pos else Decimal(0)
        signed = request.qty if request.side is OrderSide.BUY else -request.qty
        opening = abs(held + signed) - abs(held) if (held + signed) * held >= 0 else abs(held + signed)
        if opening <= 0:
            return None
        if request.side is OrderSide.SELL and not self.capabilities.short_sell:
            return "short selling not supported"
        mark = self._mark(symbol, underlying, request.option)
        if mark is None:
            return None  # no price yet (before the first bar): accepted, sized by the caller's own cap
        mult = OPTION_MULTIPLIER if request.option else 1
        _, equity, gross = self._equity_and_exposure()
        needed = opening * mark * mult
        if needed > equity - gross:
            return f"insufficient buying power: needs {needed:.2f}, has {max(Decimal(0), equity - gross):.2f}"
        return None

    def submit_order(self, request: OrderRequest) -> Order:
        with self._lock:
            self._sync()
            existing = self._store.order_by_client_id(request.client_order_id)
            if existing is not None:
                return self._store.to_order(existing)
            underlying = request.option.underlying if request.option else request.symbol
            symbol = request.option.occ_symbol if request.option else request.symbol
            refusal = self._refusal(request, underlying)
            try:
                with self._store.transaction() as db:
                    self._store.insert_order(
                        db,
                        client_order_id=request.client_order_id,
                        symbol=symbol,
                        underlying=underlying,
                        side=request.side,
                        qty=request.qty,
                        order_type=request.order_type,
                        asset_class=request.asset_class,
                        option=request.option,
                        status=OrderStatus.REJECTED if refusal else OrderStatus.ACCEPTED,
                        submitted_at=self._clock.now(),
                        reject_reason=refusal,
                    )
            except sqlite3.IntegrityError:
                pass  # another process inserted the same client_order_id first: return that order
            self._sync()
            row = self._store.order_by_client_id(request.client_order_id)
            if row is None:
                raise BrokerError(f"order {request.client_order_id} vanished from the sim exchange")
            return self._store.to_order(row)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        with self._lock:
            self._sync()
            row = self._store.order_by_client_id(client_order_id)
            return self._store.to_order(row) if row else None

    def list_orders(self, since: datetime | None = None) -> list[Order]:
        with self._lock:
            self._sync()
            return [self._store.to_order(o) for o in self._store.orders(since=since)]

    def cancel_order(self, client_order_id: str) -> None:
        with self._lock:
            self._sync()
            row = self._store.order_by_client_id(client_order_id)
            if row is None:
                raise BrokerError(f"unknown order {client_order_id}", code="not_found")
            if row.status.is_final:
                return  # already filled, rejected or canceled: nothing to cancel
            with self._store.transaction() as db:
                self._store.set_status(db, client_order_id, OrderStatus.CANCELED)

    def cancel_all_orders(self) -> int:
        with self._lock:
            self._sync()
            open_orders = self._store.orders(open_only=True)
            with self._store.transaction() as db:
                for o in open_orders:
                    self._store.set_status(db, o.client_order_id, OrderStatus.CANCELED)
            return len(open_orders)

    def close_position(self, symbol: str, client_order_id: str) -> Order | None:
        with self._lock:
            self._sync()
            existing = self._store.order_by_client_id(client_order_id)
            if existing is not None:
                return self._store.to_order(existing)
            pos = self._store.position(symbol)
            if pos is None:
                return None
            request = OrderRequest(
                client_order_id=client_order_id,
                symbol=pos.underlying if pos.option else symbol,
                side=OrderSide.SELL if pos.qty > 0 else OrderSide.BUY,
                qty=abs(pos.qty),
                asset_class=pos.asset_class,
                option=pos.option,
            )
            return self.submit_order(request)

    # ------------------------------------------------------------------ market data
    def get_latest_quote(self, symbol: str) -> Quote:
        contract = OptionContract.from_occ(symbol)
        underlying = contract.underlying if contract else symbol
        i = self._index.last_closed(underlying, self._now_ns())
        if i is None:
            raise MarketDataError(f"no closed bar for {underlying} before {self._clock.now().isoformat()}")
        mid = self._mark(symbol, underlying, contract)
        if mid is None:
            raise MarketDataError(f"no price for {symbol}")
        bid, ask = quote_around(mid, self.half_spread_pct)
        stamp = from_ns(self._index.bar_start_ns(underlying, i)) + timedelta(minutes=1)
        return Quote(symbol, bid, ask, stamp)

    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        now_ns = self._now_ns()
        out: dict[str, Snapshot] = {}
        for symbol in symbols:
            if self._index.last_closed(symbol, now_ns) is None:
                continue  # unknown or not yet traded: omitted, as live brokers do
            quote = self.get_latest_quote(symbol)
            today_open, prev_close, prev_volume = self._index.daily_view(symbol, now_ns)
            out[symbol] = Snapshot(
                symbol=symbol,
                price=quote.mid,
                today_open=price_decimal(today_open) if today_open is not None else None,
                prev_close=price_decimal(prev_close) if prev_close is not None else None,
                prev_volume=prev_volume,
                quote=quote,
            )
        return out

    def get_bars(self, symbols: list[str], start: datetime, end: datetime) -> dict[str, list[Bar]]:
        now_ns = self._now_ns()
        return {s: self._index.bars(s, to_ns(start), to_ns(end), now_ns) for s in symbols}

    def list_equities(self, symbols: list[str] | None = None) -> list[ListedEquity]:
        """Every symbol the replay data holds (the simulated exchange lists nothing else)."""
        held = sorted(self._index.symbols)
        wanted = {s.upper() for s in symbols} if symbols is not None else None
        return [ListedEquity(s, "SIM") for s in held if wanted is None or s in wanted]
