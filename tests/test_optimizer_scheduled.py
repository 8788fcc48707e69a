"""The after-session optimizer: bars recorded per session, the low-priority launch (never awaited), and a
scheduled run that writes a proposal and an alert but leaves the live config alone."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import make_settings

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest.load_historical_data import load_bars
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.optimizer import scheduled
from tbot_bot.support.path_resolver import BotHome, package_file

SAMPLE = package_file("data", "sample")


def feed_of(frame: Any) -> dict[str, tuple[np.ndarray, ...]]:
    out = {}
    for sym, g in frame.groupby("symbol"):
        t = g["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64) // 60_000_000_000
        out[str(sym)] = (t, *(g[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")))
    return out


def test_record_session_bars_merges_windows(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    day = date(2011, 1, 10)
    frame = load_bars(SAMPLE, start=day, end=day)
    early = frame[frame["timestamp"].dt.hour < 16]
    assert scheduled.record_session_bars(home, day, feed_of(early)) is not None
    path = scheduled.record_session_bars(
        home, day, feed_of(frame)
    )  # the later window holds the earlier bars too
    assert path is not None and path.name == "bars_2011-01-10.csv.gz"
    back = load_bars(path.parent)
    assert len(back) == len(frame)
    assert not back.duplicated(["timestamp", "symbol"]).any()
    assert np.allclose(
        back.sort_values(["symbol", "timestamp"])["close"],
        frame.sort_values(["symbol", "timestamp"])["close"],
    )
    assert scheduled.record_session_bars(home, day, {}) is None


def test_launch_is_low_priority_detached_and_gated(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def popen(cmd: list[str], **kw: Any) -> str:
        calls.append((cmd, kw))
        return "started"

    on = make_settings(ENABLE_STRATEGY_OPTIMIZER="true")
    off = make_settings(ENABLE_STRATEGY_OPTIMIZER="false")
    day = date(2011, 1, 31)
    assert (
        scheduled.launch_after_session(home, on, day, ("open",), popen=popen) is None
    )  # nothing recorded yet
    cache = tmp_path / "data" / "cache" / "bars"
    cache.mkdir(parents=True)
    days = [date(2011, 1, 3) + timedelta(days=i) for i in range(scheduled.MIN_RECORDED_SESSIONS)]
    for d in days[:-1]:
        (cache / f"bars_{d.isoformat()}.csv.gz").write_bytes(b"")
    # one session short of one fold's two blocks of 20: not launched
    assert scheduled.MIN_RECORDED_SESSIONS == 40
    assert scheduled.launch_after_session(home, on, day, ("open",), popen=popen) is None
    (cache / f"bars_{days[-1].isoformat()}.csv.gz").write_bytes(b"")
    assert scheduled.launch_after_session(home, off, day, ("open",), popen=popen) is None
    assert scheduled.launch_after_session(home, on, day, ("open", "mid"), popen=popen) == "started"
    ((cmd, kw),) = calls
    assert cmd[1:4] == ["-m", "tbot_bot.optimizer.scheduled", "--home"]
    assert cmd[-4:] == ["--end", "2011-01-31", "--strategies", "open,mid"]
    assert kw["start_new_session"] is True and kw["preexec_fn"] is scheduled._lower_priority
    # the priority the child gets
    out = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], preexec_fn=scheduled._lower_priority,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert int(out.stdout) == 19


def test_scheduled_run_writes_a_proposal_and_alerts(provisioned_home: Path) -> None:
    """The whole sample recorded (43 sessions: January and March): as many folds as the data allow (one), the
    run's verdict in the alert."""
    home = BotHome(provisioned_home)
    frame = load_bars(SAMPLE, start=date(2011, 1, 3), end=date(2011, 3, 31))
    for day, g in frame.groupby(frame["timestamp"].dt.date):
        scheduled.record_session_bars(home, day, feed_of(g))
    (home.cache_dir / "vix.csv").write_text((SAMPLE / "vix.csv").read_text())
    (provisioned_home / "optimizer").mkdir()
    (provisioned_home / "optimizer" / "space_open.toml").write_text(
        "[STRAT_OPEN_BUFFER]\nvalues = [0.001, 0.003]\n"
    )
    assert (
        tbot(["config", "set", "OPTIMIZER_BACKTEST_LOOKBACK_DAYS=62", "--home", str(provisioned_home)]) == 0
    )
    before = load_settings(home)
    sent: list[tuple[str, str]] = []
    ids = scheduled.run_scheduled(
        home, date(2011, 3, 31), ["open"], notify=lambda lvl, msg: sent.append((lvl, msg))
    )
    assert ids == ["scheduled_open_20110331"]
    proposal = json.loads((home.versioned_env_dir / "proposals" / "scheduled_open_20110331.json").read_text())
    best = json.loads((Path(proposal["results_dir"]) / "best.json").read_text())
    # the last 62 XNYS sessions: January 3 to March 31 (the data has no February)
    assert best["start"] == "2011-01-03" and best["end"] == "2011-03-31" and best["walk_forward"] == 1
    assert proposal["status"] == ("pending" if best["verdict"]["recommend"] else "keep_current")
    assert load_settings(home) == before  # a proposal only: the live config is untouched
    assert sent and sent[0][0] == "routine" and "tbot optimize show scheduled_open_20110331" in sent[0][1]
    assert best["verdict"]["statement"] in sent[0][1]


def test_scheduled_run_without_enough_data_is_skipped_with_an_alert(provisioned_home: Path) -> None:
    home = BotHome(provisioned_home)
    frame = load_bars(SAMPLE, start=date(2011, 1, 3), end=date(2011, 1, 5))
    for day, g in frame.groupby(frame["timestamp"].dt.date):
        scheduled.record_session_bars(home, day, feed_of(g))
    sent: list[tuple[str, str]] = []
    assert (
        scheduled.run_scheduled(home, date(2011, 1, 5), ["open"], notify=lambda lvl, m: sent.append((lvl, m)))
        == []
    )
    assert "scheduled optimizer skipped open" in sent[0][1]


@pytest.mark.parametrize("flag", ["true", "false"])
def test_template_flag_parses(flag: str) -> None:
    assert make_settings(ENABLE_STRATEGY_OPTIMIZER=flag).ENABLE_STRATEGY_OPTIMIZER is (flag == "true")


def test_a_scheduled_study_screens_with_fundamentals_it_could_have_known(tmp_path: Path) -> None:
    """The newest cached fundamentals screened every session of the lookback: January's sessions passed symbols on
    March's market caps (a research review: 0 trades with January's own file, 54 with March's)."""
    home = BotHome(tmp_path)
    home.cache_dir.mkdir(parents=True)
    for day in ("2011-01-03", "2011-01-20", "2011-03-31"):
        (home.cache_dir / f"fundamentals_{day}.json").write_text("{}")
    (home.cache_dir / "fundamentals_latest.json").write_text("{}")  # not one the screener wrote: ignored
    as_of = scheduled._fundamentals_as_of
    assert as_of(home, date(2011, 1, 10), "ALPACA") == (home.cache_dir / "fundamentals_2011-01-03.json", None)
    assert as_of(home, date(2011, 1, 20), "ALPACA") == (home.cache_dir / "fundamentals_2011-01-20.json", None)
    # none known at the start: the earliest, and its day, which the run says
    assert as_of(home, date(2010, 12, 1), "ALPACA") == (
        home.cache_dir / "fundamentals_2011-01-03.json",
        date(2011, 1, 3),
    )
    assert as_of(BotHome(tmp_path / "empty"), date(2011, 1, 10), "ALPACA") == (None, None)


def test_the_ramp_up_is_judged_from_the_first_recorded_session(provisioned_home: Path) -> None:
    """While fewer sessions are recorded than the lookback, its start lies before any bar: a file of the first
    recorded day was said to be one the sessions before it 'could not have known', every day (a reread)."""
    home = BotHome(provisioned_home)
    frame = load_bars(SAMPLE, start=date(2011, 1, 3), end=date(2011, 1, 5))
    for day, g in frame.groupby(frame["timestamp"].dt.date):
        scheduled.record_session_bars(home, day, feed_of(g))
    fundamentals = (SAMPLE / "fundamentals.json").read_text()
    (home.cache_dir / "fundamentals_2011-01-03.json").write_text(fundamentals)
    sent: list[tuple[str, str]] = []
    scheduled.run_scheduled(home, date(2011, 1, 5), ["open"], notify=lambda lvl, m: sent.append((lvl, m)))
    assert not [m for _, m in sent if "could not have known" in m]
    (home.cache_dir / "fundamentals_2011-01-03.json").rename(home.cache_dir / "fundamentals_2011-01-04.json")
    sent.clear()
    scheduled.run_scheduled(home, date(2011, 1, 5), ["open"], notify=lambda lvl, m: sent.append((lvl, m)))
    assert [m for _, m in sent if "no fundamentals cached on or before 2011-01-03" in m]
