"""The float ledger: capital the parent entity lends the bot. The bot only reads it (`broker_current_float`).

Same schema as a bot ledger (ledger_meta ledger_kind=float). An injection posts Dr 1010 Float Injection /
Cr 3010 Capital Float Ledger; a return posts Dr 3010 / Cr 1020 Float Returned. The float is the credit
balance of 3010.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from tbot_bot.accounting.ledger_entry import LedgerEntry, LedgerSplit
from tbot_bot.accounting.ledger_schema import open_ledger, read_meta
from tbot_bot.errors import LedgerError
from tbot_bot.support.utils_bot import from_minor

if TYPE_CHECKING:
    from tbot_bot.accounting.accounting_config import LedgerBinding
    from tbot_bot.support.path_resolver import BotHome

FLOAT_INJECTION = "1010"
FLOAT_RETURNED = "1020"
CAPITAL_FLOAT = "3010"


def float_movement(
    amount: Decimal,
    *,
    currency_code: str,
    posted_at: datetime,
    fitid: str,
    returned: bool = False,
    cash_account: str | None = None,
) -> LedgerEntry:
    """A balanced float injection (or return to the parent when returned=True) against 3010. The float ledger
    books it on 1010 (in) / 1020 (returned); the bot ledger passes its broker cash account for both."""
    if isinstance(amount, float) or not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise LedgerError(f"float amount must be a positive Decimal, got {amount!r}")
    if returned:
        splits = (
            LedgerSplit(CAPITAL_FLOAT, debit=amount),
            LedgerSplit(cash_account or FLOAT_RETURNED, credit=amount),
        )
    else:
        splits = (
            LedgerSplit(cash_account or FLOAT_INJECTION, debit=amount),
            LedgerSplit(CAPITAL_FLOAT, credit=amount),
        )
    return LedgerEntry(
        fitid=fitid,
        trntype="FLOAT_OUT" if returned else "FLOAT_IN",
        dtposted=posted_at,
        currency_code=currency_code,
        splits=splits,
        instrument="cash",
        memo="float returned to parent" if returned else "float injection from parent",
    )


def broker_current_float(path: Path) -> Decimal:
    """Float-ledger balance: credits minus debits on 3010 Capital Float Ledger, as Decimal."""
    with open_ledger(path, readonly=True) as conn:
        if read_meta(conn).get("ledger_kind") != "float":
            raise LedgerError(f"{path.name} is not a float ledger")
        row = conn.execute(
            "SELECT coalesce(sum(credit), 0) - coalesce(sum(debit), 0) FROM splits WHERE account_code = ?",
            (CAPITAL_FLOAT,),
        ).fetchone()
    return from_minor(int(row[0]))


class UnverifiedFloat(LedgerError):
    """The float ledger fails `tbot ledger verify`: its balance is no figure to size or show from."""

    def __init__(self, path: Path, problems: list[str], home: BotHome) -> None:
        self.problems = problems
        super().__init__(
            f"{path.name} fails verification, so its float is not used:\n  - " + "\n  - ".join(problems)
            + f"\nrun `tbot ledger verify --home {home.root}`"
        )  # fmt: skip


def home_float(home: BotHome) -> Decimal | None:
    """The float of a provisioned home (verified_float), None for a home without one (a research folder, or a
    float of zero): what a backtest or a study of the home sizes from unless told otherwise."""
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.errors import TbotError

    try:
        # before the ledger's import (SQLAlchemy): a research home often has none
        binding = load_binding(home)
    except (TbotError, OSError):
        return None
    amount = verified_float(home, binding)
    return amount if amount > 0 else None


def float_to_compare(home: BotHome) -> Decimal | None:
    """home_float for a comparison (approving a study's proposal): None when there is none to compare with,
    also when the float ledger fails verification (check and start say so; an approval is not the place)."""
    try:
        return home_float(home)
    except UnverifiedFloat:
        return None


def verified_float(home: BotHome, binding: LedgerBinding) -> Decimal:
    """The float of a home, read only from a float ledger that passes the verification `tbot check` and
    `tbot start` apply (rows, balances, hash links and its anchored head); UnverifiedFloat naming what fails.
    What the backtest, the optimizer, `tbot rebalance` and `tbot ledger float` read."""
    from tbot_bot.accounting.ledger_anchor import AnchorStore
    from tbot_bot.accounting.ledger_verify import verify_ledger

    path = binding.float_ledger_path
    problems = verify_ledger(path, anchors=AnchorStore.for_home(home), backup_dir=binding.backup_dir)
    if problems:
        raise UnverifiedFloat(path, problems, home)
    return broker_current_float(path)
