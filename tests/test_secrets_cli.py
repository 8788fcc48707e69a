"""`tbot secrets set|list`: values from stdin or the environment (never argv), validated per purpose, masked."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rigd_tbot.cli import main
from tbot_bot.support.decrypt_secrets import load_secret_json
from tbot_bot.support.path_resolver import KEY_PURPOSES, BotHome


def _alpaca_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_BASE_URL", "ALPACA_DATA_URL"):
        monkeypatch.delenv(k, raising=False)
    home = tmp_path / "alpaca"
    args = [
        "provision",
        "--home",
        str(home),
        "--broker",
        "alpaca",
        "--entity",
        "RGL",
        "--jurisdiction",
        "USA",
    ]
    assert main([*args, "--account", "main", "--bot-id", "TB01", "--float", "2500"]) == 0
    return home


def _set(home: Path, monkeypatch: pytest.MonkeyPatch, name: str, stdin: str, *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["secrets", "set", name, "--home", str(home), *extra])


def test_provision_creates_every_purpose_key(provisioned_home: Path) -> None:
    keys = BotHome(provisioned_home).keys_dir
    assert sorted(p.stem for p in keys.glob("*.key")) == sorted(KEY_PURPOSES)
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in keys.glob("*.key"))


def test_set_from_stdin_lines_and_json_then_list_masks_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _alpaca_home(tmp_path, monkeypatch)
    assert _set(home, monkeypatch, "screener", "# finnhub\nFINNHUB_API_KEY = sekrit-finnhub-123\n") == 0
    assert load_secret_json(BotHome(home), "screener_api") == {"FINNHUB_API_KEY": "sekrit-finnhub-123"}
    creds = {"ALPACA_API_KEY": "AKxyz-key-987", "ALPACA_SECRET_KEY": "very-secret-456", "ALPACA_PAPER": True}
    assert _set(home, monkeypatch, "broker", json.dumps(creds)) == 0
    stored = load_secret_json(BotHome(home), "broker_credentials")
    assert stored["ALPACA_API_KEY"] == "AKxyz-key-987" and stored["ALPACA_PAPER"] is True
    capsys.readouterr()
    assert main(["secrets", "list", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert "sekrit-finnhub-123" not in out and "AKxyz-key-987" not in out and "very-secret-456" not in out
    assert "FINNHUB_API_KEY = ********" in out and "ALPACA_SECRET_KEY = ********" in out
    assert "screener  required ok" in out and "broker    required ok" in out
    assert "smtp      optional missing" in out
    # merge by default; an empty value removes the key
    assert _set(home, monkeypatch, "screener", "FINNHUB_BASE_URL=http://127.0.0.1:9/api\n") == 0
    assert set(load_secret_json(BotHome(home), "screener_api")) == {"FINNHUB_API_KEY", "FINNHUB_BASE_URL"}
    assert _set(home, monkeypatch, "screener", "FINNHUB_BASE_URL=\n") == 0
    assert set(load_secret_json(BotHome(home), "screener_api")) == {"FINNHUB_API_KEY"}


@pytest.mark.parametrize(
    ("name", "stdin", "message"),
    [
        ("screener", "FINNHUB_BASE_URL=https://x.test\n", "FINNHUB_API_KEY missing (the Finnhub screener)"),
        ("screener", "FINNHUB_KEY=abc\n", "FINNHUB_KEY is not a screener key"),
        ("broker", "ALPACA_API_KEY=k\n", "ALPACA_SECRET_KEY missing (BROKER_NAME=ALPACA)"),
        ("broker", "ALPACA_API_KEY=k\nALPACA_SECRET_KEY=s\nALPACA_PAPER=maybe\n", "ALPACA_PAPER='maybe'"),
        ("smtp", "SMTP_HOST=mail\nSMTP_FROM=a@b\nSMTP_TO=c@d\nSMTP_PORT=99999\n", "SMTP_PORT='99999'"),
        ("alerts", "SMS_TO=+15550100\n", "SMS alerts need both SMS_API_URL and SMS_TO"),
        (
            "acct_api",
            "ACCT_API_URL=ftp://x\nACCT_API_TOKEN=t\n",
            "ACCT_API_URL='ftp:'... (7 characters) must be an https:// URL",
        ),
        ("acct_api", "just some words\n", "stdin line 1: expected KEY=VALUE"),
        ("acct_api", "", "no values on stdin"),
    ],
)
def test_invalid_values_are_refused_readably_and_nothing_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    stdin: str,
    message: str,
) -> None:
    home = _alpaca_home(tmp_path, monkeypatch)
    secrets_dir = BotHome(home).secrets_dir
    before = {p.name: p.read_bytes() for p in secrets_dir.iterdir()}
    capsys.readouterr()
    assert _set(home, monkeypatch, name, stdin) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in secrets_dir.iterdir()} == before


def test_from_env_reads_only_the_names_keys_and_argv_values_are_not_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _alpaca_home(tmp_path, monkeypatch)
    monkeypatch.setenv("ACCT_API_URL", "https://acct.example.test/api")
    monkeypatch.setenv("ACCT_API_TOKEN", "tok-1")
    monkeypatch.setenv("FINNHUB_API_KEY", "not-for-acct")
    assert main(["secrets", "set", "acct_api", "--from-env", "--home", str(home)]) == 0
    assert load_secret_json(BotHome(home), "acct_api_credentials") == {
        "ACCT_API_URL": "https://acct.example.test/api",
        "ACCT_API_TOKEN": "tok-1",
    }
    with pytest.raises(SystemExit) as exc:
        main(["secrets", "set", "acct_api", "ACCT_API_TOKEN=leak", "--home", str(home)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["secrets", "set", "nonsense", "--home", str(home)])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        (
            "ALPACA_BASE_URL=https://api.alpaca.markets\n",
            "ALPACA_BASE_URL is Alpaca's live endpoint (api.alpaca.markets) but ALPACA_PAPER is true",
        ),
        (
            "ALPACA_BASE_URL=https://paper-api.alpaca.markets/\nALPACA_PAPER=false\n",
            "ALPACA_BASE_URL is Alpaca's paper endpoint (paper-api.alpaca.markets) but ALPACA_PAPER is false",
        ),
    ],
)
def test_a_vendor_url_contradicting_the_paper_switch_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lines: str, said: str
) -> None:
    """The mode shown came from ALPACA_PAPER while the orders went to ALPACA_BASE_URL: paper on the screen, real
    money at the broker (a broker review). Paper or live is now said once."""
    home = _alpaca_home(tmp_path, monkeypatch)
    before = load_secret_json(BotHome(home), "broker_credentials")
    stdin = f"ALPACA_API_KEY=AK1\nALPACA_SECRET_KEY=S1\n{lines}"
    capsys.readouterr()
    assert _set(home, monkeypatch, "broker", stdin) == 2
    assert said in capsys.readouterr().err
    assert load_secret_json(BotHome(home), "broker_credentials") == before  # nothing written
    # the URL and the switch agreeing is accepted
    assert _set(home, monkeypatch, "broker", stdin.replace("https://api.", "https://paper-api.").replace("ALPACA_PAPER=false\n", "")) == 0  # fmt: skip


def test_tradier_live_url_under_the_sandbox_switch_is_refused() -> None:
    from tbot_bot.support.secret_schema import secret_problems, spec

    values = {
        "TRADIER_ACCESS_TOKEN": "t",
        "TRADIER_ACCOUNT_ID": "a",
        "TRADIER_BASE_URL": "https://api.tradier.com",
    }
    problems = secret_problems(spec("broker"), values, "TRADIER")
    assert any("TRADIER_SANDBOX is true (the default)" in p for p in problems), problems
    assert secret_problems(spec("broker"), {**values, "TRADIER_SANDBOX": "false"}, "TRADIER") == []
    local = {
        **values,
        "TRADIER_BASE_URL": "http://127.0.0.1:8080",
    }  # a test server or a proxy: the switch says
    assert secret_problems(spec("broker"), local, "TRADIER") == []
