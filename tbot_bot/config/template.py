"""The shipped `.env_bot` template (`.env_bot.template-test`): every key with its default value and its comment.

One reader for the three uses: provisioning copies it, the Settings page shows each comment as the key's help,
and a home written before a key existed is told the line to add.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from tbot_bot.support.path_resolver import project_file

TEMPLATE_NAME = ".env_bot.template-test"
_KEY_LINE = re.compile(
    r"^\s*(?P<key>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>\"[^\"]*\"|'[^']*'|\S*)\s*(?:#\s?(?P<help>.*))?$"
)


@dataclass(frozen=True, slots=True)
class TemplateLine:
    value: str  # as written, quotes included
    comment: str


def template_path() -> Path:
    return project_file(TEMPLATE_NAME)


@functools.cache
def template_lines() -> dict[str, TemplateLine]:
    """KEY -> its default and comment (read once per process; {} when the installation lacks the template)."""
    try:
        text = template_path().read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, TemplateLine] = {}
    for line in text.splitlines():
        m = _KEY_LINE.match(line)
        if m:
            out[m.group("key")] = TemplateLine(m.group("value"), (m.group("help") or "").strip())
    return out
