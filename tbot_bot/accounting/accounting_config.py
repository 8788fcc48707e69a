"""Identity and accounting injection (DESIGN §5): the bot never chooses its ledger.

The accounting system (or `tbot provision`, its stand-in) writes `bot_identity.json.enc` and
`accounting_injection.json.enc`. At boot the bot checks the ledger file name rule, that the ledger exists with
the expected schema, and that the COA matches; otherwise it refuses to start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbot_bot.errors import ConfigError
from tbot_bot.support.decrypt_secrets import load_secret_json, save_secret_json
from tbot_bot.support.path_resolver import BotHome

_CODE = re.compile(r"^[A-Z0-9]{2,12}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9\-]{1,32}$")  # no underscore: the ledger name splits on "_"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    ENTITY_CODE: str
    JURISDICTION_CODE: str
    account_name: str
    BROKER_CODE: str
    BOT_ID: str

    def problems(self) -> list[str]:
        out = []
        for field in ("ENTITY_CODE", "JURISDICTION_CODE", "BROKER_CODE", "BOT_ID"):
            value = getattr(self, field)
            if not _CODE.match(value):
                out.append(f"{field}={value!r} must be 2-12 upper-case letters or digits")
        if not _ACCOUNT.match(self.account_name):
            out.append(f"account_name={self.account_name!r} must be 1-32 letters, digits or '-' (no '_')")
        return out

    @property
    def scope(self) -> str:
        """output/{ENTITY}_{JURIS}_{BROKER}_{BOT_ID}/ and the report file prefix."""
        return f"{self.ENTITY_CODE}_{self.JURISDICTION_CODE}_{self.BROKER_CODE}_{self.BOT_ID}"

    @property
    def ledger_file_name(self) -> str:
        return (
            f"{self.ENTITY_CODE}_{self.JURISDICTION_CODE}_{self.account_name}_"
            f"{self.BROKER_CODE}_{self.BOT_ID}_BOT_ledger.db"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "ENTITY_CODE": self.ENTITY_CODE,
            "JURISDICTION_CODE": self.JURISDICTION_CODE,
            "account_name": self.account_name,
            "BROKER_CODE": self.BROKER_CODE,
            "BOT_ID": self.BOT_ID,
        }


@dataclass(frozen=True, slots=True)
class LedgerBinding:
    """Identity plus the injected, home-resolved ledger paths."""

    identity: BotIdentity
    ledger_path: Path
    coa_path: Path
    float_ledger_path: Path
    backup_dir: Path
    currency_code: str

    @property
    def scope(self) -> str:
        return self.identity.scope


INJECTION_FIELDS = ("ledger_path", "coa_path", "float_ledger_path", "backup_dir", "currency_code")


def load_identity(home: BotHome) -> BotIdentity:
    data = load_secret_json(home, "bot_identity")
    missing = [f for f in BotIdentity.__dataclass_fields__ if not isinstance(data.get(f), str)]
    if missing:
        raise ConfigError(
            f"bot identity lacks {', '.join(missing)}", source=str(home.secret_file("bot_identity"))
        )
    identity = BotIdentity(**{f: data[f] for f in BotIdentity.__dataclass_fields__})
    if problems := identity.problems():
        raise ConfigError(problems, source=str(home.secret_file("bot_identity")))
    return identity


def save_identity(home: BotHome, identity: BotIdentity) -> None:
    if problems := identity.problems():
        raise ConfigError(problems, source="bot identity")
    save_secret_json(home, "bot_identity", identity.to_json())


def save_injection(
    home: BotHome,
    *,
    ledger_path: Path,
    coa_path: Path,
    float_ledger_path: Path,
    backup_dir: Path,
    currency_code: str,
) -> None:
    save_secret_json(
        home,
        "accounting_injection",
        {
            "ledger_path": home.relative(ledger_path),
            "coa_path": home.relative(coa_path),
            "float_ledger_path": home.relative(float_ledger_path),
            "backup_dir": home.relative(backup_dir),
            "currency_code": currency_code,
        },
    )


def load_binding(home: BotHome, *, check_files: bool = True) -> LedgerBinding:
    """Identity + injection, with the ledger name rule, schema and COA checked (all problems at once)."""
    identity = load_identity(home)
    source = str(home.secret_file("accounting_injection"))
    data = load_secret_json(home, "accounting_injection")
    problems = [f"injection lacks {f}" for f in INJECTION_FIELDS if not isinstance(data.get(f), str)]
    if problems:
        raise ConfigError(problems, source=source)
    try:
        paths = {f: home.path(data[f]) for f in INJECTION_FIELDS if f != "currency_code"}
    except ValueError as exc:
        raise ConfigError(str(exc), source=source) from None
    currency = data["currency_code"]
    if not _CURRENCY.match(currency):
        problems.append(f"currency_code={currency!r} must be a 3-letter ISO 4217 code")
    binding = LedgerBinding(identity=identity, currency_code=currency, **paths)
    if binding.ledger_path.name != identity.ledger_file_name:
        problems.append(
            f"ledger file name {binding.ledger_path.name!r} breaks the naming rule; expected "
            f"{identity.ledger_file_name!r} ({{ENTITY}}_{{JURIS}}_{{account}}_{{BROKER}}_{{BOT_ID}}_BOT_ledger.db)"
        )
    if check_files:
        problems += _file_problems(binding)
    if problems:
        raise ConfigError(problems, source=source)
    return binding


def _file_problems(binding: LedgerBinding) -> list[str]:
    from tbot_bot.accounting.coa import coa_matches
    from tbot_bot.accounting.ledger_schema import check_ledger_schema

    problems = []
    for label, path in (
        ("ledger", binding.ledger_path),
        ("COA", binding.coa_path),
        ("float ledger", binding.float_ledger_path),
    ):
        if not path.exists():
            problems.append(f"injected {label} {path} does not exist")
    if binding.ledger_path.exists():
        problems += [
            f"ledger {binding.ledger_path.name}: {p}" for p in check_ledger_schema(binding.ledger_path)
        ]
    if binding.coa_path.exists():
        problems += [f"COA {binding.coa_path.name}: {p}" for p in coa_matches(binding.coa_path)]
    return problems


def config_binding_problems(values: Mapping[str, Any], binding: LedgerBinding) -> list[str]:
    """Keys of `.env_bot` that must agree with what the accounting system injected (each checked when the
    key itself parsed)."""
    problems = []
    currency = values.get("CURRENCY_CODE")
    # CURRENCY_CODE must be the currency of the injected ledger
    if currency is not None and currency != binding.currency_code:
        problems.append(
            f"CURRENCY_CODE={currency} differs from the injected ledger currency {binding.currency_code}"
        )
    broker = values.get("BROKER_NAME")
    # BROKER_NAME must be the broker the accounting system provisioned this bot (and its ledger) for
    if broker is not None and broker != binding.identity.BROKER_CODE:
        problems.append(
            f"BROKER_NAME={broker} differs from the identity's BROKER_CODE {binding.identity.BROKER_CODE}"
        )
    return problems
