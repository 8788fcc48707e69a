"""Alerts that arrive and paper/live in sight (issue 22 points 5 and 6): `tbot alerts test` against the fake
alert servers says which channel arrived; a live Alpaca home whose CRITICAL_ALERT_CHANNEL has no secret is
refused by `tbot check` naming the secret (a paper home is not; `log` is an explicit choice); the mode comes
from the broker settings and `tbot secrets list` shows the paper/live switch unmasked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_market import asset
from fakes.alpaca_server import FakeAlpacaServer
from fakes.smtp_server import FakeSmtp
from fakes.webhook_server import FakeWebhooks
from integration_test_runner import provision_alpaca as provision_alpaca_home
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from tbot_bot.support.decrypt_secrets import load_secret_json, save_secret_json
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.trading_mode import TradingMode, trading_mode


@pytest.fixture
def hooks() -> Iterator[FakeWebhooks]:
    with FakeWebhooks() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def test_alerts_test_says_which_channel_arrived(
    tmp_path: Path, hooks: FakeWebhooks, smtp: FakeSmtp, capsys: pytest.CaptureFixture[str]
) -> None:
    home = provision_demo_home(tmp_path / "home")
    root = str(home.root)
    save_secret_json(home, "alert_channels", {
        "SLACK_WEBHOOK_URL": hooks.url("/slack"), "PAGERDUTY_ROUTING_KEY": "rk", "PAGERDUTY_URL": hooks.url("/pd"),
    })  # fmt: skip
    save_secret_json(home, "smtp_credentials", {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_FROM": "bot@example.test",
        "SMTP_TO": "ops@example.test", "SMTP_STARTTLS": "false",
    })  # fmt: skip
    hooks.fail_next(1, status=400)  # PagerDuty is tried after e-mail: a rejected key, not worth a retry
    capsys.readouterr()
    assert main(["alerts", "test", "--home", root]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "NOT ARRIVED" in lines["pagerduty"] and "HTTP 400" in lines["pagerduty"]
    assert "ARRIVED" in lines["slack"] and "NOT" not in lines["slack"]
    assert "ARRIVED" in lines["email"] and "NOT" not in lines["email"]
    # the fake keeps only what it accepted: the rejected PagerDuty event is not there
    assert len(smtp.messages) == 1 and len(hooks.on("/slack")) == 1 and len(hooks.on("/pd")) == 0
    # the test alert names the mode: a SIM home only replays
    assert "[CRITICAL] [REPLAY] info" in hooks.on("/slack")[0].body["text"]
    assert main(["alerts", "test", "--home", root, "--channel", "pagerduty"]) == 0
    assert "pagerduty  ARRIVED" in capsys.readouterr().out and len(hooks.on("/pd")) == 1
    assert len(hooks.on("/slack")) == 1  # --channel tests that one only
    # a routed channel nobody configured is named with the secret to set
    assert main(["config", "set", "--home", root, "CRITICAL_ALERT_CHANNEL=sms"]) == 0
    capsys.readouterr()
    assert main(["alerts", "test", "--home", root, "--channel", "sms"]) == 1
    assert "SMS_API_URL and SMS_TO" in capsys.readouterr().out


def _alpaca_home(
    root: Path, server: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch, *, paper: bool
) -> BotHome:
    home = provision_alpaca_home(root, server.url, monkeypatch, paper=paper)
    home.universe_file.parent.mkdir(parents=True, exist_ok=True)
    home.universe_file.write_text("AAPL\n")
    return home


@pytest.fixture
def alpaca() -> Iterator[FakeAlpacaServer]:
    exchange = FakeAlpacaExchange(prices={"AAPL": "190.00"})
    exchange.set_assets([asset("AAPL", "NASDAQ")])
    with FakeAlpacaServer(exchange) as server:
        yield server


def test_live_alpaca_home_check_refuses_a_silent_alert_channel_and_shows_live(
    tmp_path: Path,
    alpaca: FakeAlpacaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = _alpaca_home(tmp_path / "live", alpaca, monkeypatch, paper=False)
    root = str(home.root)
    assert trading_mode(home, "ALPACA") is TradingMode.LIVE
    capsys.readouterr()
    assert main(["secrets", "list", "--home", root]) == 0
    listed = capsys.readouterr().out
    assert "ALPACA_PAPER = False" in listed and "mode: live" in listed
    assert "test-secret" not in listed  # the real secrets stay masked
    # CRITICAL_ALERT_CHANNEL=pagerduty (the template's) with no alert secret: refused, naming the key
    assert main(["check", "--home", root]) == 2
    err = capsys.readouterr().err
    assert "CRITICAL_ALERT_CHANNEL=pagerduty but PAGERDUTY_ROUTING_KEY is not set" in err
    assert f"tbot secrets set alerts --home {root}" in err and "CRITICAL_ALERT_CHANNEL=log" in err
    # `log` is an explicit choice: check passes and says LIVE
    assert main(["config", "set", "--home", root, "CRITICAL_ALERT_CHANNEL=log"]) == 0
    capsys.readouterr()
    assert main(["check", "--home", root]) == 0
    out = capsys.readouterr().out
    assert "mode       LIVE" in out and "boot       OK (LIVE)" in out


def test_paper_alpaca_home_is_paper_and_not_refused(
    tmp_path: Path,
    alpaca: FakeAlpacaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = _alpaca_home(tmp_path / "paper", alpaca, monkeypatch, paper=True)
    assert load_secret_json(home, "broker_credentials")["ALPACA_PAPER"] is True
    capsys.readouterr()
    assert main(["check", "--home", str(home.root)]) == 0
    assert "mode       PAPER" in capsys.readouterr().out


def test_mode_of_each_broker_from_its_settings(tmp_path: Path) -> None:
    home = BotHome(tmp_path)
    cases = [
        ("TRADIER", {"TRADIER_SANDBOX": "false"}, TradingMode.LIVE),
        ("TRADIER", {}, TradingMode.PAPER),  # TRADIER_SANDBOX defaults to true
        ("IBKR", {"IBKR_PORT": "7497"}, TradingMode.PAPER),
        ("IBKR", {"IBKR_PORT": "4002"}, TradingMode.PAPER),
        ("IBKR", {"IBKR_PORT": "7496"}, TradingMode.LIVE),
        ("ALPACA", {"ALPACA_PAPER": "no"}, TradingMode.LIVE),
    ]
    for broker, creds, expected in cases:
        save_secret_json(home, "broker_credentials", creds)
        assert trading_mode(home, broker) is expected, (broker, creds)
    assert trading_mode(home, "SIM", replay=False) is TradingMode.PAPER
    assert trading_mode(home, "SIM", replay=True) is TradingMode.REPLAY
    home.secret_file("broker_credentials").unlink()
    assert trading_mode(home, "ALPACA") is TradingMode.LIVE  # unreadable: never claimed paper


def test_a_short_sales_entry_alert_says_sold_short(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """The ledger books a SELLSHORT; the entry's alert said "bought" (a broker review)."""
    import logging
    from datetime import date

    from integration_test_runner import provision_demo_home

    from tbot_bot.config.settings_bot import update_env_values
    from tbot_bot.runtime.main import Supervisor

    home = provision_demo_home(tmp_path / "home")
    update_env_values(home, {f"SHORT_TYPE_{w}": "ShortSell" for w in ("OPEN", "MID", "CLOSE")}, actor="test")
    with caplog.at_level(logging.INFO, logger="tbot_bot.trading.notifier_bot"):
        assert Supervisor(home, replay_day=date(2011, 3, 2)).run() == 0
    entries = [r.getMessage() for r in caplog.records if '"trigger": "entry"' in r.getMessage()]
    assert any('"message": "sold short 4 SYN2 at 41.6300"' in m for m in entries), entries
