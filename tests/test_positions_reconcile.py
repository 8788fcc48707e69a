"""Issue 22 points 1 and 2: positions three ways, reconciliation that fails closed, adopt / rebuild, flatten.

One replay killed mid-day (`TBOT_CRASH_AT=after_send:5`, a real SIGKILL in a subprocess) is shared; everything after
it runs in process on copies of that home against the simulated exchange.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main as tbot
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.support.path_resolver import BotHome

DAY = DEMO_DAY.isoformat()


def _start_subprocess(home: Path, crash_at: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TBOT_CRASH_AT": crash_at}
    return subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home), "--replay", DAY],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _sim(home: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(home / "storage" / "state" / "sim_exchange.db") as conn:
        return list(conn.execute(sql))


def _held(home: Path) -> dict[str, Decimal]:
    return {
        str(s): Decimal(str(q)) for s, q in _sim(home, "SELECT symbol, qty FROM positions") if Decimal(str(q))
    }


def _fitids(home: Path) -> list[str]:
    from tbot_bot.accounting.accounting_config import load_binding

    with sqlite3.connect(f"file:{load_binding(BotHome(home)).ledger_path}?mode=ro", uri=True) as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT fitid FROM transactions WHERE strategy IS NOT NULL AND fitid NOT LIKE '%-FEE'"
            )
        ]


def _run(home: Path) -> int:
    from tbot_bot.runtime.main import Supervisor

    return Supervisor(BotHome(home), replay_day=DEMO_DAY).run()


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo home whose replay was SIGKILLed right after its fifth order left (a position is held)."""
    home = tmp_path_factory.mktemp("crashed") / "home"
    provision_demo_home(home)
    r = _start_subprocess(home, "after_send:5")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert _held(home), "the crash point must leave a position at the broker"
    return home


@pytest.fixture
def home(crashed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(crashed, copy)
    return copy


def _lose_journal(home: Path, how: str) -> None:
    journal = home / "storage" / "state" / "journal.db"
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)
    if how == "delete":
        journal.unlink()
    elif how == "empty":
        journal.write_bytes(b"")
    else:  # truncated: the first page survives, the rest is gone
        journal.write_bytes(journal.read_bytes()[:1024])


@pytest.mark.parametrize("how", ["delete", "empty", "truncate"])
def test_lost_journal_refuses_the_day_then_rebuild_finishes_it(home: Path, how: str, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    from tbot_bot.errors import ConfigError

    held = _held(home)
    orders_before = _sim(home, "SELECT client_order_id FROM orders ORDER BY client_order_id")
    _lose_journal(home, how)
    with pytest.raises(ConfigError) as refused:
        _run(home)
    # the refusal names the unexplained position; no new order reached the broker
    for symbol in held:
        assert symbol in str(refused.value)
    assert _sim(home, "SELECT client_order_id FROM orders ORDER BY client_order_id") == orders_before
    status = json.loads((home / "output" / "status.json").read_text())
    assert status["state"] == "halted" and next(iter(held)) in status["message"]
    assert status["reconciliation"]["blocks_trading"] and status["reconciliation"]["journal_lost"]
    # the day's PnL still shows what the ledger booked (it showed 0.00 with the journal gone)
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.reporting.ledger_trades import read_trades, totals

    booked = totals(read_trades(load_binding(BotHome(home)).ledger_path, day=date.fromisoformat(DAY)))
    assert booked["closed"] and Decimal(status["net_pnl"]) == booked["net_pnl"] != 0
    # the difference was alerted on the critical channel (log-only here: the notifier's record) and logged
    alerts = [r.getMessage() for r in caplog.records if r.name == "tbot_bot.trading.notifier_bot"]
    assert any('"trigger": "reconciliation"' in a and '"level": "critical"' in a for a in alerts)
    unresolved = (home / "output").rglob("unresolved_orders.log")
    assert any("reconciliation_difference" in p.read_text() for p in unresolved)

    # `tbot positions` says the same and exits 1
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out
    # when it compared, in exchange time and UTC
    assert re.search(rf"positions for {DAY} \(checked {DAY} \d\d:\d\d E[SD]T / (\S+ )?\d\d:\d\dZ\)", out), out

    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--rebuild-journal"]) == 0, (
        capsys.readouterr()
    )
    assert "journal rebuilt: 5 orders added" in capsys.readouterr().out

    assert _run(home) == 0
    assert _held(home) == {}
    fitids = _fitids(home)
    filled = {str(r[0]) for r in _sim(home, "SELECT DISTINCT client_order_id FROM fills")}
    assert len(fitids) == len(set(fitids)), "a fill was booked twice"
    assert set(fitids) == filled, "every fill at the broker is booked, once"
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 0


def _manual_trade(
    home: Path, symbol: str, qty: str, *, client_order_id: str = "by-hand-1", fill: bool = True
) -> None:
    """Someone buys at the broker by hand (an order id the bot never uses), and it fills."""
    from tbot_bot.broker.broker_api import OrderRequest
    from tbot_bot.broker.brokers.sim import SimBroker
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.domain.clock import ReplayClock
    from tbot_bot.domain.vocab import OrderSide
    from tbot_bot.inputs.replay_bars import load_replay_bars
    from tbot_bot.market_time import session_bounds
    from tbot_bot.runtime.boot import SAMPLE_DATA

    settings = load_settings(BotHome(home))
    opens = session_bounds(DEMO_DAY, settings.MARKET_CALENDAR)
    assert opens is not None
    clock = ReplayClock(opens[0] + timedelta(minutes=20, seconds=30))
    bars = load_replay_bars(SAMPLE_DATA, DEMO_DAY, settings.MARKET_CALENDAR, by_symbol=True)
    sim = SimBroker.from_settings(settings, BotHome(home), clock=clock, bars=bars)
    try:
        sim.submit_order(OrderRequest(client_order_id, symbol, OrderSide.BUY, Decimal(qty)))
        if fill:
            clock.advance_to(clock.now() + timedelta(minutes=2))
            assert {p.symbol: p.qty for p in sim.get_positions()} == {symbol: Decimal(qty)}
    finally:
        sim.close()


def test_extra_broker_position_differs_until_adopted(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    provision_demo_home(home)
    _manual_trade(home, "SYN5", "7")
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 1
    out = capsys.readouterr().out
    assert "SYN5: broker holds 7, journal 0: not the bot's" in out and "DIFFERS" in out
    as_json = tbot(["positions", "--home", str(home), "--replay", DAY, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert as_json == 1 and report["blocks_trading"] and report["positions"][0]["market_value"]

    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--adopt", "SYN5"]) == 0
    assert "adopted 7 SYN5" in capsys.readouterr().out
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 0
    assert "broker, journal and ledger agree" in capsys.readouterr().out
    from tbot_bot.accounting.accounting_config import load_binding

    with sqlite3.connect(load_binding(BotHome(home)).ledger_path) as conn:
        booked = conn.execute(
            "SELECT fitid, memo, ticker FROM transactions WHERE memo = 'external_adopted'"
        ).fetchall()
    assert [(b[2], b[0].endswith("-adopted")) for b in booked] == [("SYN5", True)]


def test_a_fill_the_killed_supervisor_did_not_record_is_not_adopted_or_closed(home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """After the kill the broker holds a fill of the bot's own order that the journal has not recorded: adopting
    or closing it as someone else's would book it twice; both refuse, and the listing says whose it is."""
    held = _held(home)
    fitids = _fitids(home)
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 0
    out = capsys.readouterr().out
    for symbol, qty in held.items():
        assert (
            f"{format(qty.normalize(), 'f')} is a fill of the bot's own order the journal has not recorded"
            in out
        )
        for action in ("--adopt", "--close"):
            assert tbot(["positions", "--home", str(home), "--replay", DAY, action, symbol]) == 2
            assert "a fill of the bot's own order the journal has not recorded yet" in capsys.readouterr().err
    assert _fitids(home) == fitids and _held(home) == held  # nothing booked, nothing sold
    assert _run(home) == 0  # the restart records and books it, once
    fitids = _fitids(home)
    assert len(fitids) == len(set(fitids))


def test_flatten_names_what_the_broker_still_holds_when_the_journal_was_lost(home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A flatten asks the broker too: with the journal lost it closed nothing yet said "nothing was held"."""
    held = _held(home)
    _lose_journal(home, "delete")
    assert tbot(["flatten", "--home", str(home), "--replay", DAY, "--yes"]) == 1
    captured = capsys.readouterr()
    assert "nothing was held" not in captured.out
    for symbol in held:
        assert (
            f"NOT closed: {symbol}: the broker holds" in captured.err
            and "the journal was lost" in captured.err
        )
    assert _held(home) == held


def test_ignored_position_is_left_alone_and_not_a_difference(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    provision_demo_home(home)
    _manual_trade(home, "SYN5", "3")
    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--ignore", "SYN5"]) == 0
    assert tbot(["positions", "--home", str(home), "--replay", DAY]) == 0
    assert "(ignored at the broker: 3)" in capsys.readouterr().out
    assert _held(home) == {"SYN5": Decimal(3)}


def _audit(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(BotHome(home).core_db("SYSTEM_LOGS")) as conn:
        return [
            (str(a), str(d))
            for a, d in conn.execute("SELECT actor, detail FROM system_logs WHERE event = 'flatten'")
        ]


def test_flatten_without_a_supervisor_closes_books_and_blocks_the_session(home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    held = _held(home)
    status_path = home / "output" / "status.json"
    before = json.loads(status_path.read_text())
    assert tbot(["flatten", "--home", str(home), "--replay", DAY, "--yes"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in held)
    assert f"no new entries for the rest of the session of {DAY}" in out
    assert _held(home) == {}
    # status.json shows what the flatten did (no supervisor runs to write it): nothing held, the forced exits'
    # PnL in the day's figures; the rest stays as the supervisor left it
    after = json.loads(status_path.read_text())
    assert after["positions"] == [] and after["money"]["open_exposure"] == "0.00"
    assert after["net_pnl"] != before["net_pnl"] and "flattened by cli:" in after["message"]
    assert after["windows"] == before["windows"] and after["state"] == before["state"]
    # the float's use per window is the day's: the desk restores it from the journal (it showed none); MID's
    # entry sent just before the kill counts (the journal has it, the killed supervisor's last status had not)
    used = after["money"]["windows"]
    assert set(used) == set(before["money"]["windows"]) == {"open", "mid"}
    assert used["open"] == before["money"]["windows"]["open"] and used["mid"]["trades"] == 1
    assert [a for a, _ in _audit(home)] == [
        f"cli:{os.environ.get('USER') or __import__('getpass').getuser()}"
    ]
    orders_after_flatten = _sim(home, "SELECT COUNT(*) FROM orders")
    # the restart finishes the day: the flattened fills are booked once, and no new entry is sent
    assert _run(home) == 0
    assert _sim(home, "SELECT COUNT(*) FROM orders") == orders_after_flatten
    fitids = _fitids(home)
    assert len(fitids) == len(set(fitids))
    assert set(fitids) == {str(r[0]) for r in _sim(home, "SELECT DISTINCT client_order_id FROM fills")}


class _OperatorFlattens:
    """Right after the bot's first order of the day, an operator runs `tbot flatten --yes` (a real CLI call in
    another thread) while the supervisor runs; the order returns once the request is on disk."""

    def __init__(self, inner, home: BotHome) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._home = inner, home
        self.cli: threading.Thread | None = None
        self.exit_code: list[int] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._inner, name)

    def submit_order(self, request):  # type: ignore[no-untyped-def]
        order = self._inner.submit_order(request)
        if self.cli is None:
            args = ["flatten", "--home", str(self._home.root), "--yes"]
            self.cli = threading.Thread(target=lambda: self.exit_code.append(tbot(args)))
            self.cli.start()
            # the supervisor goes on trading only once the request is there (a slow CLI would let it trade on)
            deadline = time.monotonic() + 120
            while (
                not (self._home.control_dir / "control_flatten.json").exists() and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            assert (self._home.control_dir / "control_flatten.json").exists(), "the CLI never asked"
        return order


def test_flatten_through_a_running_supervisor(tmp_path: Path) -> None:
    from tbot_bot.runtime.main import Supervisor
    from tbot_bot.runtime.order_journal import OrderJournal

    home = BotHome(tmp_path / "home")
    provision_demo_home(home.root)
    operator: list[_OperatorFlattens] = []
    wrap = lambda b: operator.append(_OperatorFlattens(b, home)) or operator[0]  # noqa: E731
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run() == 0  # type: ignore[arg-type]
    assert operator[0].cli is not None
    operator[0].cli.join(timeout=30)
    assert operator[0].exit_code == [0], "the CLI got the supervisor's answer: everything closed"
    answers = sorted(home.control_dir.glob("control_flatten.*.done"))
    assert len(answers) == 1 and not (home.control_dir / "control_flatten.json").exists()
    answer = json.loads(answers[0].read_text())
    assert answer["ok"] and answer["requested_by"].startswith("cli:") and answer["closed"]
    assert _held(home.root) == {}
    journal = OrderJournal(home.state_dir / "journal.db")
    try:
        intents = journal.intents(DAY)
    finally:
        journal.close()
    forced = [i.created_at for i in intents if i.exit_reason == "forced_exit"]
    entries = [i for i in intents if i.purpose == "entry"]
    assert forced and entries and all(e.created_at <= min(forced) for e in entries), (
        "no entry after the flatten"
    )
    assert sorted(answer["closed"]) == sorted(e.symbol for e in entries if e.filled_qty)
    assert [a for a, _ in _audit(home.root)] == [answer["requested_by"]]
    fitids = _fitids(home.root)
    assert len(fitids) == len(set(fitids)) == 2 * len(entries)
    # the halted day runs nothing more: its later windows are skipped at once, not each at its start (a diff review)
    skipped = [json.loads(line) for line in next(home.output_dir.rglob("close.log")).read_text().splitlines()]
    [close] = [e for e in skipped if e["event"] == "window_skipped"]
    assert close["timestamp"] < "2011-01-25T19:30:00Z", close


def test_dashboard_positions_page_and_flatten_all(home: Path) -> None:
    """The page shows what the supervisor published; Flatten all asks a running supervisor and never trades from
    the web process (with none running it names the command to run on the server)."""
    import json

    from fixtures_web import PASSWORDS, Clock, fresh_token, login

    from tbot_bot.core.users import add_user
    from tbot_bot.runtime.control import flatten_request_path
    from tbot_web.py.portal_web import create_app

    bot = BotHome(home)
    for role in ("viewer", "operator"):
        add_user(bot, role, PASSWORDS[role], role, created_by="test")
    held = next(iter(_held(home)))
    status = json.loads(bot.status_json.read_text())
    assert isinstance(status.get("reconciliation"), dict)  # published by the supervisor's run
    app = create_app(home, testing=True, clock=Clock())
    viewer = app.test_client()
    login(viewer, "viewer")
    page = viewer.get("/positions").get_data(as_text=True)
    summary = status["reconciliation"]["summary"]
    assert summary.split(":")[0] in page and "Flatten all" not in page
    assert re.search(r"\(checked \d{4}-\d\d-\d\d \d\d:\d\d E[SD]T / (\S+ )?\d\d:\d\dZ\)", page)
    assert (
        viewer.post(
            "/positions/flatten", data={"csrf_token": fresh_token(viewer), "confirm": "yes"}
        ).status_code
        == 403
    )

    operator = app.test_client()
    login(operator, "operator")
    assert "Flatten all" in operator.get("/positions").get_data(as_text=True)
    confirm = operator.get("/positions/flatten").get_data(as_text=True)
    assert "No supervisor is running" in confirm and "flatten-form" in confirm
    assert operator.post("/positions/flatten", data={"confirm": "yes"}).status_code == 400  # no CSRF token
    done = operator.post("/positions/flatten", data={"csrf_token": fresh_token(operator), "confirm": "yes"})
    assert done.status_code == 302
    assert (
        _held(home) == {held: _held(home)[held]} and not flatten_request_path(bot).exists()
    )  # nothing traded
    assert "tbot flatten --yes" in operator.get("/positions").get_data(as_text=True)
    # with no comparison published yet, the page says so instead of showing a flat book
    bot.status_json.write_text(json.dumps({k: v for k, v in status.items() if k != "reconciliation"}))
    assert "no comparison published yet" in viewer.get("/positions").get_data(as_text=True)
    # between comparisons the page shows what the bot holds now (status.json, written at every fill)
    now = {"symbol": "SH", "strategy": "open", "side": "long", "qty": "12.1153", "entry_price": "41.27",
           "last_price": "41.30", "unrealized_pnl": "0.36"}  # fmt: skip
    bot.status_json.write_text(json.dumps({**status, "positions": [now]}))
    page = viewer.get("/positions").get_data(as_text=True)
    held_now = page[page.index("Held now by the bot") : page.index("Last comparison")]
    assert "12.1153" in held_now and "SH" in held_now


class _RefusesExits(_OperatorFlattens):
    """As above, and from the flatten request on the broker refuses every sell: nothing can be closed."""

    def submit_order(self, request):  # type: ignore[no-untyped-def]
        from tbot_bot.domain.vocab import OrderSide
        from tbot_bot.errors import BrokerError

        if self.cli is not None and request.side is OrderSide.SELL:
            raise BrokerError("account restricted to buying (test)", code="rejected")
        return super().submit_order(request)


def test_flatten_names_a_position_it_could_not_close(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tbot_bot.runtime.main import Supervisor

    home = BotHome(tmp_path / "home")
    provision_demo_home(home.root)
    operator: list[_RefusesExits] = []
    wrap = lambda b: operator.append(_RefusesExits(b, home)) or operator[0]  # noqa: E731
    Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run()  # type: ignore[arg-type]
    assert operator[0].cli is not None
    operator[0].cli.join(timeout=30)
    assert operator[0].exit_code == [1]
    held = _held(home.root)
    assert held
    err = capsys.readouterr().err
    assert all(f"NOT closed: {symbol}" in err for symbol in held)


class _WebOperatorRefused(_RefusesExits):
    """As _RefusesExits, the operator pressing "Flatten all" on the dashboard instead of the CLI."""

    def __init__(self, inner, home: BotHome, client) -> None:  # type: ignore[no-untyped-def]
        super().__init__(inner, home)
        self._client = client
        self.pages: list[str] = []

    def submit_order(self, request):  # type: ignore[no-untyped-def]
        if self.cli is None:
            from fixtures_web import fresh_token

            def press() -> None:
                form = {"csrf_token": fresh_token(self._client), "confirm": "yes"}
                self.pages.append(self._client.post("/positions/flatten", data=form).headers["Location"])

            self.cli = threading.Thread(target=press)
            order = self._inner.submit_order(request)
            self.cli.start()
            deadline = time.monotonic() + 120
            while (
                not (self._home.control_dir / "control_flatten.json").exists() and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            return order
        return super().submit_order(request)


def test_the_dashboards_flatten_says_what_closed_and_what_is_still_held(tmp_path: Path) -> None:
    """Flatten on the dashboard said "Flatten requested ... closes its positions" whatever happened, even when the
    broker refused every exit (a dashboard review): the page shows the supervisor's answer in `tbot flatten`'s
    words, each position left held named with why."""
    from fixtures_web import PASSWORDS, Clock, login

    from tbot_bot.core.users import add_user
    from tbot_bot.runtime.main import Supervisor
    from tbot_web.py.portal_web import create_app

    home = BotHome(tmp_path / "home")
    provision_demo_home(home.root)
    add_user(home, "operator", PASSWORDS["operator"], "operator", created_by="test")
    client = create_app(home.root, testing=True, clock=Clock()).test_client()
    login(client, "operator")
    operator: list[_WebOperatorRefused] = []
    wrap = lambda b: operator.append(_WebOperatorRefused(b, home, client)) or operator[0]  # noqa: E731
    Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrap).run()  # type: ignore[arg-type]
    assert operator[0].cli is not None
    operator[0].cli.join(timeout=30)
    [location] = operator[0].pages
    assert "/positions?flatten=" in location
    page = client.get(location).get_data(as_text=True)
    held = _held(home.root)
    assert held and "flattened by web:operator: closed nothing" in page
    assert all(f"NOT closed: {symbol}: " in page for symbol in held)


def test_an_order_placed_by_hand_blocks_until_ignored(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    provision_demo_home(home)
    # someone left an order working at the broker (sent mid-minute: the next bar has not started yet)
    _manual_trade(home, "SYN5", "1", client_order_id="by-hand-2", fill=False)
    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["blocks_trading"] and [o["client_order_id"] for o in report["open_orders"]] == ["by-hand-2"]
    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--ignore-order", "by-hand-2"]) == 0
    assert "agree" in capsys.readouterr().out


def test_close_sells_a_position_opened_by_hand_and_books_both_legs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    provision_demo_home(home)
    _manual_trade(home, "SYN5", "4")
    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--close", "SYN5"]) == 0
    assert "closing SYN5: exit" in capsys.readouterr().out
    assert _held(home) == {}
    from tbot_bot.accounting.accounting_config import load_binding

    with sqlite3.connect(load_binding(BotHome(home)).ledger_path) as conn:
        legs = conn.execute(
            "SELECT trntype FROM transactions WHERE memo = 'external_adopted' AND ticker = 'SYN5' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in legs] == ["BUY", "SELL"]


def test_a_flatten_between_sessions_blocks_the_next_session() -> None:
    """An operator who flattens at 08:00 (or on Sunday night) on bad news means that day's session: the block
    was written for the day the supervisor last worked on (Friday, or a Sunday with no session), and Monday's
    first window traded. After a session's close it is that session's (leftovers), never the next one's."""
    from datetime import datetime
    from types import SimpleNamespace

    from helpers import make_settings

    from tbot_bot.runtime.flatten import blocked_session

    settings = make_settings()

    def at(text: str) -> str:
        clock = SimpleNamespace(now=lambda: datetime.fromisoformat(text))
        return blocked_session(SimpleNamespace(clock=clock, settings=settings))  # type: ignore[arg-type]

    assert at("2011-01-28T15:00:00+00:00") == "2011-01-28"  # Friday, session under way
    # Friday after the close: Friday's (a flatten of leftovers at 16:05 never blocks Monday)
    assert at("2011-01-28T21:30:00+00:00") == "2011-01-28"
    assert at("2011-01-30T01:45:00+00:00") == "2011-01-31"  # Saturday night (exchange time): Monday
    assert at("2011-01-31T13:00:00+00:00") == "2011-01-31"  # Monday 08:00 EST, before the open: Monday


def test_a_desk_on_a_later_day_still_clears_the_positions_status_shows(tmp_path: Path) -> None:
    """A supervisor killed on Friday, flattened on Monday morning: status.json (Friday's) kept listing Friday's
    positions. What is held now and the money are carried; Friday's PnL stays Friday's."""
    from datetime import UTC, datetime

    from tbot_bot.domain.clock import ReplayClock
    from tbot_bot.runtime.status_bot import StatusBoard, carry_into_status

    path = tmp_path / "status.json"
    friday = {"session_date": "2011-01-28", "positions": [{"symbol": "SH"}], "net_pnl": "5.0000", "state": "trading",
              "money": {"open_exposure": "499.63", "net_pnl_today": "5.00", "windows": {"open": {"trades": 1}}},
              "message": "monitoring"}  # fmt: skip
    path.write_text(json.dumps(friday))
    board = StatusBoard(
        path.with_name("desk.json"), ReplayClock(datetime(2011, 1, 31, 13, tzinfo=UTC)), "v", {}
    )
    board.session_date, board.message = "2011-01-31", "flattened by cli:op"
    board.money = {"open_exposure": "0.00", "net_pnl_today": "0.00", "windows": {}, "equity": "25005.00"}
    assert carry_into_status(path, board)
    after = json.loads(path.read_text())
    assert after["positions"] == [] and after["money"]["open_exposure"] == "0.00"
    # the account now, but the money block's day figures stay Friday's like the PnL lines (one screen showed
    # net 5.00 today beside "net PnL today 0.00")
    assert after["money"]["equity"] == "25005.00"
    assert after["money"]["net_pnl_today"] == "5.00" and after["money"]["windows"] == {"open": {"trades": 1}}
    # a Friday status.json without the day keys (an older version's) never takes the desk's Monday figures
    path.write_text(json.dumps({**friday, "money": {"open_exposure": "499.63"}}))
    assert carry_into_status(path, board)
    money = json.loads(path.read_text())["money"]
    assert "net_pnl_today" not in money and "windows" not in money and money["equity"] == "25005.00"
    assert (
        after["message"] == "flattened by cli:op"
        and after["net_pnl"] == "5.0000"
        and after["state"] == "trading"
    )


def test_a_flatten_of_a_symbol_nobody_holds_is_refused_and_blocks_nothing(home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A mistyped `--symbol` closed nothing, said "nothing was held" and still ended the day's entries (exit 0)."""
    held = _held(home)
    assert tbot(["flatten", "--home", str(home), "--replay", DAY, "--yes", "--symbol", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert "not flattened: NOPE is held neither by the broker nor in the bot's journal" in err
    assert "entries are not blocked" in err
    assert _held(home) == held and _audit(home) == []
    # a position only the broker holds (opened by hand) is no flatten's either: refused, naming the command that
    # books and closes it (it blocked the session's entries and closed nothing)
    with sqlite3.connect(BotHome(home).state_dir / "sim_exchange.db") as conn:
        conn.execute(
            "INSERT INTO positions VALUES ('SYN5', 'SYN5', '3', '27.00', 'equity', NULL, NULL, NULL)"
        )
    assert tbot(["flatten", "--home", str(home), "--replay", DAY, "--yes", "--symbol", "SYN5"]) == 2
    err = capsys.readouterr().err
    assert "the bot holds nothing of SYN5" in err and "`tbot positions --close SYN5`" in err
    assert _held(home) == {**held, "SYN5": Decimal(3)}
    with sqlite3.connect(BotHome(home).state_dir / "journal.db") as conn:
        blocked = conn.execute("SELECT COUNT(*) FROM kv WHERE k LIKE 'entries_blocked:%'").fetchone()[0]
    assert blocked == 0
    # a strategy that holds nothing says so, and names what stays held outside it
    owners = {s: sym for sym, s in _owners(home).items()}
    idle = next(s for s in ("open", "mid", "close") if s not in owners)
    assert tbot(["flatten", "--home", str(home), "--replay", DAY, "--yes", "--strategy", idle]) == 0
    out = capsys.readouterr().out
    assert f"closed nothing (strategy {idle} held nothing)" in out
    assert f"still held outside strategy {idle}: {', '.join(sorted(held))}" in out
    assert _held(home) == {**held, "SYN5": Decimal(3)}


def _owners(home: Path) -> dict[str, str]:
    """The strategy of each open entry in the journal, by symbol."""
    with sqlite3.connect(BotHome(home).state_dir / "journal.db") as conn:
        rows = conn.execute("SELECT symbol, strategy FROM intents WHERE purpose = 'entry'").fetchall()
    return {str(sym): str(s) for sym, s in rows}


def test_closing_a_hand_opened_loser_that_trips_the_kill_switch_says_what_the_halt_did(
    home: Path, capsys, caplog
) -> None:  # type: ignore[no-untyped-def]
    """`positions --close` books a position opened by hand at the broker's cost: its loss is the account's and
    counts toward DAILY_LOSS_LIMIT, and the kill switch then closes the bot's own positions too. The command said
    only "closing SYN2" (exit 0) and status.json still listed the positions it had closed."""
    held = _held(home)
    with sqlite3.connect(BotHome(home).state_dir / "sim_exchange.db") as conn:
        # bought by hand far above the day's price: closing it realises a loss beyond the daily limit (1,250.00)
        conn.execute(
            "INSERT INTO positions VALUES ('SYN2', 'SYN2', '100', '60.00', 'equity', NULL, NULL, NULL)"
        )
    assert tbot(["positions", "--home", str(home), "--replay", DAY, "--close", "SYN2"]) == 0
    captured = capsys.readouterr()
    assert "closing SYN2: exit" in captured.out
    assert "trading halted: kill switch:" in captured.err
    # the halt's alert says whether money is at stake, from the desk as from the supervisor (it said "mode": "")
    halts = [r.getMessage() for r in caplog.records if "trading halted: kill switch" in r.getMessage()]
    assert halts and all('"mode": "replay"' in m for m in halts), halts
    assert f"the halt also closed {', '.join(sorted(held))}" in captured.err
    assert _held(home) == {}
    status = json.loads((home / "output" / "status.json").read_text())
    assert status["positions"] == [] and status["money"]["open_exposure"] == "0.00"
    # the hand trade is flagged wherever trades are listed (it showed as any CLOSE trade, tag None)
    assert tbot(["trades", "--home", str(home), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = listed["trades"] if isinstance(listed, dict) else listed
    assert [t["ticker"] for t in rows if t["adopted"] == "True"] == ["SYN2"]
    assert tbot(["trades", "--home", str(home)]) == 0
    shown = capsys.readouterr().out
    assert "Opened by hand and taken over from the broker" in shown and "close SYN2: net -" in shown
