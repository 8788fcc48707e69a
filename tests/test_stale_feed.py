"""Issue 22 point 4: a market-data feed that delivers no new bar for MARKET_DATA_STALE_SECONDS during a window
suspends that window's entries, alerts once and shows in status; exits are still managed and the day books. The demo
day replayed in process against the simulated exchange: without faults MID buys SH at 15:46 UTC (signal on the 15:45
bar) and its timeout exit fills at 16:16.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from broker_faults import Faults, alerts, at, entries, logged_events, named
from helpers import template_text
from integration_test_runner import check_outputs, provision_demo_home

from rigd_tbot.cli import main
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.config.env_bot import settings_from_text
from tbot_bot.errors import ConfigError
from tbot_bot.runtime.main import Supervisor


def test_a_feed_that_stops_suspends_the_window_alerts_once_and_the_day_books(
    tmp_path, caplog, capsys
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    gap = (at(15, 38), at(15, 42))  # MID's feed delivers nothing for four minutes, then catches up
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: Faults(b, gap=gap)).run() == 0
    events = logged_events(home)
    [stale] = named(events, "market_data_stale")
    assert stale["d"]["window"] == "mid"
    assert stale["d"]["since"] == at(15, 40).isoformat()  # 180 s (MARKET_DATA_STALE_SECONDS) of replay time
    assert len(alerts(caplog, "market_data_stale")) == 1
    # the bars came back, the signal came, but the window stays without entries: denied, never sent
    denied = [e for e in named(events, "signal_denied") if e["d"].get("filter") == "market_data_stale"]
    assert denied and all(e["strategy_name"] == "mid" for e in denied)
    assert entries(events, "mid") == []
    assert entries(events, "open") and entries(events, "close")  # the other windows trade as usual
    status = json.loads(home.status_json.read_text())
    assert status["market_data"] == {
        "stale": False,  # CLOSE ran on a live feed after it
        "window": "mid",
        "since": at(15, 40).isoformat(),
        "last_bar_at": at(15, 37).isoformat(),
    }
    assert check_outputs(home, DEMO_DAY) == []
    # `tbot status` names it with both times (the dashboard shows the same lines: status_bot.conditions)
    assert main(["status", "--home", str(home.root)]) == 0
    shown = capsys.readouterr().out
    assert (
        "market data went stale in the MID window at 2011-01-25 10:40 EST / 15:40Z (last bar 2011-01-25 10:37"
        in shown
    )


def test_a_stale_feed_still_manages_the_exits(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    gap = (at(15, 50), at(16, 30))  # SH is held from 15:46; the feed stops for the rest of MID
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=lambda b: Faults(b, gap=gap)).run() == 0
    events = logged_events(home)
    assert len(named(events, "market_data_stale")) == 1 and len(alerts(caplog, "market_data_stale")) == 1
    [entry] = entries(events, "mid")
    exits = [e for e in named(events, "exit_fill") if e.get("strategy_name") == "mid"]
    assert [e["ticker"] for e in exits] == ["SH"]  # closed inside its window, on a feed that said nothing
    assert json.loads(home.status_json.read_text())["positions"] == []
    assert check_outputs(home, DEMO_DAY) == []


@pytest.mark.parametrize("value", ["119", "3601", "soon"])
def test_stale_seconds_out_of_range_is_named(value: str) -> None:
    text = "\n".join(
        f"MARKET_DATA_STALE_SECONDS={value}" if line.startswith("MARKET_DATA_STALE_SECONDS=") else line
        for line in template_text().splitlines()
    )
    with pytest.raises(ConfigError) as err:
        settings_from_text(text)
    assert "MARKET_DATA_STALE_SECONDS" in str(err.value)


class _Slow:
    """The sim broker whose bar requests take `seconds` of replay time while `slow(now)` holds (and only the first
    time when `once`): a supervisor that falls behind its window, or a restart that reaches its first minute late
    (systemd's restart delay, the boot, the broker's connection)."""

    def __init__(self, inner, slow, seconds: int, *, once: bool = False) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._slow, self._seconds, self._once, self._done = inner, slow, seconds, once, False

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        value = getattr(self._inner, item)
        if item != "get_bars":
            return value

        def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
            clock = self._inner._clock
            if self._slow(clock.now()) and not (self._once and self._done):
                self._done = True
                clock.advance_to(clock.now() + timedelta(seconds=self._seconds), paced=False)
            return value(*args, **kwargs)

        return slow


def test_a_signal_processed_a_minute_late_is_denied_not_entered(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """Design §7: a signal on bar t's close fills at bar t+1's open. A minute the supervisor reaches a minute or
    more late (here: MID's bar requests take 65 s in its breakout window; in a day whose windows overlapped, the
    whole of a late window) is not entered at whatever the price is by then: its signals are denied as late."""
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    slow = (at(15, 45), at(15, 47))  # without it MID buys SH at 15:46 on the 15:45 bar's signal
    assert (
        Supervisor(
            home,
            replay_day=DEMO_DAY,
            broker_wrapper=lambda b: _Slow(b, lambda now: slow[0] <= now < slow[1], 65),
        ).run()
        == 0
    )
    events = logged_events(home)
    late = [e for e in named(events, "signal_denied") if e["d"].get("filter") == "signal_late"]
    assert late and all(e["strategy_name"] == "mid" for e in late), late
    assert "was processed at 15:47:" in late[0]["d"]["reason"]
    # the supervisor fell behind: the operator is told once (a stale feed alerts; a late minute was only logged)
    assert len(alerts(caplog, "signal_late")) == 1
    assert all(e["timestamp"] != at(15, 46).strftime("%Y-%m-%dT%H:%M:%SZ") for e in entries(events, "mid"))
    assert check_outputs(home, DEMO_DAY) == []


def test_minutes_a_late_window_catches_up_are_said_not_paged(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A window whose minute loop begins late (a restart resuming it, a window begun after the one before it ended;
    here MID's first bar request takes 17 minutes) catches up the minutes already past: their signals are denied
    as late as before, but the operator is told as routine, not paged as if the supervisor had fallen behind (the
    critical page stays for a minute the running loop reaches late: the test above)."""
    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    home = provision_demo_home(tmp_path / "home")
    stalled = (at(15, 30), at(15, 31))  # MID's window opens at 15:30; its 15:45 bar signals (the test above)
    wrapper = lambda b: _Slow(b, lambda now: stalled[0] <= now < stalled[1], 17 * 60 + 5, once=True)  # noqa: E731
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrapper).run() == 0
    late = [e for e in named(logged_events(home), "signal_denied") if e["d"].get("filter") == "signal_late"]
    assert late and all(e["strategy_name"] == "mid" for e in late), late
    said = alerts(caplog, "signal_late")
    assert len(said) == 1 and '"level": "routine"' in said[0] and "were caught up" in said[0], said


def test_a_late_restart_never_rewrites_an_entered_signal_as_denied(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Killed right after sending an entry, then restarted late: the minute processed again found its signal
    entered before the kill, yet denied it as late, rewriting the journal's `entered:` record of a filled position
    as `denied:signal_late` and counting a denial that never happened."""
    import os
    import sqlite3
    import subprocess
    import sys

    home = provision_demo_home(tmp_path / "home")
    env = {**os.environ, "TBOT_CRASH_AT": "after_send"}
    killed = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home.root), "--replay", DEMO_DAY.isoformat()],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr

    def signals() -> dict[tuple[str, str], str]:
        with sqlite3.connect(home.state_dir / "journal.db") as conn:
            return {
                (r[0], r[1]): r[2] for r in conn.execute("SELECT symbol, signal_time, outcome FROM signals")
            }

    entered = {k: v for k, v in signals().items() if v.startswith("entered:")}
    assert entered, "the crash point must leave an entered signal"
    assert (
        Supervisor(
            home, replay_day=DEMO_DAY, broker_wrapper=lambda b: _Slow(b, lambda now: True, 125, once=True)
        ).run()
        == 0
    )
    after = signals()
    assert {k: after[k] for k in entered} == entered
    denied = [e for e in named(logged_events(home), "signal_denied") if e["d"].get("filter") == "signal_late"]
    assert not any(
        (e["ticker"] if "ticker" in e else e["d"].get("ticker")) in {s for s, _ in entered} for e in denied
    )


class _NoBarAt:
    """The sim broker whose minute bars lack `symbol`'s bar at `minute` (IEX: a minute without a trade has no bar
    at all, not a bar of no volume)."""

    def __init__(self, inner, symbol: str, minute) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._symbol, self._minute = inner, symbol, minute

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        value = getattr(self._inner, item)
        if item != "get_bars":
            return value

        def without(*args, **kwargs):  # type: ignore[no-untyped-def]
            got = value(*args, **kwargs)
            if self._symbol in got:
                got = {**got, self._symbol: [b for b in got[self._symbol] if b.timestamp != self._minute]}
            return got

        return without


def test_a_signal_whose_symbol_has_no_next_bar_is_offered_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MID's 15:45 signal on SYN5, refused (DISABLE_ALL_TRADES), and no SYN5 bar at 15:46: at 15:47 SYN5's newest
    bar was still 15:45, and the same signal came back to be refused (counted) again, or entered a minute late had
    its refusal cleared meanwhile. A signal is put to the window once."""
    home = provision_demo_home(tmp_path / "home")
    assert main(["config", "set", "--home", str(home.root), "DISABLE_ALL_TRADES=true"]) == 0
    wrapper = lambda b: _NoBarAt(b, "SYN5", at(15, 46))  # noqa: E731
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrapper).run() == 0
    mid = [e for e in logged_events(home) if e.get("strategy_name") == "mid" and e.get("ticker") == "SYN5"]
    offered = [e for e in named(mid, "signal") if e["signal_time"] == at(15, 45).isoformat()]
    refused = named(mid, "signal_denied")
    assert len(offered) == 1 and len(refused) == 1, (offered, refused)
    assert (
        refused[0]["d"]["filter"] == "risk:trades_disabled"
        and refused[0]["timestamp"] == "2011-01-25T15:46:00Z"
    )


def test_a_fundamentals_outage_is_alerted_once_per_window(tmp_path, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Finnhub down at a window's screen: every equity was refused with one INFO line each, and nobody was told.
    One critical alert per window (and day) names the outage; the day still runs."""
    from tbot_bot.screeners.fundamentals import OUTAGE, FundamentalsLookup, LocalFileFundamentals

    caplog.set_level(logging.INFO, logger="tbot_bot.trading.notifier_bot")
    down = f"{OUTAGE} HTTP 503 for /stock/metric"
    monkeypatch.setattr(
        LocalFileFundamentals,
        "get",
        lambda self, symbols, day: FundamentalsLookup(errors=dict.fromkeys(symbols, down)),
    )
    home = provision_demo_home(tmp_path / "home")
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    said = alerts(caplog, "fundamentals_unavailable")
    assert len(said) == 3 and all(down in m for m in said)  # OPEN, MID, CLOSE: once each
    assert entries(logged_events(home), "open") == []  # no equity passed the screen


def test_a_replay_between_windows_says_which_window_is_next(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Live announces the next window once one ends; a replay kept the message of the window that had ended."""
    import json

    home = provision_demo_home(tmp_path / "home")
    seen: list[str] = []
    real = Supervisor._until_window_start

    def waiting(self, ctx, start):  # type: ignore[no-untyped-def]
        seen.append(json.loads(home.status_json.read_text()).get("message", ""))
        return real(self, ctx, start)

    monkeypatch.setattr(Supervisor, "_until_window_start", waiting)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert seen and all(m.startswith("waiting: next window ") for m in seen), seen
    assert any(" mid " in m for m in seen) and any(" close " in m for m in seen), seen
