"""Which strategies run today and in what order (STRATEGY_SEQUENCE, STRATEGY_OVERRIDE, STRAT_*_ENABLED),
with a reason for each one skipped; the router's self_check()."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tbot_bot.strategy.strategy_base import Strategy, StrategyCheck

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings


@dataclass(frozen=True, slots=True)
class Route:
    run: tuple[str, ...]
    skipped: dict[str, str]  # strategy -> why it does not run


def strategy_module(name: str) -> Strategy:
    """The strategy object for open, mid or close."""
    if name == "open":
        from tbot_bot.strategy.strategy_open import STRATEGY as open_strategy

        return open_strategy
    if name == "mid":
        from tbot_bot.strategy.strategy_mid import STRATEGY as mid_strategy

        return mid_strategy
    if name == "close":
        from tbot_bot.strategy.strategy_close import STRATEGY as close_strategy

        return close_strategy
    raise ValueError(f"unknown strategy {name!r}; expected open, mid or close")


def route(settings: BotSettings) -> Route:
    skipped: dict[str, str] = {}
    run: list[str] = []
    for name in ("open", "mid", "close"):
        # STRATEGY_SEQUENCE: a strategy not listed never runs
        if name not in settings.STRATEGY_SEQUENCE:
            skipped[name] = "not in STRATEGY_SEQUENCE"
    for name in settings.STRATEGY_SEQUENCE:
        # STRATEGY_OVERRIDE set: only that strategy runs, whatever the sequence says
        if settings.STRATEGY_OVERRIDE and name != settings.STRATEGY_OVERRIDE:
            skipped[name] = f"STRATEGY_OVERRIDE={settings.STRATEGY_OVERRIDE}"
        # STRAT_<X>_ENABLED=false: the strategy is switched off
        elif not settings.strategy_enabled(name):
            skipped[name] = f"STRAT_{name.upper()}_ENABLED=false"
        else:
            run.append(name)
    # STRATEGY_OVERRIDE naming a strategy outside STRATEGY_SEQUENCE: it still runs alone
    if settings.STRATEGY_OVERRIDE and settings.STRATEGY_OVERRIDE not in settings.STRATEGY_SEQUENCE:
        name = settings.STRATEGY_OVERRIDE
        # an override outside the sequence still runs alone, if enabled
        if settings.strategy_enabled(name):
            run = [name]
            skipped.pop(name, None)
        else:
            skipped[name] = f"STRATEGY_OVERRIDE={name} but STRAT_{name.upper()}_ENABLED=false"
    return Route(tuple(run), skipped)


def self_check(settings: BotSettings | None, now: datetime | None = None) -> StrategyCheck:
    """Settings present and at least one strategy routed to run."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    if settings is None:
        return StrategyCheck(False, "router", "no .env_bot settings loaded", at)
    r = route(settings)
    context: dict[str, Any] = {"run": list(r.run), "skipped": r.skipped}
    if not r.run:
        return StrategyCheck(False, "router", "no strategy enabled to run", at, context)
    return StrategyCheck(True, "router", "ok", at, context)
