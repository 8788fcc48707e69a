"""Search spaces: which `.env_bot` keys a strategy's optimizer may tune, their default ranges, and the
`--space` TOML that overrides them. A parameter's name IS its `.env_bot` key, so a proposal is a set of
key changes and nothing has to be translated back.

TOML: one table per key, either `values = [...]` (a list) or `low`, `high` and `step` (a range):

    [STRAT_OPEN_BUFFER]
    low = 0.001
    high = 0.004
    step = 0.001

    [OPEN_MONITORING_TIME]
    values = [15, 30, 45]
"""

from __future__ import annotations

import difflib
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbot_bot.errors import ConfigError
from tbot_bot.support.utils_bot import counted

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

Number = int | float


@dataclass(frozen=True, slots=True)
class Param:
    """One tunable key: a finite list of values (grid search enumerates it; TPE/NSGA-II pick from it)."""

    key: str
    values: tuple[Number, ...]

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) for v in self.values)


# key -> (kind, lowest allowed, highest allowed): what any space may ask for, checked before a study starts
TUNABLE: dict[str, dict[str, tuple[type, float, float]]] = {
    "open": {
        "STRAT_OPEN_BUFFER": (float, 0.0, 0.05),
        "OPEN_TRAILING_STOP_PCT": (float, 0.001, 0.2),
        "OPEN_ANALYSIS_TIME": (int, 1, 120),
        "OPEN_BREAKOUT_TIME": (int, 1, 120),
        "OPEN_MONITORING_TIME": (int, 1, 390),
    },
    "mid": {
        "STRAT_MID_VWAP_THRESHOLD": (float, 0.0, 0.05),
        "MID_STOP_LOSS_PCT": (float, 0.001, 0.2),
        "ADX_THRESHOLD": (float, 1, 100),
        "BOLLINGER_STD": (float, 0.5, 5),
        "MID_ANALYSIS_TIME": (int, 1, 120),
        "MID_BREAKOUT_TIME": (int, 1, 120),
        "MID_MONITORING_TIME": (int, 1, 390),
    },
    "close": {
        "STRAT_CLOSE_MOMENTUM_PCT": (float, 0.0, 0.1),
        "STRAT_CLOSE_SPIKE_PCT": (float, 0.0, 0.1),
        "CLOSE_STOP_LOSS_PCT": (float, 0.001, 0.2),
        "STRAT_CLOSE_VIX_THRESHOLD": (float, 0, 100),
        "CLOSE_ANALYSIS_TIME": (int, 1, 60),
        "CLOSE_BREAKOUT_TIME": (int, 1, 60),
        "CLOSE_MONITORING_TIME": (int, 1, 120),
    },
}

# Defaults: the spec's entry/exit buffers, VWAP threshold, stops and timeouts around the template's values.
DEFAULT_SPACES: dict[str, dict[str, tuple[Number, ...]]] = {
    "open": {
        "STRAT_OPEN_BUFFER": (0.001, 0.002, 0.003, 0.005),
        "OPEN_TRAILING_STOP_PCT": (0.005, 0.01, 0.02),
        # up to the template's 30: OPEN_MONITORING_TIME 45 would run OPEN past MID's 10:30 start
        "OPEN_MONITORING_TIME": (15, 20, 30),
    },
    "mid": {
        "STRAT_MID_VWAP_THRESHOLD": (0.001, 0.002, 0.003, 0.005),
        "MID_STOP_LOSS_PCT": (0.005, 0.01, 0.015, 0.02),
        "MID_MONITORING_TIME": (15, 30, 45),
    },
    "close": {
        "STRAT_CLOSE_MOMENTUM_PCT": (0.001, 0.002, 0.005),
        "STRAT_CLOSE_SPIKE_PCT": (0.002, 0.004, 0.008),
        "CLOSE_STOP_LOSS_PCT": (0.005, 0.01, 0.02),
        "CLOSE_MONITORING_TIME": (10, 25),
    },
}


@dataclass(frozen=True, slots=True)
class SearchSpace:
    strategy: str
    params: tuple[Param, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.params)

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.values) for p in self.params)

    def grid(self) -> dict[str, list[Number]]:
        return {p.key: list(p.values) for p in self.params}

    def describe(self) -> dict[str, list[Number]]:
        return self.grid()


def default_space(strategy: str) -> SearchSpace:
    return SearchSpace(strategy, tuple(Param(k, v) for k, v in DEFAULT_SPACES[strategy].items()))


def _values_from_table(key: str, table: Any, kind: type, problems: list[str]) -> tuple[Number, ...] | None:
    if not isinstance(table, Mapping):
        problems.append(f"[{key}] must be a table with `values` or `low`/`high`/`step`")
        return None
    unknown = sorted(set(table) - {"values", "low", "high", "step"})
    if unknown:
        problems.append(f"[{key}] has {', '.join(unknown)}; a table holds `values` or `low`/`high`/`step`")
        return None
    if "values" in table and set(table) & {"low", "high", "step"}:
        problems.append(f"[{key}] has both `values` and `low`/`high`/`step`; keep one of the two forms")
        return None
    if "values" in table:
        raw = table["values"]
        if not isinstance(raw, list) or not raw:
            problems.append(f"[{key}] values must be a non-empty list")
            return None
        values = list(raw)
    elif {"low", "high", "step"} <= set(table):
        low, high, step = table["low"], table["high"], table["step"]
        if not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in (low, high, step)
        ):
            problems.append(
                f"[{key}] low, high and step must be finite numbers (found {low!r}, {high!r}, {step!r})"
            )
            return None
        if step <= 0 or high < low:
            problems.append(f"[{key}] needs step > 0 and high >= low (found {low}..{high} step {step})")
            return None
        n = int(math.floor((high - low) / step + 1e-9)) + 1
        if n > 1000:
            problems.append(f"[{key}] has {n} values; at most 1000 are allowed")
            return None
        values = [low + i * step for i in range(n)]
    else:
        problems.append(f"[{key}] needs `values = [...]` or all of `low`, `high`, `step`")
        return None
    # every value's problem at once (each fix otherwise revealed the next); the caller adds those out of range
    out: list[Number] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            problems.append(f"[{key}] value {v!r} is not a number")
        elif not math.isfinite(v):  # TOML's nan and inf (and 1e400, which is inf)
            problems.append(f"[{key}] value {v!r} is not a finite number")
        elif kind is int and float(v) != int(v):
            problems.append(f"[{key}] takes whole minutes; {v!r} is not an integer")
        else:
            out.append(int(v) if kind is int else round(float(v), 10))
    return tuple(sorted(set(out)))


def load_space(strategy: str, path: str | Path | None) -> SearchSpace:
    """The default space of `strategy`, or the TOML file's (which replaces it entirely). Every problem of the
    file is reported at once."""
    if path is None:
        return default_space(strategy)
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--space file {p} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--space file {p} is not valid TOML: {exc}") from None
    allowed = TUNABLE[strategy]
    problems: list[str] = []
    params: list[Param] = []
    for key, table in doc.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(
                f"{key} is not tunable for {strategy}{hint}; tunable keys: {', '.join(sorted(allowed))}"
            )
            continue
        kind, lo, hi = allowed[key]
        before = len(problems)
        values = _values_from_table(key, table, kind, problems)
        if values is None:
            continue
        bad = [v for v in values if not lo <= v <= hi]
        if bad:
            problems.append(f"[{key}] values {bad} outside the allowed range {lo:g}..{hi:g}")
        if len(problems) == before and values:
            params.append(Param(key, values))
    if not params and not problems:
        problems.append("the space names no parameter")
    if problems:
        raise ConfigError(problems, source=f"--space {p}")
    return SearchSpace(strategy, tuple(params))


_TIMING = ("_ANALYSIS_TIME", "_BREAKOUT_TIME", "_MONITORING_TIME")
_INDICATOR_PERIODS = ("ADX_PERIOD", "BOLLINGER_PERIOD")


def fit_to_windows(space: SearchSpace, settings: BotSettings) -> tuple[SearchSpace, list[str]]:
    """The space without the window timings the configuration cannot run: a tuned window that would run past the
    next window's start (the windows run one after another) or past midnight is refused by `tbot check`, so a
    proposal of it could never be approved. With one timing key its values that do not fit are left out (each
    named in a note); with several, a combination that does not fit refuses the space (narrow the ranges)."""
    from tbot_bot.config.env_bot import (
        rule_mid_indicators_ready_in_its_breakout,
        rule_windows_fit_the_day,
        rule_windows_run_one_after_another,
    )

    # MID's indicator periods too: one its breakout cannot reach blocks every entry (`tbot check` refuses it)
    timing = [p for p in space.params if p.key.endswith(_TIMING) or p.key in _INDICATOR_PERIODS]
    if not timing:
        return space, []

    def problem(values: tuple[Number, ...]) -> str | None:
        changed = settings.model_copy(update={p.key: v for p, v in zip(timing, values, strict=True)})
        return (
            rule_windows_run_one_after_another(changed)
            or rule_windows_fit_the_day(changed)
            or rule_mid_indicators_ready_in_its_breakout(changed)
        )

    misfits = [(c, why) for c in itertools.product(*(p.values for p in timing)) if (why := problem(c))]
    if not misfits:
        return space, []
    if len(timing) > 1:
        combo, why = misfits[0]
        named = ", ".join(f"{p.key}={v}" for p, v in zip(timing, combo, strict=True))
        raise ConfigError(
            f"--space: {named} cannot run with this configuration ({why}); narrow the ranges of "
            f"{', '.join(p.key for p in timing)} ({counted(len(misfits), 'combination')} of them do not fit)"
        )
    param = timing[0]
    kept = tuple(v for v in param.values if problem((v,)) is None)
    if not kept:
        raise ConfigError(
            f"--space: no value of {param.key} can run with this configuration: {misfits[0][1]}"
        )
    notes = [f"{param.key}={combo[0]} left out of the space: {why}" for combo, why in misfits]
    params = tuple(Param(p.key, kept) if p is param else p for p in space.params)
    return SearchSpace(space.strategy, params), notes
