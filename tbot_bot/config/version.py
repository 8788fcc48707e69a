"""The version tag, read from VERSION.md (line `Current: vX.Y.Z`)."""

from __future__ import annotations

import re

from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import project_file

_CURRENT = re.compile(r"^Current:\s*(v\d+\.\d+\.\d+)\s*$", re.MULTILINE)


def read_version_tag() -> str:
    path = project_file("VERSION.md")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    m = _CURRENT.search(text)
    if not m:
        raise ConfigError(f"{path} has no line 'Current: vX.Y.Z'")
    return m.group(1)
