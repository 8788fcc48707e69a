"""The commission and fee model of the simulated exchange AND the backtest / optimizer, one formula for all three,
so paper books and backtests carry the fees of the broker the home trades with.

`SIM_FEE_PROFILE` picks the schedule (`schedule_for`): `alpaca`, `ibkr_fixed`, `ibkr_tiered` and `tradier` are
the brokers' published US equity and option schedules (sources and the dates of their rates in
support/architecture.md, "Fee profiles (issue 21)"); `custom` builds one from the `SIM_COMMISSION_*`,
`SIM_SEC_FEE_RATE` and `SIM_FINRA_TAF_*` keys.

Per fill: commission = per_share x units + pct x notional (+ per_order, lifted to the minimum, on an order's first
fill), capped at a share of the notional where the broker caps it, plus per-share clearing and a pass-through
share of the commission where the broker adds them; regulatory fees only on equity sells (SEC Section 31 fee on
proceeds and FINRA TAF per share with a cap, each rounded up to the cent as the regulators do). Amounts are
Decimal, quantized to 1/10,000 (the ledger's precision). Pure: no broker, no ledger (sim.py,
backtest/execution.py, backtest/fast_execution.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from tbot_bot.trading.risk_bot import weights_for

_CENT = Decimal("0.01")
_MINOR = Decimal("0.0001")
ZERO = Decimal(0)
D = Decimal


class FeeProfile(StrEnum):
    ALPACA = "alpaca"
    IBKR_FIXED = "ibkr_fixed"
    IBKR_TIERED = "ibkr_tiered"
    TRADIER = "tradier"
    CUSTOM = "custom"


# the profile a freshly provisioned home gets for its broker (a sim home: Alpaca's, since the owner's sizing,
# orders of $100-$200, is built for commission-free trading)
PROFILE_OF_BROKER = {
    "ALPACA": FeeProfile.ALPACA,
    "IBKR": FeeProfile.IBKR_FIXED,
    "TRADIER": FeeProfile.TRADIER,
    "SIM": FeeProfile.ALPACA,
}

# `tbot check` and a backtest warn when the smallest order's round trip costs more than this share of it
FEE_WARN_SHARE = D("0.005")


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    per_share: Decimal = ZERO  # per share (and per option contract when option_per_contract is None)
    per_order: Decimal = ZERO  # once per order
    minimum: Decimal = ZERO  # least commission per order (charged with the first fill)
    pct_notional: Decimal = ZERO  # fraction of notional, e.g. 0.0005 = 5 bp
    max_pct_notional: Decimal = (
        ZERO  # equity commission at most this fraction of the fill's notional (0 = none)
    )
    clearing_per_share: Decimal = ZERO  # per equity share, outside the minimum and the cap
    pass_through_pct: Decimal = (
        ZERO  # fraction of the equity commission added on top (exchange pass-through fees)
    )
    option_per_contract: Decimal | None = None  # None: per_share applies to contracts too
    option_low_premium: tuple[tuple[Decimal, Decimal], ...] = ()  # (premium below, per contract), ascending
    option_minimum: Decimal | None = None  # None: minimum applies to option orders too
    sec_fee_rate: Decimal = ZERO  # fraction of equity sell proceeds (SEC Section 31)
    taf_per_share: Decimal = ZERO  # FINRA Trading Activity Fee per share sold
    taf_max: Decimal = ZERO  # TAF cap per trade (0 = no cap)

    @classmethod
    def from_settings(cls, settings: Any) -> FeeSchedule:
        """The schedule in force for these settings (SIM_FEE_PROFILE)."""
        return schedule_for(settings)

    @classmethod
    def from_custom_keys(cls, settings: Any) -> FeeSchedule:
        return cls(
            per_share=D(settings.SIM_COMMISSION_PER_SHARE),
            per_order=D(settings.SIM_COMMISSION_PER_ORDER),
            minimum=D(settings.SIM_COMMISSION_MIN),
            pct_notional=D(settings.SIM_COMMISSION_PCT),
            sec_fee_rate=D(settings.SIM_SEC_FEE_RATE),
            taf_per_share=D(settings.SIM_FINRA_TAF_PER_SHARE),
            taf_max=D(settings.SIM_FINRA_TAF_MAX),
        )

    def _option_rate(self, premium: Decimal) -> Decimal:
        if self.option_per_contract is None:
            return self.per_share
        for below, rate in self.option_low_premium:
            if premium < below:
                return rate
        return self.option_per_contract

    def commission(
        self,
        units: Decimal,
        notional: Decimal,
        *,
        first_fill: bool,
        option: bool = False,
        premium: Decimal = ZERO,
    ) -> Decimal:
        """Broker commission of one fill (with clearing and pass-through fees where the broker adds them)."""
        if option:
            c = self._option_rate(premium) * units + self.pct_notional * notional
            if first_fill:
                least = self.minimum if self.option_minimum is None else self.option_minimum
                c = max(c + self.per_order, least)
            return c.quantize(_MINOR, rounding=ROUND_HALF_EVEN)
        c = self.per_share * units + self.pct_notional * notional
        if first_fill:
            c = max(c + self.per_order, self.minimum)
        if self.max_pct_notional > 0:
            c = min(c, self.max_pct_notional * notional)
        c += c * self.pass_through_pct + self.clearing_per_share * units
        return c.quantize(_MINOR, rounding=ROUND_HALF_EVEN)

    def regulatory(self, units: Decimal, proceeds: Decimal, *, sell: bool, option: bool) -> Decimal:
        if not sell or option:
            return ZERO
        sec = (self.sec_fee_rate * proceeds).quantize(_CENT, rounding=ROUND_CEILING)
        taf = self.taf_per_share * units
        # SIM_FINRA_TAF_MAX (or the fee profile's cap, taf_max): the TAF per trade is capped; 0 means no cap
        if self.taf_max > 0:
            taf = min(taf, self.taf_max)
        return sec + taf.quantize(_CENT, rounding=ROUND_CEILING)

    def fee(
        self,
        units: Decimal,
        price: Decimal,
        multiplier: Decimal,
        *,
        sell: bool,
        option: bool,
        first_fill: bool,
    ) -> Decimal:
        """Total fee of one fill (commission + regulatory), 1/10,000 precision."""
        notional = units * price * multiplier
        commission = self.commission(units, notional, first_fill=first_fill, option=option, premium=price)
        return commission + self.regulatory(units, notional, sell=sell, option=option)

    def round_trip(self, qty: Decimal, entry_price: Decimal, exit_price: Decimal, *, short: bool) -> Decimal:
        """Fees of one backtest trade: an entry order and an exit order, each filled at once (first fill).
        A long buys then sells; a short sale sells then buys back (the entry sale pays the regulatory fees)."""
        one = D(1)
        entry = self.fee(qty, entry_price, one, sell=short, option=False, first_fill=True)
        exit_ = self.fee(qty, exit_price, one, sell=not short, option=False, first_fill=True)
        return entry + exit_


# US regulatory fees on equity sells, as Alpaca and IBKR publish them (see architecture.md for the dates):
# SEC Section 31 $27.80 per $1,000,000 of proceeds; FINRA TAF $0.000166 per share sold, at most $8.30 a trade
_REGULATORY = FeeSchedule(sec_fee_rate=D("0.0000278"), taf_per_share=D("0.000166"), taf_max=D("8.30"))
# IBKR US options, Fixed and Tiered (<= 10,000 contracts a month): $0.65 a contract, $0.50 below a $0.10
# premium, $0.25 below $0.05, at least $1.00 an order
_IBKR = replace(
    _REGULATORY,
    option_per_contract=D("0.65"),
    option_low_premium=((D("0.05"), D("0.25")), (D("0.10"), D("0.50"))),
    option_minimum=D("1.00"),
)

PROFILES: dict[FeeProfile, FeeSchedule] = {
    # Alpaca: no commission on US stocks, ETFs or options; SEC fee and FINRA TAF on sells
    FeeProfile.ALPACA: replace(_REGULATORY, option_per_contract=ZERO, option_minimum=ZERO),
    # IBKR Pro Fixed: $0.005 a share, at least $1.00, at most 1% of the trade value; SEC fee and TAF passed on
    FeeProfile.IBKR_FIXED: replace(
        _IBKR, per_share=D("0.005"), minimum=D("1.00"), max_pct_notional=D("0.01")
    ),
    # IBKR Pro Tiered, first tier (<= 300,000 shares a month): $0.0035 a share, at least $0.35, at most 1% of the
    # trade value; plus NSCC/DTC clearing $0.0002 a share and the NYSE (0.000175) and FINRA (0.000563)
    # pass-through fees on the commission; exchange fees (venue- and liquidity-dependent) are not modelled
    FeeProfile.IBKR_TIERED: replace(
        _IBKR,
        per_share=D("0.0035"),
        minimum=D("0.35"),
        max_pct_notional=D("0.01"),
        clearing_per_share=D("0.0002"),
        pass_through_pct=D("0.000738"),
    ),
    # Tradier: no commission on US stocks and ETFs; options $0.35 a contract; SEC fee and TAF on sells
    FeeProfile.TRADIER: replace(_REGULATORY, option_per_contract=D("0.35"), option_minimum=ZERO),
}


def profile_of(settings: Any) -> FeeProfile:
    return FeeProfile(settings.SIM_FEE_PROFILE)


def schedule_for(settings: Any) -> FeeSchedule:
    """The fee schedule the sim, the backtest and the optimizer charge for these settings."""
    profile = profile_of(settings)
    # SIM_FEE_PROFILE=custom: the SIM_COMMISSION_* / SIM_SEC_FEE_RATE / SIM_FINRA_TAF_* keys; else a broker's schedule
    if profile is FeeProfile.CUSTOM:
        return FeeSchedule.from_custom_keys(settings)
    return PROFILES[profile]


def describe_profile(settings: Any) -> str:
    """One line naming the fee profile in force, for `tbot check`, backtests and reports."""
    profile = profile_of(settings)
    text = {
        FeeProfile.ALPACA: "Alpaca: no commission; SEC fee + FINRA TAF on sells",
        FeeProfile.IBKR_FIXED: "IBKR Fixed: $0.005/share, min $1.00, max 1% of value; SEC fee + FINRA TAF on sells",
        FeeProfile.IBKR_TIERED: (
            "IBKR Tiered: $0.0035/share, min $0.35, max 1% of value, + clearing and pass-through; "
            "SEC fee + FINRA TAF on sells"
        ),
        FeeProfile.TRADIER: "Tradier: no stock commission, options $0.35/contract; SEC fee + FINRA TAF on sells",
    }
    # SIM_FEE_PROFILE=custom: name the keys' values that build the schedule
    if profile is FeeProfile.CUSTOM:
        s = settings
        return (
            f"SIM_FEE_PROFILE=custom: {s.SIM_COMMISSION_PER_SHARE}/share, {s.SIM_COMMISSION_PER_ORDER}/order, "
            f"min {s.SIM_COMMISSION_MIN}, {s.SIM_COMMISSION_PCT} of notional; SEC {s.SIM_SEC_FEE_RATE}, "
            f"TAF {s.SIM_FINRA_TAF_PER_SHARE}/share (max {s.SIM_FINRA_TAF_MAX}) on sells"
        )
    return f"SIM_FEE_PROFILE={profile}: {text[profile]}"


@dataclass(frozen=True, slots=True)
class FeeBurden:
    """The expected fees of the smallest trade the sizing makes (its entry and exit orders)."""

    notional: Decimal
    qty: Decimal
    price: Decimal
    fees: Decimal

    @property
    def share(self) -> Decimal:
        return self.fees / self.notional if self.notional > 0 else ZERO


def smallest_trade_burden(settings: Any, broker_current_float: Decimal, *, fractional: bool) -> FeeBurden:
    """Round-trip fees of the smallest order the sizing makes: float x TOTAL_ALLOCATION x the smallest slot
    weight (capped by MAX_RISK_PER_TRADE), bought and sold at MIN_PRICE (the most shares per dollar)."""
    cap = broker_current_float * D(settings.TOTAL_ALLOCATION)
    weight = min(weights_for(settings.MAX_TRADES, settings.WEIGHTS), default=D(1))
    notional = min(cap * weight, broker_current_float * D(settings.MAX_RISK_PER_TRADE))
    price = D(settings.MIN_PRICE)
    qty = notional / price
    qty = (
        qty.quantize(D("0.000001"), rounding=ROUND_DOWN) if fractional else qty.to_integral_value(ROUND_DOWN)
    )
    if qty <= 0:
        return FeeBurden(notional, ZERO, price, ZERO)
    traded = qty * price
    fees = schedule_for(settings).round_trip(qty, price, price, short=False)
    return FeeBurden(traded, qty, price, fees)


def fee_warning(settings: Any, broker_current_float: Decimal, *, fractional: bool) -> str | None:
    """A warning when the smallest trade's expected fees exceed FEE_WARN_SHARE of its notional, naming the keys
    that fix it; None when they do not."""
    b = smallest_trade_burden(settings, broker_current_float, fractional=fractional)
    if b.qty <= 0 or b.share <= FEE_WARN_SHARE:
        return None
    return (
        f"fees: the smallest order ({b.qty.normalize():f} x {b.price} = {b.notional:,.2f}) pays an expected "
        f"{b.fees:.2f} in fees buying and selling, {b.share:.2%} of its notional (more than "
        f"{FEE_WARN_SHARE:.1%}); pick a cheaper SIM_FEE_PROFILE (e.g. alpaca) or, with SIM_FEE_PROFILE=custom, "
        "lower SIM_COMMISSION_MIN / SIM_COMMISSION_PER_ORDER / SIM_COMMISSION_PER_SHARE, or make orders larger "
        "(TOTAL_ALLOCATION, WEIGHTS, MAX_TRADES, MAX_RISK_PER_TRADE)"
    )
