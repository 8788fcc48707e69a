"""Issue 22 point 4 (stale market data, outages between windows) and issue 24 Build 5 (planned broker maintenance,
reconciliation after any reconnect), on the demo day replayed in process against the simulated exchange.

The demo day without faults: OPEN enters at 14:59 UTC, MID buys SH at 15:46 (signal on the 15:45 bar) and its
timeout exit fills at 16:16, CLOSE enters at 19:36.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from integration_test_runner import check_outputs, provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.broker.broker_api import OrderRequest
from tbot_bot.config.env_bot import settings_from_text
from tbot_bot.config.settings_bot import update_env_values
from tbot_bot.domain.vocab import OrderSide
from tbot_bot.errors import ConfigError, NetworkError
from tbot_bot.runtime.main import Supervisor


def _at(hh: int, mm: int) -> datetime:
    return datetime(2011, 1, 25, hh, mm, tzinfo=UTC)


class _Faults:
    """The sim broker with a feed gap (get_bars answers no bars) and/or an outage (every call a NetworkError)
    while the replay clock is inside the given spans; `on_outage` runs once when the outage begins."""

    def __init__(
        self,
        inner: Any,
        *,
        gap: tuple[datetime, datetime] | None = None,
        down: tuple[datetime, datetime] | None = None,
        on_outage: Any = None,
        armed_by: str | None = None,
    ) -> None:
        self._inner, self._gap, self._down, self._on_outage = inner, gap, down, on_outage
        self._armed_by = armed_by  # the outage starts at the first call of this method (after boot)
        self.refused = 0

    def _inside(self, span: tuple[datetime, datetime] | None) -> bool:
        return span is not None and span[0] <= self._inner._clock.now() < span[1]

    def __getattr__(self, item: str) -> Any:
        value = getattr(self._inner, item)
        if not callable(value) or item in ("close", "capabilities"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if item == self._armed_by:
                self._armed_by = None
            if self._armed_by is None and self._inside(self._down):
                if self._on_outage is not None:
                    hook, self._on_outage = self._on_outage, None
                    hook(self._inner)
                self.refused += 1
                raise NetworkError(f"connection refused ({item})")
            if item == "get_bars" and self._inside(self._gap):
                return {}
            return value(*args, **kwargs)

        return call


def _events(home: Any) -> list[dict[str, Any]]:
    """The supervisor's and the windows' logs, in replay-time order (the supervisor's first within a second)."""
    logs = next(home.output_dir.rglob("supervisor.log")).parent
    out = []
    for name in ("supervisor", "open", "mid", "close"):
        for line in (logs / f"{name}.log").read_text().splitlines():
            row = json.loads(line)
            detail = row.get("detail")
            row["d"] = json.loads(detail) if isinstance(detail, str) and detail.startswith("{") else {}
            out.append(row)
    return sorted(out, key=lambda r: r["timestamp"])


def _when(row: dict[str, Any]) -> str:
    return str(row["timestamp"])


def _named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if name in (e.get("event"), e.get("event_type"), e.get("action"))]


def _alerts(caplog: pytest.LogCaptureFixture, trigger: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tbot_bot.trading.notifier_bot" and f'"trigger": "{trigger}"' in r.getMessage()
    ]


def _entries(events: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    return [e for e in _named(events, "entry_order") if e.get("strategy_name") == strategy]


def test_a_feed_that_stops_suspends_the_window_alerts_once_and_the_day_books(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    gap = (_at(15, 38), _at(15, 42))  # MID's feed delivers nothing for four minutes, then catches up
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Faults(b, gap=gap)).run() == 0
    events = _events(home)
    [stale] = _named(events, "market_data_stale")
    assert stale["d"]["window"] == "mid"
    assert stale["d"]["since"] == _at(15, 40).isoformat()  # 180 s (MARKET_DATA_STALE_SECONDS) of replay time
    assert len(_alerts(caplog, "market_data_stale")) == 1
    # the bars came back, the signal came, but the window stays without entries: denied, never sent
    denied = [e for e in _named(events, "signal_denied") if e["d"].get("filter") == "market_data_stale"]
    assert denied and all(e["strategy_name"] == "mid" for e in denied)
    assert _entries(events, "mid") == []
    assert _entries(events, "open") and _entries(events, "close")  # the other windows trade as usual
    status = json.loads(home.status_json.read_text())
    assert status["market_data"] == {
        "stale": False,  # CLOSE ran on a live feed after it
        "window": "mid",
        "since": _at(15, 40).isoformat(),
        "last_bar_at": _at(15, 37).isoformat(),
    }
    assert check_outputs(home, DEMO_DAY) == []


def test_a_stale_feed_still_manages_the_exits(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    gap = (_at(15, 50), _at(16, 30))  # SH is held from 15:46; the feed stops for the rest of MID
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Faults(b, gap=gap)).run() == 0
    events = _events(home)
    assert len(_named(events, "market_data_stale")) == 1 and len(_alerts(caplog, "market_data_stale")) == 1
    [entry] = _entries(events, "mid")
    exits = [e for e in _named(events, "exit_fill") if e.get("strategy_name") == "mid"]
    assert [e["ticker"] for e in exits] == ["SH"]  # closed inside its window, on a feed that said nothing
    assert json.loads(home.status_json.read_text())["positions"] == []
    assert check_outputs(home, DEMO_DAY) == []


def test_an_outage_at_the_start_is_probed_and_reconciled_before_the_first_entry(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    _no_retries(home)
    down = (_at(14, 0), _at(14, 33))  # from the reconcile step (after boot) past OPEN's start
    outage: list[_Faults] = []

    def wrap(b: Any) -> Any:
        outage.append(_Faults(b, down=down, armed_by="get_positions"))
        return outage[-1]

    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0
    assert outage[0].refused > 0
    events = _events(home)
    [gone] = _named(events, "broker_outage")
    [back] = _named(events, "broker_resumed")
    assert gone["d"]["window"] == "reconcile"
    assert down[1] <= datetime.fromisoformat(back["d"]["at"]) < _at(14, 36)  # back-off probing found it soon
    assert len(_alerts(caplog, "broker_outage")) == 1 and len(_alerts(caplog, "broker_resumed")) == 1
    reconciled = _named(events, "reconciled")
    assert [r["d"].get("after") for r in reconciled] == ["start"]  # the start's reconciliation, run late
    first_entry = _entries(events, "open")[0]
    assert _when(back) <= _when(reconciled[0]) < _when(first_entry)
    assert events.index(back) < events.index(reconciled[0])
    status = json.loads(home.status_json.read_text())
    assert status["broker"]["healthy"] is True
    assert status["broker"]["down_since"] == _at(14, 29).isoformat()  # the replay's pre-open reconcile minute
    assert status["broker"]["resumed_at"] == back["d"]["at"]
    assert [w["status"] for w in status["windows"]] == ["done", "done", "done"]
    assert check_outputs(home, DEMO_DAY) == []


def _maintenance(home: Any, value: str) -> None:
    update_env_values(home, {"BROKER_MAINTENANCE_WINDOW": value, "API_RETRY_LIMIT": "0"}, actor="test")


def _no_retries(home: Any) -> None:  # a refused call fails at once (the retries' back-off sleeps are real time)
    update_env_values(home, {"API_RETRY_LIMIT": "0"}, actor="test")


def test_maintenance_is_a_planned_pause_and_the_reconnect_reconciles_first(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    _maintenance(home, "10:40-10:43")  # New York time: 15:40-15:43 UTC on the demo day
    down = (_at(15, 40), _at(15, 43))
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Faults(b, down=down)).run() == 0
    events = _events(home)
    assert _named(events, "broker_outage") == [] and _alerts(caplog, "broker_outage") == []
    assert _alerts(caplog, "broker_resumed") == []  # a planned pause ends without an alert too
    [pause] = _named(events, "broker_maintenance")
    assert pause["d"]["maintenance_window"] == "10:40-10:43 America/New_York"
    [back] = _named(events, "broker_resumed")
    assert back["d"]["maintenance"] is True
    # after the reconnect the reconciliation ran, and only then did MID enter
    [again] = [r for r in _named(events, "reconciled") if r["d"].get("after") == "reconnect"]
    [mid_entry] = _entries(events, "mid")
    assert _when(back) <= _when(again) < _when(mid_entry) and events.index(back) < events.index(again)
    status = json.loads(home.status_json.read_text())
    assert status["broker"]["maintenance"] is False and status["broker"]["resumed_at"] == back["d"]["at"]
    assert status["broker"]["down_since"] == pause["d"]["since"]
    assert check_outputs(home, DEMO_DAY) == []


def test_an_unexplained_position_found_at_the_reconnect_blocks_entries(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    _maintenance(home, "10:40-10:43")

    def by_hand(sim: Any) -> None:  # while the bot cannot reach the broker, someone buys there by hand
        sim.submit_order(OrderRequest("by-hand-1", "SYN2", OrderSide.BUY, Decimal("3")))

    faults = {"down": (_at(15, 40), _at(15, 43)), "on_outage": by_hand}
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Faults(b, **faults)).run() == 0
    events = _events(home)
    [again] = [r for r in _named(events, "reconciled") if r["d"].get("after") == "reconnect"]
    after = events[events.index(again) :]
    assert not [e for e in _named(after, "entry_order")]  # neither MID's SH nor CLOSE
    status = json.loads(home.status_json.read_text())
    assert "SYN2" in status["reconciliation"]["summary"] or "SYN2" in json.dumps(status["reconciliation"])
    assert any('"trigger": "reconciliation"' in a for a in _alerts(caplog, "reconciliation"))
    windows = {w["strategy"]: w for w in status["windows"]}
    assert windows["close"]["status"] == "halted" or "reconciliation" in (windows["close"]["note"] or "")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("auto", True),
        ("none", True),
        ("", True),
        ("23:45-00:45", True),
        ("05:45-06:45 Europe/Zurich", True),
        ("23:45", False),
        ("24:00-01:00", False),
        ("10:00-10:00", False),
        ("23:45-00:45 Mars/Olympus", False),
    ],
)
def test_maintenance_window_values(value: str, ok: bool) -> None:
    from helpers import template_text

    text = "\n".join(
        f"BROKER_MAINTENANCE_WINDOW={value}" if line.startswith("BROKER_MAINTENANCE_WINDOW=") else line
        for line in template_text().splitlines()
    )
    if ok:
        settings_from_text(text)
        return
    with pytest.raises(ConfigError) as err:
        settings_from_text(text)
    assert "BROKER_MAINTENANCE_WINDOW" in str(err.value) and "HH:MM-HH:MM" in str(err.value)


@pytest.mark.parametrize("value", ["29", "3601", "soon"])
def test_stale_seconds_out_of_range_is_named(value: str) -> None:
    from helpers import template_text

    text = "\n".join(
        f"MARKET_DATA_STALE_SECONDS={value}" if line.startswith("MARKET_DATA_STALE_SECONDS=") else line
        for line in template_text().splitlines()
    )
    with pytest.raises(ConfigError) as err:
        settings_from_text(text)
    assert "MARKET_DATA_STALE_SECONDS" in str(err.value)
