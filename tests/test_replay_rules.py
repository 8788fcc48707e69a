"""The day's safety rules book the same in a backtest as in the replays (issue 21), per window and all windows:
fundamentals guard, spread limit, kill switch, defense mode carried to the next session, MAX_OPEN_POSITIONS."""

from __future__ import annotations

import json
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


class _RefusesOneEntry:
    """The broker refuses one order by its client_order_id (e.g. a symbol it cannot trade today)."""

    def __init__(self, inner: object, refused: str) -> None:
        self._inner, self._refused = inner, refused

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def submit_order(self, request):  # type: ignore[no-untyped-def]
        from tbot_bot.errors import BrokerError

        if request.client_order_id == self._refused:
            raise BrokerError("symbol not tradable today (test)", code="rejected")
        return self._inner.submit_order(request)  # type: ignore[attr-defined]


def _mid_events(home: Path, event: str) -> list[dict[str, object]]:
    (log,) = home.glob("output/*/logs/mid.log")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in rows if r["event"] == event]


def test_an_entry_the_broker_refused_gives_its_slot_back(tmp_path: Path) -> None:
    """The demo day's MID enters SH at 15:46 and then denies SYN2 at 15:48: the session cap is committed. When
    the broker refuses the SH order, nothing traded: the cap it held goes back, and SYN2 is entered (a restart
    already counted a refused entry so; the backtest gives back an entry it cannot fill)."""
    from rigd_tbot.commands.demo import DEMO_DAY

    plain = provision_demo_home(tmp_path / "plain")
    assert Supervisor(plain, replay_day=DEMO_DAY).run() == 0
    denied = [r for r in _mid_events(plain.root, "signal_denied") if r["ticker"] == "SYN2"]
    assert denied and "risk:session_cap_used" in str(denied[0]["detail"])

    home = provision_demo_home(tmp_path / "refused")
    refused = "TB01-20110125-mid-SH-1"
    wrap = lambda b: _RefusesOneEntry(b, refused)  # noqa: E731
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0  # type: ignore[arg-type]
    orders = {str(r["ticker"]): json.loads(str(r["detail"])) for r in _mid_events(home.root, "entry_order")}
    assert orders["SH"]["status"] == "rejected" and orders["SH"]["client_order_id"] == refused
    assert orders["SYN2"]["status"] == "filled"


def test_a_bars_exits_reach_the_kill_switch_in_one_order_live_and_in_the_backtest(tmp_path: Path) -> None:
    """Two exits filling at one bar (OPEN's SYN1 +0.69 and SYN8 -2.90 at 15:29 on 2011-01-25) with a daily loss
    limit of 2.50: the replay booked SYN1 first and never tripped, the backtest booked SYN8 first (its entry
    order) and halted the day. Both book a bar's fills in client order id order now."""
    home = provision_demo_home(tmp_path / "home")
    update_env_values(home, {"DAILY_LOSS_LIMIT": "0.0001"}, actor="test")
    days = tuple(d for d in JANUARY if d.isoformat() >= "2011-01-25")[:2]
    for day in days:
        assert Supervisor(home, replay_day=day).run() == 0, day
    live = replayed_by_day(home)
    result = run_backtest(
        load_settings(home), "all", SAMPLE, days[0], days[-1], tmp_path / "bt",
        broker_current_float=backtest_float(None, home), plots=False,
    )  # fmt: skip
    backtest = backtested_by_day(result.trades)
    assert [t[1] for t in live[days[0]]] == ["SYN3", "SH", "SYN1", "SYN8"]  # the limit never tripped
    assert all(backtest.get(d, []) == live.get(d, []) for d in days)
