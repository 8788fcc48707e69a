"""Candidate selection (DESIGN §7): broker snapshots against the price, volume, gap and spread limits, market
cap per strategy and the fundamentals guard from Finnhub (or the bundled file). Every rejection has a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tbot_bot.enhancements.finnhub_fundamental_guard import FundamentalGuard
from tbot_bot.screeners.fundamentals import FundamentalsLookup

if TYPE_CHECKING:
    from tbot_bot.broker.broker_api import Broker, Snapshot
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.domain.clock import Clock
    from tbot_bot.screeners.fundamentals import Fundamentals, FundamentalsProvider

_log = logging.getLogger(__name__)
FUNDAMENTALS_PER_CALL = 100  # symbols per fundamentals call: under two minutes at 60 calls a minute

# The owner's whitelist (spec "Inverse ETF" section); strategy_meta.py is its home once it exists.
_SPEC_INVERSE_ETF_TOP20 = (
    "SQQQ", "SPXU", "UVXY", "SDOW", "SRTY", "SH", "PSQ", "DOG", "TBF", "TBT",
    "TMV", "FAZ", "ERY", "REK", "DRIP", "YANG", "MYY", "RWM", "QID", "DXD",
)  # fmt: skip


def inverse_etf_whitelist() -> frozenset[str]:
    """INVERSE_ETF_TOP20 from strategy_meta when present, else the spec's list."""
    try:
        from tbot_bot.strategy.strategy_meta import INVERSE_ETF_TOP20
    except ImportError:
        return frozenset(_SPEC_INVERSE_ETF_TOP20)
    return frozenset(str(s).upper() for s in INVERSE_ETF_TOP20)


@dataclass(frozen=True, slots=True)
class Candidate:
    symbol: str
    price: Decimal
    prev_volume: int
    gap_pct: float
    spread_pct: float
    market_cap: Decimal | None
    is_inverse_etf: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str
    filter: str  # the .env_bot key (or check) that rejected it
    reason: str


@dataclass(slots=True)
class ScreenResult:
    strategy: str
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    fundamentals_outage: str | None = None  # the fundamentals source stopped answering: every equity refused

    @property
    def symbols(self) -> list[str]:
        return [c.symbol for c in self.candidates]

    def rejection_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.rejections:
            counts[r.filter] = counts.get(r.filter, 0) + 1
        return counts


def fundamentals_rejection(
    settings: BotSettings,
    guard: FundamentalGuard,
    strategy: str,
    symbol: str,
    fundamentals: Fundamentals | None,
    missing_reason: str,
) -> Rejection | None:
    """An equity's fundamentals screens (the live screener and the backtest): fundamentals known, market cap
    known and inside MIN/MAX_MARKET_CAP_X, then the fundamentals guard. None = it passes."""
    up = strategy.upper()
    if fundamentals is None:
        return Rejection(symbol, "fundamentals", missing_reason)
    cap = fundamentals.market_cap
    if cap is None:
        return Rejection(symbol, f"MIN_MARKET_CAP_{up}", "market cap unknown")
    lo = Decimal(getattr(settings, f"MIN_MARKET_CAP_{up}"))
    hi = Decimal(getattr(settings, f"MAX_MARKET_CAP_{up}"))
    # MIN/MAX_MARKET_CAP_X: an equity's market cap must lie inside the strategy's range
    if not lo <= cap <= hi:
        key = f"MIN_MARKET_CAP_{up}" if cap < lo else f"MAX_MARKET_CAP_{up}"
        return Rejection(symbol, key, f"market cap {cap:,.0f} outside [{lo:,.0f}, {hi:,.0f}]")
    decision = guard.check(fundamentals)
    if not decision.allowed:
        return Rejection(symbol, "ENABLE_FUNNHUB_FUNDAMENTALS_FILTER", decision.reason)
    return None


class Screener:
    def __init__(
        self,
        settings: BotSettings,
        broker: Broker,
        fundamentals_provider: FundamentalsProvider,
        clock: Clock,
        *,
        guard: FundamentalGuard | None = None,
        log: logging.Logger | None = None,
        prev_volumes: Mapping[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.fundamentals = fundamentals_provider
        self.clock = clock
        self.guard = guard or FundamentalGuard(settings, log=log)
        self._log = log or _log
        self.prev_volumes = dict(prev_volumes or {})  # from the boot warm-up: used when a snapshot has none

    def screen(self, strategy: str, universe: Sequence[str], now: datetime | None = None) -> ScreenResult:
        """Equities (and any whitelisted inverse ETF that appears in the universe, screened as an ETF)."""
        return self._screen(strategy, universe, now, etf_only=False)

    def screen_inverse_etfs(
        self, strategy: str, symbols: Sequence[str], now: datetime | None = None
    ) -> ScreenResult:
        """Inverse ETFs for bearish signals: only INVERSE_ETF_TOP20, price/volume/spread filters only."""
        return self._screen(strategy, symbols, now, etf_only=True)

    def _screen(
        self, strategy: str, universe: Sequence[str], now: datetime | None, *, etf_only: bool
    ) -> ScreenResult:
        strategy = strategy.lower()
        if strategy not in ("open", "mid", "close"):
            raise ValueError(f"unknown strategy {strategy!r}")
        now = now or self.clock.now()
        result = ScreenResult(strategy)
        symbols = list(dict.fromkeys(s.strip().upper() for s in universe if s.strip()))
        whitelist = inverse_etf_whitelist()
        if etf_only:
            for sym in [s for s in symbols if s not in whitelist]:
                result.rejections.append(
                    Rejection(sym, "INVERSE_ETF_TOP20", "not in the inverse ETF whitelist")
                )
            symbols = [s for s in symbols if s in whitelist]
        snapshots = self.broker.get_snapshots(symbols) if symbols else {}

        passed: list[Candidate] = []
        for sym in symbols:
            is_etf = sym in whitelist
            snap = snapshots.get(sym)
            if snap is None:
                result.rejections.append(Rejection(sym, "snapshot", "broker returned no snapshot"))
                continue
            rejection, candidate = self._market_filters(strategy, snap, is_etf)
            if rejection is not None:
                result.rejections.append(rejection)
            elif candidate is not None:
                passed.append(candidate)

        equities = [c.symbol for c in passed if not c.is_inverse_etf]
        lookup = self._fundamentals(equities, now) if equities else None
        result.fundamentals_outage = lookup.outage if lookup is not None else None
        for cand in passed:
            # DESIGN §7: inverse ETFs pass price, volume and spread filters, not market cap or fundamentals
            if cand.is_inverse_etf or lookup is None:
                result.candidates.append(cand)
                continue
            fundamentals = lookup.found.get(cand.symbol)
            rejection = fundamentals_rejection(
                self.settings, self.guard, strategy, cand.symbol, fundamentals,
                lookup.errors.get(cand.symbol, "fundamentals unavailable"),
            )  # fmt: skip
            if rejection is not None or fundamentals is None:
                result.rejections.append(rejection or Rejection(cand.symbol, "fundamentals", "unavailable"))
                continue
            result.candidates.append(
                Candidate(
                    cand.symbol,
                    cand.price,
                    cand.prev_volume,
                    cand.gap_pct,
                    cand.spread_pct,
                    fundamentals.market_cap,
                    False,
                )
            )
        for r in result.rejections:
            self._log.info("screener %s rejected %s [%s]: %s", strategy, r.symbol, r.filter, r.reason)
        self._log.info(
            "screener %s: %d candidates, %d rejected %s",
            strategy,
            len(result.candidates),
            len(result.rejections),
            result.rejection_counts(),
        )
        return result

    def _fundamentals(self, symbols: list[str], now: datetime) -> FundamentalsLookup:
        """The fundamentals of `symbols`, asked in parts: each part is one call (the keep-alive waits up to 15
        minutes for one) and is cached as it ends, so a first screen of a thousand symbols at Finnhub's 60 calls a
        minute neither outlasts the watchdog nor starts again from nothing after a restart."""
        out = FundamentalsLookup()
        for i in range(0, len(symbols), FUNDAMENTALS_PER_CALL):
            part = symbols[i : i + FUNDAMENTALS_PER_CALL]
            # after an outage the provider serves what it cached and asks nothing more (FinnhubFundamentals)
            got = self.fundamentals.get(part, now.date())
            out.found.update(got.found)
            out.errors.update(got.errors)
        return out

    def _market_filters(
        self, strategy: str, snap: Snapshot, is_etf: bool
    ) -> tuple[Rejection | None, Candidate | None]:
        sym = snap.symbol.upper()
        if snap.prev_volume is None and sym in self.prev_volumes:
            snap = replace(snap, prev_volume=self.prev_volumes[sym])
        return market_filters(self.settings, strategy, snap, is_etf)


def market_filters(
    s: BotSettings, strategy: str, snap: Snapshot, is_etf: bool
) -> tuple[Rejection | None, Candidate | None]:
    """Price, previous volume, spread and (equities) gap of one snapshot: the live screener and the backtest."""
    sym = snap.symbol.upper()
    price = snap.price
    if price is None or price <= 0:
        return Rejection(sym, "snapshot", "no usable last price"), None
    # MIN_PRICE / MAX_PRICE: the candidate's last price must lie between them
    if price < s.MIN_PRICE:
        return Rejection(sym, "MIN_PRICE", f"price {price} < MIN_PRICE {s.MIN_PRICE}"), None
    if price > s.MAX_PRICE:
        return Rejection(sym, "MAX_PRICE", f"price {price} > MAX_PRICE {s.MAX_PRICE}"), None
    # MIN_VOLUME_THRESHOLD: previous-session volume floor; unknown volume is not assumed to pass
    if snap.prev_volume is None:
        return Rejection(sym, "MIN_VOLUME_THRESHOLD", "previous session volume unknown"), None
    if snap.prev_volume < s.MIN_VOLUME_THRESHOLD:
        return (
            Rejection(
                sym,
                "MIN_VOLUME_THRESHOLD",
                f"previous volume {snap.prev_volume:,} < MIN_VOLUME_THRESHOLD {s.MIN_VOLUME_THRESHOLD:,}",
            ),
            None,
        )
    quote = snap.quote
    # MAX_SPREAD_PCT: (ask - bid) / mid at most this; no usable quote is a rejection, not a pass
    if quote is None or quote.bid <= 0 or quote.ask <= 0 or quote.ask < quote.bid:
        return Rejection(sym, "MAX_SPREAD_PCT", "no usable bid/ask quote"), None
    spread = quote.spread_pct
    if spread > s.MAX_SPREAD_PCT:
        return (
            Rejection(sym, "MAX_SPREAD_PCT", f"spread {spread:.4%} > MAX_SPREAD_PCT {s.MAX_SPREAD_PCT:.4%}"),
            None,
        )
    gap = 0.0
    if not is_etf:
        if snap.today_open is None or snap.today_open <= 0:
            return Rejection(sym, f"MAX_GAP_PCT_{strategy.upper()}", "today's open unknown"), None
        gap = abs(float(price / snap.today_open) - 1.0)
        limit = getattr(s, f"MAX_GAP_PCT_{strategy.upper()}")
        # MAX_GAP_PCT_X: a stock that moved further than this from today's open is not a candidate
        if gap > limit:
            return (
                Rejection(
                    sym,
                    f"MAX_GAP_PCT_{strategy.upper()}",
                    f"|price/open - 1| {gap:.4%} > MAX_GAP_PCT_{strategy.upper()} {limit:.4%}",
                ),
                None,
            )
    return None, Candidate(sym, price, snap.prev_volume, gap, spread, None, is_etf)
