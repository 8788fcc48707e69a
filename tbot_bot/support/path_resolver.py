"""The one place where paths are joined. Every path resolves against the bot home (DESIGN §3).

The home is `--home DIR`, else `$TBOT_HOME`, else the current directory. Code never writes an absolute
path; it asks a `BotHome` for the place it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = Path(__file__).resolve().parents[1]

KEY_PURPOSES = (
    "env",
    "login",
    "broker",
    "smtp",
    "screener_api",
    "acct_api",
    "alert",
    "identity",
    "backup",
    "ledger",
)


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--home, else $TBOT_HOME, else the current directory; always absolute."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get("TBOT_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path.cwd().resolve()


def project_file(*parts: str) -> Path:
    """A file shipped with the project (template, VERSION.md), independent of the bot home."""
    return PROJECT_ROOT.joinpath(*parts)


def package_file(*parts: str) -> Path:
    """A file shipped inside the tbot_bot package (sample data, SQL schemas)."""
    return PACKAGE_ROOT.joinpath(*parts)


@dataclass(frozen=True, slots=True)
class BotHome:
    """Fixed places under one bot home."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> BotHome:
        return cls(resolve_home(explicit))

    def path(self, *parts: str) -> Path:
        """Resolve a home-relative path (as stored in manifests); refuses to escape the home."""
        joined = self.root.joinpath(*parts).resolve()
        if joined != self.root and self.root not in joined.parents:
            raise ValueError(f"path {'/'.join(parts)!r} resolves outside the bot home {self.root}")
        return joined

    def relative(self, p: Path) -> str:
        """A home-relative POSIX string for manifests."""
        return p.resolve().relative_to(self.root).as_posix()

    # configuration and secrets
    @property
    def dotenv(self) -> Path:
        return self.root / ".env"

    @property
    def env_bot_enc(self) -> Path:
        return self.root / ".env_bot.enc"

    @property
    def env_bot_plain(self) -> Path:
        return self.root / ".env_bot"

    @property
    def keys_dir(self) -> Path:
        return self.root / "storage" / "keys"

    def key_file(self, purpose: str) -> Path:
        if purpose not in KEY_PURPOSES:
            raise ValueError(f"unknown key purpose {purpose!r}; allowed: {', '.join(KEY_PURPOSES)}")
        return self.keys_dir / f"{purpose}.key"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "storage" / "secrets"

    def secret_file(self, name: str) -> Path:
        return self.secrets_dir / f"{name}.json.enc"

    # runtime state
    @property
    def state_dir(self) -> Path:
        return self.root / "storage" / "state"

    @property
    def restore_marker(self) -> Path:
        """Present while a restore is writing files (reporting/backup_restore): the home is not whole until it is
        gone, and only the commands that read it or finish the restore run (cli.refuse_during_restore)."""
        return self.state_dir / "restore_in_progress.json"

    @property
    def control_dir(self) -> Path:
        return self.root / "control"

    @property
    def control_start(self) -> Path:
        return self.control_dir / "control_start.txt"

    @property
    def control_stop(self) -> Path:
        return self.control_dir / "control_stop.txt"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def status_json(self) -> Path:
        return self.output_dir / "status.json"

    def bot_output_dir(self, scope: str) -> Path:
        """output/{ENTITY}_{JURIS}_{BROKER}_{BOT_ID}/ — scope comes from the identity."""
        return self.output_dir / scope

    def logs_dir(self, scope: str) -> Path:
        return self.bot_output_dir(scope) / "logs"

    def trades_dir(self, scope: str) -> Path:
        return self.bot_output_dir(scope) / "trades"

    def summaries_dir(self, scope: str) -> Path:
        return self.bot_output_dir(scope) / "summaries"

    def session_ofx(self, scope: str, day: date) -> Path:
        """The OFX statement of one session (written after its bookings, rewritten by a correction)."""
        return self.bot_output_dir(scope) / "exports" / f"{scope}_{day.isoformat()}.ofx"

    @property
    def core_db_dir(self) -> Path:
        return self.root / "storage" / "databases"

    def core_db(self, name: str) -> Path:
        return self.core_db_dir / f"{name}.db"

    @property
    def web_logs_dir(self) -> Path:
        return self.root / "logs" / "web"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    @property
    def cache_dir(self) -> Path:
        return self.root / "data" / "cache"

    @property
    def bar_store_dir(self) -> Path:
        """The Parquet bar store `tbot data import` / `tbot data fetch` write (tbot_bot/data/bar_store.py)."""
        return self.root / "data" / "bars"

    @property
    def universe_file(self) -> Path:
        return self.root / "data" / "universe.txt"

    @property
    def backtest_results_dir(self) -> Path:
        return self.root / "backtest_results"

    @property
    def versioned_env_dir(self) -> Path:
        return self.root / "env_bot.versioned"

    def entity_dir(self, entity: str, jurisdiction: str) -> Path:
        return self.root / "entities" / f"{entity}_{jurisdiction}"
