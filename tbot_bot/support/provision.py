"""Provisioning: the stand-in for the accounting system (DESIGN §5), used by the demo, tests and a first install.

Creates keys, `.env`, the encrypted config from the template, the identity, the injection manifest, the ledger,
COA and float ledger with an opening float injection, and the core databases. An existing home is refused
unless `force`; an existing ledger is never overwritten, even with `force`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tbot_bot.accounting.accounting_config import BotIdentity, save_identity, save_injection
from tbot_bot.config.dotenv import DOTENV_TEMPLATE
from tbot_bot.config.security_bot import ensure_key
from tbot_bot.config.settings_bot import replace_values, save_env_text
from tbot_bot.config.template import template_path
from tbot_bot.domain.results import FLOAT_MAX
from tbot_bot.errors import ConfigError
from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import KEY_PURPOSES, BotHome
from tbot_bot.support.utils_bot import atomic_write_text, utc_now
from tbot_bot.trading.fees import PROFILE_OF_BROKER

BROKER_CODES = {"sim": "SIM", "alpaca": "ALPACA", "ibkr": "IBKR", "tradier": "TRADIER"}
TRADIER_ENV = ("TRADIER_ACCESS_TOKEN", "TRADIER_ACCOUNT_ID", "TRADIER_BASE_URL", "TRADIER_SANDBOX")
ALPACA_ENV = ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_BASE_URL", "ALPACA_DATA_URL")
IBKR_ENV = ("IBKR_HOST", "IBKR_PORT", "IBKR_CLIENT_ID", "IBKR_ACCOUNT")


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    broker: str
    entity: str
    jurisdiction: str
    account: str
    bot_id: str
    float_amount: str
    currency: str = "USD"
    environment: str = "production"
    force: bool = False
    config_overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    home: Path
    identity: BotIdentity
    ledger_path: Path
    ledger_created: bool
    notes: tuple[str, ...]
    broker_credentials_missing: tuple[str, ...] = ()  # the required keys the environment did not give


def _validate(req: ProvisionRequest) -> tuple[str, Decimal, BotIdentity]:
    problems = []
    broker_code = BROKER_CODES.get(req.broker.lower())
    if broker_code is None:
        problems.append(f"--broker {req.broker!r} is not allowed; use one of {', '.join(BROKER_CODES)}")
    try:
        if not req.float_amount.strip().isascii():
            raise InvalidOperation
        amount = Decimal(req.float_amount.strip())
        # the ledger keeps amounts with at most 4 decimal places, as 64-bit integers
        if (
            not amount.is_finite()
            or not 0 < amount <= FLOAT_MAX
            or amount != amount.quantize(Decimal("0.0001"))
        ):
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        problems.append(
            f"--float {req.float_amount[:40]!r} must be a positive amount up to {FLOAT_MAX:,} with at most 4 "
            "decimal places, e.g. 2500 or 2500.00"
        )
        amount = Decimal(0)
    if req.environment not in ("production", "development"):
        problems.append(f"--environment {req.environment!r} must be production or development")
    identity = BotIdentity(req.entity, req.jurisdiction, req.account, broker_code or "SIM", req.bot_id)
    problems += [
        p.replace("ENTITY_CODE", "--entity")
        .replace("JURISDICTION_CODE", "--jurisdiction")
        .replace("BOT_ID", "--bot-id")
        .replace("account_name", "--account")
        for p in identity.problems()
    ]
    if not req.currency.isalpha() or len(req.currency) != 3 or not req.currency.isupper():
        problems.append(f"--currency {req.currency!r} must be a 3-letter ISO code such as USD")
    if problems:
        raise ConfigError(problems, source="provision")
    return broker_code or "SIM", amount, identity


def provision(home: BotHome, req: ProvisionRequest, *, now: datetime | None = None) -> ProvisionResult:
    """A new home is built in a sibling temporary folder and renamed into place when complete, so a refused or
    failed provision leaves nothing behind. Re-provisioning (`force`) or completing a folder that already has
    files works in place (its ledgers are kept)."""
    validated = _validate(req)
    already = [p for p in (home.env_bot_enc, home.secret_file("bot_identity")) if p.exists()]
    if already and not req.force:
        raise ConfigError(
            f"{home.root} is already provisioned ({already[0].name} exists); pass --force to re-provision "
            f"(the ledger is never overwritten)"
        )
    if home.root.is_dir() and any(home.root.iterdir()):
        return _build(home, req, validated, now)
    if home.root.exists() and not home.root.is_dir():
        raise ConfigError(f"{home.root} exists and is not a directory; choose another --home")
    home.root.parent.mkdir(parents=True, exist_ok=True)
    staging = home.root.with_name(f".{home.root.name}.provisioning-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        built = _build(BotHome(staging), req, validated, now)
        staging.replace(home.root)  # an empty existing folder is replaced too
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    ledger_path = home.root / built.ledger_path.relative_to(staging)
    return ProvisionResult(
        home.root,
        built.identity,
        ledger_path,
        built.ledger_created,
        built.notes,
        built.broker_credentials_missing,
    )


def _build(
    home: BotHome,
    req: ProvisionRequest,
    validated: tuple[str, Decimal, BotIdentity],
    now: datetime | None,
) -> ProvisionResult:
    broker_code, amount, identity = validated
    notes: list[str] = []
    home.root.mkdir(parents=True, exist_ok=True)
    os.chmod(home.root, 0o700)  # keys, secrets, ledgers and logs: the bot's user's alone
    for d in (home.keys_dir, home.secrets_dir):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    for d in (
        home.state_dir,
        home.control_dir,
        home.output_dir,
        home.web_logs_dir,
        home.backups_dir,
        home.cache_dir,
    ):
        d.mkdir(parents=True, exist_ok=True)
    for purpose in KEY_PURPOSES:  # every purpose key, so `tbot secrets set` can complete the home
        ensure_key(home.key_file(purpose))

    atomic_write_text(home.dotenv, DOTENV_TEMPLATE.format(environment=req.environment))
    template = template_path().read_text(encoding="utf-8")
    overrides = {
        "BROKER_NAME": broker_code,
        "ALPACA_ENABLED": str(broker_code == "ALPACA").lower(),
        "IBKR_ENABLED": str(broker_code == "IBKR").lower(),
        "TRADIER_ENABLED": str(broker_code == "TRADIER").lower(),
        "SIM_ENABLED": str(broker_code == "SIM").lower(),
        "CURRENCY_CODE": req.currency,
        # SIM_FEE_PROFILE: the sim, backtests and the optimizer charge the fees of the broker this home uses
        "SIM_FEE_PROFILE": str(PROFILE_OF_BROKER[broker_code]),
        **req.config_overrides,
    }
    if broker_code != "SIM":
        # a real broker's fractional/short capabilities are narrower than the sim's
        for strat in ("OPEN", "MID", "CLOSE"):
            overrides.setdefault(f"SHORT_TYPE_{strat}", "InverseETF")
    save_env_text(home, replace_values(template, overrides), actor="provision")

    save_identity(home, identity)
    entity_dir = home.entity_dir(identity.ENTITY_CODE, identity.JURISDICTION_CODE)
    ledger_dir = entity_dir / "ledgers" / "bot"
    ledger_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = entity_dir / "backups"
    backup_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{identity.ENTITY_CODE}_{identity.JURISDICTION_CODE}_{identity.account_name}_{identity.BROKER_CODE}_{identity.BOT_ID}_BOT"
    ledger_path = ledger_dir / identity.ledger_file_name
    coa_path = ledger_dir / f"{stem}_COA.db"
    float_path = ledger_dir / f"{stem}_FLOAT_ledger.db"
    save_injection(
        home,
        ledger_path=ledger_path,
        coa_path=coa_path,
        float_ledger_path=float_path,
        backup_dir=backup_dir,
        currency_code=req.currency,
    )

    from tbot_bot.accounting.accounting_config import LedgerBinding
    from tbot_bot.accounting.coa import create_coa_db
    from tbot_bot.accounting.float_injection import default_fitid, inject_float
    from tbot_bot.accounting.ledger_schema import create_ledger
    from tbot_bot.core.databases import init_all_core_databases

    init_all_core_databases(home)

    ledger_created = False
    if ledger_path.exists():
        notes.append(f"kept the existing ledger {ledger_path.name} (a ledger is never overwritten)")
    else:
        create_ledger(ledger_path, currency_code=req.currency)
        ledger_created = True
    if not coa_path.exists():
        create_coa_db(coa_path)
    float_created = not float_path.exists()
    if float_created:
        create_ledger(float_path, currency_code=req.currency, kind="float")
    else:
        notes.append(f"kept the existing float ledger {float_path.name}")
    if ledger_created and float_created:
        # the opening float goes into both ledgers (float ledger: 1010/3010; bot ledger: cash 1030 / 3010)
        binding = LedgerBinding(identity, ledger_path, coa_path, float_path, backup_dir, req.currency)
        posted_at = now or utc_now()
        inject_float(
            binding,
            amount,
            posted_at=posted_at,
            fitid=default_fitid(posted_at, opening=True),
            actor="provision",
            home=home,
        )

    missing = _store_broker_credentials(home, broker_code, notes)
    return ProvisionResult(home.root, identity, ledger_path, ledger_created, tuple(notes), missing)


def _store_broker_credentials(home: BotHome, broker_code: str, notes: list[str]) -> tuple[str, ...]:
    """Store what the environment gives; returns the required keys it did not give."""
    missing: list[str] = []
    if broker_code == "ALPACA":
        creds: dict[str, object] = {k: os.environ[k] for k in ALPACA_ENV if os.environ.get(k)}
        creds["ALPACA_PAPER"] = os.environ.get("ALPACA_PAPER", "true").lower() != "false"
        missing = [k for k in ALPACA_ENV[:2] if k not in creds]
        if missing:
            notes.append(
                f"{', '.join(missing)} not stored: give them on stdin with `tbot secrets set broker` (never on a "
                "command line: shell history keeps it), or the broker check will fail"
            )
    elif broker_code == "IBKR":
        creds = {k: os.environ[k] for k in IBKR_ENV if os.environ.get(k)}
        creds.setdefault("IBKR_HOST", "127.0.0.1")
        creds.setdefault("IBKR_PORT", "7497")
        creds.setdefault("IBKR_CLIENT_ID", "1")
    elif broker_code == "TRADIER":
        creds = {k: os.environ[k] for k in TRADIER_ENV if os.environ.get(k)}
        missing = [k for k in TRADIER_ENV[:2] if k not in creds]
        if missing:
            notes.append(
                f"{', '.join(missing)} not stored: give them on stdin with `tbot secrets set broker` (never on a "
                "command line: shell history keeps it), or the broker check will fail"
            )
    else:
        creds = {"SIM": True}
    save_secret_json(home, "broker_credentials", creds)
    return tuple(missing)
