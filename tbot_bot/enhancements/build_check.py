"""Pre-launch check of the bot home: configuration files present, key present, runtime paths writable.
Any failed check aborts the launch ("System File Fail" in the spec's emergency matrix).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from tbot_bot.checks import REFUSED, TRANSIENT, CheckResult
from tbot_bot.enhancements.base import FilterDecision
from tbot_bot.support.path_resolver import BotHome

NAME = "build_check"


def _present(label: str, path: Path) -> FilterDecision:
    if path.is_file():
        return FilterDecision.allow(NAME, f"{label} present", path=str(path))
    return FilterDecision.deny(NAME, f"{label} missing: {path}", path=str(path))


def _writable(label: str, directory: Path) -> FilterDecision:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".build_check.", dir=directory)
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        # a full disk may free up (a restart helps); read-only, permission, a file in the way: a person's
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return FilterDecision.deny(
            NAME, f"{label} not writable: {directory} ({exc})", path=str(directory), transient=full
        )
    return FilterDecision.allow(NAME, f"{label} writable", path=str(directory))


def run_build_check(
    home: BotHome, *, scope: str | None = None, production: bool = False, ledger_backups: Path | None = None
) -> list[FilterDecision]:
    """Every check, each allowed or denied with its reason. `scope` is {ENTITY}_{JURIS}_{BROKER}_{BOT_ID};
    `ledger_backups`: the binding's ledger backup folder (a booking backs the ledger up there first)."""
    checks = [_present(".env", home.dotenv)]
    if home.env_bot_enc.is_file():
        checks.append(_present(".env_bot.enc", home.env_bot_enc))
    elif not production and home.env_bot_plain.is_file():
        # ENVIRONMENT=development: a plaintext .env_bot is accepted (security_bot warns about it)
        checks.append(
            FilterDecision.allow(NAME, "plaintext .env_bot (development only)", path=str(home.env_bot_plain))
        )
    else:
        checks.append(_present(".env_bot.enc", home.env_bot_enc))
    checks.append(_present("configuration key storage/keys/env.key", home.key_file("env")))
    checks += [
        _writable("state directory", home.state_dir),
        _writable("control directory", home.control_dir),
        _writable("output directory", home.output_dir),
        _writable("backups directory", home.backups_dir),
    ]
    if ledger_backups is not None:
        checks.append(_writable("ledger backup directory", ledger_backups))
    if scope:
        checks += [
            _writable("log directory", home.logs_dir(scope)),
            _writable("trades directory", home.trades_dir(scope)),
            _writable("summaries directory", home.summaries_dir(scope)),
        ]
    return checks


def self_check(
    home: BotHome, *, scope: str | None = None, production: bool = False, ledger_backups: Path | None = None
) -> CheckResult:
    results = run_build_check(home, scope=scope, production=production, ledger_backups=ledger_backups)
    failed = [d for d in results if not d.allowed]
    context = {"home": str(home.root), "checks": len(results), "failed": [d.reason for d in failed]}
    if failed:
        transient = all(d.context.get("transient") for d in failed)
        return CheckResult(
            False, "; ".join(d.reason for d in failed), context, TRANSIENT if transient else REFUSED
        )
    return CheckResult(True, "ok", context)
