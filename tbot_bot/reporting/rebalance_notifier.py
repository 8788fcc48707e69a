"""Rebalance notifier (spec rebalance_notifier.py / notify_rebalance_requirements.py): the bot only asks.

Every REBALANCE_CHECK_INTERVAL seconds during windows and once after each session, the actual float — broker
equity, and ledger cash when the bot ledger holds the float — is compared with the target float (the
accounting API's assignment; the session float when the API cannot answer). A deviation beyond
REBALANCE_THRESHOLD opens a *breach*. Once per breach, whatever the number of checks or restarts:

1. the breach is persisted (`storage/state/rebalance_state.json`) before anything is sent;
2. a rebalance request (bot identity, target, actual, deviation, reason) is POSTed to the accounting API with
   the breach's idempotency key (ENABLE_REBALANCE_NOTIFIER); a failed POST is retried at the next check with
   the same key, so the accounting system never sees two requests for one breach;
3. one line goes to `rebalance_request.log`, one memo-only notice to the bot ledger's audit_log (no money
   moves), one alert;
4. new entries are paused (REBALANCE_PAUSE_ENTRIES) until a check finds the deviation back inside the band,
   which closes the breach (its own log line and notice). Exits always run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.accounting.accounting_config import LedgerBinding
from tbot_bot.accounting.acct_client import AccountingClient, new_idempotency_key
from tbot_bot.accounting.ledger_notice import append_notice
from tbot_bot.accounting.ledger_schema import open_ledger
from tbot_bot.config.env_bot import BotSettings
from tbot_bot.errors import TbotError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text, from_minor

STATE_FILE = "rebalance_state.json"
LOG_FILE = "rebalance_request.log"
CASH_ACCOUNT = "1030"
DEVIATION_PLACES = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Assessment:
    target: Decimal
    broker_equity: Decimal | None
    ledger_cash: Decimal | None  # None when the bot ledger does not hold the float (nothing to compare)
    deviation: Decimal | None  # signed fraction of target, the larger of the two in size
    basis: str | None  # broker_equity | ledger_cash: which actual gave `deviation`
    threshold: Decimal

    @property
    def breached(self) -> bool:
        return self.deviation is not None and abs(self.deviation) > self.threshold

    def as_json(self) -> dict[str, str | None]:
        return {k: None if v is None else str(v) for k, v in asdict(self).items()}


def assess(
    target: Decimal, broker_equity: Decimal | None, ledger_cash: Decimal | None, threshold: Decimal
) -> Assessment:
    """Pure: the deviation of each available actual from the target; the larger one decides."""
    if target <= 0:
        raise ValueError(f"target float must be positive, got {target}")
    best: tuple[Decimal, str] | None = None
    for basis, actual in (("broker_equity", broker_equity), ("ledger_cash", ledger_cash)):
        if actual is None:
            continue
        dev = ((actual - target) / target).quantize(DEVIATION_PLACES)
        if best is None or abs(dev) > abs(best[0]):
            best = (dev, basis)
    return Assessment(
        target,
        broker_equity,
        ledger_cash,
        best[0] if best else None,
        best[1] if best else None,
        threshold,
    )


def ledger_cash(ledger_path: Path) -> Decimal | None:
    """1030 Cash in the bot ledger, or None when no float was ever injected into it (cash would be PnL only)."""
    with open_ledger(ledger_path, readonly=True) as conn:
        has_float = conn.execute("SELECT 1 FROM transactions WHERE trntype = 'FLOAT_IN' LIMIT 1").fetchone()
        if has_float is None:
            return None
        row = conn.execute(
            "SELECT coalesce(sum(debit), 0) - coalesce(sum(credit), 0) FROM splits WHERE account_code = ?",
            (CASH_ACCOUNT,),
        ).fetchone()
    return from_minor(int(row[0]))


def read_state(home: BotHome) -> dict[str, Any]:
    try:
        data = json.loads((home.state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RebalanceMonitor:
    """The stateful shell around `assess`: checks on an interval, one request per breach, pause/resume."""

    def __init__(
        self,
        settings: BotSettings,
        home: BotHome,
        binding: LedgerBinding,
        *,
        session_float: Decimal,
        equity: Callable[[], Decimal | None],
        client: AccountingClient | None,
        log_dir: Path,
        now: Callable[[], datetime],
        on_breach: Callable[[str, bool], None] = lambda message, opened: None,
    ) -> None:
        self.settings = settings
        self.home = home
        self.binding = binding
        self.session_float = session_float
        self._equity = equity
        self.client = client
        self.log_path = log_dir / LOG_FILE
        self._now = now
        self._on_breach = on_breach  # (message, opened): alert + pause/resume, supplied by the supervisor
        self._lock = threading.Lock()
        self._last_check: datetime | None = None

    @property
    def state_path(self) -> Path:
        return self.home.state_dir / STATE_FILE

    @property
    def open_breach(self) -> dict[str, Any] | None:
        breach = read_state(self.home).get("open")
        return breach if isinstance(breach, dict) else None

    def due(self, now: datetime) -> bool:
        interval = timedelta(seconds=self.settings.REBALANCE_CHECK_INTERVAL)
        return self._last_check is None or now - self._last_check >= interval

    def maybe_check(self) -> Assessment | None:
        """The interval check (REBALANCE_CHECK_INTERVAL), called every minute of a window."""
        # REBALANCE_ENABLED=false: no checks, no requests, no pause
        if not self.settings.REBALANCE_ENABLED or not self.due(self._now()):
            return None
        return self.check("interval")

    def target(self) -> Decimal:
        if self.client is not None:
            try:
                return self.client.get_float().amount
            except TbotError:
                pass  # the session float (itself the API's, or the last known) is the target meanwhile
        return self.session_float

    def check(self, reason: str) -> Assessment | None:
        # REBALANCE_ENABLED=false: the float is never compared with its target, no breach is raised
        if not self.settings.REBALANCE_ENABLED:
            return None
        with self._lock:
            now = self._now()
            self._last_check = now
            try:
                equity = self._equity()
            except TbotError:
                equity = None  # the broker's own health is the watchdog's business; compare what we have
            assessment = assess(
                self.target(),
                equity,
                ledger_cash(self.binding.ledger_path),
                Decimal(str(self.settings.REBALANCE_THRESHOLD)),
            )
            state = read_state(self.home)
            state["last_check"] = {"at": now.isoformat(), "reason": reason, **assessment.as_json()}
            breach = state.get("open")
            # REBALANCE_THRESHOLD (in assessment.breached): a drift beyond it opens a breach, back within closes it
            if assessment.breached and not breach:
                self._open(state, assessment, reason, now)
            elif breach and assessment.deviation is not None and not assessment.breached:
                self._close(state, breach, assessment, now)
            elif breach and not breach.get("posted"):
                self._post(state, breach, now)  # same idempotency key as the first attempt
            self._save(state)
            return assessment

    # ------------------------------------------------------------------ breach lifecycle
    def _open(self, state: dict[str, Any], a: Assessment, reason: str, now: datetime) -> dict[str, Any]:
        ident = self.binding.identity
        breach_id = f"{ident.BOT_ID}-{now.strftime('%Y%m%dT%H%M%SZ')}"
        breach: dict[str, Any] = {
            "breach_id": breach_id,
            "idempotency_key": new_idempotency_key(ident.BOT_ID, "rebalance", breach_id),
            "opened_at": now.isoformat(),
            "check_reason": reason,
            "assessment": a.as_json(),
            "posted": False,
            "request_id": None,
            "post_error": None,
        }
        state["open"] = breach
        self._save(state)  # persisted first: a crash after this re-uses the same key, never a new breach
        message = (
            f"float deviation {a.deviation} ({a.basis}) beyond REBALANCE_THRESHOLD {a.threshold}: "
            f"target {a.target}, broker equity {a.broker_equity}, ledger cash {a.ledger_cash}"
        )
        self._post(state, breach, now)
        self._log_line("rebalance_requested", breach, message, now)
        append_notice(
            self.home,
            self.binding,
            backup_keep=self.settings.LEDGER_BACKUP_KEEP,
            key=f"REBALANCE-{breach_id}",
            memo=self._memo("REBALANCE_REQUEST", breach, a, now),
            actor=f"tbot:{ident.BOT_ID}:rebalance",
            moment=now,
        )
        self._on_breach(message, True)
        return breach

    def _close(self, state: dict[str, Any], breach: dict[str, Any], a: Assessment, now: datetime) -> None:
        message = f"float deviation {a.deviation} back inside REBALANCE_THRESHOLD {a.threshold}"
        closed = {**breach, "closed_at": now.isoformat(), "closing_assessment": a.as_json()}
        self._log_line("rebalance_resolved", closed, message, now)
        append_notice(
            self.home,
            self.binding,
            backup_keep=self.settings.LEDGER_BACKUP_KEEP,
            key=f"REBALANCE-{breach['breach_id']}-RESOLVED",
            memo=self._memo("REBALANCE_RESOLVED", closed, a, now),
            actor=f"tbot:{self.binding.identity.BOT_ID}:rebalance",
            moment=now,
        )
        state["open"] = None
        state.setdefault("closed", []).append(closed)
        state["closed"] = state["closed"][-20:]
        self._on_breach(message, False)

    def _post(self, state: dict[str, Any], breach: dict[str, Any], now: datetime) -> None:
        # ENABLE_REBALANCE_NOTIFIER=false: breaches are logged, audited and paused, never sent to accounting
        if not self.settings.ENABLE_REBALANCE_NOTIFIER:
            breach["post_error"] = "ENABLE_REBALANCE_NOTIFIER=false"
            return
        if self.client is None:
            breach["post_error"] = "accounting API not configured (acct_api_credentials)"
            return
        ident, a = self.binding.identity, breach["assessment"]
        body = {
            "bot_id": ident.BOT_ID,
            "identity": ident.to_json(),
            "breach_id": breach["breach_id"],
            "target_float": a["target"],
            "actual": {"broker_equity": a["broker_equity"], "ledger_cash": a["ledger_cash"]},
            "deviation": a["deviation"],
            "basis": a["basis"],
            "threshold": a["threshold"],
            "currency": self.binding.currency_code,
            "reason": f"float deviation beyond the rebalance threshold ({breach['check_reason']} check)",
            "detected_at": breach["opened_at"],
        }
        try:
            reply = self.client.post_rebalance(body, breach["idempotency_key"])
        except TbotError as exc:
            breach["post_error"] = f"{type(exc).__name__}: {exc}"
            return
        first_attempt = breach.get("post_error") is None
        breach.update(
            posted=True, request_id=str(reply["request_id"]), post_error=None, posted_at=now.isoformat()
        )
        if not first_attempt:
            self._log_line("rebalance_posted", breach, "rebalance request delivered on a later check", now)

    # ------------------------------------------------------------------ records
    def _memo(self, kind: str, breach: dict[str, Any], a: Assessment, now: datetime) -> dict[str, Any]:
        return {
            "NOTICETYPE": kind,
            "DTPOSTED": now.isoformat(),
            "CURDEF": self.binding.currency_code,
            "BREACHID": breach["breach_id"],
            "TARGETFLOAT": str(a.target),
            "BROKEREQUITY": None if a.broker_equity is None else str(a.broker_equity),
            "LEDGERCASH": None if a.ledger_cash is None else str(a.ledger_cash),
            "DEVIATION": None if a.deviation is None else str(a.deviation),
            "THRESHOLD": str(a.threshold),
            "REQUESTID": breach.get("request_id"),
            "MEMO": "rebalance notice only; no money moves in this ledger",
        }

    def _log_line(self, event: str, breach: dict[str, Any], message: str, now: datetime) -> None:
        line = {
            "timestamp": now.isoformat(),
            "event": event,
            "bot_id": self.binding.identity.BOT_ID,
            "breach_id": breach["breach_id"],
            "posted": breach.get("posted"),
            "request_id": breach.get("request_id"),
            "post_error": breach.get("post_error"),
            "assessment": breach.get("closing_assessment") or breach["assessment"],
            "message": message,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
            fh.flush()

    def _save(self, state: dict[str, Any]) -> None:
        self.home.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.state_path, json.dumps(state, indent=2, sort_keys=True))
