"""The after-session optimizer (ENABLE_STRATEGY_OPTIMIZER=true, DESIGN §11).

During live trading each window's market feed is recorded into the bars cache `data/cache/bars/` (one gzip CSV
per session, merged across windows). After the session's last window the supervisor starts THIS module in a
separate process at the lowest CPU priority and does not wait for it: it optimises each routed strategy over
the last OPTIMIZER_BACKTEST_LOOKBACK_DAYS sessions of the cache, writes results and a proposal only (the live
config never changes here), and sends a routine alert naming the proposal. A home file
`optimizer/space_<strategy>.toml` replaces that strategy's default search space.

Run by hand: python -m tbot_bot.optimizer.scheduled --home H --end YYYY-MM-DD --strategies open,mid
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbot_bot.optimizer.evidence import MIN_SESSIONS_PER_FOLD
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_bytes, atomic_write_text, utc_now

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings

log = logging.getLogger("tbot.optimizer")
# one walk-forward fold needs two blocks of the sessions a Sharpe ratio needs: fewer cannot be optimised
MIN_RECORDED_SESSIONS = 2 * MIN_SESSIONS_PER_FOLD["sharpe"]
COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]


def bars_file(home: BotHome, day: date) -> Path:
    return home.cache_dir / "bars" / f"bars_{day.isoformat()}.csv.gz"


def record_session_bars(home: BotHome, day: date, bars: Mapping[str, Any]) -> Path | None:
    """Merge a window's feed (symbol -> (t_minutes, open, high, low, close, volume)) into the session's file;
    a bar already recorded is kept once. Returns the file, or None when there was nothing to record."""
    frames = []
    for symbol, (t, o, h, low, c, v) in bars.items():
        if len(t) == 0:
            continue
        frames.append(
            pd.DataFrame(
                {"timestamp": pd.to_datetime(np.asarray(t, dtype=np.int64) * 60, unit="s", utc=True),
                 "symbol": symbol, "open": o, "high": h, "low": low, "close": c, "volume": v}
            )
        )  # fmt: skip
    if not frames:
        return None
    path = bars_file(home, day)
    new = pd.concat(frames, ignore_index=True)
    if path.exists():
        old = pd.read_csv(path, parse_dates=["timestamp"])
        old["timestamp"] = pd.to_datetime(old["timestamp"], utc=True)
        new = pd.concat([old, new], ignore_index=True)
    new = new.drop_duplicates(["timestamp", "symbol"], keep="last").sort_values(["symbol", "timestamp"])
    new["timestamp"] = new["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    atomic_write_bytes(path, gzip.compress(new[COLUMNS].to_csv(index=False).encode("utf-8"), mtime=0))
    return path


def _lower_priority() -> None:
    os.nice(19)  # the optimizer never competes with trading for the CPU


def launch_after_session(
    home: BotHome,
    settings: BotSettings,
    session_date: date,
    strategies: tuple[str, ...],
    *,
    popen: Callable[..., Any] = subprocess.Popen,
) -> Any | None:
    """Start the optimizer for the session just finished in its own low-priority process; never waits."""
    # ENABLE_STRATEGY_OPTIMIZER=false: the supervisor never runs the optimizer
    if not settings.ENABLE_STRATEGY_OPTIMIZER or not strategies:
        return None
    recorded = len(list((home.cache_dir / "bars").glob("bars_*.csv.gz")))
    if recorded < MIN_RECORDED_SESSIONS:
        log.info("scheduled optimizer waits: %d recorded sessions, needs %d", recorded, MIN_RECORDED_SESSIONS)
        return None
    logfile = home.root / "logs" / "optimizer_scheduled.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tbot_bot.optimizer.scheduled", "--home", str(home.root), "--end",
           session_date.isoformat(), "--strategies", ",".join(strategies)]  # fmt: skip
    with logfile.open("a", encoding="utf-8") as out:
        return popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_lower_priority, cwd=str(home.root),
        )  # fmt: skip


def run_scheduled(
    home: BotHome, end: date, strategies: list[str], *, notify: Callable[[str, str], Any]
) -> list[str]:
    """Optimise each strategy over the lookback ending at `end`; returns the proposals' run ids."""
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import TbotError
    from tbot_bot.optimizer.defaults import bars_cache_dir, lookback_start
    from tbot_bot.optimizer.runner import RunRequest, run_optimizer

    settings = load_settings(home)
    cache = bars_cache_dir(home)
    # OPTIMIZER_BACKTEST_LOOKBACK_DAYS: the sessions of recorded bars each scheduled run optimises over
    start = lookback_start(end, settings.OPTIMIZER_BACKTEST_LOOKBACK_DAYS, settings.MARKET_CALENDAR)
    vix = home.cache_dir / "vix.csv"
    # the backtest screens with fundamentals as the live day does (issue 21): the recorded bars get one file of
    # the fundamentals the live screener cached (a sim home: the bundled sample's), beside them
    # the first session the study simulates: the lookback's, or the first recorded one when fewer are held yet
    recorded = sorted(cache.glob("bars_*.csv.gz"))
    first = max(start, date.fromisoformat(recorded[0].name[5:15])) if recorded else start
    fundamentals, later = _fundamentals_as_of(home, first, settings.BROKER_NAME)
    if fundamentals is not None:
        atomic_write_text(cache / "fundamentals.json", fundamentals.read_text(encoding="utf-8"))
    if later is not None:
        notify(
            "routine",
            f"scheduled optimizer: no fundamentals cached on or before {first}; the sessions before {later} are "
            f"screened with those of {later} (the earliest cached), which they could not have known",
        )
    done = []
    for strategy in strategies:
        space = home.root / "optimizer" / f"space_{strategy}.toml"
        req = RunRequest(
            # OPTIMIZER_ALGORITHM: the algorithm of scheduled runs
            strategy, settings.OPTIMIZER_ALGORITHM, start, end, cache,
            space_file=space if space.is_file() else None, study=f"scheduled_{strategy}_{end:%Y%m%d}",
            progress=False, vix_path=vix if vix.is_file() else None, walk_forward=None,
        )  # fmt: skip
        try:
            result = run_optimizer(home, settings, req)
        except TbotError as exc:
            notify("routine", f"scheduled optimizer skipped {strategy} for {start}..{end}: {exc}")
            continue
        verdict = result.summary["verdict"]
        notify(
            "routine",
            f"optimizer run {result.run_id} ({strategy}, {start}..{end}): {verdict['statement']} "
            f"Review with `tbot optimize show {result.run_id}`",
        )
        done.append(result.run_id)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tbot_bot.optimizer.scheduled", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--home", required=True, help="bot home")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="the session just finished")
    parser.add_argument("--strategies", required=True, help="comma-separated strategies to optimise")
    args = parser.parse_args(argv)
    home = BotHome.resolve(args.home)
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.trading.notifier_bot import build_notifier

    notifier = build_notifier(load_settings(home), home, background=False)

    def notify(level: str, message: str) -> None:
        print(f"{utc_now().isoformat()} {level}: {message}", flush=True)
        notifier.send(level, "info", timestamp=utc_now(), trigger="scheduled_optimizer", message=message)

    run_scheduled(home, args.end, [s for s in args.strategies.split(",") if s], notify=notify)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _fundamentals_as_of(home: BotHome, start: date, broker_name: str) -> tuple[Path | None, date | None]:
    """The fundamentals every session of a study starting at `start` is screened with: the newest
    `data/cache/fundamentals_<day>.json` of a day on or before `start`, so no session sees values published
    after it (the newest file let January's sessions pass symbols on March's market caps: the winners that grew
    into the range); stale by up to the lookback, never from the future. When every cached file is later, the
    earliest, and its day (said to the caller). A sim home screens with the bundled sample's."""
    from tbot_bot.screeners.fundamentals import sample_fundamentals_path

    dated = []
    for path in home.cache_dir.glob("fundamentals_*.json"):
        try:
            dated.append((date.fromisoformat(path.stem.removeprefix("fundamentals_")), path))
        except ValueError:
            continue  # not one the screener wrote
    if dated:
        known = [d for d in sorted(dated) if d[0] <= start]
        return (known[-1][1], None) if known else (min(dated)[1], min(dated)[0])
    # BROKER_NAME=SIM: the simulated exchange's screener reads the bundled sample's fundamentals
    return (sample_fundamentals_path() if broker_name == "SIM" else None), None
