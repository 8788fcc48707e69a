"""Issue 20: what the daemon claims, it runs. Automatic defense mode in a replay, the IBKR imbalance gate
consulted by CLOSE, enhancement self-checks refusing start and check alike, removed keys named, one
bearish-instrument rule for live and backtest. (The layers are enforced in test_import_boundaries.py.)"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.config.env_bot import ShortType, validate_settings
from tbot_bot.config.settings_bot import update_env_values
from tbot_bot.domain.vocab import DenialCode, Direction, InstrumentTag, OrderSide
from tbot_bot.errors import ConfigError
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.trading.bearish import route_signal

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tbot_bot"
DAY = date(2011, 1, 25)


# ---------------------------------------------------------------- one bearish rule
def test_one_bearish_rule_and_one_code_set() -> None:
    sim = capabilities_for("SIM")

    def route(short_type: ShortType, ok: bool = True):  # type: ignore[no-untyped-def]
        return route_signal(Direction.BEARISH, "SPY", "open", short_type, sim, "sim", lambda s: ok)

    assert route(ShortType.DISABLED).denial[0] is DenialCode.SHORT_TYPE_DISABLED  # type: ignore[index]
    assert route(ShortType.INVERSE_ETF, ok=False).denial[0] is DenialCode.INVERSE_ETF_UNAVAILABLE  # type: ignore[index]
    etf = route(ShortType.INVERSE_ETF)
    assert etf.denial is None and etf.tag is InstrumentTag.INVERSE_ETF and etf.entry_side is OrderSide.BUY
    bull = route_signal(Direction.BULLISH, "SPY", "open", ShortType.DISABLED, sim, "sim", lambda s: False)
    assert (bull.symbol, bull.denial, bull.entry_side) == ("SPY", None, OrderSide.BUY)
    # the backtest's instrument choice is the same function (no second copy of the rule)
    source = (PKG / "backtest" / "execution.py").read_text()
    assert "route_signal(" in source and "pick_inverse_etf" not in source


# ---------------------------------------------------------------- removed keys
@pytest.mark.parametrize("key", ["FAILOVER_ENABLED", "FAILOVER_LOG_TAG", "SIMULATED_LATENCY_MS"])
def test_removed_keys_are_named_when_an_old_config_has_them(key: str) -> None:
    template = (ROOT / ".env_bot.template-test").read_text()
    assert f"\n{key}=" not in template
    with pytest.raises(ConfigError) as err:
        validate_settings({key: "true"})
    assert any(p.startswith(f"{key} was removed (") for p in err.value.problems)


# ---------------------------------------------------------------- defense mode
def _journal_entries(home: BotHome) -> list[tuple[str, str, Decimal, int]]:
    with sqlite3.connect(home.state_dir / "journal.db") as c:
        rows = c.execute(
            "SELECT strategy, symbol, notional, defense_mode FROM intents WHERE purpose = 'entry' "
            "ORDER BY created_at, client_order_id"
        ).fetchall()
    return [(s, sym, Decimal(n), d) for s, sym, n, d in rows]


def test_defense_triggers_switch_defense_mode_on_in_a_replay(tmp_path: Path) -> None:
    home = provision_demo_home(tmp_path / "home")
    triggers = {"DEFENSE_MODE_TRIGGER_DRAWDOWN": "0.0001", "DEFENSE_MODE_TRIGGER_WIN_RATE": "0.99"}
    settings = update_env_values(home, triggers, actor="test")
    assert Supervisor(home, replay_day=DAY).run() == 0
    status = json.loads(home.status_json.read_text())
    assert status["defense_mode"] is True and "DEFENSE_MODE_TRIGGER" in status["defense_reason"]
    entries = _journal_entries(home)
    # OPEN's first trades were made before any trade had closed; everything after the first loss is defended
    assert [d for *_, d in entries][:2] == [0, 0] and entries[-1][3] == 1
    cap = settings.DEFENSE_MODE_TOTAL_ALLOCATION * Decimal(25000)
    assert all(n <= cap for _, _, n, d in entries if d)
    logs = home.logs_dir(_scope(home))
    lines = [json.loads(x) for x in (logs / "disaster_mode.log").read_text().splitlines()]
    assert (
        len(lines) == 1
        and lines[0]["event"] == "defense_mode_on"
        and lines[0]["session_date"] == DAY.isoformat()
    )
    history = json.loads(next(home.output_dir.rglob("*trade_history.json")).read_text())
    records = history if isinstance(history, list) else history.get("trades", [])
    assert any(r.get("defense_mode") is True for r in records)
    with sqlite3.connect(next(home.root.rglob("*_BOT_ledger.db"))) as c:
        memos = [m for (m,) in c.execute("SELECT memo FROM transactions WHERE memo = 'defense_mode'")]
    assert memos  # the defended entries carry the mark in the books
    # the next session starts in defense mode (carried over), and says why
    from tbot_bot.runtime.defense import DefenseMonitor
    from tbot_bot.runtime.order_journal import OrderJournal

    journal = OrderJournal(home.state_dir / "journal.db")
    try:
        carried = DefenseMonitor(journal, "XNYS", date(2011, 1, 26)).carried_reason()
        assert carried is not None and carried.startswith("carried over from 2011-01-25")
        assert DefenseMonitor(journal, "XNYS", date(2011, 1, 27)).carried_reason() is None
    finally:
        journal.close()
    # the operator ends it (`tbot defense clear`, taken at the next start): the next session trades undefended
    from rigd_tbot.cli import main

    update_env_values(
        home,
        {"DEFENSE_MODE_TRIGGER_DRAWDOWN": "disabled", "DEFENSE_MODE_TRIGGER_WIN_RATE": "disabled"},
        actor="test",
    )
    assert main(["defense", "clear", "--home", str(home.root)]) == 0
    before = len(entries)
    assert Supervisor(home, replay_day=date(2011, 1, 26)).run() == 0
    status = json.loads(home.status_json.read_text())
    assert status["defense_mode"] is False and status["defense_reason"] is None
    next_day = _journal_entries(home)[before:]
    assert next_day and all(d == 0 for *_, d in next_day)
    assert not (home.control_dir / "control_defense_clear.txt").exists()
    # with a supervisor running and defense mode off, a clear has nothing to end: said, and no request left behind
    from tbot_bot.runtime.control import SupervisorLock

    lock = SupervisorLock.acquire(home, mode="live")
    try:
        assert main(["defense", "clear", "--home", str(home.root)]) == 1
    finally:
        lock.release()
    assert not (home.control_dir / "control_defense_clear.txt").exists()
    events = [
        json.loads(x) for x in (logs / "supervisor.log").read_text().splitlines() if "defense_clear" in x
    ]
    assert events and "defense mode cleared by" in json.loads(events[-1]["detail"])["outcome"]


def _scope(home: BotHome) -> str:
    from tbot_bot.accounting.accounting_config import load_binding

    return load_binding(home).scope


def test_tbot_status_shows_defense_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rigd_tbot.cli import main

    home = provision_demo_home(tmp_path / "home")
    update_env_values(home, {"DEFENSE_MODE_ACTIVE": "true"}, actor="test")
    assert Supervisor(home, replay_day=DAY).run() == 0
    capsys.readouterr()
    assert main(["status", "--home", str(home.root)]) == 0
    assert "defense mode ON (DEFENSE_MODE_ACTIVE=true)" in capsys.readouterr().out


# ---------------------------------------------------------------- enhancement self-checks at boot
def test_a_broken_enhancement_refuses_check_and_start_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rigd_tbot.cli import main
    from tbot_bot.enhancements import black_scholes_filter

    home = provision_demo_home(tmp_path / "home")
    monkeypatch.setattr(black_scholes_filter, "bsm_price", lambda *a, **k: 0.0)  # a pricer gone wrong
    capsys.readouterr()
    check = main(["check", "--home", str(home.root), "--replay", DAY.isoformat()])
    check_err = capsys.readouterr().err
    start = main(["start", "--home", str(home.root), "--replay", DAY.isoformat()])
    start_err = capsys.readouterr().err
    assert check == start != 0
    assert "self_check failed: black_scholes_filter (" in check_err
    message = [line for line in check_err.splitlines() if "self_check failed" in line]
    assert message and message[-1] in start_err
    assert not (home.state_dir / "journal.db").exists() or _journal_entries(home) == []


def test_defense_mode_checks_itself_at_check_and_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rigd_tbot.cli import main
    from tbot_bot.runtime import defense
    from tbot_bot.runtime.order_journal import OrderJournal

    journal = OrderJournal(tmp_path / "journal.db")
    journal.set_value(f"defense_mode:{DAY.isoformat()}", "drawdown")
    assert defense.self_check(journal, "XNYS", DAY) == (True, "ok")
    journal.close()
    ok, reason = defense.self_check(journal, "XNYS", DAY)  # a journal that cannot be read
    assert not ok and reason.startswith(f"defense mode cannot read its switch for {DAY}")
    home = provision_demo_home(tmp_path / "home")
    monkeypatch.setattr(defense, "is_win", lambda pnl: False)  # a win rule gone wrong
    capsys.readouterr()
    assert main(["check", "--home", str(home.root), "--replay", DAY.isoformat()]) != 0
    assert "self_check failed: defense (defense mode's drawdown or win-rate arithmetic is wrong)" in (
        capsys.readouterr().err
    )


# ---------------------------------------------------------------- the IBKR imbalance gate
class _StrongImbalance:
    """An IBKR-like source whose closing auction leans hard against every signal side it is asked about."""

    def __init__(self, imbalance: float) -> None:
        self.imbalance = imbalance
        self.asked: list[str] = []

    def get_auction_imbalance(self, symbol: str):  # type: ignore[no-untyped-def]
        from tbot_bot.broker.brokers.ibkr_market import AuctionImbalance

        self.asked.append(symbol)
        return AuctionImbalance(symbol, self.imbalance, 100_000.0, 100.0, None, datetime.now(UTC))


def test_imbalance_gate_is_built_only_for_ibkr(tmp_path: Path) -> None:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.domain.clock import WallClock
    from tbot_bot.runtime.wiring import imbalance_gate

    settings = load_settings(provision_demo_home(tmp_path / "home"))
    source = _StrongImbalance(-1e6)
    assert imbalance_gate(settings, source, WallClock()) is None  # type: ignore[arg-type]
    ibkr = settings.model_copy(update={"BROKER_NAME": "IBKR"})
    gate = imbalance_gate(ibkr, source, WallClock())  # type: ignore[arg-type]
    assert gate is not None and gate.active and gate.self_check().ok


def test_check_warns_when_the_imbalance_gate_cannot_act_with_the_window_times(tmp_path: Path) -> None:
    """The template's CLOSE enters at 14:35-14:40, before the closing auction's imbalance is published (the last 30
    minutes): on IBKR the gate would never act, and the check summary says so; a later CLOSE lets it act."""
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.enhancements.imbalance_scanner_ibkr import inactive_reason

    settings = load_settings(provision_demo_home(tmp_path / "home"))
    day = date(2011, 1, 27)
    assert inactive_reason(settings, day) is None  # not IBKR: not this bot's gate
    ibkr = settings.model_copy(update={"BROKER_NAME": "IBKR"})
    reason = inactive_reason(ibkr, day)
    assert reason is not None and "CLOSE enters from 14:35" in reason and "published (from 15:30" in reason, (
        reason
    )
    from datetime import time

    late = ibkr.model_copy(update={"START_TIME_CLOSE": time(15, 30)})
    assert inactive_reason(late, day) is None


def test_close_consults_the_imbalance_gate_and_logs_its_denial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.enhancements.imbalance_scanner_ibkr import ImbalanceScanner
    from tbot_bot.runtime import wiring

    # CLOSE inside the closing-auction window (the last 30 minutes), where IB publishes imbalances
    config = {"START_TIME_CLOSE": "15:30", "CLOSE_MONITORING_TIME": "20", "STRATEGY_OVERRIDE": "close"}
    outcomes = []
    for i, source in enumerate((_StrongImbalance(-1e6), _StrongImbalance(1e6))):  # sell side, then buy side

        def ibkr_gate(settings, broker, clock, source=source):  # type: ignore[no-untyped-def]
            # the seam: this replay's broker answers imbalance requests as IBKR's adapter does
            return ImbalanceScanner(settings.model_copy(update={"BROKER_NAME": "IBKR"}), source, clock)

        monkeypatch.setattr(wiring, "imbalance_gate", ibkr_gate)
        home = provision_demo_home(tmp_path / f"home{i}")
        update_env_values(home, config, actor="test")
        assert Supervisor(home, replay_day=date(2011, 1, 27)).run() == 0
        with sqlite3.connect(home.state_dir / "journal.db") as c:
            signals, entries, denials = c.execute(
                "SELECT signals, entries, denials FROM windows WHERE strategy = 'close'"
            ).fetchone()
        assert source.asked, "CLOSE never asked the gate"
        outcomes.append((signals, entries, json.loads(denials or "{}").get("imbalance_scanner", 0)))
        if outcomes[-1][2]:
            logged = (home.logs_dir(_scope(home)) / "close.log").read_text()
            denied = [json.loads(x) for x in logged.splitlines() if '"signal_denied"' in x]
            details = [json.loads(d["detail"]) for d in denied]
            assert any(d["filter"] == "imbalance_scanner" and "imbalance" in d["reason"] for d in details)
    # every signal was either entered or denied by the auction that leaned against it, and some were denied
    assert all(sig == ent + den for sig, ent, den in outcomes) and sum(d for *_, d in outcomes) >= 1


def test_a_defense_clear_is_judged_on_the_trades_after_it_and_a_stale_request_is_discarded(
    tmp_path: Path,
) -> None:
    """The drawdown of the day's trades never shrinks: judged again over all of them, a clear was undone at the next
    exit. The triggers see only the trades closed after the clear; a request older than the session before is not
    applied to a later day."""
    import os
    from types import SimpleNamespace

    from tbot_bot.runtime.defense import DefenseMonitor, realised_performance
    from tbot_bot.runtime.order_journal import OrderJournal

    def trip(minute: int, pnl: str) -> SimpleNamespace:
        at = datetime(2011, 1, 26, 15, minute, tzinfo=UTC).isoformat()
        return SimpleNamespace(exit=SimpleNamespace(filled_at=at, created_at=at, client_order_id=f"x{minute}"),
                               entry=SimpleNamespace(client_order_id=f"e{minute}"), pnl=Decimal(pnl),
                               closes=True)  # fmt: skip

    # the loss closed before the clear; a win filled earlier at the broker but learned after the clear
    day = [trip(10, "-400"), trip(9, "200")]
    assert realised_performance(day, Decimal(25000)).drawdown == 0.016
    after = realised_performance(day, Decimal(25000), leave_out=frozenset({"x10"}))
    assert (after.drawdown, after.win_rate) == (0.0, 1.0)
    journal = OrderJournal(tmp_path / "journal.db")
    try:
        monitor = DefenseMonitor(journal, "XNYS", date(2011, 1, 26))
        monitor.record("drawdown 0.016 >= DEFENSE_MODE_TRIGGER_DRAWDOWN 0.01")
        monitor.clear("2011-01-26T15:11:30+00:00 cli:ops", ["x10"])
        assert monitor.cleared_exits() == {"x10"} and monitor.carried_reason() is None
    finally:
        journal.close()

    # a request written before the session of 2011-01-25 is not applied on 2011-01-26
    home = provision_demo_home(tmp_path / "home")
    triggers = {"DEFENSE_MODE_TRIGGER_DRAWDOWN": "0.0001", "DEFENSE_MODE_TRIGGER_WIN_RATE": "0.99"}
    update_env_values(home, triggers, actor="test")
    assert Supervisor(home, replay_day=DAY).run() == 0  # defense mode switched on, carried into the 26th
    from tbot_bot.runtime.control import defense_clear_file, request_defense_clear

    request_defense_clear(home, "cli:ops")
    old = datetime(2011, 1, 24, 12, tzinfo=UTC).timestamp()
    os.utime(defense_clear_file(home), (old, old))
    assert Supervisor(home, replay_day=date(2011, 1, 26)).run() == 0
    events = [
        json.loads(x) for x in (home.logs_dir(_scope(home)) / "supervisor.log").read_text().splitlines()
    ]
    [outcome] = [json.loads(e["detail"])["outcome"] for e in events if e["event"] == "defense_clear"]
    assert "discarded: made before the session of 2011-01-25" in outcome
    assert json.loads(home.status_json.read_text())["defense_mode"] is True
