"""Numbers for people on every dashboard page: money in cents, prices in cents (four places under a dollar, where
cents would hide the price), quantities with at most four decimals and no trailing zeros, fractions as percentages
with two decimals, other ratios with two. The files keep their full precision; only what is shown is rounded.

Each function takes whatever a file held (a number, a numeric string, None, junk) and returns text: a value that is
not a finite number is shown as it came (a word such as "unknown" stays), None as "–"."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from tbot_bot.domain.results import DAMAGED_MAGNITUDE, cents, percent_text, price_text


def finite_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a number or numeric string; None for NaN, infinities, magnitudes from 10**18 on,
    booleans and junk."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    # copy_abs and the comparison need no context: abs() of 1e1000000 overflows Decimal's
    return number if number.is_finite() and number.copy_abs() < DAMAGED_MAGNITUDE else None


DASH = "–"
QTY_PLACES = Decimal("0.0001")  # fractional shares: brokers fill to 1/10,000 of a share at most


def _as_is(value: Any) -> str:
    return DASH if value is None or value == "" else str(value)


def money(value: Any) -> str:
    """An amount of money, rounded to the cent: `1234.5` -> `1234.50`."""
    number = finite_decimal(value)
    return _as_is(value) if number is None else f"{cents(number):.2f}"


def price(value: Any) -> str:
    """A price: cents, or four places when it is under a dollar (a cheap option premium): the CLI's rule
    (domain.results.price_text), without the thousands separator of a table cell."""
    number = finite_decimal(value)
    if number is None:
        return _as_is(value)
    return price_text(number).replace(",", "")


def qty(value: Any) -> str:
    """A quantity: whole shares as integers, fractional ones with at most four decimals (`12.11530000` -> `12.1153`)."""
    number = finite_decimal(value)
    if number is None:
        return _as_is(value)
    shown = number.quantize(QTY_PLACES, rounding=ROUND_HALF_EVEN).normalize()
    return f"{shown:f}" if shown != 0 else "0"


def pct(value: Any) -> str:
    """A fraction as a percentage with two decimals: `0.123456` -> `12.35%`."""
    number = finite_decimal(value)
    return _as_is(value) if number is None else percent_text(number)


def ratio(value: Any, places: int = 2) -> str:
    """Any other number (a Sharpe ratio, a profit factor, an objective): `places` decimals."""
    number = finite_decimal(value)
    if number is None:
        return _as_is(value)
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("+-").isdigit()):
        return f"{number:f}"  # a count (trades, bars, sessions) stays whole
    return f"{number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):f}"


FRACTION_KEYS = ("win_rate", "annual_return")
COUNT_KEYS = ("trades", "wins", "losses", "sessions", "max_consecutive_wins", "max_consecutive_losses")
MONEY_WORDS = ("pnl", "drawdown", "equity", "gross_profit", "gross_loss", "expectancy", "avg_win", "avg_loss",
               "fees", "float")  # fmt: skip
_MINUTES = "_minutes"


def metric(key: str, value: Any) -> str:
    """A backtest metric by its name (metrics.json keeps money as exact decimal strings): fractions (`*_pct`,
    win rate, annual return) as percentages, amounts of money in cents, counts whole, minutes with one decimal
    (as the report shows them), other ratios (Sharpe, Sortino, Calmar, profit factor) with two."""
    name = key.lower()
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return _as_is(value)
    if isinstance(value, str) and finite_decimal(value) is None:
        return _as_is(value)  # a word (the strategy, a date, a description)
    if name in COUNT_KEYS:
        return ratio(value, 0)
    if name.endswith("_pct") or name in FRACTION_KEYS:
        return pct(value)
    if name.endswith(_MINUTES):
        return ratio(value, 1)
    if any(word in name for word in MONEY_WORDS):
        return money(value)
    return ratio(value)


FILTERS = {"money": money, "price": price, "qty": qty, "pct": pct, "ratio": ratio}
