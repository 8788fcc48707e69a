"""What `tbot check` shows and refuses about the live inputs: the VIX the next CLOSE window will use, and the
trading universe (a missing one is built at boot, a damaged VIX cache is a problem)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from tbot_bot.errors import TbotError
from tbot_bot.inputs import universe, vix
from tbot_bot.support.utils_bot import utc_now

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.support.path_resolver import BotHome


def input_lines(
    home: BotHome, settings: BotSettings, now: datetime | None = None, *, live: bool = True
) -> tuple[list[str], list[str]]:
    """(summary lines, problems). `live=False` (a replay): the VIX is the replay data's, not the live cache's."""
    now = now or utc_now()
    lines: list[str] = []
    problems: list[str] = []
    # STRAT_CLOSE_ENABLED=false: CLOSE never runs, so no VIX is needed
    if not settings.STRAT_CLOSE_ENABLED:
        lines.append("vix        not needed (STRAT_CLOSE_ENABLED=false)")
    elif not live:
        # a replay's CLOSE reads the vix.csv beside its bars (the replayed day's previous close), never the cache
        lines.append(
            "vix        the replay data's vix.csv (the close of the session before the replayed day)"
        )
    else:
        try:
            history = vix.closes(vix.load_cache(home))
        except TbotError as exc:
            problems.append(str(exc))
        else:
            session = vix.next_close_session(settings, now)
            reading = vix.reading_for(history, session, settings.MARKET_CALENDAR)
            warn = "" if reading.fresh else "  (WARNING)"
            lines.append(f"vix        {reading.describe()}{warn}")
    # BROKER_NAME=SIM: replays screen the replay data's symbols; live brokers screen data/universe.txt
    if settings.BROKER_NAME == "SIM":
        lines.append("universe   the replay data's symbols (simulated exchange)")
    else:
        symbols = universe.read_universe(home)
        rel = home.relative(home.universe_file) if home.universe_file.exists() else "data/universe.txt"
        if symbols:
            lines.append(f"universe   {rel}: {len(symbols)} symbols")
        elif symbols is None:
            lines.append(f"universe   none yet: `tbot start` builds {rel} from the broker at boot")
        else:
            problems.append(
                f"{rel} lists no symbol; run `tbot universe build` or delete it to have one built at boot"
            )
    return lines, problems
