"""The commission and fee model of the simulated exchange AND the backtest / optimizer (`.env_bot` SIM_* keys),
one formula for all three, so paper books and backtests carry the same fees as a real broker's: per share, per order, a minimum per order, a percent of notional, and the US regulatory fees on
sells (SEC Section 31 fee on proceeds, FINRA TAF per share with a cap).

Per fill: commission = per_share x units + pct x notional (+ per_order, lifted to the minimum, on an order's first
fill); regulatory fees only on equity sells (each rounded up to the cent as the regulators do). Amounts are Decimal,
quantized to 1/10,000 (the ledger's precision). Pure: no broker, no ledger (sim.py, backtest/execution.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any

_CENT = Decimal("0.01")
_MINOR = Decimal("0.0001")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    per_share: Decimal = ZERO  # per share or option contract
    per_order: Decimal = ZERO  # once per order
    minimum: Decimal = ZERO  # least commission per order (charged with the first fill)
    pct_notional: Decimal = ZERO  # fraction of notional, e.g. 0.0005 = 5 bp
    sec_fee_rate: Decimal = ZERO  # fraction of equity sell proceeds (SEC Section 31)
    taf_per_share: Decimal = ZERO  # FINRA Trading Activity Fee per share sold
    taf_max: Decimal = ZERO  # TAF cap per trade (0 = no cap)

    @classmethod
    def from_settings(cls, settings: Any) -> FeeSchedule:
        return cls(
            per_share=Decimal(settings.SIM_COMMISSION_PER_SHARE),
            per_order=Decimal(settings.SIM_COMMISSION_PER_ORDER),
            minimum=Decimal(settings.SIM_COMMISSION_MIN),
            pct_notional=Decimal(settings.SIM_COMMISSION_PCT),
            sec_fee_rate=Decimal(settings.SIM_SEC_FEE_RATE),
            taf_per_share=Decimal(settings.SIM_FINRA_TAF_PER_SHARE),
            taf_max=Decimal(settings.SIM_FINRA_TAF_MAX),
        )

    def commission(self, units: Decimal, notional: Decimal, *, first_fill: bool) -> Decimal:
        c = self.per_share * units + self.pct_notional * notional
        if first_fill:
            c = max(c + self.per_order, self.minimum)
        return c.quantize(_MINOR, rounding=ROUND_HALF_EVEN)

    def regulatory(self, units: Decimal, proceeds: Decimal, *, sell: bool, option: bool) -> Decimal:
        if not sell or option:
            return ZERO
        sec = (self.sec_fee_rate * proceeds).quantize(_CENT, rounding=ROUND_CEILING)
        taf = self.taf_per_share * units
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
        return self.commission(units, notional, first_fill=first_fill) + self.regulatory(
            units, notional, sell=sell, option=option
        )

    def round_trip(self, qty: Decimal, entry_price: Decimal, exit_price: Decimal, *, short: bool) -> Decimal:
        """Fees of one backtest trade: an entry order and an exit order, each filled at once (first fill).
        A long buys then sells; a short sale sells then buys back (the entry sale pays the regulatory fees)."""
        one = Decimal(1)
        entry = self.fee(qty, entry_price, one, sell=short, option=False, first_fill=True)
        exit_ = self.fee(qty, exit_price, one, sell=not short, option=False, first_fill=True)
        return entry + exit_
