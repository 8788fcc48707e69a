"""Run a support/ wrapper with the project's environment: started by its `#!/usr/bin/env python3` line outside
the project's virtualenv, it has none of the bot's packages, so it starts itself again with `.venv/bin/python`
(as upload_backups_to_cloud.sh runs `.venv/bin/tbot`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_AGAIN = "TBOT_SUPPORT_PROJECT_PYTHON"


def tbot_command(*words: str) -> int:
    """`tbot WORDS... ARGS...` in this process, or in the project's interpreter when this one lacks the bot."""
    try:
        from rigd_tbot.cli import main
    except ModuleNotFoundError:
        project = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
        if project.is_file() and not os.environ.get(_AGAIN):
            os.environ[_AGAIN] = "1"  # once: the project's interpreter that lacks them too says so below
            os.execv(project, [str(project), sys.argv[0], *sys.argv[1:]])
        print(
            f"{Path(sys.argv[0]).name}: the bot's packages are not installed here; run `make demo` once (it makes "
            f"{project.parent.parent}), then run this again",
            file=sys.stderr,
        )
        return 2
    return main([*words, *sys.argv[1:]])
