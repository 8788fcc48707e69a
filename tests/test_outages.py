"""Issue 22 point 4: a broker outage inside a window suspends new entries, the broker is probed with back-off, and
when it answers again the window goes on from the next minute; the day books normally. An outage that outlasts the
window still halts it, as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from integration_test_runner import check_outputs, provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.errors import MarketDataUnreachable, NetworkError
from tbot_bot.runtime.main import Supervisor


class _Outage:
    """The sim broker, unreachable while the replay clock is inside [start, end): every call fails as the Alpaca
    adapter's fail when its host does not answer (a NetworkError; for market data a MarketDataUnreachable, the
    minute's bar request being what meets an outage first)."""

    def __init__(self, inner: Any, start: datetime, end: datetime, status: Any = None) -> None:
        self._inner, self._start, self._end = inner, start, end
        self.refused = 0
        self._status, self.states = status, set()  # status.json's states seen while refusing

    def __getattr__(self, item: str) -> Any:
        value = getattr(self._inner, item)
        if not callable(value) or item in ("close", "capabilities"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._start <= self._inner._clock.now() < self._end:
                self.refused += 1
                if self._status is not None and self._status.exists():
                    self.states.add(json.loads(self._status.read_text())["state"])
                if item in ("get_bars", "get_snapshots", "get_latest_quote"):
                    raise MarketDataUnreachable(f"minute bars: connection failed ({item})")
                raise NetworkError(f"connection refused ({item})")
            return value(*args, **kwargs)

        return call


def _events(home: Any, name: str) -> list[dict[str, Any]]:
    logs = next(home.output_dir.rglob("supervisor.log")).read_text().splitlines()
    return [json.loads(x) for x in logs if f'"{name}"' in x]


def test_a_three_minute_outage_mid_window_heals_and_the_day_books(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = provision_demo_home(tmp_path / "home")
    start, end = datetime(2011, 1, 25, 15, 40, tzinfo=UTC), datetime(2011, 1, 25, 15, 43, tzinfo=UTC)
    outages: list[_Outage] = []

    def wrap(broker: Any) -> Any:
        outages.append(_Outage(broker, start, end, home.status_json))
        return outages[-1]

    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0
    assert outages[0].refused > 0  # the outage really happened
    # said as a suspension while it lasted, never "halted" (which reads as the day's end)
    assert "suspended" in outages[0].states and "halted" not in outages[0].states
    status = json.loads(home.status_json.read_text())
    assert [w["status"] for w in status["windows"]] == ["done", "done", "done"]  # nothing halted for the day
    assert status["broker"]["healthy"] is True
    [down] = _events(home, "broker_outage")
    [back] = _events(home, "broker_resumed")
    assert down["strategy_name"] == "supervisor" and json.loads(down["detail"])["window"] == "mid"
    resumed_at = datetime.fromisoformat(json.loads(back["detail"])["at"])
    assert end <= resumed_at < datetime(2011, 1, 25, 15, 46, tzinfo=UTC)  # probed with back-off, found soon
    assert check_outputs(home, DEMO_DAY) == []  # booked normally: trade history, summary, ledger agree


def test_an_outage_that_outlasts_the_window_halts_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = provision_demo_home(tmp_path / "home")
    start, end = datetime(2011, 1, 25, 15, 40, tzinfo=UTC), datetime(2011, 1, 25, 19, 0, tzinfo=UTC)
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Outage(b, start, end)).run() in (
        0,
        1,
    )
    status = json.loads(home.status_json.read_text())
    windows = {w["strategy"]: w for w in status["windows"]}
    assert windows["mid"]["status"] == "halted" and "broker outage" in windows["mid"]["note"]
    assert _events(home, "broker_outage") and not _events(home, "broker_resumed")


def test_an_outage_found_after_a_window_suspends_until_the_broker_answers_then_reconciles(
    tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """Between windows: the check after OPEN cannot reach the broker. The day is not halted: MID waits, probes,
    reconciles when the broker answers and trades; each change is alerted once."""
    import logging

    from tbot_bot.config.settings_bot import update_env_values

    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    update_env_values(
        home, {"API_RETRY_LIMIT": "0"}, actor="test"
    )  # the retries' back-off sleeps are real time
    never = datetime(2011, 1, 24, tzinfo=UTC)
    outages: list[_Outage] = []

    class _DownAfterOpen(Supervisor):
        def _check_after_window(self, ctx, name):  # type: ignore[no-untyped-def]
            if name == "open":  # the broker goes away as OPEN ends, for four minutes
                now = ctx.clock.now()
                outages[0]._start, outages[0]._end = now, now + timedelta(minutes=4)
            super()._check_after_window(ctx, name)

    def wrap(broker: Any) -> Any:
        outages.append(_Outage(broker, never, never))
        return outages[-1]

    assert _DownAfterOpen(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0
    [down] = _events(home, "broker_outage")
    [back] = _events(home, "broker_resumed")
    assert json.loads(down["detail"])["window"] == "open"
    resumed = datetime.fromisoformat(json.loads(back["detail"])["at"])
    assert outages[0]._end <= resumed < outages[0]._end + timedelta(minutes=3)
    [again] = [e for e in _events(home, "reconciled") if json.loads(e["detail"]).get("after") == "reconnect"]
    assert again["timestamp"] >= back["timestamp"]
    mid_log = next(home.output_dir.rglob("supervisor.log")).parent / "mid.log"
    mid_entries = [json.loads(x) for x in mid_log.read_text().splitlines() if '"entry_order"' in x]
    assert mid_entries and min(e["timestamp"] for e in mid_entries) > again["timestamp"]  # reconciled first
    # the order's side is the position held: MID's bearish SH entry is long (it said short)
    sh = [e for e in mid_entries if e["ticker"] == "SH"]
    assert sh and all(e["side"] == "long" and json.loads(e["detail"])["direction"] == "bearish" for e in sh)
    status = json.loads(home.status_json.read_text())
    assert [w["status"] for w in status["windows"]] == ["done", "done", "done"]
    assert status["broker"]["down_since"] == json.loads(down["detail"])["since"]
    alerts = [r.getMessage() for r in caplog.records if r.name == "tbot_bot.trading.notifier_bot"]
    assert sum('"trigger": "broker_outage"' in a for a in alerts) == 1
    assert sum('"trigger": "broker_resumed"' in a for a in alerts) == 1
    assert check_outputs(home, DEMO_DAY) == []
