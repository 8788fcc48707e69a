"""`tbot optimize run` options completed from the home's OPTIMIZER_* keys and its bars cache."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tbot_bot.backtest.backtest_engine import check_dates_in_calendar
from tbot_bot.errors import ConfigError
from tbot_bot.market_time import market_calendar
from tbot_bot.optimizer.runner import RunRequest
from tbot_bot.support.path_resolver import BotHome, package_file

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings


def bars_cache_dir(home: BotHome) -> Path:
    """Where the supervisor keeps each session's recorded 1-minute bars (one gzip CSV per day)."""
    return home.cache_dir / "bars"


def lookback_start(end: date, sessions: int, calendar_name: str) -> date:
    """The session `sessions - 1` sessions before `end` (so the span holds `sessions` sessions)."""
    cal = market_calendar(calendar_name)
    # never before the calendar's first session (a range starting there is refused by exchange_calendars)
    days = cal.sessions_in_range(max(end - timedelta(days=sessions * 2 + 10), cal.first_session.date()), end)
    days = [d.date() for d in days]
    return days[-sessions] if len(days) >= sessions else (days[0] if days else end)


def _last_date(source: Path, calendar: str) -> date:
    """The last session the data holds regular-session bars on (an evening's post-market bars are no session)."""
    files = sorted(source.glob("bars_*.csv.gz")) if source.is_dir() else []
    if files:
        return date.fromisoformat(files[-1].name[len("bars_") : len("bars_") + 10])
    from tbot_bot.backtest.load_historical_data import load_bars
    from tbot_bot.data.bar_store import is_store, last_date

    if is_store(source):  # the manifest knows the dates held: no bar is read
        return last_date(source)
    frame = load_bars(source, regular_session=calendar)
    if frame.empty:
        raise ConfigError(f"no bars in {source}")
    return frame["timestamp"].max().date()  # type: ignore[no-any-return]


def request_from_args(args: argparse.Namespace, home: BotHome, settings: BotSettings) -> RunRequest:
    # OPTIMIZER_ALGORITHM: the algorithm when --algorithm is not given
    algorithm = args.algorithm or settings.OPTIMIZER_ALGORITHM
    source = Path(args.data_source) if args.data_source else bars_cache_dir(home)
    if not args.data_source and not any(source.glob("bars_*.csv.gz")):
        # no recorded session yet: the bundled sample, as `tbot backtest` does
        source = package_file("data", "sample")
        print(
            f"note: no recorded bars in {bars_cache_dir(home)}; using the bundled sample {source}",
            file=sys.stderr,
        )
    if not source.exists():
        raise ConfigError(
            f"no data: {source} does not exist (pass --data-source, or let the supervisor record sessions first)"
        )
    end = args.end or _last_date(source, settings.MARKET_CALENDAR)
    # the end first (it may come from the data): the lookback counts sessions back from it in the calendar
    check_dates_in_calendar(args.start or end, end, settings.MARKET_CALENDAR)
    # OPTIMIZER_BACKTEST_LOOKBACK_DAYS: sessions optimised over when --start is not given
    start = args.start or lookback_start(
        end, settings.OPTIMIZER_BACKTEST_LOOKBACK_DAYS, settings.MARKET_CALENDAR
    )
    check_dates_in_calendar(start, end, settings.MARKET_CALENDAR)
    from tbot_bot.backtest.backtest_engine import backtest_float

    return RunRequest(
        strategy=args.strategy, algorithm=algorithm, start=start, end=end, data_source=source,
        objective=args.objective, walk_forward=args.walk_forward, trials=args.trials, jobs=args.jobs,
        space_file=Path(args.space) if args.space else None, storage=args.storage, study=args.study,
        out=Path(args.out) if args.out else None, seed=args.seed,
        float_=backtest_float(args.float_, home), progress=not args.no_progress, stale_after_s=args.stale_after,
        min_dsr=args.min_dsr,
    )  # fmt: skip
