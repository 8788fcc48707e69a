"""The day's safety rules book the same in a backtest as in the replays (issue 21), per window and all windows:
fundamentals guard, spread limit, kill switch, defense mode carried to the next session, MAX_OPEN_POSITIONS."""

from __future__ import annotations

from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home
from replay_parity import JANUARY, SAMPLE, Replayed, backtested_by_day, replayed_by_day

from tbot_bot.backtest.backtest_engine import backtest_float, run_backtest
from tbot_bot.config.settings_bot import load_settings, update_env_values
from tbot_bot.runtime.main import Supervisor

# the day's safety rules all at work on a short span: the fundamentals guard rejects SYN3/SYN6/SYN8 (P/E above
# 25), the sim's spread (a half-spread of 0.02% rounded to 1/10,000) rejects the cheapest symbols, a 50 cent
# net loss trips the kill switch, a losing first trade turns defense mode on (and into the next session)
RULES = {
    "ENABLE_FUNNHUB_FUNDAMENTALS_FILTER": "true",
    "MAX_PE_RATIO": "25",
    "MAX_SPREAD_PCT": "0.000405",
    "DAILY_LOSS_LIMIT": "0.00002",
    "DEFENSE_MODE_TRIGGER_WIN_RATE": "0.5",
    "MAX_OPEN_POSITIONS": "2",
}
RULE_DAYS = JANUARY[:8]


@pytest.fixture(scope="module", params=["all", "open", "mid", "close"])
def ruled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Replayed]:
    strategy = str(request.param)
    home = provision_demo_home(tmp_path_factory.mktemp(f"rules_{strategy}") / "home")
    update_env_values(
        home, {**RULES, "STRATEGY_OVERRIDE": "" if strategy == "all" else strategy}, actor="test"
    )
    for day in RULE_DAYS:
        assert Supervisor(home, replay_day=day).run() == 0, day
    return strategy, (home, replayed_by_day(home))


def test_the_days_rules_book_the_same_in_a_backtest_as_in_the_replays(
    ruled: tuple[str, Replayed], tmp_path: Path
) -> None:
    strategy, (home, live) = ruled
    result = run_backtest(
        load_settings(home), strategy, SAMPLE, RULE_DAYS[0], RULE_DAYS[-1], tmp_path / "bt",
        broker_current_float=backtest_float(None, home),
    )  # fmt: skip
    backtest = backtested_by_day(result.trades)
    assert live and all(backtest.get(d, []) == live.get(d, []) for d in RULE_DAYS), strategy
    codes = {s.code for s in result.skips}
    assert "screen:ENABLE_FUNNHUB_FUNDAMENTALS_FILTER" in codes and "screen:MAX_SPREAD_PCT" in codes
    if strategy == "all":
        assert "halted" in codes  # the kill switch stopped a later window's entries
        switches = list(home.root.glob("output/*/logs/disaster_mode.log"))[0].read_text().splitlines()
        assert len(switches) >= 2  # the replays switched defense mode on: the backtest sized by it too
