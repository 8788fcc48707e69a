"""Core system databases (users, system logs, activity, reset tokens, ledger status, system settings)."""

from tbot_bot.core.databases import CORE_DATABASES, init_all_core_databases, init_core_database
from tbot_bot.core.verify_all_core_databases import verify_all_core_databases

__all__ = ["CORE_DATABASES", "init_all_core_databases", "init_core_database", "verify_all_core_databases"]
