"""Black-Scholes-Merton check on option premiums: blocks a put/call whose quoted premium deviates from its
theoretical value by more than MAX_BSM_DEVIATION (spec "Enhancement Module Activation" §7).

Volatility is the caller's estimate from the underlying's own history (`historical_volatility`), never the
option's implied volatility: an implied volatility backed out of the same quote would always agree with it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from tbot_bot.checks import CheckResult

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

_log = logging.getLogger(__name__)

SECONDS_PER_YEAR = 365.0 * 24 * 3600
US_OPTION_EXPIRY_UTC = time(21, 0)  # 16:00 New York (EST); one hour early in summer is immaterial here
TRADING_DAYS_PER_YEAR = 252
MIN_THEORETICAL_VALUE = 0.01  # below one cent the relative deviation is meaningless: reject


@dataclass(frozen=True, slots=True)
class BsmDecision:
    allowed: bool
    reason: str
    context: dict[str, Any] = field(default_factory=dict)


def bsm_price(
    spot: float,
    strike: float,
    years: float,
    rate: float,
    volatility: float,
    right: str,
    dividend_yield: float = 0.0,
) -> float:
    """Theoretical European value (Merton, continuous dividend yield). right is "C" or "P"."""
    right = right.upper()
    if right not in ("C", "P"):
        raise ValueError(f"right must be 'C' or 'P', got {right!r}")
    if spot <= 0 or strike <= 0:
        raise ValueError(f"spot and strike must be positive (spot={spot}, strike={strike})")
    if years <= 0 or volatility <= 0:
        # at expiry (or with no volatility) the value is the discounted intrinsic value
        fwd = spot * math.exp((rate - dividend_yield) * max(years, 0.0))
        disc = math.exp(-rate * max(years, 0.0))
        return disc * max(fwd - strike, 0.0) if right == "C" else disc * max(strike - fwd, 0.0)
    from scipy.stats import norm  # imported on first use: scipy.stats costs ~2 s and ~60 MB at boot

    sqrt_t = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate - dividend_yield + 0.5 * volatility**2) * years) / (
        volatility * sqrt_t
    )
    d2 = d1 - volatility * sqrt_t
    df_q = math.exp(-dividend_yield * years)
    df_r = math.exp(-rate * years)
    if right == "C":
        return float(spot * df_q * norm.cdf(d1) - strike * df_r * norm.cdf(d2))
    return float(strike * df_r * norm.cdf(-d2) - spot * df_q * norm.cdf(-d1))


def years_to_expiry(now: datetime, expiry: date) -> float:
    """Year fraction from `now` (aware UTC) to the expiry day's close."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    close = datetime.combine(expiry, US_OPTION_EXPIRY_UTC, tzinfo=UTC)
    return max((close - now).total_seconds(), 0.0) / SECONDS_PER_YEAR


def historical_volatility(closes: Sequence[float], periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """Annualised standard deviation of log returns of consecutive closes (daily closes by default)."""
    if len(closes) < 3:
        raise ValueError("historical volatility needs at least three closes")
    rets = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False)]
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    return math.sqrt(var * periods_per_year)


def risk_free_rate(settings: BotSettings, jurisdiction_code: str | None) -> tuple[float, str]:
    """(rate, where it came from)."""
    # RISK_FREE_RATE_SOURCE=dynamic: the rate of JURISDICTION_CODE in RISK_FREE_RATE_TABLE, else RISK_FREE_RATE
    if settings.RISK_FREE_RATE_SOURCE == "dynamic" and jurisdiction_code:
        code = jurisdiction_code.strip().upper()
        if code in settings.RISK_FREE_RATE_TABLE:
            return settings.RISK_FREE_RATE_TABLE[code], f"RISK_FREE_RATE_TABLE[{code}]"
        _log.warning(
            "bsm: jurisdiction %s not in RISK_FREE_RATE_TABLE; using static RISK_FREE_RATE=%s",
            code,
            settings.RISK_FREE_RATE,
        )
        return settings.RISK_FREE_RATE, f"RISK_FREE_RATE (no table entry for {code})"
    return settings.RISK_FREE_RATE, "RISK_FREE_RATE"


class BlackScholesFilter:
    """Allows or blocks one option premium. Only ever blocks; with ENABLE_BSM_FILTER=false it allows all."""

    def __init__(
        self,
        settings: BotSettings,
        jurisdiction_code: str | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.enabled = settings.ENABLE_BSM_FILTER
        self.max_deviation = settings.MAX_BSM_DEVIATION
        self.rate, self.rate_source = risk_free_rate(settings, jurisdiction_code)
        self.jurisdiction_code = jurisdiction_code
        self._log = log or _log

    def check(
        self,
        *,
        symbol: str,
        right: str,
        underlying_price: float,
        strike: float,
        years: float,
        volatility: float,
        market_premium: float,
        dividend_yield: float = 0.0,
    ) -> BsmDecision:
        context: dict[str, Any] = {
            "symbol": symbol,
            "right": right,
            "underlying_price": underlying_price,
            "strike": strike,
            "years_to_expiry": round(years, 6),
            "volatility": volatility,
            "risk_free_rate": self.rate,
            "rate_source": self.rate_source,
            "jurisdiction_code": self.jurisdiction_code,
            "dividend_yield": dividend_yield,
            "market_premium": market_premium,
            "max_deviation": self.max_deviation,
        }
        # ENABLE_BSM_FILTER=false: the filter never blocks
        if not self.enabled:
            return BsmDecision(True, "ENABLE_BSM_FILTER=false", context)
        try:
            theo = bsm_price(underlying_price, strike, years, self.rate, volatility, right, dividend_yield)
        except ValueError as exc:
            return self._reject(f"cannot price option: {exc}", context)
        context["theoretical_value"] = round(theo, 6)
        if market_premium <= 0:
            return self._reject("market premium is not positive", context)
        if theo < MIN_THEORETICAL_VALUE:
            return self._reject(f"theoretical value {theo:.6f} below {MIN_THEORETICAL_VALUE}", context)
        deviation = (market_premium - theo) / theo
        context["deviation"] = round(deviation, 6)
        # MAX_BSM_DEVIATION: over- or under-priced by more than this fraction of theoretical value is blocked
        if abs(deviation) > self.max_deviation:
            side = "over" if deviation > 0 else "under"
            return self._reject(
                f"premium {market_premium:.4f} is {abs(deviation):.1%} {side} theoretical {theo:.4f} "
                f"(MAX_BSM_DEVIATION={self.max_deviation:.1%})",
                context,
            )
        return BsmDecision(True, "within MAX_BSM_DEVIATION", context)

    def _reject(self, reason: str, context: dict[str, Any]) -> BsmDecision:
        self._log.info("bsm_filter rejected %s: %s context=%s", context.get("symbol"), reason, context)
        return BsmDecision(False, reason, context)

    def self_check(self) -> CheckResult:
        """Prices Hull's textbook example (S=42, K=40, r=10%, sigma=20%, T=0.5: call 4.76, put 0.81)."""
        call = bsm_price(42, 40, 0.5, 0.10, 0.20, "C")
        put = bsm_price(42, 40, 0.5, 0.10, 0.20, "P")
        ctx = {"call": round(call, 4), "put": round(put, 4), "rate": self.rate, "enabled": self.enabled}
        if abs(call - 4.7594) > 1e-3 or abs(put - 0.8086) > 1e-3:
            return CheckResult(False, "bsm pricing does not reproduce the textbook values", ctx)
        if not math.isfinite(self.rate):
            return CheckResult(False, "risk-free rate is not a number", ctx)
        return CheckResult(True, "ok", ctx)
