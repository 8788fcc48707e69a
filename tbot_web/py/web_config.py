"""Web-process configuration: login limits from the home's `.env`, the session secret, and access to the
bot config API (tbot_bot.config.settings_bot) with a short cache, failing closed when it cannot be read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any

from tbot_bot.config.dotenv import read_dotenv
from tbot_bot.core.users import Role, parse_role
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

DEFAULT_LOGIN_ATTEMPT_LIMIT = 10
DEFAULT_LOGIN_LOCKOUT_MINUTES = 15
DEFAULT_SESSION_TIMEOUT_MINUTES = 120


@dataclass(frozen=True, slots=True)
class WebLimits:
    login_attempt_limit: int
    login_lockout_minutes: int
    session_timeout_minutes: int
    cookie_secure: bool
    trust_proxy: int = 0  # reverse proxies in front whose X-Forwarded-For/-Proto are believed


# allowed range of each number in .env (documented in its template comment)
INT_BOUNDS = {
    "LOGIN_ATTEMPT_LIMIT": (1, 1000),
    "LOGIN_LOCKOUT_MINUTES": (1, 1440),
    "SESSION_TIMEOUT_MINUTES": (1, 10080),
}


def _int_value(values: dict[str, str], key: str, default: int, problems: list[str]) -> int:
    raw = values.get(key, "").strip()
    if not raw:
        return default
    lo, hi = INT_BOUNDS[key]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        problems.append(f"{key}={raw[:40]!r} in .env is not a whole number in {lo}..{hi}")
        return default
    number = int(raw)
    if not lo <= number <= hi:
        problems.append(f"{key}={raw!r} in .env is not allowed: use {lo}..{hi}")
        return default
    return number


def _proxy_count(values: dict[str, str], problems: list[str]) -> int:
    """WEB_TRUST_PROXY: false/0 (default), true (= 1) or the number of proxies (1-5) in front of the dashboard."""
    raw = values.get("WEB_TRUST_PROXY", "false").strip().lower()
    if raw in ("", "false", "no", "0"):
        return 0
    if raw in ("true", "yes"):
        return 1
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 5:
        return int(raw)
    problems.append(
        f"WEB_TRUST_PROXY={raw!r} in .env is not allowed: use false, true or a number of proxies 1-5"
    )
    return 0


def load_web_limits(home: BotHome) -> WebLimits:
    """LOGIN_ATTEMPT_LIMIT, LOGIN_LOCKOUT_MINUTES, SESSION_TIMEOUT_MINUTES (and WEB_COOKIE_SECURE) from `.env`."""
    values = read_dotenv(home)
    problems: list[str] = []
    limits = WebLimits(
        login_attempt_limit=_int_value(values, "LOGIN_ATTEMPT_LIMIT", DEFAULT_LOGIN_ATTEMPT_LIMIT, problems),
        login_lockout_minutes=_int_value(
            values, "LOGIN_LOCKOUT_MINUTES", DEFAULT_LOGIN_LOCKOUT_MINUTES, problems
        ),
        session_timeout_minutes=_int_value(
            values, "SESSION_TIMEOUT_MINUTES", DEFAULT_SESSION_TIMEOUT_MINUTES, problems
        ),
        # WEB_COOKIE_SECURE=true: session cookie only over HTTPS (set it when a TLS proxy fronts the dashboard)
        cookie_secure=values.get("WEB_COOKIE_SECURE", "false").strip().lower() in ("1", "true", "yes"),
        trust_proxy=_proxy_count(values, problems),
    )
    if problems:
        raise ConfigError(problems, source=str(home.dotenv))
    return limits


def session_secret(home: BotHome) -> bytes:
    """The Flask secret, derived (HMAC-SHA256) from storage/keys/login.key; the key file is created 0600
    when absent and refused when group or others can read it. Rotating login.key ends every session."""
    key_path = home.key_file("login")
    if not key_path.exists():
        key_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.urlsafe_b64encode(secrets.token_bytes(32)))
    mode = stat.S_IMODE(key_path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{key_path} is readable by group or others (mode {mode:o}); run chmod 600 on it")
    material = key_path.read_bytes().strip()
    if len(material) < 16:
        raise ConfigError(f"{key_path} is too short to be a key")
    return hmac.new(material, b"tbot-web-session-v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class RbacPolicy:
    enabled: bool
    default_role: Role


class SettingsAccess:
    """The config API (read_env_text, update_env_values, load_settings, masked_items) behind a small cache.

    `api` is normally the module tbot_bot.config.settings_bot; tests pass a stand-in with the same names.
    """

    def __init__(self, home: BotHome, api: Any | None = None, ttl_seconds: float = 5.0) -> None:
        self.home = home
        self._api = api
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, tuple[int, ...], Any] | None = None

    @property
    def api(self) -> Any:
        if self._api is None:
            try:
                self._api = importlib.import_module("tbot_bot.config.settings_bot")
            except ImportError as exc:
                raise ConfigError(f"the bot config API is not available ({exc})") from exc
        return self._api

    def _fingerprint(self) -> tuple[int, ...]:
        marks: list[int] = []
        for p in (self.home.env_bot_enc, self.home.env_bot_plain):
            try:
                st = p.stat()
                marks += [st.st_mtime_ns, st.st_size]
            except FileNotFoundError:
                marks += [0, 0]
        return tuple(marks)

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def settings(self) -> Any:
        """The validated settings; ConfigError when they cannot be read or are invalid."""
        now = time.monotonic()
        mark = self._fingerprint()
        with self._lock:
            if self._cached and self._cached[1] == mark and now - self._cached[0] < self._ttl:
                return self._cached[2]
        try:
            value = self.api.load_settings(self.home)
        except ConfigError:
            raise
        except Exception as exc:  # any failure to read the config closes the dashboard
            raise ConfigError(
                f"the bot configuration could not be read ({type(exc).__name__}: {exc})"
            ) from exc
        with self._lock:
            self._cached = (now, mark, value)
        return value

    def rbac(self) -> RbacPolicy:
        settings = self.settings()
        return RbacPolicy(
            enabled=bool(settings.RBAC_ENABLED), default_role=parse_role(str(settings.DEFAULT_USER_ROLE))
        )
