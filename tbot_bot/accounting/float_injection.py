"""Float movements from the accounting system, posted into BOTH the float ledger and the bot ledger.

`inject_float` is the one public entry point (provisioning and the accounting API call it). The float ledger
records Dr 1010 Float Injection / Cr 3010 Capital Float Ledger (a return: Dr 3010 / Cr 1020); the bot ledger
records the same money as cash: Dr 1030 Broker Cash / Cr 3010 (a return: Dr 3010 / Cr 1030). So the bot
ledger's cash always equals float + realised PnL - fees (DESIGN §6).

The two files cannot share one SQLite transaction; both postings carry the same FITID and ingestion skips a
FITID already present, so calling again with the same FITID after a crash completes the pair and never
doubles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from tbot_bot.accounting.accounting_api import IngestResult, LedgerWriter
from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.float_ledger import float_movement
from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_entry import LedgerEntry, format_dtposted
from tbot_bot.support.path_resolver import BotHome

BOT_CASH = "1030"
DEFAULT_BACKUP_KEEP = 50  # LEDGER_BACKUP_KEEP's default, for callers without settings (provisioning)


@dataclass(frozen=True, slots=True)
class FloatInjection:
    fitid: str
    amount: Decimal
    returned: bool
    float_ledger: IngestResult
    bot_ledger: IngestResult


def bot_float_entry(
    amount: Decimal, *, currency_code: str, posted_at: datetime, fitid: str, returned: bool = False
) -> LedgerEntry:
    """The bot-ledger side of a float movement: Dr 1030 / Cr 3010 (returned: Dr 3010 / Cr 1030)."""
    return float_movement(
        amount,
        currency_code=currency_code,
        posted_at=posted_at,
        fitid=fitid,
        returned=returned,
        cash_account=BOT_CASH,
    )


def default_fitid(posted_at: datetime, *, returned: bool = False, opening: bool = False) -> str:
    kind = "OPEN" if opening else ("OUT" if returned else "IN")
    return f"FLOAT-{kind}-{format_dtposted(posted_at)}"


def inject_float(
    binding: LedgerBinding,
    amount: Decimal,
    *,
    posted_at: datetime,
    fitid: str | None = None,
    returned: bool = False,
    backup_keep: int = DEFAULT_BACKUP_KEEP,
    actor: str = "accounting",
    home: BotHome | None = None,
) -> FloatInjection:
    """Post a float injection (or, with returned=True, a return to the parent) into both ledgers.

    `home` (the bot home) anchors both ledgers' chain heads (LEDGER_STATUS.db + backup sidecars); always pass
    it outside unit tests. `fitid` identifies the movement in both ledgers (default `FLOAT-IN-<dtposted>` / `FLOAT-OUT-...`); pass
    the accounting system's own id to make retries idempotent. LedgerError (nothing written to the ledger that
    refused) on a non-positive or non-Decimal amount, a posting in a closed period, or a failed backup.
    """
    fitid = fitid or default_fitid(posted_at, returned=returned)
    ccy = binding.currency_code
    float_entry = float_movement(
        amount, currency_code=ccy, posted_at=posted_at, fitid=fitid, returned=returned
    )
    bot_entry = bot_float_entry(
        amount, currency_code=ccy, posted_at=posted_at, fitid=fitid, returned=returned
    )
    anchors = AnchorStore.for_home(home) if home is not None else None
    writers = [
        LedgerWriter(path, binding.backup_dir, backup_keep, binding.coa_path, anchors=anchors)
        for path in (binding.float_ledger_path, binding.ledger_path)
    ]
    # the bot ledger first: it is the one a closed period can refuse, and the float ledger's balance is what a
    # later start compares with the assignment, so a refusal there leaves neither written and the next start
    # tries again (FITIDs make a retry write nothing twice)
    bot_result = writers[1].ingest([bot_entry], actor=actor)
    float_result = writers[0].ingest([float_entry], actor=actor)
    return FloatInjection(fitid, amount, returned, float_result, bot_result)


def float_movement_mismatch(binding: LedgerBinding) -> list[str]:
    """Float movements (FITID FLOAT-*, as posted: corrections aside) held by one of the two ledgers only: they
    must be the same in both."""
    from tbot_bot.accounting.ledger_schema import open_ledger

    def fitids(path: Path) -> set[str]:
        with open_ledger(path, readonly=True) as conn:
            # the movements as posted; an accountant's corrections (-REV/-COR) are the bot ledger's own
            rows = conn.execute(
                "SELECT fitid FROM transactions WHERE fitid LIKE 'FLOAT-%' AND is_correction = 0"
            )
            return {str(r[0]) for r in rows}

    bot, float_ = fitids(binding.ledger_path), fitids(binding.float_ledger_path)
    return [
        f"float movement {f} is in {where} only (the two ledgers must hold the same float movements)"
        for f, where in sorted(
            [(f, binding.float_ledger_path.name) for f in float_ - bot]
            + [(f, binding.ledger_path.name) for f in bot - float_]
        )
    ]
