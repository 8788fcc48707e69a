"""Create (or complete) the SYSTEM_LOGS core database. Usage: python -m tbot_bot.core.scripts.init_system_logs [--home DIR]"""

from __future__ import annotations

import sys
from pathlib import Path

from tbot_bot.core.databases import init_core_database
from tbot_bot.core.scripts._runner import run_init
from tbot_bot.support.path_resolver import BotHome

NAME = "SYSTEM_LOGS"


def init(home: BotHome) -> Path:
    return init_core_database(home, NAME)


if __name__ == "__main__":
    sys.exit(run_init(NAME, init))
