"""Alerts for fills, exits and failures: always to the log, and to email (SMTP), Slack, PagerDuty Events v2 or
SMS routed by CRITICAL_ALERT_CHANNEL / ROUTINE_ALERT_CHANNEL. Sending happens on a background thread with
bounded retries; a failing channel is logged and never raises into trading.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import itertools
import json
import logging
import os
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tbot_bot.checks import CheckResult
from tbot_bot.support.utils_bot import atomic_write_bytes, utc_now

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.support.path_resolver import BotHome

_log = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEND_TIMEOUT = 10.0  # seconds per attempt and channel
SEND_ATTEMPTS = 3
QUEUE_LIMIT = 1000  # alerts waiting to be sent; beyond this new alerts are logged and dropped
RETRY_AFTER_CAP = 60.0  # seconds: the longest a 429's Retry-After holds a retry of a critical alert
ROUTINE_RETRY_AFTER_CAP = 5.0  # ... and of a routine one
OUTBOX_KEEP = timedelta(days=4)  # an undelivered alert is sent late up to a long weekend after it was raised
SOURCE = "rigd-tbot"


class AlertLevel(StrEnum):
    CRITICAL = "critical"
    ROUTINE = "routine"


class AlertEvent(StrEnum):
    FILL = "fill"
    EXIT = "exit"
    FAILURE = "failure"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Alert:
    level: AlertLevel
    event: AlertEvent
    timestamp: datetime
    strategy: str | None
    ticker: str | None
    pnl: Decimal | None
    trigger: str  # the root cause, e.g. "trailing_stop", "kill_switch: daily loss 5.2% > 5%"
    message: str
    mode: str = ""  # paper, live or replay (set by the notifier): a reader must know whether money is real
    bot: str = ""  # which bot (entity and bot id, set by the notifier): a firm runs several

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", AlertLevel(self.level))
        object.__setattr__(self, "event", AlertEvent(self.event))
        if self.timestamp.tzinfo is None:
            raise ValueError("alert timestamp must be timezone-aware UTC")

    @property
    def subject(self) -> str:
        parts = [f"[{self.level.value.upper()}]"] + ([f"[{self.mode.upper()}]"] if self.mode else [])
        parts += [f"[{self.bot}]"] if self.bot else []
        parts.append(self.event.value)
        parts += [p for p in (self.strategy, self.ticker) if p]
        return " ".join(parts) + f": {self.message}"[:200]

    def text(self) -> str:
        pnl = f"{self.pnl:.2f}" if self.pnl is not None else "n/a"
        return (
            f"{self.subject}\n"
            f"time: {self.timestamp.isoformat()}\nstrategy: {self.strategy or '-'}\n"
            f"ticker: {self.ticker or '-'}\npnl: {pnl}\ntrigger: {self.trigger}\nmessage: {self.message}"
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["level"], d["event"] = self.level.value, self.event.value
        d["timestamp"] = self.timestamp.isoformat()
        d["pnl"] = str(self.pnl) if self.pnl is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        """The alert `as_dict` gave (ValueError/KeyError/TypeError when it is not one)."""
        pnl = d["pnl"]
        return cls(
            AlertLevel(d["level"]), AlertEvent(d["event"]), datetime.fromisoformat(d["timestamp"]), d["strategy"],
            d["ticker"], Decimal(pnl) if pnl is not None else None, d["trigger"], d["message"], d["mode"], d["bot"],
        )  # fmt: skip


# the outbox files this process's notifiers hold now (queued, not yet delivered): never taken over by another
# notifier of the same process
_held_here: set[Path] = set()
_outbox_names = itertools.count()


def _started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, Linux's /proc/<pid>/stat field 22); '' unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 else ""


def _process_tag() -> str:
    """This process as an outbox file names it: its pid and start time (a pid alone is reused, in a container
    at every restart, and a new process under an old writer's pid left its alerts unsent)."""
    return _tag_of(os.getpid())


@functools.lru_cache(maxsize=8)
def _tag_of(pid: int) -> str:
    """Read once per process (a forked child has another pid, so its own entry)."""
    started = _started(pid)
    return f"{pid}@{started}" if started else str(pid)


def _writer_running(tag: str) -> bool:
    """Whether the process an outbox file names (pid[@start]) still runs: the same pid started at the same time."""
    pid, _, started = tag.partition("@")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it runs
    now = _started(int(pid))
    return not (started and now and now != started)


class Outbox:
    """Alerts queued and not yet delivered, a file each (state/alert_outbox/ under the home): a process that ends
    before its worker sent them (a stop whose last alerts outlast the close, a crash, a kill -9) leaves them
    here, and the next notifier of the home (the supervisor's next start) sends them, said as late. An alert a
    channel refused on every attempt stays too (a channel fixed before the next start delivers it). At least
    once: a process killed between a delivery and the file's removal sends that alert again at the next start
    (PagerDuty folds the two by their dedup_key). A file whose writer still runs (the operator desk beside the
    supervisor) is left to it."""

    def __init__(self, folder: Path, log: logging.Logger | None = None) -> None:
        self.folder = folder
        self._log = log or _log

    def keep(self, alert: Alert) -> Path | None:
        """Write the alert before it is queued; None when the folder cannot be written (logged: it is sent all
        the same, only not again after a crash)."""
        path = self.folder / f"{time.time_ns():020d}-{_process_tag()}-{next(_outbox_names)}.json"
        try:
            atomic_write_bytes(path, json.dumps(alert.as_dict(), sort_keys=True).encode(), 0o600)
        except OSError as exc:
            self._log.error("alert outbox %s cannot be written (%s): %s", self.folder, exc, alert.subject)
            return None
        _held_here.add(path)
        return path

    def done(self, path: Path | None) -> None:
        if path is None:
            return
        _held_here.discard(path)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            self._log.error("alert outbox file %s cannot be removed (%s): it may be sent again", path, exc)

    def release(self, path: Path | None) -> None:
        """Left undelivered by this process: the next notifier of the home takes it."""
        if path is not None:
            _held_here.discard(path)

    def left(self, now: datetime, limit: int = QUEUE_LIMIT) -> list[tuple[Path, Alert]]:
        """The alerts earlier processes left undelivered, oldest first, at most `limit`, each taken over by this
        process (renamed under its pid); one older than OUTBOX_KEEP, or unreadable, is logged and removed
        instead."""
        try:
            names = sorted(p for p in self.folder.glob("*.json") if p not in _held_here)
        except OSError:
            return []
        taken: list[tuple[Path, Alert]] = []
        for path in names:
            if len(taken) >= limit:
                break
            stamp, _, rest = path.name.partition("-")
            writer, _, tail = rest.partition("-")
            if writer != _process_tag() and _writer_running(writer):
                continue  # its writer still runs and sends it
            mine = path.with_name(f"{stamp}-{_process_tag()}-{tail}")
            try:
                path.rename(mine)
                alert = Alert.from_dict(json.loads(mine.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue  # another notifier took it first
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._log.error("alert outbox file %s unreadable (%s): removed", path, exc)
                mine.unlink(missing_ok=True)
                continue
            if now - alert.timestamp > OUTBOX_KEEP:
                self._log.error("alert raised %s never delivered; too old to send now: %s",
                                alert.timestamp.isoformat(), alert.subject)  # fmt: skip
                mine.unlink(missing_ok=True)
                continue
            _held_here.add(mine)
            late = f"{alert.message} (raised {alert.timestamp.isoformat()}, sent late: not delivered before)"
            taken.append((mine, replace(alert, message=late)))
        return taken


class ChannelError(Exception):
    """One delivery attempt failed; `retryable` says whether another attempt can help, `retry_after` how long the
    service asked to be left alone first (a 429's Retry-After, in seconds)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message)


def _where(url: str) -> str:
    """A webhook's address as said in logs: its scheme and host. A Slack webhook's path is its secret (and an SMS
    gateway's may be), so the URL itself is never written anywhere."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    raw = e.headers.get("Retry-After") if e.headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: the exponential back-off stands


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise ChannelError."""


def _post_json(
    url: str, body: Mapping[str, Any], headers: Mapping[str, str], timeout: float, *, idempotent: bool = False
) -> int:
    """POST an alert. `idempotent`: the service dedups a repeat (PagerDuty's dedup_key), so an alert whose answer
    was lost is sent again; otherwise not (a second Slack post or SMS)."""
    where = _where(url)
    data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        # 4xx other than 429 means our request or credentials are wrong: retrying will not help
        retryable = e.code == 429 or e.code >= 500
        raise ChannelError(
            f"HTTP {e.code} from {where}", retryable=retryable, retry_after=_retry_after(e)
        ) from e
    except (
        urllib.error.URLError
    ) as e:  # connecting or sending failed: the alert did not arrive, send it again
        raise ChannelError(f"cannot reach {where}: {e.reason}") from e
    except (TimeoutError, OSError) as e:
        if idempotent:  # a repeat is the same incident: losing the page is worse than sending it twice
            raise ChannelError(
                f"no answer from {where} after the alert was sent ({e}); sending it again"
            ) from e
        # sent, then no answer: it may well have arrived, and a resend would post it twice
        raise ChannelError(
            f"no answer from {where} after the alert was sent ({e}); not sent again (it may have arrived)",
            retryable=False,
        ) from e


class SlackChannel:
    name = "slack"

    def __init__(self, webhook_url: str, timeout: float = SEND_TIMEOUT) -> None:
        self.webhook_url, self.timeout = webhook_url, timeout

    def send(self, alert: Alert) -> None:
        _post_json(self.webhook_url, {"text": alert.text()}, {}, self.timeout)


class PagerDutyChannel:
    """Events API v2: POST {routing_key, event_action: trigger, payload{summary, source, severity, ...}}."""

    name = "pagerduty"

    def __init__(
        self, routing_key: str, url: str = PAGERDUTY_EVENTS_URL, timeout: float = SEND_TIMEOUT
    ) -> None:
        self.routing_key, self.url, self.timeout = routing_key, url, timeout

    def send(self, alert: Alert) -> None:
        body = {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            # the same alert sent twice (a retry after a lost reply) is one incident, never two
            "dedup_key": hashlib.sha256(
                json.dumps(
                    [
                        SOURCE,
                        alert.bot,
                        alert.event.value,
                        alert.timestamp.isoformat(),
                        alert.strategy,
                        alert.ticker,
                        alert.trigger,
                    ]
                ).encode()  # fmt: skip
            ).hexdigest(),
            "payload": {
                "summary": alert.subject[:1024],
                "source": f"{SOURCE}/{alert.bot}" if alert.bot else SOURCE,
                "severity": "critical" if alert.level is AlertLevel.CRITICAL else "info",
                "timestamp": alert.timestamp.isoformat(),
                "component": alert.strategy or "bot",
                "group": alert.ticker or "",
                "class": alert.event.value,
                "custom_details": alert.as_dict(),
            },
        }
        _post_json(self.url, body, {}, self.timeout, idempotent=True)


class SmsChannel:
    """A generic SMS gateway: POST JSON {"to", "message"} with `Authorization: Bearer SMS_API_TOKEN`."""

    name = "sms"

    def __init__(self, api_url: str, token: str, to: str, timeout: float = SEND_TIMEOUT) -> None:
        self.api_url, self.token, self.to, self.timeout = api_url, token, to, timeout

    def send(self, alert: Alert) -> None:
        pnl = f" pnl {alert.pnl:.2f}" if alert.pnl is not None else ""
        text = f"{alert.subject}{pnl} ({alert.trigger}) {alert.timestamp:%H:%MZ}"[:320]
        _post_json(
            self.api_url,
            {"to": self.to, "message": text},
            {"Authorization": f"Bearer {self.token}"},
            self.timeout,
        )


class EmailChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self.user, self.password, self.starttls, self.timeout = user, password, starttls, timeout

    def send(self, alert: Alert) -> None:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = alert.subject, self.sender, ", ".join(self.recipients)
        # RFC 5322 wants a Date, and mail without a Message-ID is scored as spam: an alert must arrive
        msg["Date"] = email.utils.format_datetime(alert.timestamp)
        msg["Message-ID"] = email.utils.make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg.set_content(alert.text())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                # SMTP_STARTTLS=true: upgrade before credentials cross the wire, to a server whose certificate
                # is trusted and names the host (smtplib's default context checks neither: a man in the middle
                # would have read the password)
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as e:
            raise ChannelError(f"SMTP login refused by {self.host}: {e.smtp_code}", retryable=False) from e
        except (smtplib.SMTPException, OSError) as e:
            raise ChannelError(f"SMTP {self.host}:{self.port} failed: {e}") from e


class Notifier:
    """The one alert interface the daemon uses. `notify` never raises and never waits for the network."""

    def __init__(
        self,
        settings: BotSettings,
        channels: Mapping[str, Channel] | None = None,
        *,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = SEND_ATTEMPTS,
        background: bool = True,
        mode: str = "",
        bot: str = "",
        outbox: Outbox | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.channels = dict(channels or {})
        self.mode, self.bot = mode, bot
        self.critical_channel = settings.CRITICAL_ALERT_CHANNEL
        self.routine_channel = settings.ROUTINE_ALERT_CHANNEL
        self.toggles = {
            AlertEvent.FILL: settings.NOTIFY_ON_FILL,
            AlertEvent.EXIT: settings.NOTIFY_ON_EXIT,
            AlertEvent.FAILURE: settings.NOTIFY_ON_FAILURE,
        }
        self._log = log or _log
        self._sleep = sleep
        self.attempts = max(1, attempts)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        # critical alerts first: a kill switch's page is not sent after a flatten's exit posts (nor lost behind
        # them when the notifier closes); within a level, in the order raised
        self._queue: queue.PriorityQueue[tuple[int, int, Alert | None, Path | None]] = queue.PriorityQueue(
            maxsize=QUEUE_LIMIT
        )
        self._order = itertools.count()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        # a background notifier's alerts are kept on disk until sent (sent late by the next one if this process
        # ends first); a synchronous one reports its result to the command that called it
        self._outbox = outbox if background and self.channels else None
        if background and self.channels:
            if self._outbox is not None:
                # at most half the queue: new alerts keep room; what is not taken now stays for the next start
                for path, alert in self._outbox.left((now or utc_now)(), limit=QUEUE_LIMIT // 2):
                    self._enqueue(alert, path)
            self._worker = threading.Thread(target=self._run, name="notifier", daemon=True)
            self._worker.start()

    def route(self, alert: Alert) -> str:
        # CRITICAL_ALERT_CHANNEL / ROUTINE_ALERT_CHANNEL: which outside channel each level goes to
        return self.critical_channel if alert.level is AlertLevel.CRITICAL else self.routine_channel

    def notify(self, alert: Alert) -> bool:
        """Log the alert and queue it for its channel; False when a toggle suppresses it. Never raises."""
        try:
            # NOTIFY_ON_FILL / NOTIFY_ON_EXIT / NOTIFY_ON_FAILURE=false: that event is not alerted at all
            if not self.toggles.get(alert.event, True):
                return False
            if self.mode and not alert.mode:
                alert = replace(alert, mode=self.mode)
            if self.bot and not alert.bot:
                alert = replace(alert, bot=self.bot)
            level = logging.WARNING if alert.level is AlertLevel.CRITICAL else logging.INFO
            self._log.log(level, "alert %s", json.dumps(alert.as_dict(), sort_keys=True))
            channel = self.route(alert)
            if channel not in self.channels:
                return True  # log-only: the channel has no configuration (reported by self_check)
            if self._worker is None:
                self._deliver(alert)
                return True
            if self._queue.full():
                raise queue.Full
            self._enqueue(alert, self._outbox.keep(alert) if self._outbox is not None else None)
            return True
        except queue.Full:
            self.dropped += 1
            self._log.error("alert queue full (%d); dropped: %s", QUEUE_LIMIT, alert.subject)
            return False
        except Exception:  # a notifier bug must never reach the trading loop
            self._log.exception("notifier failed to handle alert")
            return False

    def send(
        self,
        level: str,
        event: str,
        *,
        timestamp: datetime,
        trigger: str,
        message: str,
        strategy: str | None = None,
        ticker: str | None = None,
        pnl: Decimal | None = None,
    ) -> bool:
        """Build and notify in one call; a malformed alert is logged, never raised."""
        try:
            alert = Alert(
                AlertLevel(level), AlertEvent(event), timestamp, strategy, ticker, pnl, trigger, message
            )
        except (ValueError, TypeError):
            self._log.exception("malformed alert (%s/%s): %s", level, event, message)
            return False
        return self.notify(alert)

    def _enqueue(self, alert: Alert, path: Path | None) -> None:
        rank = 0 if alert.level is AlertLevel.CRITICAL else 1
        self._queue.put_nowait((rank, next(self._order), alert, path))

    def _run(self) -> None:
        while True:
            _, _, alert, path = self._queue.get()
            delivered = False
            try:
                if alert is None:
                    return
                if self._stopping.is_set():
                    self.failed += 1
                    kept = "; kept for the next start" if path is not None else ""
                    self._log.error("alert NOT delivered (notifier closed first%s): %s", kept, alert.subject)
                    continue
                delivered = self._deliver(alert)
            except Exception:
                self._log.exception("notifier worker error")
            finally:
                if self._outbox is not None:
                    (self._outbox.done if delivered else self._outbox.release)(path)
                self._queue.task_done()

    def _deliver(self, alert: Alert) -> bool:
        name = self.route(alert)
        channel = self.channels[name]
        for attempt in range(1, self.attempts + 1):
            try:
                channel.send(alert)
                self.sent += 1
                return True
            except ChannelError as e:
                self._log.warning(
                    "alert channel %s attempt %d/%d failed: %s", name, attempt, self.attempts, e
                )
                if not e.retryable or attempt == self.attempts or self._stopping.is_set():
                    break
                if e.retry_after is not None:
                    # the service said how long to wait (a 429's Retry-After), within a bound: a page waits up to a
                    # minute; a routine post no more than a few seconds (the worker is shared: a page queued
                    # behind it must not wait minutes)
                    critical = alert.level is AlertLevel.CRITICAL
                    self._sleep(min(e.retry_after, RETRY_AFTER_CAP if critical else ROUTINE_RETRY_AFTER_CAP))
                    continue
            except Exception as e:
                self._log.warning(
                    "alert channel %s attempt %d/%d crashed: %r", name, attempt, self.attempts, e
                )
                if attempt == self.attempts or self._stopping.is_set():
                    break
            self._sleep(float(2 ** (attempt - 1)))
        self.failed += 1
        kept = "kept for the next start" if self._outbox is not None else "logged only"
        self._log.error("alert NOT delivered via %s (%s): %s", name, kept, alert.subject)
        return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to `timeout` seconds for queued alerts to be sent; True if the queue is empty."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._queue.unfinished_tasks == 0

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (bounded by timeout) and stop the worker."""
        if self._worker is None:
            return
        self.flush(timeout)
        self._stopping.set()  # whatever is still queued is logged as undelivered, not retried
        try:
            self._queue.put_nowait((2, next(self._order), None, None))  # after every alert still queued
        except queue.Full:
            pass
        self._worker.join(timeout=0.5)
        self._worker = None

    def self_check(self) -> CheckResult:
        missing = sorted({self.critical_channel, self.routine_channel} - set(self.channels) - {LOG_ONLY})
        ctx: dict[str, Any] = {
            "configured": sorted(self.channels),
            "critical": self.critical_channel,
            "routine": self.routine_channel,
        }
        if missing:
            ctx["log_only"] = missing
            return CheckResult(True, f"alert channel(s) {', '.join(missing)} not configured: log only", ctx)
        return CheckResult(True, "ok", ctx)


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() in ("1", "true", "yes"))


def channels_from_secrets(smtp: Mapping[str, Any], alerts: Mapping[str, Any]) -> dict[str, Channel]:
    """Build every channel whose configuration is complete."""
    channels: dict[str, Channel] = {}
    if smtp.get("SMTP_HOST") and smtp.get("SMTP_FROM") and smtp.get("SMTP_TO"):
        to = smtp["SMTP_TO"]
        recipients = [t.strip() for t in (to.split(",") if isinstance(to, str) else to) if t.strip()]
        channels["email"] = EmailChannel(
            str(smtp["SMTP_HOST"]),
            int(smtp.get("SMTP_PORT") or 587),
            str(smtp["SMTP_FROM"]),
            recipients,
            user=smtp.get("SMTP_USER") or None,
            password=smtp.get("SMTP_PASS") or None,
            starttls=_truthy(smtp.get("SMTP_STARTTLS", "true")),
        )
    if alerts.get("SLACK_WEBHOOK_URL"):
        channels["slack"] = SlackChannel(str(alerts["SLACK_WEBHOOK_URL"]))
    if alerts.get("PAGERDUTY_ROUTING_KEY"):
        url = str(alerts.get("PAGERDUTY_URL") or PAGERDUTY_EVENTS_URL)
        channels["pagerduty"] = PagerDutyChannel(str(alerts["PAGERDUTY_ROUTING_KEY"]), url)
    if alerts.get("SMS_API_URL") and alerts.get("SMS_TO"):
        channels["sms"] = SmsChannel(
            str(alerts["SMS_API_URL"]), str(alerts.get("SMS_API_TOKEN") or ""), str(alerts["SMS_TO"])
        )
    return channels


# what each outside channel needs: (the `tbot secrets set` name, the keys that must be set)
CHANNEL_SECRETS: dict[str, tuple[str, str]] = {
    "email": ("smtp", "SMTP_HOST, SMTP_FROM and SMTP_TO"),
    "slack": ("alerts", "SLACK_WEBHOOK_URL"),
    "pagerduty": ("alerts", "PAGERDUTY_ROUTING_KEY"),
    "sms": ("alerts", "SMS_API_URL and SMS_TO"),
}
LOG_ONLY = "log"  # CRITICAL_ALERT_CHANNEL / ROUTINE_ALERT_CHANNEL=log: no outside alerts, by choice


def home_channels(home: BotHome) -> dict[str, Channel]:
    """Every channel the home's smtp_credentials and alert_channels secrets configure completely."""
    from tbot_bot.support.decrypt_secrets import load_secret_json

    def secret(name: str) -> Mapping[str, Any]:
        if not home.secret_file(name).exists():
            return {}
        return load_secret_json(home, name)

    return channels_from_secrets(secret("smtp_credentials"), secret("alert_channels"))


def missing_channel_problem(channel: str, configured: Mapping[str, Any], home_root: Any) -> str | None:
    """Why `channel` cannot deliver (naming the secret to set), or None when it can or is `log`."""
    if channel == LOG_ONLY or channel in configured:
        return None
    name, keys = CHANNEL_SECRETS[channel]
    return (
        f"CRITICAL_ALERT_CHANNEL={channel} but {keys} is not set: kill switch and outage alerts would go "
        f"nowhere; set it with `tbot secrets set {name} --home {home_root}`, or choose "
        f"CRITICAL_ALERT_CHANNEL=log to run without outside alerts"
    )


@dataclass(frozen=True, slots=True)
class DeliveryCheck:
    channel: str
    arrived: bool
    detail: str  # what the receiving end said, or why nothing was sent


def send_test_alerts(
    home: BotHome, settings: BotSettings, alert: Alert, only: str | None = None
) -> list[DeliveryCheck]:
    """`tbot alerts test`: one attempt per channel, no retry, so the answer is the channel's truth now.

    Every configured channel is tried, and a channel the settings route to but no secret configures is
    reported as not configured (naming the secret). `only` restricts the test to one channel."""
    channels = home_channels(home)
    # CRITICAL_ALERT_CHANNEL / ROUTINE_ALERT_CHANNEL: the channels alerts go to are tested even if unconfigured
    routed = {settings.CRITICAL_ALERT_CHANNEL, settings.ROUTINE_ALERT_CHANNEL} - {LOG_ONLY}
    names = [only] if only else sorted(set(channels) | routed)
    results = []
    for name in names:
        channel = channels.get(name)
        if channel is None:
            secret, keys = CHANNEL_SECRETS[name]
            detail = f"not configured: set {keys} with `tbot secrets set {secret} --home {home.root}`"
            results.append(DeliveryCheck(name, False, detail))
            continue
        try:
            channel.send(alert)
        except ChannelError as e:
            results.append(DeliveryCheck(name, False, str(e)))
            continue
        except Exception as e:  # a channel bug is reported like a failed delivery, never a traceback
            results.append(DeliveryCheck(name, False, f"{type(e).__name__}: {e}"))
            continue
        results.append(DeliveryCheck(name, True, "accepted by the receiving server"))
    return results


def bot_label(home: BotHome) -> str:
    """'<ENTITY> <BOT_ID>' of the home's bot identity for alerts; '' when it cannot be read (never an error)."""
    from tbot_bot.accounting.accounting_config import load_identity
    from tbot_bot.errors import TbotError

    try:
        identity = load_identity(home)
    except (TbotError, OSError, ValueError):
        return ""
    return f"{identity.ENTITY_CODE} {identity.BOT_ID}"


def build_notifier(
    settings: BotSettings,
    home: BotHome,
    *,
    log: logging.Logger | None = None,
    sleep: Callable[[float], None] = time.sleep,
    background: bool = True,
    mode: str = "",
    now: Callable[[], datetime] | None = None,
) -> Notifier:
    """Channels from smtp_credentials and alert_channels secrets; absent secrets mean log only.
    `mode` (paper, live, replay) is stamped on every alert. A background notifier first sends what an earlier
    process of the home left in its outbox (Outbox); `now`: the run's clock (a replay's alerts carry its day)."""
    channels = home_channels(home)
    outbox = Outbox(home.state_dir / "alert_outbox", log)
    notifier = Notifier(
        settings, channels, log=log, sleep=sleep, background=background, mode=mode, bot=bot_label(home),
        outbox=outbox, now=now,
    )  # fmt: skip
    check = notifier.self_check()
    if check.reason != "ok":
        (log or _log).warning("notifier: %s", check.reason)
    return notifier


def alert_from_command(
    home: BotHome, trigger: str, message: str, level: AlertLevel = AlertLevel.CRITICAL
) -> str:
    """An alert (critical unless told) from a command that runs outside the supervisor (`tbot backup create|upload` under
    tbot-backup.service, `tbot rebalance check`): sent now through the home's routed channel, with the usual
    retries, before the process ends. Returns what happened, for the command's own output; never raises."""
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.errors import TbotError
    from tbot_bot.support.trading_mode import trading_mode

    try:
        settings = load_settings(home)
        notifier = build_notifier(
            settings, home, background=False, mode=str(trading_mode(home, settings.BROKER_NAME))
        )
    except (TbotError, OSError, ValueError) as exc:
        return f"alert not sent (the configuration cannot be read: {exc})"
    event = AlertEvent.FAILURE if level is AlertLevel.CRITICAL else AlertEvent.INFO
    alert = Alert(level, event, utc_now(), None, None, None, trigger, message)
    channel = notifier.route(alert)
    if not notifier.notify(alert):
        return "alert not sent (NOTIFY_ON_FAILURE=false)"
    if channel not in notifier.channels:
        return f"alert logged only ({channel} is not a configured channel)"
    return f"alert sent via {channel}" if notifier.sent else f"alert NOT delivered via {channel}"
