"""The ledger's unit of input (`LedgerEntry` = one transaction and its splits), its validation and row form.

Also the canonical digest of a transaction as stored, shared by the writer (audit_log) and the verifier.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tbot_bot.accounting.coa import account_problem
from tbot_bot.support.utils_bot import MINOR_UNITS_PER_UNIT

# OFX-aligned transaction types the ledger accepts (generate_ofx.py maps each to an OFX aggregate).
TRNTYPES = frozenset(
    {
        "BUY",
        "SELL",
        "SELLSHORT",
        "BUYTOCOVER",
        "BUYTOOPEN",
        "SELLTOCLOSE",
        "FEE",
        "FLOAT_IN",
        "FLOAT_OUT",
        "CORRECTION",
        "CLOSE",
    }
)
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
DTPOSTED_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_COMPACT_JSON = json.JSONEncoder(
    separators=(",", ":")
)  # same output as json.dumps(..., separators=(",", ":"))

TRANSACTION_FIELDS = (
    "fitid",
    "trntype",
    "dtposted",
    "strategy",
    "ticker",
    "signal_ticker",
    "side",
    "direction",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "broker",
    "client_order_id",
    "tag",
    "leverage_multiplier",
    "exit_reason",
    "session_id",
    "currency_code",
    "instrument",
    "contract_multiplier",
    "memo",
    "is_correction",
    "correction_of",
)


@dataclass(frozen=True, slots=True)
class LedgerSplit:
    """One leg: exactly one of debit / credit is positive (Decimal, at most 4 decimal places)."""

    account_code: str
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One economic event (entry fill, exit fill, fee, float movement, correction) with balanced splits."""

    fitid: str
    trntype: str
    dtposted: datetime
    currency_code: str
    splits: tuple[LedgerSplit, ...]
    strategy: str | None = None
    ticker: str | None = None
    signal_ticker: str | None = None
    side: str | None = None  # position held: long | short
    direction: str | None = None  # bullish | bearish
    size: Decimal | None = None
    entry_price: Decimal | None = None
    exit_price: Decimal | None = None
    pnl: Decimal | None = None
    broker: str | None = None
    client_order_id: str | None = None
    tag: str | None = None
    leverage_multiplier: Decimal | None = None
    exit_reason: str | None = None
    session_id: str | None = None
    instrument: str = "equity"
    contract_multiplier: Decimal | None = None
    memo: str | None = None
    is_correction: bool = False
    correction_of: str | None = None


def _exact_minor(value: object, what: str, problems: list[str]) -> int | None:
    """Decimal/int -> ten-thousandths; refuses floats and amounts finer than 1/10,000."""
    if value is None:
        return None
    if type(value) is Decimal:  # hot path: every split amount
        if value.is_finite():
            scaled = value.scaleb(4)
            minor = int(scaled)
            if minor == scaled:  # no digits beyond 1/10,000
                return minor
    elif isinstance(value, float) or not isinstance(value, Decimal | int):
        problems.append(f"{what} must be a Decimal (got {type(value).__name__})")
        return None
    scaled = Decimal(value) * MINOR_UNITS_PER_UNIT
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        problems.append(f"{what}={value} has more than 4 decimal places")
        return None
    return int(scaled)


def _canonical_decimal(value: object, what: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) or not isinstance(value, Decimal | int):
        problems.append(f"{what} must be a Decimal (got {type(value).__name__})")
        return None
    d = Decimal(value)
    if not d.is_finite():
        problems.append(f"{what} is not finite")
        return None
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def format_dtposted(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds and a Z, e.g. 2026-11-25T14:31:02.000000Z (same as DTPOSTED_FORMAT)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def entry_rows(entry: LedgerEntry) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """(transaction row, split rows, problems) — the exact values the ledger stores; problems name the FITID."""
    problems: list[str] = []
    if not isinstance(entry.fitid, str) or not entry.fitid.strip() or len(entry.fitid) > 255:
        problems.append("fitid must be a non-empty string of at most 255 characters")
    if entry.trntype not in TRNTYPES:
        problems.append(f"trntype {entry.trntype!r} is not one of {sorted(TRNTYPES)}")
    if not isinstance(entry.dtposted, datetime) or entry.dtposted.tzinfo is None:
        problems.append("dtposted must be a timezone-aware datetime")
    if not isinstance(entry.currency_code, str) or not CURRENCY_RE.match(entry.currency_code):
        problems.append(f"currency_code {entry.currency_code!r} is missing or not an ISO 4217 code")
    if entry.side not in (None, "long", "short"):
        problems.append(f"side {entry.side!r} must be long, short or empty")
    if entry.direction not in (None, "bullish", "bearish"):
        problems.append(f"direction {entry.direction!r} must be bullish, bearish or empty")
    if entry.instrument not in ("equity", "option", "cash"):
        problems.append(f"instrument {entry.instrument!r} must be equity, option or cash")
    row: dict[str, Any] = {
        "fitid": entry.fitid,
        "trntype": entry.trntype,
        "dtposted": format_dtposted(entry.dtposted)
        if isinstance(entry.dtposted, datetime) and entry.dtposted.tzinfo
        else None,
        "strategy": entry.strategy,
        "ticker": entry.ticker,
        "signal_ticker": entry.signal_ticker,
        "side": entry.side,
        "direction": entry.direction,
        "size": _canonical_decimal(entry.size, "size", problems),
        "entry_price": _exact_minor(entry.entry_price, "entry_price", problems),
        "exit_price": _exact_minor(entry.exit_price, "exit_price", problems),
        "pnl": _exact_minor(entry.pnl, "pnl", problems),
        "broker": entry.broker,
        "client_order_id": entry.client_order_id,
        "tag": entry.tag,
        "leverage_multiplier": _canonical_decimal(entry.leverage_multiplier, "leverage_multiplier", problems),
        "exit_reason": entry.exit_reason,
        "session_id": entry.session_id,
        "currency_code": entry.currency_code,
        "instrument": entry.instrument,
        "contract_multiplier": _canonical_decimal(entry.contract_multiplier, "contract_multiplier", problems),
        "memo": entry.memo,
        "is_correction": int(bool(entry.is_correction)),
        "correction_of": entry.correction_of,
    }
    split_rows: list[dict[str, Any]] = []
    if len(entry.splits) < 2:
        problems.append(f"needs at least two splits, got {len(entry.splits)}")
    total_debit = total_credit = 0
    for n, split in enumerate(entry.splits, start=1):
        split_problems: list[str] = []
        reason = account_problem(split.account_code)
        if reason:
            split_problems.append(reason)
        debit = _exact_minor(split.debit, "debit", split_problems)
        credit = _exact_minor(split.credit, "credit", split_problems)
        if debit is not None and credit is not None:
            if debit < 0 or credit < 0 or (debit == 0) == (credit == 0):
                split_problems.append(
                    f"exactly one of debit/credit must be positive (debit={split.debit}, credit={split.credit})"
                )
            total_debit += debit
            total_credit += credit
            split_rows.append(
                {
                    "account_code": split.account_code,
                    "debit": debit,
                    "credit": credit,
                    "currency_code": entry.currency_code,
                    "memo": split.memo,
                }
            )
        if split_problems:
            problems += [f"split {n} ({split.account_code}): {p}" for p in split_problems]
    if total_debit != total_credit:
        problems.append(
            f"does not balance: debits {Decimal(total_debit) / MINOR_UNITS_PER_UNIT} != credits {Decimal(total_credit) / MINOR_UNITS_PER_UNIT}"
        )
    return row, split_rows, problems


def transaction_digest(row: Mapping[str, Any], split_rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of a transaction as stored: see `digest_values`."""
    legs = [[s["account_code"], s["debit"], s["credit"], s["currency_code"], s["memo"]] for s in split_rows]
    return digest_values([row[k] for k in TRANSACTION_FIELDS], legs)


def digest_values(tx_values: Sequence[Any], legs: Sequence[Sequence[Any]]) -> str:
    """sha256 of compact JSON `[[values in TRANSACTION_FIELDS order], [sorted legs]]`.

    A leg is [account_code, debit, credit, currency_code, memo]; legs are sorted so the digest does not depend
    on insertion order. Plain JSON so that any outside tool can recompute it.
    """
    ordered = sorted(legs, key=lambda leg: (leg[0], leg[1], leg[2], leg[3], leg[4] or ""))
    body = _COMPACT_JSON.encode([list(tx_values), [list(leg) for leg in ordered]])
    return hashlib.sha256(body.encode()).hexdigest()


AUDIT_FIELDS = (
    "id",
    "logged_at",
    "actor",
    "action",
    "transaction_id",
    "fitid",
    "account_code",
    "memo",
    "payload_sha256",
)
GENESIS_HASH = "0" * 64


def audit_row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """Hash of an audit row chained on the previous row's hash."""
    return audit_values_hash(prev_hash, [row[k] for k in AUDIT_FIELDS])


def audit_values_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """sha256 of `prev_hash|[values in AUDIT_FIELDS order as compact JSON]`."""
    body = _COMPACT_JSON.encode(list(values))
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()
