"""Risk gate: pre-trade filters, ranking and float-based sizing of entries (DESIGN §7, spec "Unified Capital
Risk Controls"). `plan_entries` is pure (the backtest engine calls it); `RiskManager` adds state for the live path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tbot_bot.broker.capabilities import BrokerCapabilities
from tbot_bot.checks import REFUSED, CheckResult
from tbot_bot.domain.vocab import OPTION_MULTIPLIER, DenialCode

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.trading.kill_switch import KillSwitch

FRACTIONAL_QUANTUM = Decimal("0.0001")  # fractional shares are rounded down to 1/10,000 of a share


class RiskState(StrEnum):
    ACTIVE = "active"
    HALTED = "halted"


class InstrumentKind(StrEnum):
    EQUITY = "equity"  # long stock/ETF or inverse ETF
    SHORT_SALE = "short_sale"  # stock sold short: whole shares unless the broker allows fractional shorts
    LONG_PUT = "long_put"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A signal ready for sizing. `price` is the instrument's price (the underlying's for a put)."""

    ticker: str  # the instrument that would be traded
    strength: float  # distance beyond the trigger; larger ranks first
    price: Decimal
    prev_volume: int | None  # None = unknown -> denied
    spread_pct: float | None  # (ask - bid) / mid; None = unknown -> denied
    signal_ticker: str | None = None
    kind: InstrumentKind = InstrumentKind.EQUITY
    premium: Decimal | None = None  # per-share option premium, LONG_PUT only


@dataclass(frozen=True, slots=True)
class Sized:
    candidate: Candidate
    rank: int  # 1 = strongest
    weight: Decimal
    notional: Decimal  # money budgeted for this entry
    qty: Decimal  # shares, or whole contracts for a put

    @property
    def ticker(self) -> str:
        return self.candidate.ticker


@dataclass(frozen=True, slots=True)
class Denied:
    candidate: Candidate
    code: DenialCode
    reason: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def ticker(self) -> str:
        return self.candidate.ticker


Decision = Sized | Denied


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The effective limits for one strategy window (defense mode already applied)."""

    weights: tuple[Decimal, ...]
    max_trades: int
    total_allocation: Decimal
    max_risk_per_trade: Decimal
    max_open_positions: int
    min_price: Decimal
    max_price: Decimal
    min_volume: int
    max_spread_pct: float
    fractional: bool
    trades_disabled: bool = False
    fractional_short: bool = False  # short sales in fractional shares (FRACTIONAL and the broker allow it)
    defense_mode: bool = False

    @classmethod
    def from_settings(
        cls, settings: BotSettings, capabilities: BrokerCapabilities, *, defense_mode: bool = False
    ) -> RiskLimits:
        max_trades = settings.MAX_TRADES
        allocation = settings.TOTAL_ALLOCATION
        if defense_mode:
            # defense mode: DEFENSE_MODE_TOTAL_ALLOCATION replaces TOTAL_ALLOCATION and MAX_TRADES is scaled
            # by DEFENSE_MODE_TRADE_LIMIT_PCT, rounded down but never below one trade (defense is not a halt)
            allocation = settings.DEFENSE_MODE_TOTAL_ALLOCATION
            max_trades = defense_max_trades(settings.MAX_TRADES, settings.DEFENSE_MODE_TRADE_LIMIT_PCT)
        return cls(
            weights=tuple(settings.WEIGHTS),
            max_trades=max_trades,
            total_allocation=allocation,
            max_risk_per_trade=settings.MAX_RISK_PER_TRADE,
            max_open_positions=settings.MAX_OPEN_POSITIONS,
            min_price=settings.MIN_PRICE,
            max_price=settings.MAX_PRICE,
            min_volume=settings.MIN_VOLUME_THRESHOLD,
            max_spread_pct=settings.MAX_SPREAD_PCT,
            # FRACTIONAL=true buys fractional shares only if the broker declares it can
            fractional=settings.FRACTIONAL and capabilities.fractional,
            # FRACTIONAL=true shorts fractional shares only if the broker declares fractional short sales
            fractional_short=settings.FRACTIONAL
            and capabilities.fractional
            and capabilities.fractional_short,
            trades_disabled=settings.DISABLE_ALL_TRADES,
            defense_mode=defense_mode,
        )


def defense_in_effect(settings: BotSettings, carried: str | None) -> str | None:
    """Why defense mode is on at the start of a session (None: it is off)."""
    # DEFENSE_MODE_ACTIVE=true: reduced allocation and fewer trades from the start of the day
    # carried: an automatic trigger that fired this session or the last (runtime/defense.py)
    return "DEFENSE_MODE_ACTIVE=true" if settings.DEFENSE_MODE_ACTIVE else carried


def defense_max_trades(max_trades: int, trade_limit_pct: int) -> int:
    """MAX_TRADES x pct / 100 rounded down, at least 1."""
    return max(1, (max_trades * trade_limit_pct) // 100)


def weights_for(n: int, weights: Sequence[Decimal]) -> list[Decimal]:
    """Slot weights for n signals (DESIGN §7): first n of WEIGHTS, the unassigned remainder shared equally
    among slots 2..n, then sorted descending so the strongest signal gets the largest weight."""
    n = min(n, len(weights))
    if n <= 0:
        return []
    if n == 1:
        return [Decimal(1)]
    taken = [Decimal(w) for w in weights[:n]]
    share = (Decimal(1) - sum(taken, Decimal(0))) / (n - 1)
    slots = [taken[0]] + [w + share for w in taken[1:]]
    return sorted(slots, reverse=True)


def session_cap(broker_current_float: Decimal, limits: RiskLimits) -> Decimal:
    return broker_current_float * limits.total_allocation


def pretrade_denial(candidate: Candidate, limits: RiskLimits) -> Denied | None:
    """Price, volume and spread filters; None when the candidate passes."""
    c = candidate
    # MIN_PRICE / MAX_PRICE: the instrument's (a put's underlying's) price must lie inside, ends included
    if not limits.min_price <= c.price <= limits.max_price:
        return Denied(
            c,
            DenialCode.PRICE_OUT_OF_RANGE,
            f"price {c.price} outside MIN_PRICE..MAX_PRICE {limits.min_price}..{limits.max_price}",
            {"price": str(c.price)},
        )
    if c.prev_volume is None or c.spread_pct is None:
        return Denied(
            c,
            DenialCode.MISSING_MARKET_DATA,
            "previous-session volume or spread unknown; cannot validate",
            {"prev_volume": c.prev_volume, "spread_pct": c.spread_pct},
        )
    # MIN_VOLUME_THRESHOLD: previous-session volume below it is too illiquid
    if c.prev_volume < limits.min_volume:
        return Denied(
            c,
            DenialCode.VOLUME_TOO_LOW,
            f"previous-session volume {c.prev_volume} < MIN_VOLUME_THRESHOLD {limits.min_volume}",
            {"prev_volume": c.prev_volume},
        )
    # MAX_SPREAD_PCT: a wider (ask - bid) / mid is refused (NaN compares false, so it is refused too)
    if not c.spread_pct <= limits.max_spread_pct:
        return Denied(
            c,
            DenialCode.SPREAD_TOO_WIDE,
            f"spread {c.spread_pct:.4%} > MAX_SPREAD_PCT {limits.max_spread_pct:.4%}",
            {"spread_pct": c.spread_pct},
        )
    if c.kind is InstrumentKind.LONG_PUT and (c.premium is None or c.premium <= 0):
        return Denied(c, DenialCode.MISSING_MARKET_DATA, "put premium unknown or not positive", {})
    return None


def quantity_for(
    candidate: Candidate, notional: Decimal, fractional: bool, fractional_short: bool = False
) -> Decimal:
    """Shares (fractional or floored; short sales whole unless fractional_short) or whole put contracts."""
    if candidate.kind is InstrumentKind.LONG_PUT:
        if candidate.premium is None or candidate.premium <= 0:
            raise ValueError(f"put candidate {candidate.ticker} has no positive premium")
        return (notional / (candidate.premium * OPTION_MULTIPLIER)).to_integral_value(rounding=ROUND_DOWN)
    raw = notional / candidate.price
    if candidate.kind is InstrumentKind.SHORT_SALE:
        fractional = fractional_short
    # FRACTIONAL=true (and the broker supports it): fractional shares, else whole shares floored
    if fractional:
        return raw.quantize(FRACTIONAL_QUANTUM, rounding=ROUND_DOWN)
    return raw.to_integral_value(rounding=ROUND_DOWN)


def plan_entries(
    candidates: Sequence[Candidate],
    limits: RiskLimits,
    broker_current_float: Decimal,
    *,
    open_positions: int = 0,
    trades_taken: int = 0,
    committed: Decimal = Decimal(0),
) -> list[Sized | Denied]:
    """Pure sizing of one batch of signals. Returns one Sized or Denied per candidate, strongest first.

    `trades_taken` and `committed` are what this window already entered earlier (live path); the batch
    gets the remaining MAX_TRADES slots and the remaining session cap.
    """
    decisions: list[Sized | Denied] = []
    ranked = sorted(candidates, key=lambda c: c.strength, reverse=True)
    if limits.trades_disabled:
        # DISABLE_ALL_TRADES=true: signals are logged, no order leaves
        return [
            Denied(c, DenialCode.TRADES_DISABLED, "DISABLE_ALL_TRADES=true: signal logged only")
            for c in ranked
        ]
    passing: list[Candidate] = []
    for c in ranked:
        denial = pretrade_denial(c, limits)
        if denial is None:
            passing.append(c)
        else:
            decisions.append(denial)
    trade_room = max(0, limits.max_trades - trades_taken)
    position_room = max(0, limits.max_open_positions - open_positions)
    n = min(len(passing), trade_room, position_room)
    cap = session_cap(broker_current_float, limits)
    remaining_cap = max(Decimal(0), cap - committed)
    per_trade_cap = broker_current_float * limits.max_risk_per_trade
    slot_weights = weights_for(n, limits.weights)
    for rank, c in enumerate(passing, start=1):
        if rank > n:
            # MAX_TRADES per window, MAX_OPEN_POSITIONS across strategies: the weakest signals are dropped
            if rank > trade_room:
                code, why = DenialCode.MAX_TRADES, f"MAX_TRADES={limits.max_trades} reached for this window"
            else:
                code, why = (
                    DenialCode.MAX_OPEN_POSITIONS,
                    f"MAX_OPEN_POSITIONS={limits.max_open_positions} reached ({open_positions} open)",
                )
            decisions.append(Denied(c, code, why, {"rank": rank}))
            continue
        weight = slot_weights[rank - 1]
        # TOTAL_ALLOCATION x WEIGHTS sets the slot's share; MAX_RISK_PER_TRADE caps any single trade
        notional = min(weight * cap, per_trade_cap, remaining_cap)
        if notional <= 0:
            decisions.append(
                Denied(c, DenialCode.SESSION_CAP_USED, "session cap already committed", {"cap": str(cap)})
            )
            continue
        qty = quantity_for(c, notional, limits.fractional, limits.fractional_short)
        if qty <= 0:
            unit = c.premium * OPTION_MULTIPLIER if c.premium is not None else c.price
            decisions.append(
                Denied(
                    c,
                    DenialCode.ZERO_QUANTITY,
                    f"notional {notional:.2f} buys zero {'contracts' if c.kind is InstrumentKind.LONG_PUT else 'shares'} at {unit}",
                    {"notional": str(notional), "weight": str(weight)},
                )
            )
            continue
        remaining_cap -= notional
        decisions.append(Sized(c, rank, weight, notional, qty))
    order = {id(c): i for i, c in enumerate(ranked)}
    decisions.sort(key=lambda d: order[id(d.candidate)])
    return decisions


@dataclass(slots=True)
class _WindowUsage:
    trades_taken: int = 0
    committed: Decimal = Decimal(0)


class RiskManager:
    """The live risk gate for one broker and one trading day: ACTIVE or HALTED, every denial with a reason."""

    def __init__(
        self,
        settings: BotSettings,
        broker_current_float: Decimal,
        capabilities: BrokerCapabilities,
        *,
        kill_switch: KillSwitch | None = None,
        defense_reason: str | None = None,
    ) -> None:
        self._settings = settings
        self.broker_current_float = Decimal(broker_current_float)
        self._capabilities = capabilities
        self._kill_switch = kill_switch
        self._state = RiskState.ACTIVE
        self._halt_reason: str | None = None
        self._defense_reason = defense_in_effect(settings, defense_reason)
        self._usage: dict[str, _WindowUsage] = {}
        self._pause_reason: str | None = None
        self.operator_pause: str | None = None  # `tbot pause`: apart from rebalancing's, each lifts its own

    @property
    def state(self) -> RiskState:
        if self._state is RiskState.ACTIVE and self._kill_switch is not None and self._kill_switch.tripped:
            self.halt(self._kill_switch.reason or "kill switch tripped")
        return self._state

    @property
    def halt_reason(self) -> str | None:
        return self._halt_reason

    def entry_block(self) -> str | None:
        """Why no entry may be sent now ("halted: ...", "paused: ..."), or None: also asked of an entry decided
        before the halt or pause and still unsent (waiting for `tbot confirm`, or journaled before a restart)."""
        if self.state is RiskState.HALTED:
            return f"halted: {self._halt_reason}"
        pause = self.operator_pause or self._pause_reason
        return f"paused: {pause}" if pause is not None else None

    @property
    def defense_mode(self) -> bool:
        return self._defense_reason is not None

    @property
    def defense_reason(self) -> str | None:
        return self._defense_reason

    def halt(self, reason: str) -> None:
        """Latch HALTED for the rest of the day; the first reason is kept."""
        if self._state is RiskState.ACTIVE:
            self._state = RiskState.HALTED
            self._halt_reason = reason

    @property
    def pause_reason(self) -> str | None:
        return self._pause_reason

    def pause_entries(self, reason: str) -> None:
        """Refuse new entries (exits still run) until resume_entries(); e.g. a float outside its rebalance band."""
        self._pause_reason = reason

    def resume_entries(self) -> None:
        self._pause_reason = None

    def window_usage(self) -> dict[str, dict[str, str | int]]:
        """Per window started today: entries taken and the session cap used / still available (status.json)."""
        cap, limits = self.session_cap(), self.limits()
        return {
            name: {
                "trades": u.trades_taken,
                "max_trades": limits.max_trades,
                "cap_used": f"{u.committed:.2f}",
                "cap_available": f"{max(cap - u.committed, Decimal(0)):.2f}",
            }
            for name, u in sorted(self._usage.items())
        }

    def limits(self) -> RiskLimits:
        return RiskLimits.from_settings(self._settings, self._capabilities, defense_mode=self.defense_mode)

    def weights_for(self, n: int) -> list[Decimal]:
        return weights_for(min(n, self.limits().max_trades), self._settings.WEIGHTS)

    def session_cap(self) -> Decimal:
        return session_cap(self.broker_current_float, self.limits())

    def observe_performance(self, *, drawdown: float | None, win_rate: float | None) -> bool:
        """Turn defense mode on (for the rest of the day) when an automatic trigger fires; True if on.

        drawdown: today's loss from the peak as a fraction of float; win_rate: closed-trade win fraction
        (None when nothing closed yet, so it cannot trigger).
        """
        s = self._settings
        if self._defense_reason is None:
            # DEFENSE_MODE_TRIGGER_DRAWDOWN=disabled (None): drawdown never turns defense mode on
            if s.DEFENSE_MODE_TRIGGER_DRAWDOWN is not None and drawdown is not None:
                if drawdown >= s.DEFENSE_MODE_TRIGGER_DRAWDOWN:
                    self._defense_reason = f"drawdown {drawdown:.4f} >= DEFENSE_MODE_TRIGGER_DRAWDOWN {s.DEFENSE_MODE_TRIGGER_DRAWDOWN}"
            # DEFENSE_MODE_TRIGGER_WIN_RATE=disabled (None): win rate never turns defense mode on
            if self._defense_reason is None and s.DEFENSE_MODE_TRIGGER_WIN_RATE is not None:
                if win_rate is not None and win_rate < s.DEFENSE_MODE_TRIGGER_WIN_RATE:
                    self._defense_reason = f"win rate {win_rate:.4f} < DEFENSE_MODE_TRIGGER_WIN_RATE {s.DEFENSE_MODE_TRIGGER_WIN_RATE}"
        return self.defense_mode

    def clear_defense(self) -> bool:
        """An operator ends an automatic defense mode (`tbot defense clear`); False while DEFENSE_MODE_ACTIVE=true
        holds it on (the key is the operator's to change)."""
        # DEFENSE_MODE_ACTIVE=true: defense mode is the configuration's, not a trigger's: it stays on
        if self._settings.DEFENSE_MODE_ACTIVE:
            return False
        self._defense_reason = None
        return True

    def start_window(self, strategy: str) -> None:
        """Reset the per-window MAX_TRADES and session-cap usage for a strategy."""
        self._usage[strategy] = _WindowUsage()

    def restore_usage(self, strategy: str, trades_taken: int, committed: Decimal) -> None:
        """After a restart: what the window already entered (from the order journal) counts again."""
        self._usage[strategy] = _WindowUsage(trades_taken, Decimal(committed))

    def size_signals(
        self, strategy: str, candidates: Sequence[Candidate], open_positions_count: int
    ) -> list[Sized | Denied]:
        """Size a batch of signals for a strategy window; counts what it sizes against the window."""
        if self.state is RiskState.HALTED:
            reason = f"risk HALTED: {self._halt_reason}"
            return [
                Denied(c, DenialCode.HALTED, reason) for c in sorted(candidates, key=lambda c: -c.strength)
            ]
        pause = self.operator_pause or self._pause_reason
        if pause is not None:
            reason = f"entries paused: {pause}"
            return [
                Denied(c, DenialCode.ENTRIES_PAUSED, reason)
                for c in sorted(candidates, key=lambda c: -c.strength)
            ]
        usage = self._usage.setdefault(strategy, _WindowUsage())
        decisions = plan_entries(
            candidates,
            self.limits(),
            self.broker_current_float,
            open_positions=open_positions_count,
            trades_taken=usage.trades_taken,
            committed=usage.committed,
        )
        for d in decisions:
            if isinstance(d, Sized):
                usage.trades_taken += 1
                usage.committed += d.notional
        if self.defense_mode:
            decisions = [
                replace(d, context={**d.context, "defense_mode": self._defense_reason})
                if isinstance(d, Denied)
                else d
                for d in decisions
            ]
        return decisions

    def release(self, strategy: str, notional: Decimal) -> None:
        """Give back a slot and its notional for an entry that never traded: the broker rejected it (live), or
        the backtest found no bar to fill it at. A restart counts the journal's entries the same way
        (DayContext.restore_risk_usage leaves rejected ones out)."""
        usage = self._usage.setdefault(strategy, _WindowUsage())
        usage.trades_taken = max(0, usage.trades_taken - 1)
        usage.committed = max(Decimal(0), usage.committed - notional)

    def self_check(self) -> CheckResult:
        """Float present, weights consistent with MAX_TRADES, defense-mode values usable, not halted."""
        s = self._settings
        problems: list[str] = []
        if self.broker_current_float <= 0:
            problems.append(
                f"broker_current_float is {self.broker_current_float}; the float ledger must fund the bot"
            )
        # WEIGHTS must give one weight per MAX_TRADES slot, and every n-signal split must sum to 1
        if len(s.WEIGHTS) != s.MAX_TRADES:
            problems.append(f"WEIGHTS has {len(s.WEIGHTS)} values for MAX_TRADES={s.MAX_TRADES}")
        for n in range(1, s.MAX_TRADES + 1):
            total = sum(weights_for(n, s.WEIGHTS), Decimal(0))
            if abs(total - 1) > Decimal("1e-9"):
                problems.append(f"weights for {n} signals sum to {total}, not 1")
                break
        # DEFENSE_MODE_TOTAL_ALLOCATION must reduce risk: above TOTAL_ALLOCATION it would raise it
        if s.DEFENSE_MODE_TOTAL_ALLOCATION > s.TOTAL_ALLOCATION:
            problems.append(
                f"DEFENSE_MODE_TOTAL_ALLOCATION={s.DEFENSE_MODE_TOTAL_ALLOCATION} exceeds TOTAL_ALLOCATION={s.TOTAL_ALLOCATION}"
            )
        if self.state is RiskState.HALTED:
            problems.append(f"risk is HALTED: {self._halt_reason}")
        context = {
            "float": str(self.broker_current_float),
            "session_cap": str(self.session_cap()),
            "defense_mode": self.defense_mode,
        }
        if problems:
            return CheckResult(False, "; ".join(problems), context, REFUSED)
        return CheckResult(True, "ok", context)
