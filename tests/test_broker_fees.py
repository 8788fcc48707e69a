"""Fees a broker posts apart from fills (Alpaca's regulatory SEC/TAF fees as FEE/PTC account activities): read
through alpaca-py from a real HTTP fake, booked once each into the ledger (Dr 5010 / Cr 1030; a refund the other
way), shown in the day's OFX, and never booked into a closed period."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from integration_test_runner import check_outputs, provision_demo_home, unmark_booked
from test_e2e_alpaca import AlpacaOnReplay

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.broker.broker_api import Broker, FeeActivity
from tbot_bot.broker.brokers import alpaca as alpaca_module
from tbot_bot.config.settings_bot import load_settings
from tbot_bot.errors import BrokerError
from tbot_bot.inputs.replay_bars import load_replay_bars
from tbot_bot.runtime.booking import book_broker_fees
from tbot_bot.runtime.boot import SAMPLE_DATA
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome


def _post_fees(exchange: FakeAlpacaExchange, day: str) -> None:
    exchange.post_activity("FEE", day, "-0.0200", symbol="SPY", description="REG fee")
    exchange.post_activity("FEE", day, "-0.0100", symbol="SPY", description="TAF fee")
    exchange.post_activity("PTC", day, "-0.0500", description="pass-thru charge")
    exchange.post_activity("FEE", day, "0.0100", symbol="SPY", description="REG fee adjustment")
    exchange.post_activity("DIV", day, "1.2500", symbol="SPY", qty="10", per_share_amount="0.125")
    exchange.post_activity("FEE", day, "-9.9900", description="posted in error", status="canceled")


def test_the_adapter_reads_every_page_of_fee_activities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alpaca_module, "ACTIVITIES_PAGE", 2)  # the six activities take several pages
    exchange = FakeAlpacaExchange(seed=3)
    exchange.post_activity("FEE", "2011-01-10", "-0.0300", description="REG fee")  # before `since`
    _post_fees(exchange, "2011-01-24")
    with FakeAlpacaServer(exchange) as server:
        fees = broker_for(server).fee_activities(date(2011, 1, 20))
        assert server.count("GET", "/v2/account/activities") >= 3
    assert [(f.day, f.amount, f.symbol, f.description) for f in fees] == [
        (date(2011, 1, 24), Decimal("0.0200"), "SPY", "REG fee"),
        (date(2011, 1, 24), Decimal("0.0100"), "SPY", "TAF fee"),
        (date(2011, 1, 24), Decimal("0.0500"), None, "pass-thru charge"),
        (date(2011, 1, 24), Decimal("-0.0100"), "SPY", "REG fee adjustment"),  # a refund
    ]  # the dividend and the canceled fee are not fees to book
    assert len({f.activity_id for f in fees}) == 4


def test_a_fee_activity_without_an_amount_is_a_malformed_reply() -> None:
    exchange = FakeAlpacaExchange(seed=3)
    exchange.post_activity("FEE", "2011-01-24", "lots", description="REG fee")
    with FakeAlpacaServer(exchange) as server, pytest.raises(BrokerError, match="net_amount is not a number"):
        broker_for(server, retry=None).fee_activities(date(2011, 1, 20))


class AlpacaWithFees(AlpacaOnReplay):
    """The e2e Alpaca replay, with the broker having posted the day's regulatory fees."""

    def __call__(self, sim: Broker) -> Broker:
        broker = super().__call__(sim)
        assert self.server is not None
        _post_fees(self.server.exchange, DEMO_DAY.isoformat())
        return broker


def _fee_rows(home: BotHome) -> list[tuple[str, str, int, int, str]]:
    with sqlite3.connect(f"file:{load_binding(home).ledger_path}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT t.fitid, s.account_code, s.debit, s.credit, t.memo FROM splits s JOIN transactions t "
            "ON t.id = s.transaction_id WHERE t.fitid LIKE '%-ACT-%' ORDER BY t.fitid, s.account_code"
        ).fetchall()


def test_an_alpaca_day_books_its_fee_activities_once(tmp_path: Path) -> None:
    from ofxtools.Parser import OFXTree

    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.accounting.ledger_verify import verify_ledger
    from tbot_bot.runtime.reports import report_paths

    home = provision_demo_home(tmp_path / "alpaca")
    bars = load_replay_bars(SAMPLE_DATA, DEMO_DAY, "XNYS")
    for run in range(2):  # a restart books the day again: nothing new
        if run:
            unmark_booked(home, DEMO_DAY)
        wrapper = AlpacaWithFees(bars)
        try:
            assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrapper).run() == 0
        finally:
            wrapper.stop()
        assert check_outputs(home, DEMO_DAY) == []
        rows = _fee_rows(home)
        assert len(rows) == 8  # four activities, two splits each
    charges = [r for r in rows if r[1] == "5010"]
    assert sorted((r[2], r[3]) for r in charges) == [(0, 100), (100, 0), (200, 0), (500, 0)]  # 1/10,000 units
    assert all(r[2] == 0 for r in rows if r[1] == "1030" and "refund" not in r[4])
    assert any(r[4] == "refund: REG fee adjustment" for r in rows)
    binding = load_binding(home)
    assert (
        verify_ledger(binding.ledger_path, anchors=AnchorStore.for_home(home), backup_dir=binding.backup_dir)
        == []
    )
    # the day's OFX statement carries them: a fee on a security as INVEXPENSE, the pass-through charge as a
    # bank transaction; ofxtools parses it
    ofx = report_paths(home, binding, DEMO_DAY)["ofx"]
    tree = OFXTree()
    tree.parse(str(ofx))
    statement = tree.convert().statements[0]
    fitids = {
        (t.invtran.fitid if hasattr(t, "invtran") else t.stmttrn.fitid): type(t).__name__
        for t in statement.transactions
    }
    assert {fitids[r[0]] for r in rows} == {"INVEXPENSE", "INVBANKTRAN"}


def _ctx(home: BotHome, session: date, activities: list[FeeActivity]) -> Any:
    events: list[tuple[str, dict[str, Any]]] = []
    broker = SimpleNamespace(fee_activities=lambda since: [a for a in activities if a.day >= since])
    return SimpleNamespace(
        home=home,
        binding=load_binding(home),
        settings=load_settings(home),
        bot_id="TB01",
        session_date=session,
        broker=broker,
        errors=SimpleNamespace(call=lambda fn, *a: fn(*a)),
        log=SimpleNamespace(event=lambda source, name, **kw: events.append((name, kw))),
        events=events,
    )


def test_a_late_fee_for_a_closed_period_is_posted_in_the_open_one(provisioned_home: Path) -> None:
    home = BotHome(provisioned_home)
    binding = load_binding(home)
    writer = LedgerWriter.for_home(home, binding.ledger_path, binding, 5)
    writer.close_period("2026-10")
    late = FeeActivity("20261030::late", date(2026, 10, 30), Decimal("0.02"), "REG fee", "SPY")
    today = FeeActivity("20261102::today", date(2026, 11, 2), Decimal("0.01"), "TAF fee", "SPY")
    ctx = _ctx(home, date(2026, 11, 2), [late, today])
    assert book_broker_fees(ctx) == 2
    assert book_broker_fees(ctx) == 0  # booked once
    with sqlite3.connect(f"file:{binding.ledger_path}?mode=ro", uri=True) as conn:
        posted = dict(
            conn.execute(
                "SELECT fitid, dtposted || ' ' || memo FROM transactions WHERE fitid LIKE 'SIM-ACT-%'"
            )
        )
    assert posted["SIM-ACT-20261030::late"].startswith("2026-11-02T00:00:00")
    assert "broker date 2026-10-30; period 2026-10 closed" in posted["SIM-ACT-20261030::late"]
    assert posted["SIM-ACT-20261102::today"].startswith("2026-11-02T00:00:00")
    assert [name for name, _ in ctx.events] == ["broker_fees_booked"]


def test_a_broker_that_cannot_answer_is_logged_and_asked_again(provisioned_home: Path) -> None:
    home = BotHome(provisioned_home)
    ctx = _ctx(home, date(2026, 11, 2), [])

    def down(since: date) -> list[FeeActivity]:
        raise BrokerError("account activities: 503 service unavailable")

    ctx.broker.fee_activities = down
    assert book_broker_fees(ctx) == 0
    assert ctx.events == [
        (
            "broker_fees_unavailable",
            {"since": "2026-10-23", "reason": "account activities: 503 service unavailable"},
        )
    ]


def test_the_days_fees_include_the_brokers_on_every_surface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fees posted apart from fills are the day's cost wherever the day's fees and net are read: the summary
    (its fees column too), status.json (CLI and dashboard), `tbot trades` and `tbot summary`."""
    import json

    from rigd_tbot.cli import main
    from tbot_bot.runtime.reports import report_paths
    from tbot_bot.runtime.status_bot import read_status

    home = provision_demo_home(tmp_path / "alpaca")
    wrapper = AlpacaWithFees(load_replay_bars(SAMPLE_DATA, DEMO_DAY, "XNYS"))
    try:
        assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrapper).run() == 0
    finally:
        wrapper.stop()
    summary = json.loads(Path(report_paths(home, load_binding(home), DEMO_DAY)["summary"]).read_text())
    totals = summary["totals"]
    extra = Decimal("0.07")  # 0.02 + 0.01 + 0.05 - 0.01
    assert Decimal(totals["account_fees"]) == extra
    fill_fees = sum(Decimal(s["total_fees"]) for s in summary["strategies"].values())
    assert Decimal(totals["total_fees"]) == fill_fees + extra
    net = Decimal(totals["total_pnl"]) - Decimal(totals["total_fees"])
    assert Decimal(totals["net_pnl"]) == net
    status = read_status(home.status_json)
    assert status is not None
    assert Decimal(status["account_fees"]) == extra
    assert (Decimal(status["fees"]), Decimal(status["net_pnl"])) == (Decimal(totals["total_fees"]), net)
    assert Decimal(status["money"]["net_pnl_today"]) == net.quantize(Decimal("0.01"))
    capsys.readouterr()
    assert main(["trades", "--home", str(home.root), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["totals"]
    assert (Decimal(listed["account_fees"]), Decimal(listed["fees"]), Decimal(listed["net_pnl"])) == (
        extra, Decimal(totals["total_fees"]), net,
    )  # fmt: skip
    assert main(["trades", "--home", str(home.root)]) == 0
    assert "include 0.07 the broker charged apart from fills" in capsys.readouterr().out
    # one strategy's listing: the broker's fees are no strategy's
    assert main(["trades", "--home", str(home.root), "--format", "json", "--strategy", "open"]) == 0
    assert Decimal(json.loads(capsys.readouterr().out)["totals"]["account_fees"]) == 0
    assert main(["summary", "--home", str(home.root)]) == 0
    total_row = next(
        line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("TOTAL")
    )
    assert f"{Decimal(totals['total_fees']):.2f}" in total_row and f"{net:.2f}" in total_row


def test_a_corrected_account_fee_counts_once_in_its_days_fees(tmp_path: Path) -> None:
    """An account fee of a closed month corrected in the open one: its replacement is dated on the posting day and
    also a prior-period adjustment, so the day's summary counted it twice (2.00 against the ledger's 0.50). In
    the open period a corrected fee counted original and replacement (2.50 for 1.50)."""
    from test_ledger_fixtures import new_ledger

    from tbot_bot.accounting.account_transaction import entry_for_broker_fee
    from tbot_bot.accounting.ledger_correction import plan_correction
    from tbot_bot.accounting.ledger_read import account_fees, prior_period_adjustments
    from tbot_bot.reporting.daily_summary import build_daily_summary

    def fee(n: str, day: date) -> Any:
        return entry_for_broker_fee(
            broker="ALPACA", activity_id=n, day=day, amount=Decimal("1.00"), description="reg fee", symbol=None,
            currency_code="USD",
        )  # fmt: skip

    ledger, writer = new_ledger(tmp_path)
    writer.ingest([fee("1", date(2026, 10, 15)), fee("2", date(2026, 11, 16))])
    writer.close_period("2026-10")
    for fitid in ("ALPACA-ACT-1", "ALPACA-ACT-2"):
        plan = plan_correction(
            ledger, fitid, reason="statement", user="x", source="t", amount=Decimal("1.50")
        )
        writer.correct(fitid, reason="statement", posted_at=plan.posted_at, replacement=plan.replacement)
    posted = "2026-11-01"  # the closed month's correction: the open period's first instant
    totals = build_daily_summary(
        [], {}, {}, account_fees(ledger, posted), prior_period_adjustments(ledger, posted)
    )
    assert Decimal(totals["totals"]["total_fees"]) == Decimal("0.50")
    assert account_fees(ledger, "2026-11-16") == Decimal("1.50")


def test_a_fee_the_broker_dates_on_a_booked_day_reaches_that_days_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alpaca posts regulatory fees a day or more after the trade, dated the trade's day: booked at the next
    session, the fee was in the ledger (and `tbot trades`) but in neither that day's summary nor its statement,
    whose balance included it. The day it is dated on has its reports written again, as for a late fill."""
    import json

    from ofxtools.Parser import OFXTree

    from tbot_bot.broker.brokers.sim import SimBroker
    from tbot_bot.market_time import session_on_or_after
    from tbot_bot.runtime.reports import report_paths

    home = provision_demo_home(tmp_path / "home")
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    paths = report_paths(home, load_binding(home), DEMO_DAY)
    assert Decimal(json.loads(Path(paths["summary"]).read_text())["totals"].get("account_fees", "0")) == 0
    late = FeeActivity("A1", DEMO_DAY, Decimal("0.37"), "REG fee", "SPY")
    monkeypatch.setattr(SimBroker, "fee_activities", lambda self, since: [late])
    next_day = session_on_or_after(DEMO_DAY + timedelta(days=1))
    assert Supervisor(home, replay_day=next_day).run() == 0
    totals = json.loads(Path(paths["summary"]).read_text())["totals"]
    assert Decimal(totals["account_fees"]) == Decimal("0.37")
    tree = OFXTree()
    tree.parse(str(paths["ofx"]))
    fitids = {
        t.invtran.fitid if hasattr(t, "invtran") else t.stmttrn.fitid
        for t in tree.convert().statements[0].transactions
    }
    assert any("-ACT-A1" in f for f in fitids)
