"""Closing-auction imbalance gate for the CLOSE strategy on IBKR: blocks a trade whose direction a strong
opposing auction imbalance works against, in the last 30 minutes before the session close (spec: 20:30-21:00 UTC).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tbot_bot.checks import REFUSED, CheckResult
from tbot_bot.domain.vocab import PositionSide
from tbot_bot.errors import NetworkError

if TYPE_CHECKING:
    from tbot_bot.broker.brokers.ibkr_market import AuctionImbalance
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.domain.clock import Clock

_log = logging.getLogger(__name__)

WINDOW_BEFORE_CLOSE = timedelta(minutes=30)
STRONG_IMBALANCE_RATIO = 0.25  # unmatched shares / paired auction shares at or above this is "strong"
STRONG_IMBALANCE_SHARES = 50_000  # ... and at least this many unmatched shares


def inactive_reason(settings: BotSettings, day: date) -> str | None:
    """Why the gate cannot act on `day` for this configuration: CLOSE's entries end before the last
    WINDOW_BEFORE_CLOSE of the session, where the closing auction's imbalance is published (None: it can act,
    or it is not this bot's: another broker, CLOSE off, no session)."""
    from tbot_bot.market_time import both_times, exchange_zone, window_for

    # BROKER_NAME=IBKR and CLOSE enabled: the only configuration in which the gate is consulted
    if settings.BROKER_NAME != "IBKR" or not settings.strategy_enabled("close"):
        return None
    w = window_for("close", day, settings)
    if not w.fits or w.session_close is None:
        return None
    opens = w.session_close - WINDOW_BEFORE_CLOSE
    if w.breakout_end > opens:
        return None
    zone = exchange_zone(settings.MARKET_CALENDAR)
    return (
        f"the closing-auction imbalance gate cannot act on {day}: CLOSE enters from {both_times(w.breakout_start, zone)} "
        f"to {both_times(w.breakout_end, zone)}, before the imbalance is published (from {both_times(opens, zone)}); "
        "a later START_TIME_CLOSE lets it act"
    )


@runtime_checkable
class ImbalanceSource(Protocol):
    def get_auction_imbalance(self, symbol: str) -> AuctionImbalance | None: ...


@dataclass(frozen=True, slots=True)
class ImbalanceDecision:
    allowed: bool
    reason: str
    context: dict[str, Any] = field(default_factory=dict)


class ImbalanceScanner:
    """Only ever blocks; outside its window, off IBKR or without data it allows (spec: fail to core logic)."""

    def __init__(
        self,
        settings: BotSettings,
        source: ImbalanceSource | None,
        clock: Clock,
        *,
        min_ratio: float = STRONG_IMBALANCE_RATIO,
        min_shares: float = STRONG_IMBALANCE_SHARES,
        log: logging.Logger | None = None,
    ) -> None:
        # BROKER_NAME=IBKR: only IB publishes auction imbalance data to us; elsewhere the gate is inert
        self.active = settings.BROKER_NAME == "IBKR" and source is not None
        self.source = source
        self.clock = clock
        self.calendar = settings.MARKET_CALENDAR
        self.min_ratio, self.min_shares = min_ratio, min_shares
        self._log = log or _log

    def in_window(self, now: datetime) -> bool:
        from tbot_bot.market_time import session_bounds

        bounds = session_bounds(now.date(), self.calendar)
        if bounds is None:
            return False
        close = bounds[1]
        return close - WINDOW_BEFORE_CLOSE <= now < close

    def check(
        self, strategy: str, symbol: str, direction: PositionSide, now: datetime | None = None
    ) -> ImbalanceDecision:
        """direction is the signal's ("long" or "short") on the signal ticker `symbol`."""
        now = now or self.clock.now()
        ctx: dict[str, Any] = {
            "strategy": strategy,
            "symbol": symbol,
            "direction": direction,
            "at": now.isoformat(),
        }
        # BROKER_NAME=IBKR (self.active): only IB publishes closing imbalances; other brokers' entries pass
        if strategy != "close" or not self.active or self.source is None:
            return ImbalanceDecision(True, "not applicable", ctx)
        if not self.in_window(now):
            return ImbalanceDecision(True, "outside the closing-auction window", ctx)
        try:
            reading = self.source.get_auction_imbalance(symbol)
        except NetworkError as e:
            self._log.warning("imbalance_scanner: no data for %s (%s); trade allowed", symbol, e)
            return ImbalanceDecision(True, f"imbalance data unavailable: {e}", ctx)
        if reading is None:
            self._log.warning("imbalance_scanner: IB sent no imbalance for %s; trade allowed", symbol)
            return ImbalanceDecision(True, "no imbalance published", ctx)
        ratio = abs(reading.imbalance) / reading.paired_volume if reading.paired_volume > 0 else float("inf")
        ctx.update(
            imbalance=reading.imbalance,
            paired_volume=reading.paired_volume,
            ratio=round(ratio, 4) if ratio != float("inf") else "inf",
            min_ratio=self.min_ratio,
            min_shares=self.min_shares,
            auction_price=reading.price,
        )
        opposing = (direction == "long" and reading.imbalance < 0) or (
            direction == "short" and reading.imbalance > 0
        )
        strong = abs(reading.imbalance) >= self.min_shares and ratio >= self.min_ratio
        if opposing and strong:
            side = "sell" if reading.imbalance < 0 else "buy"
            reason = f"strong {side} imbalance {reading.imbalance:,.0f} shares ({ctx['ratio']} of paired) against a {direction}"
            self._log.info("imbalance_scanner rejected %s: %s context=%s", symbol, reason, ctx)
            return ImbalanceDecision(False, reason, ctx)
        return ImbalanceDecision(True, "no strong opposing imbalance", ctx)

    def self_check(self) -> CheckResult:
        ctx = {"active": self.active, "min_ratio": self.min_ratio, "min_shares": self.min_shares}
        if self.min_ratio <= 0 or self.min_shares < 0:
            return CheckResult(False, "imbalance thresholds must be positive", ctx, REFUSED)
        return CheckResult(True, "ok" if self.active else "inactive (broker is not IBKR)", ctx)
