"""What each `.env_bot` key means and what it allows, for people editing it (the dashboard's Settings page).

The meaning is the key's comment in `.env_bot.template-test`, parsed once. What a key allows is read from the same
declaration `validate_settings` checks against (`BotSettings` in env_bot.py: bounds, allowed values, patterns), so
the page can never promise a range the validation refuses. A comment's own "range a..b" is dropped from the help
text: the range shown is the rule's.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic.fields import FieldInfo

from tbot_bot.config.env_bot import BotSettings, _calendar, _disabled_or_fraction, _duration, _timezone
from tbot_bot.config.template import template_lines

# "; range 0..1", "; fraction range 0.0001..1", "range 1..20" (the rule says it, from the declaration)
_RANGE_NOTE = re.compile(r"(?:;\s*)?(?:fraction\s+)?range\s+-?[\d.]+\s*\.\.\s*-?[\d.]+(?:\s+seconds)?", re.I)


@dataclass(frozen=True, slots=True)
class KeyHelp:
    key: str
    help: str  # the template's comment, without its range note
    allowed: str  # from the validation rule: "1..20", "one of: json, csv", "true or false", ...


def _number(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bounds(metadata: list[Any]) -> tuple[str | None, str | None]:
    """(lower, upper) from pydantic's constraint objects (annotated-types Ge/Gt/Le/Lt/Interval, nested FieldInfo)."""
    low = high = None
    for m in metadata:
        if isinstance(m, FieldInfo):
            inner = _bounds(list(m.metadata))
            low, high = low or inner[0], high or inner[1]
            continue
        for name in ("ge", "gt"):
            if getattr(m, name, None) is not None:
                low = _number(getattr(m, name))
        for name in ("le", "lt"):
            if getattr(m, name, None) is not None:
                high = _number(getattr(m, name))
    return low, high


def _pattern(metadata: list[Any]) -> str | None:
    for m in metadata:
        pattern = getattr(m, "pattern", None)
        if isinstance(pattern, str):
            return pattern
    return None


# keys checked by a function rather than a bound: what that function accepts, in words
_CHECKED_BY = {
    _calendar: "an exchange_calendars name (XNYS, XNAS, XTSE, ...)",
    _timezone: "exchange, UTC or an IANA time zone name (America/New_York)",
}


def _validator(metadata: list[Any]) -> Any:
    return next((m.func for m in metadata if callable(getattr(m, "func", None))), None)


def _describe(annotation: Any, metadata: list[Any]) -> str:
    origin = typing.get_origin(annotation)
    checked = _CHECKED_BY.get(_validator(metadata))
    if checked:
        return checked
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _describe(base, [*metadata, *extra])
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = "; ".join(_describe(a, []) for a in arms)
        # an optional key reads `disabled` (DEFENSE_MODE_TRIGGER_*) or an empty value (STRATEGY_OVERRIDE) as "none"
        disabled = any(getattr(m, "func", None) is _disabled_or_fraction for m in metadata)
        return f"{'disabled' if disabled else 'empty'}, or {inner}"
    if origin is tuple:
        (item, *_rest) = typing.get_args(annotation)
        return "comma-separated, each " + _describe(item, [])
    if origin is dict:
        return "comma-separated CODE:VALUE pairs"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of: " + ", ".join(str(v.value) for v in annotation)
    if annotation is bool:
        return "true or false"
    if annotation is time:
        return "HH:MM (00:00-23:59)"
    low, high = _bounds(metadata)
    if low is not None or high is not None:
        span = f"{low if low is not None else '…'}..{high if high is not None else '…'}"
        if _validator(metadata) is _duration:
            return f"a duration such as 1s, 500ms or 2m, {span} seconds"
        return f"whole number {span}" if annotation is int else span
    pattern = _pattern(metadata)
    if pattern:
        return f"text matching {pattern}"
    if annotation is int:
        return "a whole number"
    if annotation in (float, Decimal):
        return "a number"
    return ""


@functools.cache
def allowed_values(key: str) -> str:
    """What the validation accepts for `key`, in words ("" when only a free-form check applies)."""
    info = BotSettings.model_fields.get(key)
    if info is None:
        return ""
    return _describe(info.annotation, list(info.metadata))


def key_help(key: str) -> KeyHelp:
    line = template_lines().get(key)
    comment = line.comment if line is not None else ""
    text = _RANGE_NOTE.sub("", comment).strip().rstrip(";").strip()
    return KeyHelp(key, text, allowed_values(key))
