"""One PnL and one win (DESIGN §6): a trade's result is net of its fees, a win is net > 0, and money shown to
people is rounded to cents. Every surface (status, CLI, dashboard, summaries, backtests, optimizer, tuning
tracker) asks these functions; the ledger and its exports keep their exact decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
# the largest float a bot is given: the ledger keeps amounts as 64-bit integers of 1/10,000 (room for 9.2 * 10**14),
# so every sum a day makes of it still fits; provisioning and --float of a backtest or study accept up to this
FLOAT_MAX = Decimal(10) ** 12
# no figure the bot writes comes near this (the ledger holds at most 9.2 * 10**14): a number this large in a file
# people read is damage, and rounding it to cents would pass Decimal's 28 digits
DAMAGED_MAGNITUDE = Decimal(10) ** 18


def net_pnl(gross: Decimal, fees: Decimal) -> Decimal:
    """The result a person reads: realised PnL after commission and regulatory fees."""
    return gross - fees


def closed_result(gross: Decimal | None, fees: Decimal | None, exit_time: object) -> Decimal | None:
    """A trade's result (net of its fees) once it is wholly closed (`exit_time`: when its last share was sold);
    None while it is open or partly sold (its money counts, it is no win or loss yet)."""
    return net_pnl(gross, fees or Decimal(0)) if gross is not None and exit_time else None


def is_win(net: Decimal | float | None) -> bool:
    return net is not None and net > 0


def is_loss(net: Decimal | float | None) -> bool:
    return net is not None and net < 0


def cents(amount: Decimal) -> Decimal:
    """Money for people: rounded half-to-even to the cent (what reports and screens show)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def cents_text(amount: Decimal) -> str:
    """Money as a person reads it: cents (half-to-even), thousands separated: `Decimal("-10605.005")` ->
    `-10,605.00`."""
    return f"{cents(amount):,}"


SUB_DOLLAR_PLACES = Decimal("0.0001")


def price_text(price: Decimal) -> str:
    """A price as a person reads it: cents, or four places under a dollar (a cheap option premium, whose cents
    would hide the move a trade's PnL comes from): `Decimal("0.0525")` -> `0.0525`, `Decimal("101.4")` -> `101.40`."""
    if abs(price) < 1:
        return f"{price.quantize(SUB_DOLLAR_PLACES, rounding=ROUND_HALF_EVEN):f}"
    return cents_text(price)


def percent_text(fraction: Decimal | float) -> str:
    """A fraction as a person reads it: a percentage with two decimals (half-to-even): `0.123456` -> `12.35%`."""
    number = fraction if isinstance(fraction, Decimal) else Decimal(str(fraction))
    return f"{(number * 100).quantize(CENT, rounding=ROUND_HALF_EVEN):f}%"
