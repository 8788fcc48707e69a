"""Posting builders: one broker fill -> balanced ledger entries, exactly as DESIGN §6 (and support/architecture.md (Books)).

Long equity and inverse ETFs post through 1110/4010, long options (puts) through 1120/4020, all cash through
1030; fees are their own entry (Dr 5010 / Cr 1030). A short sale credits 2030 Securities Sold Short (a
liability: the obligation to return the shares) and the cover debits it, the difference realised in 4010.

Position semantics: `side` is what we hold (long | short); `direction` is the signal's view (bullish |
bearish). An inverse ETF or a put is side=long, direction=bearish; only a short sale is side=short.
`realised_pnl` is the one PnL formula: the ledger stores its result and every report reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from tbot_bot.accounting.ledger_entry import LedgerEntry, LedgerSplit
from tbot_bot.domain.vocab import OPTION_MULTIPLIER_DEC
from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import from_minor, to_minor


def fee_fitid(fill: str) -> str:
    """The FITID of fill `fill`'s fee entry (`X-FEE`): the one name the booking gives it and every reader finds."""
    return f"{fill}-FEE"


def fill_of_fee(fitid: str) -> str | None:
    """The fill a fee entry's FITID names (`X-FEE` -> X); None for any other name."""
    return fitid[: -len("-FEE")] if fitid.endswith("-FEE") and len(fitid) > len("-FEE") else None


BROKER_CASH = "1030"
EQUITY_HOLDINGS = "1110"
OPTION_HOLDINGS = "1120"
SECURITIES_SOLD_SHORT = "2030"
EQUITY_GAINS = "4010"
OPTION_GAINS = "4020"
BROKER_FEES = "5010"
OPTION_SHARES_PER_CONTRACT = OPTION_MULTIPLIER_DEC

# Bearish expressions (SHORT_TYPE_*) -> (instrument, side held). Each is recorded direction=bearish with its tag.
BEARISH_TAGS = {
    "InverseETF": ("equity", "long"),
    "LongPut": ("option", "long"),
    "ShortSell": ("equity", "short"),
}


def realised_pnl(
    qty: Decimal, entry_price: Decimal, exit_price: Decimal, multiplier: Decimal, *, short: bool
) -> Decimal:
    """Realised PnL before fees, exactly as booked: both legs rounded half-even to 1/10,000 first.

    Long: exit proceeds - entry cost. Short sale: entry proceeds - cost to cover.
    """
    entry_leg = from_minor(to_minor(qty * entry_price * multiplier))
    exit_leg = from_minor(to_minor(qty * exit_price * multiplier))
    return entry_leg - exit_leg if short else exit_leg - entry_leg


def ledger_fee(fee: Decimal) -> Decimal:
    """A fee as the ledger books it (1/10,000)."""
    return from_minor(to_minor(fee))


@dataclass(frozen=True, slots=True)
class TradeFill:
    """A reconciled broker fill, as the daemon hands it to the books."""

    fitid: str
    strategy: str
    ticker: str  # the instrument traded (ETF, stock, or OCC option symbol)
    signal_ticker: str  # the ticker whose signal caused the trade
    side: str  # position held: long | short (only a short sale is short; inverse ETFs and puts are long)
    action: str  # open | close
    instrument: str  # equity | option
    qty: Decimal
    price: Decimal
    fee: Decimal
    posted_at: datetime
    broker: str
    client_order_id: str
    tag: str | None
    leverage_multiplier: Decimal | None
    exit_reason: str | None
    session_id: str
    currency_code: str
    entry_price: Decimal | None = None  # on a closing fill: the cost-basis price, for realized PnL
    contract_multiplier: Decimal | None = None  # shares per contract; options default to 100
    direction: str | None = None  # bullish | bearish (the signal's view); None = from side and tag
    memo: str | None = None  # the transaction's memo (e.g. defense_mode: entered while defense mode was on)


def _check(fill: TradeFill) -> list[str]:
    problems: list[str] = []
    if fill.side not in ("long", "short"):
        problems.append(f"side {fill.side!r} must be long or short")
    if fill.action not in ("open", "close"):
        problems.append(f"action {fill.action!r} must be open or close")
    if fill.instrument not in ("equity", "option"):
        problems.append(f"instrument {fill.instrument!r} must be equity or option")
    for name in ("qty", "price", "fee"):
        value = getattr(fill, name)
        if isinstance(value, float) or not isinstance(value, Decimal):
            problems.append(f"{name} must be a Decimal, got {type(value).__name__}")
    if problems:
        return problems
    if fill.qty <= 0 or fill.price <= 0 or fill.fee < 0:
        problems.append(
            f"qty and price must be positive and fee not negative (qty={fill.qty}, price={fill.price}, fee={fill.fee})"
        )
    if fill.posted_at.tzinfo is None:
        problems.append("posted_at must be timezone-aware UTC")
    want = BEARISH_TAGS.get(fill.tag or "")
    if fill.direction not in (None, "bullish", "bearish"):
        problems.append(f"direction {fill.direction!r} must be bullish or bearish")
    if want is not None:
        if want[0] != fill.instrument:
            problems.append(f"tag {fill.tag} trades {want[0]}, not {fill.instrument}")
        if want[1] != fill.side:
            problems.append(f"tag {fill.tag} holds the instrument side={want[1]}, not side={fill.side}")
        if fill.direction == "bullish":
            problems.append(f"tag {fill.tag} is a bearish expression, not direction=bullish")
    elif fill.side == "short":
        problems.append(f"a short position needs tag ShortSell, got {fill.tag!r}")
    elif fill.tag is not None:
        problems.append(f"tag {fill.tag!r} is not one of {sorted(BEARISH_TAGS)}")
    elif fill.direction == "bearish":
        problems.append("a bearish trade needs its tag (InverseETF, LongPut or ShortSell)")
    if fill.action == "close" and (fill.entry_price is None or fill.entry_price <= 0):
        problems.append("a closing fill needs the position's entry_price for realized PnL")
    return problems


def _multiplier(fill: TradeFill) -> Decimal:
    if fill.contract_multiplier is not None:
        return fill.contract_multiplier
    return OPTION_SHARES_PER_CONTRACT if fill.instrument == "option" else Decimal(1)


def _price(value: Decimal | None) -> Decimal | None:
    """Broker average prices may carry more than 4 places; the ledger columns keep ten-thousandths."""
    return None if value is None else from_minor(to_minor(value))


def entries_for_fill(fill: TradeFill) -> list[LedgerEntry]:
    """The balanced ledger entries for one fill: the trade, then its fee (FITID + '-FEE') when fee > 0."""
    problems = _check(fill)
    if problems:
        raise LedgerError(f"fill {fill.fitid!r} cannot be posted: " + "; ".join(problems))
    option = fill.instrument == "option"
    holdings = OPTION_HOLDINGS if option else EQUITY_HOLDINGS
    gains = OPTION_GAINS if option else EQUITY_GAINS
    short_sale = fill.side == "short"
    mult = _multiplier(fill)
    amount = from_minor(to_minor(fill.qty * fill.price * mult))
    basis = from_minor(to_minor(fill.qty * (fill.entry_price or Decimal(0)) * mult))
    pnl: Decimal | None = None
    if fill.action == "close":
        pnl = realised_pnl(fill.qty, fill.entry_price or Decimal(0), fill.price, mult, short=short_sale)
    splits: list[LedgerSplit]
    if fill.action == "open" and not short_sale:
        trntype = "BUYTOOPEN" if option else "BUY"
        splits = [LedgerSplit(holdings, debit=amount), LedgerSplit(BROKER_CASH, credit=amount)]
    elif fill.action == "open":
        trntype = "SELLSHORT"
        splits = [
            LedgerSplit(BROKER_CASH, debit=amount),
            LedgerSplit(SECURITIES_SOLD_SHORT, credit=amount, memo="obligation to return shares sold short"),
        ]
    elif not short_sale:
        trntype = "SELLTOCLOSE" if option else "SELL"
        splits = [LedgerSplit(BROKER_CASH, debit=amount), LedgerSplit(holdings, credit=basis)]
    else:
        trntype = "BUYTOCOVER"
        splits = [
            LedgerSplit(SECURITIES_SOLD_SHORT, debit=basis, memo="cover: obligation settled"),
            LedgerSplit(BROKER_CASH, credit=amount),
        ]
    if pnl is not None and pnl > 0:
        splits.append(LedgerSplit(gains, credit=pnl, memo="realized gain"))
    elif pnl is not None and pnl < 0:
        splits.append(LedgerSplit(gains, debit=-pnl, memo="realized loss"))
    common = {
        "dtposted": fill.posted_at,
        "currency_code": fill.currency_code,
        "strategy": fill.strategy,
        "ticker": fill.ticker,
        "signal_ticker": fill.signal_ticker,
        "side": fill.side,
        "direction": fill.direction or ("bearish" if fill.tag in BEARISH_TAGS else "bullish"),
        "broker": fill.broker,
        "client_order_id": fill.client_order_id,
        "tag": fill.tag,
        "leverage_multiplier": fill.leverage_multiplier,
        "session_id": fill.session_id,
        "instrument": fill.instrument,
        "contract_multiplier": mult if option else None,
    }
    trade = LedgerEntry(
        fitid=fill.fitid,
        trntype=trntype,
        splits=tuple(splits),
        size=fill.qty,
        entry_price=_price(fill.price if fill.action == "open" else fill.entry_price),
        exit_price=_price(fill.price) if fill.action == "close" else None,
        pnl=pnl,
        exit_reason=fill.exit_reason,
        memo=fill.memo,
        **common,  # type: ignore[arg-type]
    )
    entries = [trade]
    if fill.fee > 0:
        fee = ledger_fee(fill.fee)
        entries.append(
            LedgerEntry(
                fitid=fee_fitid(fill.fitid),
                trntype="FEE",
                splits=(LedgerSplit(BROKER_FEES, debit=fee), LedgerSplit(BROKER_CASH, credit=fee)),
                memo=f"fee on {fill.fitid}",
                **common,  # type: ignore[arg-type]
            )
        )
    return entries


def entry_for_broker_fee(
    *,
    broker: str,
    activity_id: str,
    day: date,
    amount: Decimal,
    description: str,
    symbol: str | None,
    currency_code: str,
) -> LedgerEntry:
    """A fee the broker posted apart from any fill (an Alpaca FEE/PTC account activity): Dr 5010 / Cr 1030 for
    a charge, the reverse for a refund. FITID `<broker>-ACT-<activity id>`: booking the same activity again is a
    duplicate the writer skips. Dated the activity's day (00:00 UTC), so it lands in that day's statement."""
    fee = ledger_fee(abs(amount))
    if fee == 0:
        raise LedgerError(f"broker fee activity {activity_id} has no amount")
    charge = amount > 0
    splits = (
        (LedgerSplit(BROKER_FEES, debit=fee), LedgerSplit(BROKER_CASH, credit=fee))
        if charge
        else (LedgerSplit(BROKER_CASH, debit=fee), LedgerSplit(BROKER_FEES, credit=fee))
    )
    return LedgerEntry(
        fitid=f"{broker}-ACT-{activity_id}",
        trntype="FEE",
        dtposted=datetime(day.year, day.month, day.day, tzinfo=UTC),
        currency_code=currency_code,
        splits=splits,
        ticker=symbol,
        broker=broker,
        instrument="equity" if symbol else "cash",
        memo=f"{'' if charge else 'refund: '}{description}"[:255],
    )
