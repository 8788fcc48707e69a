"""OFX 2.2 investment statement export (INVSTMTRS + INVPOSLIST + INVBAL + SECLIST) of a verified bot ledger.

TOTAL is the signed Broker Cash (1030) movement exactly as the ledger holds it; a trade's fee entry
(FITID `<trade>-FEE`, Dr 5010) is shown on the trade as COMMISSION and included in its TOTAL. FITID, DTTRADE and
amounts come from the ledger; securities are identified by ticker (UNIQUEIDTYPE=TICKER). INVPOSLIST lists the
positions open at the statement's end at cost (the ledger holds no market prices); INVBAL gives the ledger's
cash (1030) and the short-sale liability (2030) at that moment. Period-close entries (CLOSE) move no cash and
are not statement lines.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from tbot_bot.accounting.account_transaction import fill_of_fee
from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_entry import DTPOSTED_FORMAT
from tbot_bot.accounting.ledger_schema import open_ledger, read_meta
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.broker.broker_api import OptionContract
from tbot_bot.domain.vocab import OPTION_MULTIPLIER
from tbot_bot.errors import LedgerError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text, from_minor, utc_now

_HEADER = (
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)
_STATUS = "<STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>"


def account_id_for(scope: str, bot_id: str) -> str:
    """OFX ACCTID is at most 22 characters: the scope when it fits, else BOT_ID plus a short digest of it."""
    if len(scope) <= 22:
        return scope
    return f"{bot_id[:12]}-{hashlib.sha256(scope.encode()).hexdigest()[:8]}"


def statement_ids(binding: Any) -> tuple[str, str]:
    """(BROKERID, ACCTID) of every statement this bot writes (the daily ones, a correction's, `tbot ofx export`):
    one account in the accountant's books, whichever file is imported."""
    identity = binding.identity
    return identity.BROKER_CODE, account_id_for(binding.scope, identity.BOT_ID)


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
            "mode",  # paper, live or replay: first, so the 255-character cut never drops it
            "strategy",
            "signal_ticker",
            "side",
            "tag",
            "leverage_multiplier",
            "exit_reason",
            "client_order_id",
        )
        if tx.get(k)
    )
    if tx["memo"]:
        memo = f"{tx['memo']}; {memo}" if memo else tx["memo"]
    memo_xml = f"<MEMO>{escape(memo[:255])}</MEMO>" if memo else ""
    return f"<INVTRAN><FITID>{escape(tx['fitid'])}</FITID><DTTRADE>{_ofx_dtposted(tx['dtposted'])}</DTTRADE>{memo_xml}</INVTRAN>"


def _trade_xml(tx: dict[str, Any]) -> str:
    trntype = tx["trntype"]
    fee_cash = int(tx.get("fee_cash") or 0)  # the folded fee entry's 1030 movement (negative)
    cash = int(tx["cash"] or 0) + fee_cash
    commission = f"<COMMISSION>{_amount(-fee_cash)}</COMMISSION>" if fee_cash else ""
    # a reversal of a trade is that trade mirrored: units, total, gain (and the position) the other way
    size = _decimal(tx["size"]) * (-1 if tx.get("reverses") else 1)
    opening = trntype in ("BUY", "SELLSHORT", "BUYTOOPEN")
    price_minor = tx["entry_price"] if opening else tx["exit_price"]
    unitprice = _amount(int(price_minor or 0))
    subacct = "SHORT" if trntype in ("SELLSHORT", "BUYTOCOVER") else "CASH"
    if trntype in ("BUY", "BUYTOCOVER", "BUYTOOPEN"):
        body = (
            f"<INVBUY>{_invtran(tx)}{_secid(tx['ticker'])}<UNITS>{size}</UNITS><UNITPRICE>{unitprice}</UNITPRICE>"
            f"{commission}<TOTAL>{_amount(cash)}</TOTAL><SUBACCTSEC>{subacct}</SUBACCTSEC><SUBACCTFUND>CASH</SUBACCTFUND></INVBUY>"
        )
        if trntype == "BUYTOOPEN":
            return f"<BUYOPT>{body}<OPTBUYTYPE>BUYTOOPEN</OPTBUYTYPE><SHPERCTRCT>{_shares_per_contract(tx)}</SHPERCTRCT></BUYOPT>"
        return f"<BUYSTOCK>{body}<BUYTYPE>{trntype}</BUYTYPE></BUYSTOCK>"
    gain = f"<GAIN>{_amount(int(tx['pnl']))}</GAIN>" if tx["pnl"] is not None else ""
    body = (
        f"<INVSELL>{_invtran(tx)}{_secid(tx['ticker'])}<UNITS>{-size}</UNITS><UNITPRICE>{unitprice}</UNITPRICE>"
        f"{commission}<TOTAL>{_amount(cash)}</TOTAL>{gain}<SUBACCTSEC>{subacct}</SUBACCTSEC><SUBACCTFUND>CASH</SUBACCTFUND></INVSELL>"
    )
    if trntype == "SELLTOCLOSE":
        return f"<SELLOPT>{body}<OPTSELLTYPE>SELLTOCLOSE</OPTSELLTYPE><SHPERCTRCT>{_shares_per_contract(tx)}</SHPERCTRCT></SELLOPT>"
    return f"<SELLSTOCK>{body}<SELLTYPE>{trntype}</SELLTYPE></SELLSTOCK>"


def _shares_per_contract(tx: dict[str, Any]) -> int:
    return int(_decimal(tx["contract_multiplier"]) or OPTION_MULTIPLIER)


_TRADES = ("BUY", "SELL", "SELLSHORT", "BUYTOCOVER", "BUYTOOPEN", "SELLTOCLOSE")


def _fold_fees(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attach each `<trade>-FEE` entry to its trade in the same statement (COMMISSION); drop CLOSE entries."""
    trades = {tx["fitid"]: tx for tx in rows if tx["trntype"] in _TRADES}
    out = []
    for tx in rows:
        fill = fill_of_fee(tx["fitid"]) if tx["trntype"] == "FEE" else None
        parent = trades.get(fill) if fill is not None else None
        if parent is not None:
            parent["fee_cash"] = int(parent.get("fee_cash") or 0) + int(tx["cash"] or 0)
        elif tx["trntype"] != "CLOSE":
            out.append(tx)
    return out


def _transaction_xml(tx: dict[str, Any]) -> str:
    trntype = tx["trntype"]
    if trntype in _TRADES:
        return _trade_xml(tx)
    if trntype == "CORRECTION" and tx.get("reverses_trntype") in _TRADES:
        # the reversal of a trade (`tbot ledger correct`) un-does the trade: the same kind of transaction with its
        # units, total and gain negated, so the statement's positions and gains stay the ledger's
        return _trade_xml(
            {**tx, "trntype": tx["reverses_trntype"], "reverses": tx["correction_of"],
             "entry_price": tx["reverses_entry_price"], "exit_price": tx["reverses_exit_price"],
             "contract_multiplier": tx["contract_multiplier"] or tx["reverses_multiplier"]}
        )  # fmt: skip
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


# the entry a CORRECTION row (t) reverses, as `o` (a reversed trade is exported and counted as that trade mirrored)
_REVERSED = "LEFT JOIN transactions o ON t.trntype = 'CORRECTION' AND o.fitid = t.correction_of"

_OPENING_SIGN = {"BUY": 1, "BUYTOOPEN": 1, "SELLSHORT": -1, "SELL": -1, "SELLTOCLOSE": -1, "BUYTOCOVER": 1}


def positions_and_balances(
    conn: sqlite3.Connection, through: str | None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Positions open after every posting dated before `through` (dtposted text; None = all), at cost, and the
    1030 / 2030 balances then (minor units)."""
    where, args = ("WHERE t.dtposted < ?", (through,)) if through else ("", ())
    units: dict[str, Decimal] = {}
    info: dict[str, tuple[str, int]] = {}
    for ticker, trntype, reverses, size, instrument, mult in conn.execute(
        f"SELECT t.ticker, t.trntype, o.trntype, t.size, t.instrument, t.contract_multiplier FROM transactions t "
        f"{_REVERSED} {where} ORDER BY t.id",
        args,
    ):
        if trntype == "CORRECTION":  # a reversed trade takes its units back
            opened = _OPENING_SIGN.get(str(reverses))
            sign = -opened if opened else None
        else:
            sign = _OPENING_SIGN.get(str(trntype))
        if sign is None or not ticker:
            continue
        units[ticker] = units.get(ticker, Decimal(0)) + sign * _decimal(size)
        info[ticker] = (str(instrument), int(_decimal(mult) or 100))
    cost: dict[str, int] = {}
    for ticker, bal in conn.execute(
        f"SELECT t.ticker, sum(s.debit) - sum(s.credit) FROM splits s JOIN transactions t "
        f"ON t.id = s.transaction_id {where} {'AND' if where else 'WHERE'} s.account_code IN ('1110', '1120', '2030') "
        "GROUP BY t.ticker",
        args,
    ):
        cost[str(ticker)] = int(bal)
    positions = [
        {"ticker": t, "units": u, "cost": cost.get(t, 0), "instrument": info[t][0], "multiplier": info[t][1]}
        for t, u in sorted(units.items())
        if u != 0
    ]
    balances = {
        str(a): int(b)
        for a, b in conn.execute(
            f"SELECT s.account_code, sum(s.debit) - sum(s.credit) FROM splits s JOIN transactions t "
            f"ON t.id = s.transaction_id {where} {'AND' if where else 'WHERE'} s.account_code IN ('1030', '2030') "
            "GROUP BY s.account_code",
            args,
        )
    }
    return positions, balances


def _position_xml(pos: dict[str, Any], asof: str) -> str:
    units: Decimal = pos["units"]
    short = units < 0
    shares = abs(units) * (pos["multiplier"] if pos["instrument"] == "option" else 1)
    mktval = from_minor(abs(pos["cost"]))
    unitprice = (mktval / shares).quantize(Decimal("0.0001")) if shares else Decimal(0)
    body = (
        f"<INVPOS>{_secid(pos['ticker'])}<HELDINACCT>{'SHORT' if short else 'CASH'}</HELDINACCT>"
        f"<POSTYPE>{'SHORT' if short else 'LONG'}</POSTYPE><UNITS>{units}</UNITS><UNITPRICE>{unitprice}</UNITPRICE>"
        f"<MKTVAL>{-mktval if short else mktval}</MKTVAL><DTPRICEASOF>{asof}</DTPRICEASOF>"
        f"<MEMO>valued at cost from the ledger</MEMO></INVPOS>"
    )
    return f"<POSOPT>{body}</POSOPT>" if pos["instrument"] == "option" else f"<POSSTOCK>{body}</POSSTOCK>"


def _balance_xml(balances: dict[str, int]) -> str:
    cash = balances.get("1030", 0)
    short_liability = -balances.get("2030", 0)  # credit balance of Securities Sold Short
    return (
        f"<INVBAL><AVAILCASH>{_amount(cash)}</AVAILCASH><MARGINBALANCE>0</MARGINBALANCE>"
        f"<SHORTBALANCE>{_amount(short_liability)}</SHORTBALANCE></INVBAL>"
    )


def _rows(conn: sqlite3.Connection, day: date | None) -> list[dict[str, Any]]:
    sql = (
        "SELECT t.*, c.cash, o.trntype AS reverses_trntype, o.entry_price AS reverses_entry_price, "
        "o.exit_price AS reverses_exit_price, o.contract_multiplier AS reverses_multiplier "
        "FROM transactions t LEFT JOIN (SELECT transaction_id, sum(debit) - sum(credit) AS cash "
        f"FROM splits WHERE account_code = '1030' GROUP BY transaction_id) c ON c.transaction_id = t.id {_REVERSED}"
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
    positions: Iterable[dict[str, Any]] = (),
    balances: dict[str, int] | None = None,
    mode: str | None = None,
) -> str:
    rows = _fold_fees(list(rows))
    if mode:
        rows = [{**tx, "mode": mode} for tx in rows]
    positions = list(positions)
    securities: dict[str, tuple[str, int]] = {}
    for tx in rows:
        if tx["ticker"] and tx["instrument"] in ("equity", "option"):
            securities.setdefault(tx["ticker"], (tx["instrument"], _shares_per_contract(tx)))
    for pos in positions:
        securities.setdefault(pos["ticker"], (pos["instrument"], pos["multiplier"]))
    asof = ofx_datetime(end)
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
    parts.append("</INVTRANLIST>\n")
    if positions:
        parts.append("<INVPOSLIST>" + "".join(_position_xml(p, asof) for p in positions) + "</INVPOSLIST>\n")
    if balances is not None:
        parts.append(_balance_xml(balances) + "\n")
    parts.append("</INVSTMTRS></INVSTMTTRNRS></INVSTMTMSGSRSV1>\n")
    if securities:
        parts.append("<SECLISTMSGSRSV1><SECLIST>\n")
        parts += [_security_xml(t, inst, mult) + "\n" for t, (inst, mult) in sorted(securities.items())]
        parts.append("</SECLIST></SECLISTMSGSRSV1>\n")
    parts.append("</OFX>\n")
    return "".join(parts)


def statement_days_since(home: BotHome, scope: str, since: date) -> set[date]:
    """The days of the session statements written (`{scope}_YYYY-MM-DD.ofx`) on or after `since`: every one of
    them closes with a cash balance that runs on from an earlier change (a correction, a day booked late)."""
    exports = home.session_ofx(scope, since).parent
    days = set()
    for path in exports.glob(f"{scope}_????-??-??.ofx") if exports.is_dir() else ():
        try:
            day = date.fromisoformat(path.name[len(scope) + 1 : -len(".ofx")])
        except ValueError:
            continue
        if day >= since:
            days.add(day)
    return days


def export_ofx(ledger_path: Path, out: Path, *, day: date | None = None, **options: Any) -> Path:
    """Write an OFX statement of `day`'s transactions (every transaction when day is None) to `out`; `options` are
    export_statements' (broker_id, account_id, anchors, ...). Refuses an unverified ledger (with `anchors`, also one
    that no longer matches its anchored chain head)."""
    [path] = export_statements(ledger_path, {day: out}, **options)
    return path


def export_statements(
    ledger_path: Path,
    outs: Mapping[date | None, Path],
    *,
    broker_id: str,
    account_id: str,
    generated_at: datetime | None = None,
    anchors: AnchorStore | None = None,
    backup_dir: Path | None = None,
    mode: str | None = None,
) -> list[Path]:
    """export_ofx of several days (day -> file; None: every transaction) from one verification of the ledger and
    one read of it: a correction rewrites every later session's statement, and verifying the whole chain once per
    statement took a minute on a year of sessions."""
    for name, value in (("broker_id", broker_id), ("account_id", account_id)):
        if not value or len(value) > 22:
            raise LedgerError(f"OFX {name} must be 1-22 characters, got {value!r}")
    problems = verify_ledger(ledger_path, anchors=anchors, backup_dir=backup_dir)
    if problems:
        raise LedgerError(
            f"refusing to export {ledger_path.name}: it fails verification:\n  - " + "\n  - ".join(problems)
        )
    written = []
    with open_ledger(ledger_path, readonly=True) as conn:
        currency = read_meta(conn)["currency_code"]
        for day, out in outs.items():
            rows = _rows(conn, day)
            through = f"{(day + timedelta(days=1)).isoformat()}T" if day is not None else None
            positions, balances = positions_and_balances(conn, through)
            if day is not None:
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                end = start + timedelta(days=1) - timedelta(milliseconds=1)
            elif rows:
                start, end = _ledger_dt(rows[0]["dtposted"]), _ledger_dt(rows[-1]["dtposted"])
            else:
                start = end = generated_at or utc_now()
            trnuid = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{ledger_path.name}/{day.isoformat() if day else 'all'}")
            )
            text = render_ofx(
                rows,
                currency_code=currency,
                broker_id=broker_id,
                account_id=account_id,
                start=start,
                end=end,
                generated_at=generated_at or utc_now(),
                trnuid=trnuid,
                positions=positions,
                balances=balances,
                mode=mode,
            )
            atomic_write_text(out, text)
            written.append(out)
    return written
