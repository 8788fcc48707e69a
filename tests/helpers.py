"""Test helpers shared across the suite."""

from __future__ import annotations

import re

from tbot_bot.config.env_bot import BotSettings, settings_from_text
from tbot_bot.support.path_resolver import project_file


def template_text() -> str:
    return project_file(".env_bot.template-test").read_text(encoding="utf-8")


def with_values(text: str, **overrides: object) -> str:
    """Replace KEY=... lines in an .env_bot text (keeps comments); appends keys that are absent."""
    for key, value in overrides.items():
        pattern = re.compile(rf"^{key}=.*?(\s+#.*)?$", re.MULTILINE)
        line = f"{key}={value}"
        if pattern.search(text):
            text = pattern.sub(lambda m, line=line: line + (m.group(1) or ""), text, count=1)
        else:
            text += f"\n{line}\n"
    return text


def make_settings(**overrides: object) -> BotSettings:
    """Settings from the test template with KEY=value overrides, e.g. make_settings(MAX_TRADES=2, WEIGHTS="0.5,0.5")."""
    return settings_from_text(with_values(template_text(), **overrides), source="test template")


def has_exponent_notation(frame: object) -> bool:
    """Whether any cell of a CSV read as text (a DataFrame of str) is written like 2.02e-05: no figure for a person."""
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    return bool(frame.fillna("").apply(lambda col: col.str.fullmatch(r"-?[\d.]+[eE][-+]?\d+")).any().any())
