"""OFX 2.2 investment statement export (INVSTMTRS + SECLIST) of a verified bot ledger.

TOTAL is the transaction's signed Broker Cash (1030) movement exactly as the ledger holds it; FITID, DTTRADE
and amounts come from the ledger; securities are identified by ticker (UNIQUEIDTYPE=TICKER).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_entry import DTPOSTED_FORMAT
from tbot_bot.accounting.ledger_schema import open_ledger, read_meta
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.broker.broker_api import OptionContract
from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import atomic_write_text, from_minor, utc_now

_HEADER = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)
_STATUS = "<STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>"


def ofx_datetime(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y%m%d%H%M%S}.{moment.microsecond // 1000:03d}[+0:UTC]"


def _ledger_dt(text: str) -> datetime:
    return datetime.strptime(text, DTPOSTED_FORMAT).replace(tzinfo=UTC)


def _ofx_dtposted(text: str) -> str:
    """Ledger dtposted (2026-11-24T14:45:00.123456Z) -> OFX 20261124144500.123[+0:UTC], by position (hot path)."""
    return f"{text[0:4]}{text[5:7]}{text[8:10]}{text[11:13]}{text[14:16]}{text[17:19]}.{text[20:23]}[+0:UTC]"


def _amount(minor: int) -> str:
    value = from_minor(minor)
    cents = value.quantize(Decimal("0.01"))
    return str(cents if cents == value else value)


def _decimal(text: str | None) -> Decimal:
    return Decimal(text) if text else Decimal(0)


def _secid(ticker: str) -> str:
    return f"<SECID><UNIQUEID>{escape(ticker)}</UNIQUEID><UNIQUEIDTYPE>TICKER</UNIQUEIDTYPE></SECID>"


def _invtran(tx: dict[str, Any]) -> str:
    memo = " ".join(
        f"{k}={tx[k]}"
        for k in (
            "strategy",
            "signal_ticker",
            "side",
            "tag",
            "leverage_multiplier",
            "exit_reason",
            "client_order_id",
        )
        if tx[k]
    )
    if tx["memo"]:
        memo = f"{tx['memo']}; {memo}" if memo else tx["memo"]
    memo_xml = f"<MEMO>{escape(memo[:255])}</MEMO>" if memo else ""
    return f"<INVTRAN><FITID>{escape(tx['fitid'])}</FITID><DTTRADE>{_ofx_dtposted(tx['dtposted'])}</DTTRADE>{memo_xml}</INVTRAN>"


def _trade_xml(tx: dict[str, Any]) -> str:
    trntype = tx["trntype"]
    cash = int(tx["cash"] or 0)
    size = _decimal(tx["size"])
    opening = trntype in ("BUY", "SELLSHORT", "BUYTOOPEN")
    price_minor = tx["entry_price"] if opening else tx["exit_price"]
    unitprice = _amount(int(price_minor or 0))
    subacct = "SHORT" if trntype in ("SELLSHORT", "BUYTOCOVER") else "CASH"
    if trntype in ("BUY", "BUYTOCOVER", "BUYTOOPEN"):
        body = (
            f"<INVBUY>{_invtran(tx)}{_secid(tx['ticker'])}<UNITS>{size}</UNITS><UNITPRICE>{unitprice}</UNITPRICE>"
            f"<TOTAL>{_amount(cash)}</TOTAL><SUBACCTSEC>{subacct}</SUBACCTSEC><SUBACCTFUND>CASH</SUBACCTFUND></INVBUY>"
        )
        if trntype == "BUYTOOPEN":
            return f"<BUYOPT>{body}<OPTBUYTYPE>BUYTOOPEN</OPTBUYTYPE><SHPERCTRCT>{_shares_per_contract(tx)}</SHPERCTRCT></BUYOPT>"
        return f"<BUYSTOCK>{body}<BUYTYPE>{trntype}</BUYTYPE></BUYSTOCK>"
    gain = f"<GAIN>{_amount(int(tx['pnl']))}</GAIN>" if tx["pnl"] is not None else ""
    body = (
        f"<INVSELL>{_invtran(tx)}{_secid(tx['ticker'])}<UNITS>{-size}</UNITS><UNITPRICE>{unitprice}</UNITPRICE>"
        f"<TOTAL>{_amount(cash)}</TOTAL>{gain}<SUBACCTSEC>{subacct}</SUBACCTSEC><SUBACCTFUND>CASH</SUBACCTFUND></INVSELL>"
    )
    if trntype == "SELLTOCLOSE":
        return f"<SELLOPT>{body}<OPTSELLTYPE>SELLTOCLOSE</OPTSELLTYPE><SHPERCTRCT>{_shares_per_contract(tx)}</SHPERCTRCT></SELLOPT>"
    return f"<SELLSTOCK>{body}<SELLTYPE>{trntype}</SELLTYPE></SELLSTOCK>"


def _shares_per_contract(tx: dict[str, Any]) -> int:
    return int(_decimal(tx["contract_multiplier"]) or 100)


def _transaction_xml(tx: dict[str, Any]) -> str:
    trntype = tx["trntype"]
    if trntype in ("BUY", "SELL", "SELLSHORT", "BUYTOCOVER", "BUYTOOPEN", "SELLTOCLOSE"):
        return _trade_xml(tx)
    cash = int(tx["cash"] or 0)
    if trntype == "FEE" and tx["ticker"]:
        return (
            f"<INVEXPENSE>{_invtran(tx)}{_secid(tx['ticker'])}<TOTAL>{_amount(cash)}</TOTAL>"
            f"<SUBACCTSEC>CASH</SUBACCTSEC><SUBACCTFUND>CASH</SUBACCTFUND></INVEXPENSE>"
        )
    # Corrections, float movements and security-less fees: their Broker Cash effect as a bank transaction.
    kind = {"FEE": "FEE", "FLOAT_IN": "CREDIT", "FLOAT_OUT": "DEBIT"}.get(trntype, "OTHER")
    memo = escape((tx["memo"] or trntype)[:255])
    return (
        f"<INVBANKTRAN><STMTTRN><TRNTYPE>{kind}</TRNTYPE><DTPOSTED>{_ofx_dtposted(tx['dtposted'])}</DTPOSTED>"
        f"<TRNAMT>{_amount(cash)}</TRNAMT><FITID>{escape(tx['fitid'])}</FITID><MEMO>{memo}</MEMO></STMTTRN>"
        f"<SUBACCTFUND>CASH</SUBACCTFUND></INVBANKTRAN>"
    )


def _security_xml(ticker: str, instrument: str, multiplier: int) -> str:
    info = f"<SECINFO>{_secid(ticker)}<SECNAME>{escape(ticker)}</SECNAME><TICKER>{escape(ticker)}</TICKER></SECINFO>"
    contract = OptionContract.from_occ(ticker) if instrument == "option" else None
    if contract is None:
        return (
            f"<OTHERINFO>{info}</OTHERINFO>" if instrument == "option" else f"<STOCKINFO>{info}</STOCKINFO>"
        )
    expiry = datetime(contract.expiry.year, contract.expiry.month, contract.expiry.day, tzinfo=UTC)
    opttype = "PUT" if contract.right == "P" else "CALL"
    return (
        f"<OPTINFO>{info}<OPTTYPE>{opttype}</OPTTYPE><STRIKEPRICE>{contract.strike.normalize():f}</STRIKEPRICE>"
        f"<DTEXPIRE>{ofx_datetime(expiry)}</DTEXPIRE><SHPERCTRCT>{multiplier}</SHPERCTRCT>"
        f"{_secid(contract.underlying)}</OPTINFO>"
    )


def _rows(conn: sqlite3.Connection, day: date | None) -> list[dict[str, Any]]:
    sql = (
        "SELECT t.*, c.cash FROM transactions t LEFT JOIN (SELECT transaction_id, sum(debit) - sum(credit) AS cash "
        "FROM splits WHERE account_code = '1030' GROUP BY transaction_id) c ON c.transaction_id = t.id"
    )
    params: tuple[str, ...] = ()
    if day is not None:
        sql += " WHERE t.dtposted >= ? AND t.dtposted < ?"
        params = (f"{day.isoformat()}T", f"{(day + timedelta(days=1)).isoformat()}T")
    cursor = conn.execute(sql + " ORDER BY t.dtposted, t.id", params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor]


def render_ofx(
    rows: Iterable[dict[str, Any]],
    *,
    currency_code: str,
    broker_id: str,
    account_id: str,
    start: datetime,
    end: datetime,
    generated_at: datetime,
    trnuid: str,
) -> str:
    rows = list(rows)
    securities: dict[str, tuple[str, int]] = {}
    for tx in rows:
        if tx["ticker"] and tx["instrument"] in ("equity", "option"):
            securities.setdefault(tx["ticker"], (tx["instrument"], _shares_per_contract(tx)))
    parts = [
        _HEADER,
        "<OFX><SIGNONMSGSRSV1><SONRS>",
        _STATUS,
        f"<DTSERVER>{ofx_datetime(generated_at)}</DTSERVER><LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1>\n",
        f"<INVSTMTMSGSRSV1><INVSTMTTRNRS><TRNUID>{trnuid}</TRNUID>{_STATUS}<INVSTMTRS>",
        f"<DTASOF>{ofx_datetime(end)}</DTASOF><CURDEF>{currency_code}</CURDEF>",
        f"<INVACCTFROM><BROKERID>{escape(broker_id)}</BROKERID><ACCTID>{escape(account_id)}</ACCTID></INVACCTFROM>\n",
        f"<INVTRANLIST><DTSTART>{ofx_datetime(start)}</DTSTART><DTEND>{ofx_datetime(end)}</DTEND>\n",
    ]
    parts += [_transaction_xml(tx) + "\n" for tx in rows]
    parts.append("</INVTRANLIST></INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1>\n")
    if securities:
        parts.append("<SECLISTMSGSRSV1><SECLIST>\n")
        parts += [_security_xml(t, inst, mult) + "\n" for t, (inst, mult) in sorted(securities.items())]
        parts.append("</SECLIST></SECLISTMSGSRSV1>\n")
    parts.append("</OFX>\n")
    return "".join(parts)


def export_ofx(
    ledger_path: Path,
    out: Path,
    *,
    day: date | None = None,
    broker_id: str,
    account_id: str,
    generated_at: datetime | None = None,
    anchors: AnchorStore | None = None,
    backup_dir: Path | None = None,
) -> Path:
    """Write an OFX statement of `day`'s transactions (every transaction when day is None); refuses an unverified
    ledger (with `anchors`, also one that no longer matches its anchored chain head)."""
    for name, value in (("broker_id", broker_id), ("account_id", account_id)):
        if not value or len(value) > 22:
            raise LedgerError(f"OFX {name} must be 1-22 characters, got {value!r}")
    problems = verify_ledger(ledger_path, anchors=anchors, backup_dir=backup_dir)
    if problems:
        raise LedgerError(
            f"refusing to export {ledger_path.name}: it fails verification:\n  - " + "\n  - ".join(problems)
        )
    with open_ledger(ledger_path, readonly=True) as conn:
        currency = read_meta(conn)["currency_code"]
        rows = _rows(conn, day)
    if day is not None:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1) - timedelta(milliseconds=1)
    elif rows:
        start, end = _ledger_dt(rows[0]["dtposted"]), _ledger_dt(rows[-1]["dtposted"])
    else:
        start = end = generated_at or utc_now()
    trnuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ledger_path.name}/{day.isoformat() if day else 'all'}"))
    text = render_ofx(
        rows,
        currency_code=currency,
        broker_id=broker_id,
        account_id=account_id,
        start=start,
        end=end,
        generated_at=generated_at or utc_now(),
        trnuid=trnuid,
    )
    atomic_write_text(out, text)
    return out
