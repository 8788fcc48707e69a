"""Fundamentals guard: blocks a candidate whose P/E, debt/equity or market cap fails MAX_PE_RATIO,
MAX_DEBT_EQUITY or MIN_MARKET_CAP_FUNDAMENTAL; every rejection is logged with its numbers.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tbot_bot.checks import CheckResult

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.screeners.fundamentals import Fundamentals

_log = logging.getLogger(__name__)
# the self-check's probes: their rejections are no news. A logger outside logging's tree (no parent, never
# configured by a dictConfig that resets the tree's loggers) and switched off
_QUIET = logging.Logger(f"{__name__}.self_check")
_QUIET.disabled = True


@dataclass(frozen=True, slots=True)
class GuardDecision:
    allowed: bool
    reason: str
    context: dict[str, Any] = field(default_factory=dict)


class FundamentalGuard:
    """Only ever blocks. Missing data blocks too: an unknown balance sheet is not a passing one."""

    def __init__(self, settings: BotSettings, log: logging.Logger | None = None) -> None:
        self.enabled = settings.ENABLE_FUNNHUB_FUNDAMENTALS_FILTER
        self.max_pe = settings.MAX_PE_RATIO
        self.max_debt_equity = settings.MAX_DEBT_EQUITY
        self.min_market_cap = Decimal(settings.MIN_MARKET_CAP_FUNDAMENTAL)
        self._log = log or _log

    def check(self, fundamentals: Fundamentals) -> GuardDecision:
        f = fundamentals
        context: dict[str, Any] = {
            "symbol": f.symbol,
            "peNormalizedAnnual": f.pe_normalized,
            "MAX_PE_RATIO": self.max_pe,
            "totalDebt/totalEquityAnnual": f.debt_equity,
            "MAX_DEBT_EQUITY": self.max_debt_equity,
            "market_cap_usd": str(f.market_cap) if f.market_cap is not None else None,
            "MIN_MARKET_CAP_FUNDAMENTAL": str(self.min_market_cap),
        }
        # ENABLE_FUNNHUB_FUNDAMENTALS_FILTER=false: the guard never blocks
        if not self.enabled:
            return GuardDecision(True, "ENABLE_FUNNHUB_FUNDAMENTALS_FILTER=false", context)
        problems: list[str] = []
        if f.pe_normalized is None:
            problems.append("P/E unknown")
        elif f.pe_normalized <= 0 or f.pe_normalized > self.max_pe:
            # MAX_PE_RATIO: a dearer stock is rejected; a negative P/E means losses: never "cheap"
            problems.append(f"P/E {f.pe_normalized:.2f} outside (0, MAX_PE_RATIO={self.max_pe:g}]")
        if f.debt_equity is None:
            problems.append("debt/equity unknown")
        # MAX_DEBT_EQUITY: a more indebted company is rejected
        elif f.debt_equity > self.max_debt_equity:
            problems.append(f"debt/equity {f.debt_equity:.2f} > MAX_DEBT_EQUITY={self.max_debt_equity:g}")
        if f.market_cap is None:
            problems.append("market cap unknown")
        # MIN_MARKET_CAP_FUNDAMENTAL: a smaller company is rejected
        elif f.market_cap < self.min_market_cap:
            problems.append(
                f"market cap {f.market_cap:,.0f} < MIN_MARKET_CAP_FUNDAMENTAL={self.min_market_cap:,.0f}"
            )
        if problems:
            reason = "; ".join(problems)
            self._log.info("fundamental_guard rejected %s: %s context=%s", f.symbol, reason, context)
            return GuardDecision(False, reason, context)
        return GuardDecision(True, "fundamentals within limits", context)

    def self_check(self) -> CheckResult:
        """The rule probed at its limits (as the VIX gate's is): a company exactly at every limit passes; one a
        step beyond any of them, or with a figure unknown, is refused. The probes' rejections are not logged."""
        ctx = {"enabled": self.enabled, "max_pe": self.max_pe, "max_debt_equity": self.max_debt_equity}
        # ENABLE_FUNNHUB_FUNDAMENTALS_FILTER=false: the guard never blocks, so there is no rule to probe
        if not self.enabled:
            return CheckResult(True, "disabled", ctx)
        from tbot_bot.screeners.fundamentals import Fundamentals

        probe = copy.copy(self)
        probe._log = _QUIET
        at = Fundamentals("SELFCHECK", self.min_market_cap, self.max_pe, self.max_debt_equity)
        beyond = [
            replace(at, pe_normalized=self.max_pe + 0.01),
            replace(at, debt_equity=self.max_debt_equity + 0.01),
            replace(at, market_cap=self.min_market_cap - 1),
            replace(at, pe_normalized=None),
        ]
        if not probe.check(at).allowed or any(probe.check(f).allowed for f in beyond):
            return CheckResult(
                False,
                "fundamental guard lets a company beyond its limits through, or refuses one within",
                ctx,
            )
        return CheckResult(True, "ok", ctx)
