"""Admin-issued one-time password-reset tokens (PASSWORD_RESET_TOKENS.db); only SHA-256 digests are stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from tbot_bot.core.databases import connect
from tbot_bot.core.users import get_user, set_password, validate_password
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

DB = "PASSWORD_RESET_TOKENS"
DEFAULT_TTL = timedelta(hours=24)


def _digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def issue_reset_token(
    home: BotHome,
    username: str,
    *,
    issued_by: str,
    now: datetime | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> str:
    """A new token for `username` (shown once to the issuer); earlier unused tokens of that user are revoked."""
    user = get_user(home, username)
    if user is None:
        raise ConfigError(f"no user named {username!r}")
    issued = now or utc_now()
    token = secrets.token_urlsafe(24)
    with connect(home, DB) as con:
        con.execute(
            "DELETE FROM password_reset_tokens WHERE username = ? AND used_at IS NULL", (user.username,)
        )
        con.execute(
            "INSERT INTO password_reset_tokens (token_hash, username, issued_by, issued_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (_digest(token), user.username, issued_by, issued.isoformat(), (issued + ttl).isoformat()),
        )
    return token


def redeem_reset_token(home: BotHome, token: str, new_password: str, *, now: datetime | None = None) -> str:
    """Set a new password with a valid token; the token is spent. Returns the username."""
    at = now or utc_now()
    refused = ConfigError(
        "this reset token is not valid (unknown, already used or expired); ask an admin for a new one"
    )
    with connect(home, DB) as con:
        row = con.execute(
            "SELECT id, username, expires_at, used_at FROM password_reset_tokens WHERE token_hash = ?",
            (_digest(token),),
        ).fetchone()
        if row is None or row["used_at"] is not None or datetime.fromisoformat(row["expires_at"]) <= at:
            raise refused
        validate_password(new_password, row["username"])
        claimed = con.execute(
            "UPDATE password_reset_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL",
            (at.isoformat(), row["id"]),
        )
        if claimed.rowcount != 1:
            raise refused
        username = str(row["username"])
    set_password(home, username, new_password, now=at)
    return username
