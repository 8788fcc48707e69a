"""OFX export of a day with long, inverse-ETF, short-sale and put trades parses with ofxtools and matches the ledger."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from ofxtools.Parser import OFXTree
from test_ledger_fixtures import DAY, PUT, day_of_fills, fill, new_ledger

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.accounting.generate_ofx import export_ofx
from tbot_bot.accounting.ledger_schema import TRIGGER_NAMES
from tbot_bot.errors import LedgerError

CENT = Decimal("0.01")


def booked(tmp_path: Path) -> Path:
    ledger, writer = new_ledger(tmp_path)
    other_day = fill("OTHER-DAY", posted_at=datetime(2026, 11, 25, 15, tzinfo=UTC))
    writer.ingest([e for f in [*day_of_fills(), other_day] for e in entries_for_fill(f)])
    return ledger


def parse(path: Path):  # type: ignore[no-untyped-def]
    tree = OFXTree()
    tree.parse(str(path))
    return tree.convert()


def inv_of(tx):  # type: ignore[no-untyped-def]
    """The INVBUY / INVSELL inside a trade aggregate, else None (aggregates are list-like: never use `or`)."""
    for name in ("invbuy", "invsell"):
        inv = getattr(tx, name, None)
        if inv is not None:
            return inv
    return None


def ledger_cash(ledger: Path) -> dict[str, tuple[Decimal, datetime]]:
    """FITID -> (1030 movement, dtposted) as the statement shows it: a `<trade>-FEE` entry folds into its trade."""
    conn = sqlite3.connect(ledger)
    rows = conn.execute(
        "SELECT t.fitid, t.dtposted, coalesce(sum(s.debit) - sum(s.credit), 0) FROM transactions t "
        "LEFT JOIN splits s ON s.transaction_id = t.id AND s.account_code = '1030' GROUP BY t.id"
    ).fetchall()
    conn.close()
    out = {
        str(fitid): (
            Decimal(cash) / 10_000,
            datetime.strptime(posted, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
        )
        for fitid, posted, cash in rows
        if not str(fitid).endswith("-FEE")
    }
    for fitid, _, cash in rows:
        if str(fitid).endswith("-FEE"):
            trade_cash, posted = out[str(fitid)[:-4]]
            out[str(fitid)[:-4]] = (trade_cash + Decimal(cash) / 10_000, posted)
    return out


def ledger_fees(ledger: Path) -> dict[str, Decimal]:
    conn = sqlite3.connect(ledger)
    rows = conn.execute(
        "SELECT t.fitid, s.debit FROM transactions t JOIN splits s ON s.transaction_id = t.id "
        "WHERE s.account_code = '5010'"
    ).fetchall()
    conn.close()
    return {str(f)[:-4]: Decimal(d) / 10_000 for f, d in rows}


def test_day_export_parses_and_amounts_equal_the_ledger_to_the_cent(tmp_path: Path) -> None:
    ledger = booked(tmp_path)
    out = export_ofx(
        ledger, tmp_path / "day.ofx", day=DAY.date(), broker_id="ALPACA", account_id="RIGD_USA_ALPACA_01"
    )
    ofx = parse(out)
    stmt = ofx.statements[0]
    assert (stmt.curdef, stmt.account.brokerid, stmt.account.acctid) == (
        "USD",
        "ALPACA",
        "RIGD_USA_ALPACA_01",
    )
    expected = ledger_cash(ledger)
    expected.pop("OTHER-DAY")
    seen: dict[str, tuple[str, str | None]] = {}
    for tx in stmt.transactions:
        kind = type(tx).__name__
        inv = inv_of(tx)
        invtran = inv.invtran if inv is not None else tx.invtran
        total = inv.total if inv is not None else tx.total
        cash, posted = expected[invtran.fitid]
        assert total.quantize(CENT) == cash.quantize(CENT), invtran.fitid
        assert invtran.dttrade == posted
        subtypes = [getattr(tx, n, None) for n in ("buytype", "selltype", "optbuytype", "optselltype")]
        subtype = next((s for s in subtypes if s is not None), None)
        seen[invtran.fitid] = (kind, subtype)
    assert set(seen) == set(expected)
    assert seen["L1-OPEN"] == ("BUYSTOCK", "BUY")
    assert seen["L1-CLOSE"] == ("SELLSTOCK", "SELL")
    assert seen["I1-OPEN"] == ("BUYSTOCK", "BUY")  # inverse ETF: a long position in SQQQ
    assert seen["S1-OPEN"] == ("SELLSTOCK", "SELLSHORT")
    assert seen["S1-CLOSE"] == ("BUYSTOCK", "BUYTOCOVER")
    assert seen["P1-OPEN"] == ("BUYOPT", "BUYTOOPEN")
    assert seen["P1-CLOSE"] == ("SELLOPT", "SELLTOCLOSE")
    assert "P1-CLOSE-FEE" not in seen  # shown on its trade as COMMISSION, included in the trade's TOTAL
    commissions = {
        inv_of(t).invtran.fitid: inv_of(t).commission for t in stmt.transactions if inv_of(t) is not None
    }
    fees = ledger_fees(ledger)
    fees.pop("OTHER-DAY", None)
    assert {f: c for f, c in commissions.items() if c is not None} == fees
    net = sum((inv_of(t).total if inv_of(t) is not None else t.total) for t in stmt.transactions)
    assert net == sum(c for c, _ in expected.values())


def test_units_prices_gain_and_securities(tmp_path: Path) -> None:
    ofx = parse(
        export_ofx(booked(tmp_path), tmp_path / "d.ofx", day=DAY.date(), broker_id="ALPACA", account_id="A1")
    )
    by_fitid = {}
    for tx in ofx.statements[0].transactions:
        inv = inv_of(tx)
        if inv is not None:
            by_fitid[inv.invtran.fitid] = (tx, inv)
    tx, inv = by_fitid["P1-CLOSE"]
    assert (inv.units, inv.unitprice, inv.gain, tx.shperctrct, inv.secid.uniqueid) == (
        Decimal(-2),
        Decimal("3.60"),
        Decimal("90.00"),
        100,
        PUT,
    )
    _, inv = by_fitid["I1-OPEN"]
    assert (inv.units, inv.unitprice, inv.secid.uniqueid) == (Decimal(25), Decimal("12.3456"), "SQQQ")
    _, inv = by_fitid["S1-OPEN"]
    assert (inv.units, inv.subacctsec) == (Decimal(-5), "SHORT")
    securities = {s.secinfo.secid.uniqueid: s for s in ofx.securities}
    assert set(securities) == {"AAPL", "SQQQ", "TSLA", PUT}
    put = securities[PUT]
    assert (put.opttype, put.strikeprice, put.dtexpire.date().isoformat(), put.secid.uniqueid) == (
        "PUT",
        Decimal(450),
        "2026-12-18",
        "SPY",
    )


def test_all_export_includes_every_day(tmp_path: Path) -> None:
    ledger = booked(tmp_path)
    stmt = parse(export_ofx(ledger, tmp_path / "all.ofx", broker_id="ALPACA", account_id="A1")).statements[0]
    assert len(stmt.transactions) == len(ledger_cash(ledger))


def test_export_refuses_a_ledger_that_fails_verify(tmp_path: Path) -> None:
    ledger = booked(tmp_path)
    conn = sqlite3.connect(ledger)
    for trigger in TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("UPDATE splits SET debit = debit + 100 WHERE id = 1")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="fails verification"):
        export_ofx(ledger, tmp_path / "x.ofx", broker_id="ALPACA", account_id="A1")
    assert not (tmp_path / "x.ofx").exists()


def test_export_refuses_overlong_ofx_ids(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="1-22 characters"):
        export_ofx(booked(tmp_path), tmp_path / "x.ofx", broker_id="ALPACA", account_id="X" * 23)


def test_positions_and_balance_parse_with_ofxtools(tmp_path: Path) -> None:
    """A statement ending with positions open: INVPOSLIST at cost, INVBAL with cash and the short liability."""
    ledger, writer = new_ledger(tmp_path)
    opens = [f for f in day_of_fills() if f.fitid.endswith("-OPEN")]
    writer.ingest([e for f in opens for e in entries_for_fill(f)])
    stmt = parse(
        export_ofx(ledger, tmp_path / "open.ofx", day=DAY.date(), broker_id="SIM", account_id="A1")
    ).statements[0]
    pos = {p.invpos.secid.uniqueid: p for p in stmt.positions}
    assert set(pos) == {"AAPL", "SQQQ", "TSLA", PUT}
    assert (type(pos["AAPL"]).__name__, pos["AAPL"].invpos.postype, pos["AAPL"].invpos.units) == (
        "POSSTOCK",
        "LONG",
        Decimal(10),
    )
    assert pos["AAPL"].invpos.mktval == Decimal("1902.50") and pos["AAPL"].invpos.unitprice == Decimal(
        "190.25"
    )
    tsla = pos["TSLA"].invpos
    assert (tsla.postype, tsla.heldinacct, tsla.units, tsla.mktval) == (
        "SHORT",
        "SHORT",
        Decimal(-5),
        Decimal("-1252.50"),
    )
    put = pos[PUT]
    assert (type(put).__name__, put.invpos.units, put.invpos.mktval) == (
        "POSOPT",
        Decimal(2),
        Decimal("630.00"),
    )
    cash = sum((c for c, _ in ledger_cash(ledger).values()), Decimal(0))
    assert stmt.balances.availcash == cash  # ledger 1030 at the statement's end
    assert stmt.balances.shortbalance == Decimal("1252.50")  # 2030 Securities Sold Short
    # a flat day: no INVPOSLIST, the balance still there
    ledger2 = booked(tmp_path / "flat")
    stmt2 = parse(
        export_ofx(ledger2, tmp_path / "flat.ofx", day=DAY.date(), broker_id="SIM", account_id="A1")
    ).statements[0]
    assert stmt2.positions is None or len(stmt2.positions) == 0
    assert stmt2.balances.shortbalance == 0
