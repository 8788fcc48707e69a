"""A month of replays audited as an accountant would (issue 12): the cash invariant after every session, every
report equal to the ledger exactly, per-session files, whole-share shorts on 2030, fees on 5010, period close.

One module-scoped run of every January 2011 session (the sample data) through the real supervisor, with
SHORT_TYPE_MID=ShortSell so short sales and inverse ETFs both trade. CLOSE is switched off to keep the month
under a minute: OPEN and MID already book longs, inverse ETFs, short sales and fees every day.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from integration_test_runner import run_session
from ofxtools.Parser import OFXTree
from test_ledger_fixtures import account_balances

from tbot_bot.accounting.accounting_config import LedgerBinding, load_binding
from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.support.path_resolver import BotHome

D = Decimal
FLOAT = D("25000")


def _sessions() -> list[date]:
    from tbot_bot.market_time import market_calendar

    cal = market_calendar("XNYS")
    # 2011-01-03 is the sample's first session: no previous volume, nothing can trade
    return [d.date() for d in cal.sessions_in_range("2011-01-04", "2011-01-31")]


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tbot_bot.support.provision import ProvisionRequest, provision

    home = BotHome(tmp_path_factory.mktemp("month") / "home")
    provision(
        home,
        ProvisionRequest(
            broker="sim", entity="RGL", jurisdiction="USA", account="main", bot_id="TB01",
            float_amount=str(FLOAT), config_overrides={"SHORT_TYPE_MID": "ShortSell", "STRAT_CLOSE_ENABLED": "false"},
        ),
        now=datetime(2011, 1, 3, 12, tzinfo=UTC),
    )  # fmt: skip
    binding = load_binding(home)
    after_each: dict[date, dict[str, D]] = {}
    status: dict[date, dict[str, Any]] = {}
    for day in _sessions():
        assert run_session(home, day) == 0, day
        after_each[day] = account_balances(binding.ledger_path)
        status[day] = json.loads(home.status_json.read_text())
    return {"home": home, "binding": binding, "balances": after_each, "status": status}


def _ledger(binding: LedgerBinding, sql: str, *args: object) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{binding.ledger_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_cash_equals_float_plus_realised_pnl_minus_fees_after_every_session(month: dict[str, Any]) -> None:
    traded_days = 0
    for day, bal in month["balances"].items():
        pnl = -(bal.get("4010", D(0)) + bal.get("4020", D(0)))  # income is a credit balance
        fees = bal.get("5010", D(0))
        assert bal["1030"] == FLOAT + pnl - fees, day
        assert -bal["3010"] == FLOAT
        # flat at every close: no holdings, no short liability left
        assert all(bal.get(a, D(0)) == 0 for a in ("1110", "1120", "2030")), (day, bal)
        traded_days += bool(fees)
    assert traded_days >= 10  # fees are charged (5010 exercised) on the days that traded
    binding, home = month["binding"], month["home"]
    anchors = AnchorStore.for_home(home)
    assert verify_ledger(binding.ledger_path, anchors=anchors, backup_dir=binding.backup_dir) == []


def test_short_sales_are_whole_shares_on_2030_and_inverse_etfs_are_long_bearish(
    month: dict[str, Any],
) -> None:
    binding = month["binding"]
    shorts = _ledger(binding, "SELECT * FROM transactions WHERE trntype = 'SELLSHORT'")
    assert shorts, "SHORT_TYPE_MID=ShortSell traded no short sale this month"
    for row in shorts:
        assert (row["side"], row["direction"], row["tag"]) == ("short", "bearish", "ShortSell")
        assert D(row["size"]) == D(row["size"]).to_integral_value()
        legs = _ledger(binding, "SELECT account_code, credit FROM splits WHERE transaction_id = ?", row["id"])
        assert {leg["account_code"] for leg in legs} == {"1030", "2030"}
    inverse = _ledger(binding, "SELECT side, direction FROM transactions WHERE tag = 'InverseETF'")
    assert inverse and {(r["side"], r["direction"]) for r in inverse} == {("long", "bearish")}
    # the daily summaries count the same positions by side and direction
    home = month["home"]
    docs = [
        json.loads(p.read_text()) for p in home.summaries_dir(binding.scope).glob("daily_summary_2011-*.json")
    ]
    assert sum(d["totals"]["trades_by_side"]["short"] for d in docs) == len(shorts)
    bearish = _ledger(
        binding, "SELECT count(*) AS n FROM transactions WHERE direction = 'bearish' AND pnl IS NOT NULL"
    )
    assert sum(d["totals"]["trades_by_direction"]["bearish"] for d in docs) == bearish[0]["n"]


def _session_pnl(binding: LedgerBinding, day: date) -> tuple[D, D]:
    (row,) = _ledger(
        binding,
        "SELECT coalesce(sum(pnl), 0) AS pnl FROM transactions WHERE session_id = ? AND trntype != 'FEE'",
        f"TB01-{day.isoformat()}",
    )
    (fee,) = _ledger(
        binding,
        "SELECT coalesce(sum(s.debit) - sum(s.credit), 0) AS fee FROM splits s JOIN transactions t "
        "ON t.id = s.transaction_id WHERE t.session_id = ? AND s.account_code = '5010'",
        f"TB01-{day.isoformat()}",
    )
    return D(row["pnl"]) / 10_000, D(fee["fee"]) / 10_000


def _statement_amount(tx: Any) -> D:
    """TOTAL of a trade (INVBUY/INVSELL inside), of an INVEXPENSE, or TRNAMT of a bank transaction."""
    for name in ("invbuy", "invsell"):
        inv = getattr(tx, name, None)
        if inv is not None:  # aggregates are list-like: never `or` them
            return D(inv.total)
    stmttrn = getattr(tx, "stmttrn", None)
    return D(stmttrn.trnamt) if stmttrn is not None else D(tx.total)


def test_every_report_equals_the_ledger_exactly(month: dict[str, Any]) -> None:
    home, binding = month["home"], month["binding"]
    summaries = home.summaries_dir(binding.scope)
    days = list(month["balances"])
    index = json.loads((summaries / "daily_summary_index.json").read_text())
    assert [s["session_date"] for s in index["sessions"]] == [d.isoformat() for d in days]
    for day in days:
        pnl, fees = _session_pnl(binding, day)
        doc = json.loads((summaries / f"daily_summary_{day.isoformat()}.json").read_text())
        assert (D(doc["totals"]["total_pnl"]), D(doc["totals"]["total_fees"])) == (pnl, fees), day
        assert D(doc["totals"]["net_pnl"]) == pnl - fees
        st = month["status"][day]
        # status.json: gross and fees exactly as booked, and the PnL people read is their difference (net)
        assert (D(st["gross_pnl"]), D(st["fees"])) == (pnl, fees), day
        assert D(st["realized_pnl"]) == D(st["net_pnl"]) == pnl - fees, day
        # the session's OFX: every cash movement of the day, parsed by ofxtools
        ofx = home.bot_output_dir(binding.scope) / "exports" / f"{binding.scope}_{day.isoformat()}.ofx"
        tree = OFXTree()
        tree.parse(str(ofx))
        stmt = tree.convert().statements[0]
        totals = sum((_statement_amount(t) for t in stmt.transactions), D(0))
        (cash,) = _ledger(
            binding,
            "SELECT coalesce(sum(s.debit) - sum(s.credit), 0) AS c FROM splits s JOIN transactions t "
            "ON t.id = s.transaction_id WHERE s.account_code = '1030' AND t.dtposted LIKE ?",
            f"{day.isoformat()}T%",
        )
        assert totals == D(cash["c"]) / 10_000, day
        assert stmt.balances.availcash == month["balances"][day]["1030"]
    # trade history: every round trip's PnL and fees are the ledger's, to the last 1/10,000
    th = home.trades_dir(binding.scope) / f"{binding.scope}_BOT_trade_history.csv"
    with th.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["error_code"]]
    ledger_pnl = {
        r["client_order_id"]: D(r["pnl"]) / 10_000
        for r in _ledger(
            binding,
            "SELECT client_order_id, pnl FROM transactions WHERE pnl IS NOT NULL AND trntype != 'CLOSE'",
        )
    }
    assert len(rows) == len(ledger_pnl)
    assert sorted(D(r["PnL"]) for r in rows) == sorted(ledger_pnl.values())
    all_fees = sum((D(r["fees"]) for r in rows), D(0))
    assert all_fees == month["balances"][days[-1]]["5010"]


def test_strategy_log_fill_lines_carry_the_reporting_fields(month: dict[str, Any]) -> None:
    home, binding = month["home"], month["binding"]
    lines = []
    for name in ("open", "mid", "close"):
        path = home.logs_dir(binding.scope) / f"{name}.log"
        lines += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    exits = [x for x in lines if x["event"] == "exit_fill"]
    entries = [x for x in lines if x["event"] == "entry_fill"]
    assert exits and entries
    for x in exits:
        for key in ("strategy_name", "signal_time", "entry_time", "exit_time", "side", "entry_price",
                    "exit_price", "size", "PnL", "broker", "exit_reason"):  # fmt: skip
            assert x[key] not in (None, ""), (key, x)
    for x in entries:
        for key in ("strategy_name", "signal_time", "entry_time", "side", "entry_price", "size", "broker"):
            assert x[key] not in (None, ""), (key, x)
    bearish = [x for x in entries if json.loads(x["detail"] or "{}").get("tag") == "InverseETF"]
    assert bearish and all(x["side"] == "long" for x in bearish)


def test_period_close_moves_income_and_expense_to_3040_and_locks_the_month(
    month: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from test_ledger_fixtures import fill

    from rigd_tbot.cli import main
    from tbot_bot.accounting.account_transaction import entries_for_fill
    from tbot_bot.accounting.accounting_api import LedgerWriter
    from tbot_bot.errors import LedgerError

    home, binding = month["home"], month["binding"]
    before = account_balances(binding.ledger_path)
    profit = -(before.get("4010", D(0)) + before.get("4020", D(0))) - before.get("5010", D(0))
    assert main(["ledger", "close", "--period", "2011-13", "--home", str(home.root)]) == 2
    # a supervisor trading a January session not booked yet (here: one whose date it has not published): its fills
    # could not be booked into a closed month (a CLI review); once its session is booked (the evening of the
    # month's last session, a weekend, the 1st before the open) the month-end close goes ahead (a diff review)
    from tbot_bot.runtime.control import SupervisorLock

    published = home.status_json.read_text()
    lock = SupervisorLock.acquire(home, mode="live")
    try:
        home.status_json.write_text(json.dumps({**json.loads(published), "session_date": None}))
        assert main(["ledger", "close", "--period", "2011-01", "--home", str(home.root)]) == 2
        assert "a supervisor is trading a session (its date is not known yet)" in capsys.readouterr().err
        assert account_balances(binding.ledger_path) == before
        home.status_json.write_text(json.dumps({**json.loads(published), "session_date": "2011-01-31"}))
        assert main(["ledger", "close", "--period", "2011-01", "--home", str(home.root)]) == 0
    finally:
        lock.release()
        home.status_json.write_text(published)
    assert "CLOSE-2011-01" in capsys.readouterr().out
    after = account_balances(binding.ledger_path)
    assert all(after.get(a, D(0)) == 0 for a in ("4010", "4020", "5010"))
    assert -after["3040"] == profit and after["1030"] == before["1030"]
    (close,) = _ledger(binding, "SELECT * FROM transactions WHERE fitid = 'CLOSE-2011-01'")
    assert (close["trntype"], close["dtposted"]) == ("CLOSE", "2011-01-31T23:59:59.999999Z")
    writer = LedgerWriter.for_home(home, binding.ledger_path, binding, 50)
    late = fill("LATE-JAN", posted_at=datetime(2011, 1, 31, 20, tzinfo=UTC))
    with pytest.raises(LedgerError, match="period 2011-01 is closed"):
        writer.ingest(entries_for_fill(late))
    assert main(["ledger", "close", "--period", "2011-01", "--home", str(home.root)]) == 2  # a person's call
    assert "already closed" in capsys.readouterr().err
    assert writer.ingest(
        entries_for_fill(fill("EARLY-FEB", posted_at=datetime(2011, 2, 1, 15, tzinfo=UTC)))
    ).written
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0
