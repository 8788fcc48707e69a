"""Notifier against real local servers: SMTP (aiosmtpd), Slack/PagerDuty/SMS webhooks; failures never escape."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fakes.smtp_server import FakeSmtp, free_port
from fakes.webhook_server import FakeWebhooks
from helpers import make_settings

from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.trading.notifier_bot import (
    Alert,
    AlertEvent,
    AlertLevel,
    EmailChannel,
    Notifier,
    PagerDutyChannel,
    SlackChannel,
    SmsChannel,
    build_notifier,
)

TS = datetime(2026, 11, 25, 14, 45, tzinfo=UTC)


def fill_alert(**kw: object) -> Alert:
    base: dict[str, object] = dict(
        level="routine", event="fill", timestamp=TS, strategy="open", ticker="AAPL", pnl=None,
        trigger="breakout", message="bought 10 AAPL @ 190.12",
    )  # fmt: skip
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def failure_alert() -> Alert:
    return Alert(AlertLevel.CRITICAL, AlertEvent.FAILURE, TS, "mid", None, Decimal("-125.50"),
                 "kill_switch: daily loss 5.2% > DAILY_LOSS_LIMIT 5%", "trading halted")  # fmt: skip


@pytest.fixture
def hooks() -> Iterator[FakeWebhooks]:
    with FakeWebhooks() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


class Sleeps(list[float]):
    def __call__(self, s: float) -> None:
        self.append(s)


def test_alert_content() -> None:
    a = failure_alert()
    text = a.text()
    for part in ("2026-11-25T14:45:00+00:00", "mid", "-125.50", "kill_switch", "trading halted"):
        assert part in text
    assert a.as_dict()["level"] == "critical" and a.as_dict()["pnl"] == "-125.50"
    with pytest.raises(ValueError):
        fill_alert(level="loud")
    with pytest.raises(ValueError):
        fill_alert(timestamp=datetime(2026, 1, 1))  # noqa: DTZ001


def test_email_over_smtp(smtp: FakeSmtp) -> None:
    ch = EmailChannel(
        "127.0.0.1", smtp.port, "bot@example.test", ["ops@example.test", "cfo@example.test"], starttls=False
    )
    n = Notifier(make_settings(ROUTINE_ALERT_CHANNEL="email"), {"email": ch})
    assert n.notify(fill_alert())
    assert n.flush(5)
    n.close()
    mail_from, rcpts, msg = smtp.messages[0]
    assert mail_from == "bot@example.test" and rcpts == ["ops@example.test", "cfo@example.test"]
    assert "[ROUTINE] fill open AAPL" in msg["Subject"]
    assert "trigger: breakout" in msg.get_payload()


def test_pagerduty_events_v2_shape(hooks: FakeWebhooks) -> None:
    ch = PagerDutyChannel("R0UTINGKEY", hooks.url("/v2/enqueue"))
    n = Notifier(make_settings(CRITICAL_ALERT_CHANNEL="pagerduty"), {"pagerduty": ch})
    n.notify(failure_alert())
    assert n.flush(5)
    n.close()
    body = hooks.on("/v2/enqueue")[0].body
    assert body["routing_key"] == "R0UTINGKEY" and body["event_action"] == "trigger"
    payload = body["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "rigd-tbot"
    assert payload["timestamp"] == TS.isoformat() and payload["custom_details"]["pnl"] == "-125.50"
    assert payload["custom_details"]["trigger"].startswith("kill_switch")


def test_slack_and_sms(hooks: FakeWebhooks) -> None:
    chans = {
        "slack": SlackChannel(hooks.url("/slack/T000/B000")),
        "sms": SmsChannel(hooks.url("/sms/send"), "tok", "+15550100"),
    }
    n = Notifier(make_settings(CRITICAL_ALERT_CHANNEL="sms", ROUTINE_ALERT_CHANNEL="slack"), chans)
    n.notify(fill_alert())
    n.notify(failure_alert())
    assert n.flush(5)
    n.close()
    assert "bought 10 AAPL" in hooks.on("/slack/T000/B000")[0].body["text"]
    sms = hooks.on("/sms/send")[0]
    assert sms.body["to"] == "+15550100" and "pnl -125.50" in sms.body["message"]
    assert sms.headers["Authorization"] == "Bearer tok"
    assert len(sms.body["message"]) <= 320


def test_toggles_suppress_events(hooks: FakeWebhooks) -> None:
    settings = make_settings(NOTIFY_ON_FILL="false", NOTIFY_ON_EXIT="true", ROUTINE_ALERT_CHANNEL="slack")
    n = Notifier(settings, {"slack": SlackChannel(hooks.url("/s"))})
    assert n.notify(fill_alert()) is False
    assert n.notify(fill_alert(event="exit", pnl=Decimal("12.5"), trigger="trailing_stop")) is True
    assert n.flush(5)
    n.close()
    assert len(hooks.on("/s")) == 1 and "exit" in hooks.on("/s")[0].body["text"]
    off = Notifier(make_settings(NOTIFY_ON_FAILURE="false"), {}, background=False)
    assert off.notify(failure_alert()) is False


def test_failing_channel_is_retried_then_delivered(hooks: FakeWebhooks) -> None:
    sleeps = Sleeps()
    hooks.fail_next(2, 503)
    n = Notifier(
        make_settings(ROUTINE_ALERT_CHANNEL="slack"), {"slack": SlackChannel(hooks.url("/s"))}, sleep=sleeps
    )
    n.notify(fill_alert())
    assert n.flush(5)
    n.close()
    assert sleeps == [1.0, 2.0] and n.sent == 1 and len(hooks.on("/s")) == 1


def test_dead_channels_never_raise_or_stop_anything(
    caplog: pytest.LogCaptureFixture, hooks: FakeWebhooks
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nothing-listens"
    chans = {
        "slack": SlackChannel(dead, timeout=1),
        "email": EmailChannel("127.0.0.1", free_port(), "a@b.test", ["c@d.test"], starttls=False, timeout=1),
        "pagerduty": PagerDutyChannel("k", hooks.url("/v2/enqueue")),
    }
    hooks.fail_next(1, 400)  # a 4xx is not retried
    sleeps = Sleeps()
    n = Notifier(
        make_settings(CRITICAL_ALERT_CHANNEL="pagerduty", ROUTINE_ALERT_CHANNEL="slack"), chans, sleep=sleeps
    )
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert n.notify(fill_alert()) is True
        assert n.notify(failure_alert()) is True
        assert n.flush(10)
    n.close()
    assert n.failed == 4 and n.sent == 0
    assert sleeps.count(1.0) == 3  # each routine alert: 3 attempts, 2 backoffs; the 400 got none
    assert "alert NOT delivered via slack" in caplog.text and "HTTP 400" in caplog.text


def test_slow_channel_does_not_block_notify(hooks: FakeWebhooks) -> None:
    hooks.delay = 0.5
    n = Notifier(make_settings(ROUTINE_ALERT_CHANNEL="slack"), {"slack": SlackChannel(hooks.url("/s"))})
    start = time.monotonic()
    for _ in range(5):
        n.notify(fill_alert())
    # a notify that waited for the channel would take the server's 0.5 s on the first alert alone
    assert time.monotonic() - start < 0.5
    n.close(timeout=0.1)  # bounded even with work left
    assert n._worker is None
    # the one request in flight finishes; the rest are dropped, not retried
    deadline = time.monotonic() + 30
    while n.sent + n.failed < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert n.sent <= 2 and n.sent + n.failed == 5


def test_without_channel_secrets_alerts_go_to_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = build_notifier(make_settings(), BotHome(tmp_path), background=False)
    with caplog.at_level(logging.INFO):
        assert n.notify(failure_alert())
    assert "trading halted" in caplog.text and "kill_switch" in caplog.text
    check = n.self_check()
    assert check.ok and "log only" in check.reason


def test_build_notifier_from_secrets(tmp_path: Path, smtp: FakeSmtp, hooks: FakeWebhooks) -> None:
    home = BotHome(tmp_path)
    assert build_notifier(make_settings(), home, background=False).channels == {}
    save_secret_json(home, "smtp_credentials", {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_USER": "", "SMTP_PASS": "",
        "SMTP_FROM": "bot@example.test", "SMTP_TO": "ops@example.test", "SMTP_STARTTLS": "false",
    })  # fmt: skip
    save_secret_json(home, "alert_channels", {
        "SLACK_WEBHOOK_URL": hooks.url("/slack"), "PAGERDUTY_ROUTING_KEY": "rk",
        "PAGERDUTY_URL": hooks.url("/v2/enqueue"), "SMS_API_URL": hooks.url("/sms"), "SMS_API_TOKEN": "t", "SMS_TO": "+1555",
    })  # fmt: skip
    n = build_notifier(make_settings(CRITICAL_ALERT_CHANNEL="pagerduty", ROUTINE_ALERT_CHANNEL="email"), home)
    assert sorted(n.channels) == ["email", "pagerduty", "slack", "sms"]
    assert n.self_check().reason == "ok"
    n.notify(fill_alert())
    n.notify(failure_alert())
    assert n.flush(5)
    n.close()
    assert len(smtp.messages) == 1 and len(hooks.on("/v2/enqueue")) == 1


def test_send_builds_alerts_and_swallows_mistakes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = build_notifier(make_settings(), BotHome(tmp_path), background=False)
    assert n.send("critical", "failure", timestamp=TS, trigger="watchdog", message="broker down")
    with caplog.at_level(logging.ERROR):
        assert n.send("loud", "failure", timestamp=TS, trigger="x", message="y") is False
        assert (
            n.send("routine", "fill", timestamp=datetime(2026, 1, 1), trigger="x", message="naive") is False
        )  # noqa: DTZ001
    assert "malformed alert" in caplog.text


def test_an_alert_whose_answer_is_lost_is_posted_once_and_paged_again_under_one_dedup_key() -> None:
    """The receiver takes the alert but answers after the timeout. A Slack post is not sent again (a second post);
    a PagerDuty page is, since its stable dedup_key makes a repeat the same incident (PagerDuty's Events API v2:
    retry on a network error), and a lost page is worse than a repeated one."""
    from tbot_bot.trading.notifier_bot import Notifier, PagerDutyChannel, SlackChannel

    with FakeWebhooks() as hooks:
        hooks.delay = 1.5
        notifier = Notifier(
            make_settings(CRITICAL_ALERT_CHANNEL="pagerduty", ROUTINE_ALERT_CHANNEL="slack"),
            {"pagerduty": PagerDutyChannel("RK", hooks.url("/v2/enqueue"), timeout=0.5),
             "slack": SlackChannel(hooks.url("/slack"), timeout=0.5)},
            background=False, sleep=lambda _: None, bot="RGL TB01", attempts=2,
        )  # fmt: skip
        at = datetime(2011, 1, 25, 15, 0, tzinfo=UTC)
        notifier.send(
            "critical", "failure", timestamp=at, trigger="kill_switch", message="kill switch tripped"
        )
        notifier.send(
            "routine", "exit", timestamp=at, trigger="trailing_stop", message="closed", ticker="SPY"
        )
        time.sleep(2.0)  # the slow answers
        pages = hooks.on("/v2/enqueue")
        (post,) = hooks.on("/slack")
    assert len(pages) == 2 and len({p.body["dedup_key"] for p in pages}) == 1  # one incident at PagerDuty
    assert (
        len(pages[0].body["dedup_key"]) == 64 and pages[0].body["payload"]["source"] == "rigd-tbot/RGL TB01"
    )
    assert "[RGL TB01]" in post.body["text"]  # which bot: a firm runs several


SECRET_PATH = "/services/T0001/B0001/XXXXsecretXXXX"  # a Slack webhook's path is its token


def test_a_webhooks_secret_path_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    from tbot_bot.trading.notifier_bot import Notifier, SlackChannel

    with FakeWebhooks() as hooks:
        hooks.fail_next(1, 404, b"no_service")  # a revoked webhook: Slack answers in plain text
        n = Notifier(
            make_settings(ROUTINE_ALERT_CHANNEL="slack"), {"slack": SlackChannel(hooks.url(SECRET_PATH))},
            background=False, sleep=lambda _: None,
        )  # fmt: skip
        with caplog.at_level(logging.WARNING):
            n.notify(fill_alert())
    assert "HTTP 404 from http://127.0.0.1" in caplog.text and "XXXXsecretXXXX" not in caplog.text


def test_a_rate_limited_page_waits_as_the_service_asks_and_a_dropped_one_is_sent_again() -> None:
    """PagerDuty and Slack answer a burst with 429 and Retry-After; the notifier waited 1 s and 2 s and lost the
    page. A page whose connection closed without an answer was not sent again, although its dedup_key makes a
    repeat harmless."""
    from tbot_bot.trading.notifier_bot import RETRY_AFTER_CAP, Notifier, PagerDutyChannel

    with FakeWebhooks() as hooks:
        hooks.fail_next(2, 429, b'{"status":"throttle event"}', {"Retry-After": "30"})
        waited: list[float] = []
        n = Notifier(
            make_settings(CRITICAL_ALERT_CHANNEL="pagerduty"),
            {"pagerduty": PagerDutyChannel("RK", hooks.url("/v2/enqueue"))},
            background=False, sleep=waited.append,
        )  # fmt: skip
        n.notify(failure_alert())
        assert n.sent == 1 and waited == [30.0, 30.0] and RETRY_AFTER_CAP >= 30
        hooks.drop_next(1)  # the request went out; the connection closed with no answer
        n.notify(failure_alert())
        assert n.sent == 2 and len(hooks.on("/v2/enqueue")) == 2


def test_critical_alerts_are_sent_before_routine_ones_queued_earlier() -> None:
    """A flatten's exit posts queued ahead of the kill switch's page on a slow Slack: the page waited behind them
    and was lost when the notifier closed at the exit."""
    from tbot_bot.trading.notifier_bot import Notifier, PagerDutyChannel, SlackChannel

    with FakeWebhooks() as slack, FakeWebhooks() as pagerduty:
        slack.delay = 1.0
        n = Notifier(
            make_settings(CRITICAL_ALERT_CHANNEL="pagerduty", ROUTINE_ALERT_CHANNEL="slack"),
            {"slack": SlackChannel(slack.url("/s")), "pagerduty": PagerDutyChannel("RK", pagerduty.url("/v2/enqueue"))},
        )  # fmt: skip
        for _ in range(8):
            n.notify(fill_alert(event="exit"))
        n.notify(failure_alert())
        n.close(timeout=2.5)
        assert len(pagerduty.on("/v2/enqueue")) == 1


def test_an_email_alert_has_a_date_and_a_message_id() -> None:
    from tbot_bot.trading.notifier_bot import EmailChannel

    with FakeSmtp() as smtp:
        EmailChannel("127.0.0.1", smtp.port, "bot@example.test", ["ops@example.test"], starttls=False).send(
            fill_alert()
        )
        msg = smtp.messages[0][2]
    assert msg["Date"] and msg["Message-ID"].endswith("@example.test>")


def test_starttls_refuses_a_server_whose_certificate_is_not_trusted(tmp_path: Path) -> None:
    """smtplib's STARTTLS without a context checks no certificate: a man in the middle read the SMTP password."""
    import datetime as dt
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from tbot_bot.trading.notifier_bot import ChannelError, EmailChannel

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    stolen: list[bytes] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        stolen.append(auth_data.password)
        return AuthResult(success=True)

    class Accept:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "250 OK"

    port = free_port()
    server = Controller(
        Accept(), hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )  # fmt: skip
    server.start()
    try:
        channel = EmailChannel(
            "127.0.0.1",
            port,
            "bot@example.test",
            ["ops@example.test"],
            user="bot",
            password="hunter2",
            timeout=5,
        )
        with pytest.raises(ChannelError, match="SMTP 127.0.0.1"):
            channel.send(fill_alert())
    finally:
        server.stop()
    assert stolen == []


def test_alerts_a_process_left_undelivered_are_sent_late_by_the_next_start(tmp_path: Path) -> None:
    """A stop whose alerts outlast the notifier's close (a slow Slack), or a crash, lost them for good while the
    journal had marked them sent: they are kept on disk until delivered and the next start sends them, said as
    late (PagerDuty folds a repeat under its dedup_key)."""
    from tbot_bot.trading.notifier_bot import Outbox

    box = tmp_path / "alert_outbox"
    settings = make_settings(CRITICAL_ALERT_CHANNEL="pagerduty", ROUTINE_ALERT_CHANNEL="slack")
    with FakeWebhooks() as slack, FakeWebhooks() as pagerduty:
        chans = {
            "slack": SlackChannel(slack.url("/s")),
            "pagerduty": PagerDutyChannel("RK", pagerduty.url("/v2/e")),
        }
        slack.delay = 1.0
        first = Notifier(settings, chans, outbox=Outbox(box), now=lambda: TS)
        first.notify(fill_alert(event="exit", message="sold 0"))
        deadline = time.monotonic() + 5
        while first._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.005)  # the worker holds it (in flight): a worker slow to start took the page first
        for i in range(1, 4):
            first.notify(fill_alert(event="exit", message=f"sold {i}"))
        first.notify(failure_alert())
        first.close(timeout=0.3)  # the stop's exit: all but the post in flight wait behind a slow Slack
        time.sleep(1.2)  # the one post in flight ends
        sent_first = [r.body["text"] for r in slack.on("/s")]
        assert len(sent_first) == 1 and len(list(box.glob("*.json"))) == 4 and not pagerduty.on("/v2/e")
        slack.delay = 0
        second = Notifier(settings, chans, outbox=Outbox(box), now=lambda: TS)
        assert second.flush(10)
        second.close()
        late = [r.body["text"] for r in slack.on("/s")][1:]
        assert len(late) == 3 and all("sent late: not delivered before" in t for t in late)
        assert all(TS.isoformat() in t for t in late)
        sold = sorted(t.split("message: ")[1].split(" (")[0].strip() for t in [*sent_first, *late])
        assert sold == [f"sold {i}" for i in range(4)]
        page = pagerduty.on("/v2/e")
        assert len(page) == 1 and "sent late" in page[0].body["payload"]["summary"]
        assert list(box.glob("*.json")) == []


def test_the_outbox_leaves_a_running_writers_alerts_and_drops_stale_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import subprocess
    import sys
    from datetime import timedelta

    from tbot_bot.trading.notifier_bot import OUTBOX_KEEP, Outbox

    box = tmp_path / "alert_outbox"
    box.mkdir()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    try:
        old = fill_alert(message="from last week", timestamp=TS - OUTBOX_KEEP - timedelta(minutes=1))
        for name, alert in (
            (f"{1:020d}-{running.pid}-0.json", fill_alert(message="the desk's, still sending")),
            (f"{2:020d}-{ended.pid}-0.json", fill_alert(message="a killed supervisor's")),
            (f"{3:020d}-{ended.pid}-1.json", old),
        ):
            (box / name).write_text(json.dumps(alert.as_dict()))
        (box / f"{4:020d}-{ended.pid}-2.json").write_text("{not json")
        with caplog.at_level(logging.ERROR):
            taken = Outbox(box).left(TS)
        assert [a.message.split(" (")[0] for _, a in taken] == ["a killed supervisor's"]
        from tbot_bot.trading.notifier_bot import _process_tag

        assert taken[0][0].name.split("-")[1] == _process_tag()  # taken over: renamed as ours
        assert "too old to send now" in caplog.text and "from last week" in caplog.text
        assert "unreadable" in caplog.text
        assert sorted(p.name for p in box.glob("*.json")) == sorted(
            [f"{1:020d}-{running.pid}-0.json", taken[0][0].name]
        )
        assert Outbox(box).left(TS) == []  # what this process holds is never taken twice
    finally:
        running.kill()
        running.wait()


def test_the_supervisors_notifier_keeps_its_outbox_under_the_home(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    with FakeWebhooks() as hooks:
        save_secret_json(home, "alert_channels", {"SLACK_WEBHOOK_URL": hooks.url("/s")})
        hooks.fail_next(3, 503)
        n = build_notifier(make_settings(ROUTINE_ALERT_CHANNEL="slack"), home, sleep=lambda s: None)
        n.notify(fill_alert())
        assert n.flush(5)
        n.close()
        assert n.failed == 1 and len(list((home.state_dir / "alert_outbox").glob("*.json"))) == 1
        again = build_notifier(
            make_settings(ROUTINE_ALERT_CHANNEL="slack"), home, sleep=lambda s: None, now=lambda: TS
        )
        assert again.flush(5)
        again.close()
        assert again.sent == 1 and list((home.state_dir / "alert_outbox").glob("*.json")) == []
        # a command's notifier (synchronous) says what happened itself and keeps nothing
        now = build_notifier(make_settings(ROUTINE_ALERT_CHANNEL="slack"), home, background=False)
        hooks.fail_next(3, 503)
        now.attempts = 1
        now.notify(fill_alert())
        assert now.failed == 1 and not list((home.state_dir / "alert_outbox").glob("*.json"))


def test_the_outbox_tells_a_reused_pid_from_its_writer_and_never_overfills_the_queue(tmp_path: Path) -> None:
    """A file named with the pid of a process that started later (pids repeat, in a container at every restart)
    was left unsent until it expired; a thousand files left by a dead channel overfilled the queue at start (the
    notifier raised, and with it the boot)."""
    import json
    import subprocess
    import sys

    from tbot_bot.trading.notifier_bot import QUEUE_LIMIT, Outbox

    box = tmp_path / "alert_outbox"
    box.mkdir()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        reused = box / f"{1:020d}-{running.pid}@1-0.json"  # its pid, another start time: another process
        reused.write_text(json.dumps(fill_alert(message="the old writer's").as_dict()))
        assert [a.message.split(" (")[0] for _, a in Outbox(box).left(TS)] == ["the old writer's"]
    finally:
        running.kill()
        running.wait()
    for f in box.glob("*.json"):
        f.unlink()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    for i in range(QUEUE_LIMIT + 1):
        (box / f"{i:020d}-{ended.pid}-{i}.json").write_text(json.dumps(fill_alert(message=f"n{i}").as_dict()))
    with FakeWebhooks() as hooks:
        hooks.delay = 0.2  # the worker is slow: what the start queued is still queued when we look
        n = Notifier(
            make_settings(ROUTINE_ALERT_CHANNEL="slack"), {"slack": SlackChannel(hooks.url("/s"))},
            outbox=Outbox(box), now=lambda: TS,
        )  # fmt: skip
        assert n.notify(fill_alert(message="new")) is True and n.dropped == 0  # room is kept for new alerts
        assert n._queue.qsize() <= QUEUE_LIMIT // 2 + 1
        n.close(timeout=0.1)
    assert len(list(box.glob("*.json"))) >= QUEUE_LIMIT // 2  # the rest waits on disk for the next start
