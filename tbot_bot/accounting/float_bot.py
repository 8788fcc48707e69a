"""The session float (spec float_bot.py): pull it from the accounting API at session start when configured.

When `acct_api_credentials` exists the API's float is the session float. If it disagrees with the float
ledger, the disagreement is logged and alerted and the difference is injected into the float ledger and the bot ledger
(`float_injection.inject_float`, FLOAT_IN / FLOAT_OUT with FITID `FLOAT-API-{float_id}`, so one assignment is
injected once) so the ledger agrees with the accounting system.
When the API cannot answer, the last known float is used — the float-ledger balance, which holds the last
assignment injected — and that is logged and alerted. The bot never makes a number up: with no float at all
preflight refuses to start. Pure decision + one writer; the caller emits the events (boot has the log).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.acct_client import AccountingClient, FloatAssignment
from tbot_bot.accounting.float_injection import inject_float
from tbot_bot.accounting.float_ledger import broker_current_float
from tbot_bot.errors import ConfigError, TbotError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text

log = logging.getLogger(__name__)

STATE_FILE = "acct_float.json"


@dataclass(frozen=True, slots=True)
class FloatNotice:
    level: str  # info | warning | critical
    event: str  # float_from_api | float_disagreement | float_api_unavailable
    message: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionFloat:
    amount: Decimal
    source: str  # float_ledger (API not configured) | accounting_api | last_known
    notices: tuple[FloatNotice, ...] = ()
    assignment: FloatAssignment | None = None


def injection_fitid(assignment: FloatAssignment) -> str:
    return f"FLOAT-API-{assignment.float_id}"


def inject_float_difference(
    home: BotHome,
    binding: LedgerBinding,
    backup_keep: int,
    assignment: FloatAssignment,
    ledger_float: Decimal,
    *,
    actor: str,
    now: datetime | None = None,
) -> bool:
    """Bring both ledgers to the assigned float; False when this assignment was already injected. The movement is
    dated at the assignment's time, never after `now` (the session using it: a replayed day's, in a replay)."""
    difference = assignment.amount - ledger_float
    if difference == 0:
        return False
    posted_at = assignment.as_of if now is None else min(assignment.as_of, now)
    result = inject_float(
        binding,
        abs(difference),
        posted_at=after_closed_periods(binding.ledger_path, posted_at),
        fitid=injection_fitid(assignment),
        returned=difference < 0,
        backup_keep=backup_keep,
        actor=actor,
        home=home,
    )
    return result.float_ledger.written > 0


def after_closed_periods(ledger: Path, posted_at: datetime) -> datetime:
    """`posted_at`, or the first moment after the ledger's closed periods when it falls inside one: an assignment
    the accountant dated in a month closed since belongs to the open period (a closed one is never changed)."""
    from tbot_bot.accounting.ledger_entry import format_dtposted
    from tbot_bot.accounting.ledger_period import closed_through
    from tbot_bot.accounting.ledger_schema import open_ledger

    with open_ledger(ledger, readonly=True) as conn:
        lock = closed_through(conn)
    if lock is None or format_dtposted(posted_at) > lock[1]:
        return posted_at
    return datetime.fromisoformat(lock[1].replace("Z", "+00:00")) + timedelta(microseconds=1)


def _remember(home: BotHome, assignment: FloatAssignment, fetched_at: datetime) -> None:
    home.state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        home.state_dir / STATE_FILE,
        json.dumps(
            {
                "float": str(assignment.amount),
                "currency": assignment.currency,
                "float_id": assignment.float_id,
                "as_of": assignment.as_of.isoformat(),
                "fetched_at": fetched_at.isoformat(),
            },
            indent=2,
        ),
    )


def last_known(home: BotHome) -> dict[str, Any] | None:
    """What the API said last time it answered (for messages and `tbot rebalance status`)."""
    path = home.state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def session_float(
    home: BotHome,
    binding: LedgerBinding,
    client: AccountingClient | None,
    *,
    now: datetime,
    backup_keep: int,
    inject: bool = True,
) -> SessionFloat:
    """The float for this session and what to tell the operator about it. With `inject=False` (tbot check)
    nothing is written: a disagreement is reported as the injection a start would make."""
    ledger_float = broker_current_float(binding.float_ledger_path)
    if client is None:
        return SessionFloat(ledger_float, "float_ledger")
    try:
        assignment = client.get_float()
        if assignment.currency != binding.currency_code:
            raise ConfigError(
                f"the accounting API assigns a float in {assignment.currency}, the ledger is in {binding.currency_code}"
            )
    except TbotError as exc:
        # accounting API down or refusing: the last float it assigned (the float ledger balance), never a guess
        known = last_known(home) or {}
        return SessionFloat(
            ledger_float,
            "last_known",
            (
                FloatNotice(
                    "critical" if isinstance(exc, ConfigError) else "warning",
                    "float_api_unavailable",
                    f"accounting API float unavailable ({exc}); using the last known float {ledger_float} "
                    f"from the float ledger",
                    {"ledger_float": str(ledger_float), "last_api_as_of": str(known.get("as_of", "never"))},
                ),
            ),
        )
    notices: list[FloatNotice] = []
    if assignment.amount != ledger_float and not inject:
        notices.append(
            FloatNotice(
                "warning",
                "float_disagreement",
                f"accounting API float {assignment.amount} differs from the float ledger's {ledger_float}; "
                f"tbot start will inject the difference as {injection_fitid(assignment)}",
                {"api_float": str(assignment.amount), "ledger_float": str(ledger_float), "injected": "false"},
            )
        )
    elif assignment.amount != ledger_float:
        injected = inject_float_difference(
            home,
            binding,
            backup_keep,
            assignment,
            ledger_float,
            actor=f"tbot:{binding.identity.BOT_ID}:float",
            now=now,
        )
        notices.append(
            FloatNotice(
                "warning",
                "float_disagreement",
                f"accounting API float {assignment.amount} differs from the float ledger's {ledger_float}; "
                + (
                    f"injected the difference as {injection_fitid(assignment)}"
                    if injected
                    else f"{injection_fitid(assignment)} was already injected: the ledger changed since"
                ),
                {
                    "api_float": str(assignment.amount),
                    "ledger_float": str(ledger_float),
                    "float_id": assignment.float_id,
                    "injected": str(injected).lower(),
                },
            )
        )
    notices.append(
        FloatNotice(
            "info",
            "float_from_api",
            f"session float {assignment.amount} {assignment.currency} from the accounting API "
            f"(assignment {assignment.float_id} as of {assignment.as_of.isoformat()})",
            {"float": str(assignment.amount), "float_id": assignment.float_id},
        )
    )
    _remember(home, assignment, now)
    return SessionFloat(assignment.amount, "accounting_api", tuple(notices), assignment)
