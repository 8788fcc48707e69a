"""Pause and money on a replayed day (issue 22 points 3, 6 and 7): a pause taken after the first fill lets
no new entry through while the open position is still exited and booked; a pause in force before a start
(written before a restart) holds from the first window; status.json carries the mode, the pause and the
money figures; trade history, the daily summary and the OFX memo say `replay`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.runtime import window_runner
from tbot_bot.runtime.control import pause_file, request_pause
from tbot_bot.runtime.main import Supervisor
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.support.path_resolver import BotHome

SCOPE = "RGL_USA_SIM_TB01"


def _intents(home: BotHome):  # type: ignore[no-untyped-def]
    journal = OrderJournal(home.state_dir / "journal.db")
    try:
        return journal.intents(DEMO_DAY.isoformat())
    finally:
        journal.close()


def _log_events(home: BotHome) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for path in home.logs_dir(SCOPE).glob("*.log"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def test_pause_after_the_first_fill_blocks_entries_and_still_manages_exits(
    tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    home = provision_demo_home(tmp_path / "home")
    original = window_runner.WindowRunner._collect_fills
    seen: dict[str, object] = {}

    def pause_after_first_fill(self):  # type: ignore[no-untyped-def]
        original(self)
        if "at" not in seen and self.ctx.open_position_count():
            seen["at"] = self.ctx.clock.now().isoformat()
            request_pause(home, "cli:ops")
        elif "at" in seen and "money" not in seen and self.ctx.open_position_count():
            # a minute later: status.json was published with the position open
            seen["money"] = json.loads(home.status_json.read_text())["money"]

    monkeypatch.setattr(window_runner.WindowRunner, "_collect_fills", pause_after_first_fill)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert "at" in seen
    intents = _intents(home)
    entries = [i for i in intents if i.purpose == "entry"]
    # the pause takes effect from the next minute: nothing entered after it
    assert entries and all(i.created_at <= str(seen["at"]) for i in entries)
    held = [i for i in entries if i.filled_qty]
    exits = [i for i in intents if i.purpose == "exit" and i.filled_qty]
    assert held and {i.client_order_id for i in held} <= {i.entry_client_order_id for i in exits}
    status = json.loads(home.status_json.read_text())
    assert status["paused"].endswith("cli:ops") and status["positions"] == []
    assert status["bot"]["mode"] == "replay"
    events = [e.get("event") for e in _log_events(home)]
    assert events.count("entries_paused") == 1
    # money while the position was open: broker figures, the exposure, the float and the window's cap used
    money = seen["money"]
    assert isinstance(money, dict)
    assert money["equity"] and money["cash"] and money["float"] == "25000.00"
    assert float(money["open_exposure"]) > 0
    used = money["windows"]["open"]
    assert float(used["cap_used"]) > 0
    assert abs(float(used["cap_used"]) + float(used["cap_available"]) - float(money["session_cap"])) < 0.01
    # after the day: net PnL after fees matches the status's own figure
    assert status["money"]["net_pnl_today"] == f"{float(status['net_pnl']):.2f}"
    # `tbot ledger float`: the float and its use per window, the very figures status.json publishes
    capsys.readouterr()
    assert main(["ledger", "float", "--home", str(home.root)]) == 0
    balance, usage = capsys.readouterr().out.strip().splitlines()
    published = status["money"]
    assert balance == "25000.0000 USD" and published["windows"]
    assert usage.startswith(f"usage session {DEMO_DAY.isoformat()} (replay): float 25000.00, session cap per window "
                            f"{published['session_cap']}; ")  # fmt: skip
    for name, w in published["windows"].items():
        assert (
            f"{name} {w['cap_used']} used / {w['cap_available']} left ({w['trades']}/{w['max_trades']} entries)"
            in usage
        )
    # a live home whose last published session is not today's: nothing has been used today
    home.status_json.write_text(json.dumps({**status, "bot": {**status["bot"], "mode": "paper"}}))
    assert main(["ledger", "float", "--home", str(home.root)]) == 0
    usage = capsys.readouterr().out.strip().splitlines()[1]
    assert (
        "no window has started today" in usage
        and f"last session published was {DEMO_DAY.isoformat()}" in usage
    )
    # the mode on the day's records
    history = json.loads((home.trades_dir(SCOPE) / f"{SCOPE}_BOT_trade_history.json").read_text())
    rows = history if isinstance(history, list) else history.get("trades", history.get("records", []))
    assert rows and {r["mode"] for r in rows} == {"replay"}
    summary = json.loads(
        (home.summaries_dir(SCOPE) / f"daily_summary_{DEMO_DAY.isoformat()}.json").read_text()
    )
    assert summary["mode"] == "replay"
    ofx = (home.bot_output_dir(SCOPE) / "exports" / f"{SCOPE}_{DEMO_DAY.isoformat()}.ofx").read_text()
    assert "<MEMO>mode=replay strategy=" in ofx


def _shown_paused(home: BotHome, capsys: pytest.CaptureFixture[str]) -> tuple[bool, bool]:
    """Whether `tbot status` and the dashboard's status show a pause."""
    from datetime import UTC, datetime

    from tbot_web.py.readers_web import current_status

    capsys.readouterr()
    assert main(["status", "--home", str(home.root)]) == 0
    shown = "PAUSED" in capsys.readouterr().out
    assert main(["status", "--json", "--home", str(home.root)]) == 0
    assert bool(json.loads(capsys.readouterr().out).get("paused")) == shown  # what scripts read
    web = current_status(home, datetime.now(UTC))
    return shown, bool(web.get("paused"))


def test_a_pause_written_before_the_start_holds_from_the_first_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = provision_demo_home(tmp_path / "home")
    assert main(["pause", "--home", str(home.root)]) == 0
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert [i for i in _intents(home) if i.purpose == "entry"] == []
    status = json.loads(home.status_json.read_text())
    assert status["paused"] and "cli:" in status["paused"]
    denied = [e for e in _log_events(home) if e.get("event") == "signal_denied"]
    paused = [e for e in denied if "entries paused" in json.dumps(e)]
    assert paused and {e.get("strategy_name") for e in paused} == {"open", "mid", "close"}
    assert _shown_paused(home, capsys) == (True, True)
    assert main(["resume", "--home", str(home.root)]) == 0 and not pause_file(home).exists()
    assert main(["resume", "--home", str(home.root)]) == 1
    # no supervisor runs: status.json still holds the last run's pause, and both surfaces show the file's state
    assert json.loads(home.status_json.read_text())["paused"]
    assert _shown_paused(home, capsys) == (False, False)
    assert main(["pause", "--home", str(home.root)]) == 0
    assert _shown_paused(home, capsys) == (True, True)


def test_tbot_status_shows_mode_pause_stop_and_money() -> None:
    from datetime import UTC, datetime

    from rigd_tbot.status_view import render_status_view

    data = {
        "state": "closed", "bot": {"bot_id": "TB01", "entity": "RGL", "mode": "paper"},
        "broker": {"name": "alpaca", "healthy": True}, "paused": "2026-11-30T15:00:00+00:00 cli:ops",
        "trading_stopped": "2026-11-30T16:00:00+00:00 web:admin", "realized_pnl": "0", "version": "v",
        "money": {"equity": "100012.50", "cash": "98000.00", "open_exposure": "2012.50", "net_pnl_today": "12.50",
                  "float": "2500.00", "session_cap": "2000.00",
                  "windows": {"open": {"trades": 1, "max_trades": 4, "cap_used": "500.00", "cap_available": "1500.00"}}},
    }  # fmt: skip
    now = datetime(2026, 11, 30, 16, 1, tzinfo=UTC)
    view = render_status_view(data, exchange_tz="America/New_York", written_at=now, now=now)
    assert "on alpaca — PAPER" in view
    # the stamps' times as people read them: exchange time and UTC
    assert "PAUSED     new entries paused (2026-11-30 10:00:00 EST / 15:00:00Z cli:ops)" in view
    assert (
        "STOPPED    trading stopped (2026-11-30 11:00:00 EST / 16:00:00Z web:admin); `tbot start` resumes it"
        in view
    )
    assert "equity 100012.50, cash 98000.00, open exposure 2012.50, net PnL today 12.50 (after fees)" in view
    # when the broker's figures were read, in exchange time and UTC
    data["money"] = {**data["money"], "account_read_at": "2026-11-30T15:58:00+00:00"}  # type: ignore[dict-item]
    view = render_status_view(data, exchange_tz="America/New_York", written_at=now, now=now)
    assert "equity 100012.50, cash 98000.00 (read 10:58 EST / 15:58Z), open exposure 2012.50" in view
    assert "open 500.00 used / 1500.00 left (1/4 entries)" in view


def _replay_calling(tmp_path: Path, monkeypatch, actions):  # type: ignore[no-untyped-def]
    """The demo day replayed, `actions[(hour, minute)](home, now)` run once when the supervisor takes the operator's
    controls at that UTC minute (each window minute, and each minute of the waits between windows)."""
    from tbot_bot.runtime import day_context

    home = provision_demo_home(tmp_path / "home")
    original = day_context.DayContext.check_operator_pause
    done: set[tuple[int, int]] = set()

    def hook(self):  # type: ignore[no-untyped-def]
        now = self.clock.now()
        if (now.hour, now.minute) in actions and (now.hour, now.minute) not in done:
            done.add((now.hour, now.minute))
            actions[(now.hour, now.minute)](home, now)
        original(self)

    monkeypatch.setattr(day_context.DayContext, "check_operator_pause", hook)
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    return home


def test_a_pause_and_a_resume_between_windows_show_before_the_next_window(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Between MID (over by 16:30 UTC) and CLOSE (19:30) a replay waited in one step: a pause and a resume made then
    were taken, logged and shown only when CLOSE began. The wait takes them within a minute of the run's clock."""
    from tbot_bot.runtime.control import request_resume

    moments: dict[str, str] = {}

    def pause(home, now):  # type: ignore[no-untyped-def]
        moments["paused"] = now.isoformat()
        request_pause(home, "cli:ops")

    def resume(home, now):  # type: ignore[no-untyped-def]
        moments["resumed"] = now.isoformat()
        request_resume(home)

    home = _replay_calling(tmp_path, monkeypatch, {(17, 0): pause, (18, 0): resume})
    events = {
        e.get("event"): e
        for e in _log_events(home)
        if e.get("event") in ("entries_paused", "entries_resumed")
    }
    assert set(events) == {"entries_paused", "entries_resumed"}, events
    for event, made in (("entries_paused", "paused"), ("entries_resumed", "resumed")):
        assert events[event]["timestamp"][:16] == moments[made][:16].replace("+00:00", ""), (
            event,
            events[event],
        )


def test_status_says_which_window_runs_while_it_runs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """status.json went on saying "waiting: next window open ... at 09:49" through the OPEN window itself."""
    seen: dict[str, str] = {}

    def look(home, now):  # type: ignore[no-untyped-def]
        seen["open"] = json.loads(home.status_json.read_text())["message"]

    _replay_calling(tmp_path, monkeypatch, {(15, 0): look})
    assert seen["open"].startswith(
        "open window running: entries in its breakout 09:50 America/New_York = 14:50 UTC to 10:00"
    ), seen


def test_the_next_window_message_says_when_today_is_halted() -> None:
    """After a restart into a day a flatten (or the kill switch) ended, status said only "waiting: next window mid"
    and the window was then skipped without a word."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from helpers import make_settings

    from tbot_bot.domain.clock import ReplayClock

    published: dict[str, str] = {}
    ctx = SimpleNamespace(
        clock=ReplayClock(datetime(2011, 1, 25, 15, 10, tzinfo=UTC)), settings=make_settings(), session_date=DEMO_DAY,
        halted_reason="flatten requested by cli:ops (no new entries for the rest of 2011-01-25)",
        status=SimpleNamespace(publish=lambda **kw: published.update(kw)),
        log=SimpleNamespace(event=lambda *a, **k: None),
    )  # fmt: skip
    Supervisor._announce_next_window(None, ctx, ("open", "mid", "close"))  # type: ignore[arg-type]
    assert published["message"].startswith("no new entries today (flatten requested by cli:ops")
    assert "waiting: next window mid on Tue 2011-01-25" in published["message"]


def test_money_and_positions_are_published_at_the_start_not_at_the_first_window(tmp_path: Path) -> None:
    home = provision_demo_home(tmp_path / "home")
    seen: dict[str, object] = {}

    class Watching(Supervisor):
        def _reconcile(self, ctx):  # type: ignore[no-untyped-def]
            super()._reconcile(ctx)
            seen.update(json.loads(home.status_json.read_text()))

    assert Watching(home, replay_day=DEMO_DAY).run() == 0
    money = seen["money"]
    assert isinstance(money, dict)
    # after the start's reconciliation, before any window: the account, the float and each window's cap
    assert money["equity"] and money["cash"] and money["float"] == "25000.00"
    assert money["open_exposure"] == "0.00" and money["net_pnl_today"] == "0.00"
    assert seen["positions"] == []


def test_max_open_positions_counts_entries_that_have_not_filled_yet(tmp_path: Path) -> None:
    """MAX_OPEN_POSITIONS counted filled entries only: an entry working at the broker (or waiting for `tbot confirm`)
    left its slot to the next minute's signal, and both then held positions over the limit."""
    from decimal import Decimal
    from types import MethodType, SimpleNamespace

    from helpers import make_settings

    from tbot_bot.broker.capabilities import capabilities_for
    from tbot_bot.domain.intents import Intent, IntentStatus
    from tbot_bot.runtime.day_context import DayContext
    from tbot_bot.trading.risk_bot import Candidate, Denied, RiskManager, Sized

    settings = make_settings(
        MAX_OPEN_POSITIONS=1, MAX_TRADES=2, WEIGHTS="0.5,0.5", MAX_RISK_PER_TRADE="0.005"
    )
    risk = RiskManager(settings, Decimal(25000), capabilities_for("SIM"))
    journal = OrderJournal(tmp_path / "journal.db")
    ctx = SimpleNamespace(journal=journal, day_key="2011-01-25", _carried=None)
    ctx._held_intents = MethodType(DayContext._held_intents, ctx)
    sized = []
    try:
        for minute, (ticker, status) in enumerate(
            [("AAA", IntentStatus.AWAITING_CONFIRMATION), ("BBB", IntentStatus.SENT)], 1
        ):
            (decision,) = risk.size_signals(
                "mid", [Candidate(ticker, 1.0, Decimal(20), 5_000_000, 0.001, ticker)],
                DayContext.open_position_count(ctx),  # type: ignore[arg-type]
            )  # fmt: skip
            sized.append((ticker, type(decision).__name__))
            if isinstance(decision, Sized):
                journal.record_intent(
                    Intent(
                        f"TB01-20110125-mid-{ticker}-1",
                        "2011-01-25",
                        "mid",
                        "entry",
                        ticker,
                        ticker,
                        "long",
                        "buy",
                        "equity",
                        decision.qty,
                        status,
                        f"2011-01-25T15:4{minute}:00+00:00",
                        notional=decision.notional,
                    )  # fmt: skip
                )
        assert sized == [("AAA", "Sized"), ("BBB", Denied.__name__)]
        # the waiting entry abandoned (never confirmed): its slot is free again
        journal.update("TB01-20110125-mid-AAA-1", status=IntentStatus.ABANDONED)
        assert DayContext.open_position_count(ctx) == 0  # type: ignore[arg-type]
    finally:
        journal.close()
