"""What each operator-managed secret may hold, and the checks `tbot secrets set` and the boot readiness share.

One `SecretSpec` per purpose name (`broker`, `screener`, `smtp`, `alerts`, `acct_api`): the encrypted file it
lives in, the keys it may hold and a validator returning readable problems. The same validators run when the
secret is written and when a boot (or `tbot check`) reads it, so both say the same thing about the same file.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse, urlsplit

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


@dataclass(frozen=True, slots=True)
class SecretSpec:
    name: str  # what the operator types: `tbot secrets set broker`
    file: str  # storage/secrets/<file>.json.enc
    keys: tuple[str, ...]  # every key the secret may hold
    purpose: str  # one line for `tbot secrets list`
    validate: Callable[[Mapping[str, Any], str], list[str]]  # (values, BROKER_CODE) -> problems


def _text(values: Mapping[str, Any], key: str) -> str:
    v = values.get(key)
    return "" if v is None else str(v).strip()


def _need(values: Mapping[str, Any], keys: tuple[str, ...], what: str) -> list[str]:
    missing = [k for k in keys if not _text(values, k)]
    return [f"{', '.join(missing)} missing ({what})"] if missing else []


def _masked(raw: Any) -> str:
    """A secret's value in an error message: its first characters and its length, never the whole (a webhook URL's
    path is its token; a password pasted under the wrong key would be printed)."""
    text = str(raw)
    return repr(text) if len(text) <= 5 else f"{text[:4]!r}... ({len(text)} characters)"


def _url(values: Mapping[str, Any], key: str) -> list[str]:
    raw = _text(values, key)
    if not raw:
        return []
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return [f"{key}={_masked(raw)} is not a URL; use http(s)://host[:port][/path]"]
    return []


def _int(values: Mapping[str, Any], key: str, low: int, high: int) -> list[str]:
    raw = _text(values, key)
    if not raw:
        return []
    try:
        n = int(raw)
    except ValueError:
        return [f"{key}={_masked(raw)} must be a whole number from {low} to {high}"]
    return [] if low <= n <= high else [f"{key}={_masked(raw)} must be a whole number from {low} to {high}"]


def _bool(values: Mapping[str, Any], key: str) -> list[str]:
    raw = values.get(key)
    if raw is None or isinstance(raw, bool) or str(raw).strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return []
    return [f"{key}={_masked(raw)} must be true or false"]


# the vendors' own endpoints, by host: a base URL naming one of them says paper or live as plainly as the switch
VENDOR_HOSTS = {
    "ALPACA": (
        "ALPACA_BASE_URL",
        "ALPACA_PAPER",
        {"paper-api.alpaca.markets": True, "api.alpaca.markets": False},
    ),
    "TRADIER": (
        "TRADIER_BASE_URL",
        "TRADIER_SANDBOX",
        {"sandbox.tradier.com": True, "api.tradier.com": False},
    ),
}


def mode_contradiction(broker_name: str, creds: Mapping[str, Any]) -> str | None:
    """A base URL that is the vendor's live endpoint under a paper switch (or its paper endpoint under a live one):
    the mode shown would be the switch's while the orders go to the URL's. None when they agree, or the URL is
    neither (a proxy, a test server)."""
    if broker_name not in VENDOR_HOSTS:
        return None
    url_key, switch, hosts = VENDOR_HOSTS[broker_name]
    host = (urlsplit(str(creds.get(url_key) or "")).hostname or "").lower()
    if host not in hosts:
        return None
    raw = creds.get(switch)
    paper = True if raw is None else str(raw).strip().lower() in TRUE_WORDS
    if hosts[host] == paper:
        return None
    says = "paper" if hosts[host] else "live"
    return (
        f"{url_key} is {broker_name.title()}'s {says} endpoint ({host}) but {switch} is "
        f"{'true' if paper else 'false'}{' (the default)' if creds.get(switch) is None else ''}: the bot would show "
        f"{'paper' if paper else 'live'} while trading {says}; set {switch}={'true' if hosts[host] else 'false'} "
        f"to trade {says}, or remove {url_key}"
    )


def _mode_agrees(values: Mapping[str, Any], broker_code: str) -> list[str]:
    """Paper or live is said once: a vendor URL contradicting the switch is refused (real money either way)."""
    problem = mode_contradiction(broker_code, values)
    return [problem] if problem else []


def _broker(values: Mapping[str, Any], broker_code: str) -> list[str]:
    if broker_code == "ALPACA":
        problems = _need(values, ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"), "BROKER_NAME=ALPACA")
        problems += _url(values, "ALPACA_BASE_URL") + _url(values, "ALPACA_DATA_URL")
        problems += _bool(values, "ALPACA_PAPER") + _mode_agrees(values, broker_code)
        feed = _text(values, "ALPACA_DATA_FEED")
        if feed and feed not in ("iex", "sip"):
            problems.append(f"ALPACA_DATA_FEED={feed!r} must be iex or sip")
        return problems
    if broker_code == "IBKR":
        problems = _need(values, ("IBKR_HOST", "IBKR_PORT", "IBKR_CLIENT_ID"), "BROKER_NAME=IBKR")
        return problems + _int(values, "IBKR_PORT", 1, 65535) + _int(values, "IBKR_CLIENT_ID", 0, 2**31 - 1)
    if broker_code == "TRADIER":
        problems = _need(values, ("TRADIER_ACCESS_TOKEN", "TRADIER_ACCOUNT_ID"), "BROKER_NAME=TRADIER")
        problems += _url(values, "TRADIER_BASE_URL") + _bool(values, "TRADIER_SANDBOX")
        return problems + _mode_agrees(values, broker_code)
    return []  # the simulated exchange needs no credentials


def _screener(values: Mapping[str, Any], broker_code: str) -> list[str]:
    return _need(values, ("FINNHUB_API_KEY",), "the Finnhub screener") + _url(values, "FINNHUB_BASE_URL")


def _smtp(values: Mapping[str, Any], broker_code: str) -> list[str]:
    problems = _need(values, ("SMTP_HOST", "SMTP_FROM", "SMTP_TO"), "e-mail alerts")
    return problems + _int(values, "SMTP_PORT", 1, 65535) + _bool(values, "SMTP_STARTTLS")


def _alerts(values: Mapping[str, Any], broker_code: str) -> list[str]:
    problems: list[str] = []
    for key in ("SLACK_WEBHOOK_URL", "PAGERDUTY_URL", "SMS_API_URL"):
        problems += _url(values, key)
    if bool(_text(values, "SMS_API_URL")) != bool(_text(values, "SMS_TO")):
        problems.append("SMS alerts need both SMS_API_URL and SMS_TO")
    if _text(values, "PAGERDUTY_URL") and not _text(values, "PAGERDUTY_ROUTING_KEY"):
        problems.append("PAGERDUTY_URL is set without PAGERDUTY_ROUTING_KEY")
    channels = ("SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "SMS_API_URL")
    if not any(_text(values, k) for k in channels):
        problems.append(f"no alert channel configured; set one of {', '.join(channels)}")
    return problems


ACCT_API_DEFAULT_TIMEOUT = 10.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def acct_api_problems(values: Mapping[str, Any]) -> list[str]:
    """What is wrong with an accounting-API credentials object (empty when it is usable)."""
    problems: list[str] = []
    url = str(values.get("ACCT_API_URL") or "").strip().rstrip("/")
    token = str(values.get("ACCT_API_TOKEN") or "").strip()
    parts = urlsplit(url)
    if not url:
        problems.append("ACCT_API_URL is missing (e.g. https://accounting.example.com/api)")
    elif parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"ACCT_API_URL={_masked(url)} must be an https:// URL")
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        # the token travels in every request: plain HTTP is accepted only on this machine
        problems.append(
            f"ACCT_API_URL={_masked(url)} must use https:// (plain http only to 127.0.0.1/localhost)"
        )
    if not token:
        problems.append("ACCT_API_TOKEN is missing")
    raw_timeout = values.get("ACCT_API_TIMEOUT")
    if raw_timeout not in (None, ""):
        try:
            timeout = float(raw_timeout)
            if not 0.1 <= timeout <= 120:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"ACCT_API_TIMEOUT={_masked(raw_timeout)} must be seconds between 0.1 and 120")
    return problems


def _acct_api(values: Mapping[str, Any], broker_code: str) -> list[str]:
    return acct_api_problems(values)


def _backup_upload(values: Mapping[str, Any], broker_code: str) -> list[str]:
    problems = _url(values, "S3_ENDPOINT_URL")
    if bool(_text(values, "AWS_ACCESS_KEY_ID")) != bool(_text(values, "AWS_SECRET_ACCESS_KEY")):
        problems.append("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together")
    return problems


SPECS: dict[str, SecretSpec] = {
    s.name: s
    for s in (
        SecretSpec(
            "broker",
            "broker_credentials",
            (
                "ALPACA_API_KEY",
                "ALPACA_SECRET_KEY",
                "ALPACA_BASE_URL",
                "ALPACA_DATA_URL",
                "ALPACA_PAPER",
                "ALPACA_DATA_FEED",
                "IBKR_HOST",
                "IBKR_PORT",
                "IBKR_CLIENT_ID",
                "IBKR_ACCOUNT",
                "TRADIER_ACCESS_TOKEN",
                "TRADIER_ACCOUNT_ID",
                "TRADIER_BASE_URL",
                "TRADIER_SANDBOX",
                "SIM",
            ),
            "broker API credentials (keys of the home's BROKER_NAME)",
            _broker,
        ),
        SecretSpec(
            "screener",
            "screener_api",
            ("FINNHUB_API_KEY", "FINNHUB_BASE_URL"),
            "Finnhub fundamentals for the screener (every live broker)",
            _screener,
        ),
        SecretSpec(
            "smtp",
            "smtp_credentials",
            ("SMTP_HOST", "SMTP_PORT", "SMTP_FROM", "SMTP_TO", "SMTP_USER", "SMTP_PASS", "SMTP_STARTTLS"),
            "e-mail alerts (optional)",
            _smtp,
        ),
        SecretSpec(
            "alerts",
            "alert_channels",
            (
                "SLACK_WEBHOOK_URL",
                "PAGERDUTY_ROUTING_KEY",
                "PAGERDUTY_URL",
                "SMS_API_URL",
                "SMS_API_TOKEN",
                "SMS_TO",
            ),
            "Slack / PagerDuty / SMS alerts (optional)",
            _alerts,
        ),
        SecretSpec(
            "acct_api",
            "acct_api_credentials",
            ("ACCT_API_URL", "ACCT_API_TOKEN", "ACCT_API_TIMEOUT"),
            "the firm's accounting API",
            _acct_api,
        ),
        SecretSpec(
            "backup_upload",
            "backup_upload_credentials",
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "S3_ENDPOINT_URL", "RSYNC_PASSWORD"),
            "off-site backups: S3 keys (else boto3's own chain) or an rsync daemon password (optional)",
            _backup_upload,
        ),
    )
}

SPEC_BY_FILE = {s.file: s for s in SPECS.values()}


def spec(name: str) -> SecretSpec:
    try:
        return SPECS[name]
    except KeyError:
        hint = difflib.get_close_matches(name, list(SPECS), n=1)
        also = f"; did you mean {hint[0]}?" if hint else ""
        raise KeyError(f"unknown secret {name!r}; use one of {', '.join(SPECS)}{also}") from None


def unknown_keys(s: SecretSpec, values: Mapping[str, Any]) -> list[str]:
    problems = []
    for key in values:
        if key not in s.keys:
            hint = difflib.get_close_matches(key, list(s.keys), n=1)
            also = f"; did you mean {hint[0]}?" if hint else ""
            problems.append(f"{key} is not a {s.name} key (allowed: {', '.join(s.keys)}){also}")
    return problems


def secret_problems(s: SecretSpec, values: Mapping[str, Any], broker_code: str) -> list[str]:
    """Every problem of one secret's values, each prefixed with the file it is about."""
    return [f"{s.file}: {p}" for p in unknown_keys(s, values) + s.validate(values, broker_code)]


def required_secrets(broker_code: str) -> tuple[str, ...]:
    """The secrets a live boot cannot do without; the optional ones are checked only when present."""
    # BROKER_NAME=SIM: replays use the bundled fundamentals and need no credentials
    if broker_code == "SIM":
        return ()
    return ("broker", "screener")


def mask(value: Any) -> str:
    text = "" if value is None else str(value)
    return "(empty)" if not text else "*" * min(8, len(text))
