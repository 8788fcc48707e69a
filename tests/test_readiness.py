"""`tbot check` = `tbot start`'s readiness decision: for every way a start refuses, check refuses with the same
message and exit code (issue 10 item 2). Alpaca homes talk to the fake Alpaca server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_server import FakeAlpacaServer

from rigd_tbot.cli import main
from tbot_bot.config.security_bot import encrypt_to_file
from tbot_bot.config.settings_bot import read_env_text, update_env_values
from tbot_bot.runtime.control import SupervisorLock
from tbot_bot.support.decrypt_secrets import load_secret_json, save_secret_json
from tbot_bot.support.path_resolver import BotHome

FAKE_NOW = datetime(2026, 11, 17, 16, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAlpacaServer]:
    with FakeAlpacaServer(FakeAlpacaExchange(now=lambda: FAKE_NOW)) as srv:
        yield srv


def _provision_alpaca(home: Path, url: str | None) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for k in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_BASE_URL", "ALPACA_DATA_URL"):
            mp.delenv(k, raising=False)
        if url is not None:
            mp.setenv("ALPACA_API_KEY", "test-key")
            mp.setenv("ALPACA_SECRET_KEY", "test-secret")
            mp.setenv("ALPACA_BASE_URL", url)
            mp.setenv("ALPACA_DATA_URL", url)
        args = ["provision", "--home", str(home), "--broker", "alpaca", "--entity", "RGL"]
        args += ["--jurisdiction", "USA", "--account", "main", "--bot-id", "TB01", "--float", "2500"]
        assert main(args) == 0


@pytest.fixture(scope="module")
def complete_template(server: FakeAlpacaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A provisioned Alpaca home completed as an operator would: universe and screener secret added."""
    home = tmp_path_factory.mktemp("readiness") / "alpaca"
    _provision_alpaca(home, server.url)
    update_env_values(BotHome(home), {"API_RETRY_LIMIT": "0"}, actor="test")  # no back-off sleeps
    (home / "data").mkdir(exist_ok=True)
    (home / "data" / "universe.txt").write_text("SPY\nQQQ\n")
    save_secret_json(BotHome(home), "screener_api", {"FINNHUB_API_KEY": "test-finnhub"})
    return home


@pytest.fixture
def alpaca_home(complete_template: Path, tmp_path: Path) -> Path:
    home = tmp_path / "alpaca_home"
    shutil.copytree(complete_template, home, symlinks=True)
    return home


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """One in-process CLI run; a start that wrongly boots is stopped by SIGTERM (a graceful stop)."""
    guard = threading.Timer(60, lambda: os.kill(os.getpid(), signal.SIGTERM))
    guard.start()
    try:
        code = main(args)
    finally:
        guard.cancel()
    return code, capsys.readouterr().err


# the UTC stamp console log lines open with: start and check may run either side of a second boundary
_LOG_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", re.MULTILINE)


def _refusals(home: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, int, str]:
    """Exit code and stderr of `start` then `check`, log lines' time stamps left out (the words must match)."""
    start_code, start_err = _run(["start", "--home", str(home), *extra], capsys)
    check_code, check_err = _run(["check", "--home", str(home), *extra], capsys)
    return start_code, _LOG_STAMP.sub("", start_err), check_code, _LOG_STAMP.sub("", check_err)


def _edit_secret(name: str, change: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def edit(home: Path) -> None:
        data = load_secret_json(BotHome(home), name)
        change(data)
        save_secret_json(BotHome(home), name, data)

    return edit


def _config_text(old: str, new: str) -> Callable[[Path], None]:
    """Write the config bypassing validation, as a hand edit or a damaged file would."""

    def edit(home: Path) -> None:
        h = BotHome(home)
        encrypt_to_file(h.env_bot_enc, h.key_file("env"), read_env_text(h).replace(old, new).encode())

    return edit


REFUSALS: list[tuple[str, Callable[[Path], None], str, int]] = [
    ("empty universe", lambda h: (h / "data" / "universe.txt").write_text("\n"), "lists no symbol", 2),
    (
        "missing screener secret",
        lambda h: (h / "storage" / "secrets" / "screener_api.json.enc").unlink(),
        "screener_api.json.enc is missing",
        2,
    ),
    (
        "screener secret without its key",
        _edit_secret("screener_api", lambda d: d.clear() or d.update(FINNHUB_BASE_URL="http://127.0.0.1:9")),
        "FINNHUB_API_KEY missing",
        2,
    ),
    (
        "broker key deleted",
        lambda h: (h / "storage" / "keys" / "broker.key").unlink(),
        "broker.key is missing",
        2,
    ),
    (
        "screener key deleted",
        lambda h: (h / "storage" / "keys" / "screener_api.key").unlink(),
        "screener_api.key is missing",
        2,
    ),
    (
        "broker credentials deleted",
        lambda h: (h / "storage" / "secrets" / "broker_credentials.json.enc").unlink(),
        "broker_credentials.json.enc is missing",
        2,
    ),
    (
        "broker credentials without the secret key",
        _edit_secret("broker_credentials", lambda d: d.pop("ALPACA_SECRET_KEY")),
        "ALPACA_SECRET_KEY missing (BROKER_NAME=ALPACA)",
        2,
    ),
    (
        "corrupt broker credentials",
        lambda h: (h / "storage" / "secrets" / "broker_credentials.json.enc").write_bytes(b"garbage"),
        "broker_credentials.json.enc cannot be decrypted",
        2,
    ),
    (
        "invalid smtp secret",
        lambda h: save_secret_json(BotHome(h), "smtp_credentials", {"SMTP_HOST": "mail", "SMTP_PORT": "x"}),
        "SMTP_FROM, SMTP_TO missing (e-mail alerts)",
        2,
    ),
    ("loose key permissions", lambda h: os.chmod(h / "storage" / "keys" / "env.key", 0o644), "mode 0644", 2),
    ("invalid configuration", _config_text("MAX_TRADES=4", "MAX_TRADES=banana"), "MAX_TRADES='banana'", 2),
    (
        "broker unreachable",
        _edit_secret("broker_credentials", lambda d: d.update(ALPACA_BASE_URL="http://127.0.0.1:9")),
        "self_check failed: watchdog (broker API failure at http://127.0.0.1:9",
        75,  # a broker that does not answer may after a restart (it was 1, "Internal error")
    ),
    (
        "wrong broker key",
        _edit_secret("broker_credentials", lambda d: d.update(ALPACA_API_KEY="not-the-key")),
        "401",  # refused at the first broker call of boot (the universe warm-up); a refusal: exit 2 (issue 26)
        2,
    ),
]


@pytest.mark.parametrize(("case", "breakage", "message", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_every_start_refusal_is_a_check_refusal_with_the_same_message(
    alpaca_home: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    breakage: Callable[[Path], None],
    message: str,
    code: int,
) -> None:
    breakage(alpaca_home)
    start_code, start_err, check_code, check_err = _refusals(alpaca_home, capsys)
    assert message in start_err, start_err
    assert (check_code, check_err) == (start_code, start_err) == (code, start_err)
    assert "Traceback" not in start_err


def test_the_complete_home_passes_check_and_a_running_supervisor_is_said_by_both(
    alpaca_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Beside a running supervisor, `tbot start` starts no second one (it says the first is trading) and `tbot
    check` checks the configuration only (the upgrade step); another holder of the run lock (a restore, a
    check's boot) still refuses both alike."""
    code, _ = _run(["check", "--home", str(alpaca_home)], capsys)
    assert code == 0
    assert not (alpaca_home / "output" / "status.json").exists()  # a check publishes nothing
    lock = SupervisorLock.acquire(BotHome(alpaca_home), mode="live")
    try:
        assert main(["start", "--home", str(alpaca_home)]) == 0
        started = capsys.readouterr().out
        assert main(["check", "--home", str(alpaca_home)]) == 0
        checked = capsys.readouterr().out
    finally:
        lock.release()
    assert "is already trading: there is nothing to start" in started
    assert "only the configuration was checked" in checked
    lock = SupervisorLock.acquire(BotHome(alpaca_home), mode="restore")
    try:
        start_code, start_err, check_code, check_err = _refusals(alpaca_home, capsys)
    finally:
        lock.release()
    assert "a supervisor is already running" in start_err and f"pid {os.getpid()}" in start_err
    assert (check_code, check_err) == (start_code, start_err) and start_code == 2


def test_replay_refusals_match(
    alpaca_home: Path, provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an Alpaca home cannot replay; a sim home cannot run live; a day without bars cannot be replayed
    cases = [
        (alpaca_home, ["--replay", "2011-01-25"], "--replay runs against the simulated exchange"),
        (provisioned_home, [], "the simulated exchange only replays recorded days"),
        (provisioned_home, ["--replay", "2026-11-17"], "no bars for 2026-11-17"),
    ]
    for home, extra, message in cases:
        start_code, start_err, check_code, check_err = _refusals(home, capsys, *extra)
        assert message in start_err and start_code == 2, start_err
        assert (check_code, check_err) == (start_code, start_err)


def test_fresh_alpaca_home_without_screener_secret_fails_check(
    server: FakeAlpacaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10 'done when': a provisioned Alpaca home with no screener secret fails `tbot check`."""
    home = tmp_path / "fresh"
    _provision_alpaca(home, server.url)
    capsys.readouterr()
    start_code, start_err, check_code, check_err = _refusals(home, capsys)
    assert check_code == 2 and (check_code, check_err) == (start_code, start_err)
    assert "screener_api.json.enc is missing" in check_err and "tbot secrets set screener" in check_err
    assert check_err.count("Configuration error") == 1  # one message listing every problem
    # completing it with the CLI is enough
    (home / "data").mkdir(exist_ok=True)
    (home / "data" / "universe.txt").write_text("SPY\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINNHUB_API_KEY", "test-finnhub")
        assert main(["secrets", "set", "screener", "--from-env", "--home", str(home)]) == 0
    assert main(["check", "--home", str(home)]) == 0
    # an Alpaca paper account (ALPACA_PAPER defaults to true) is never called live (issue 22)
    assert "boot       OK (PAPER)" in capsys.readouterr().out


def test_a_replays_check_names_the_replay_datas_vix_not_the_live_cache(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check --replay` warned that today's live CLOSE would be skipped for want of a VIX close in the cache:
    the wall clock's session, while the replay reads the vix.csv beside its bars (and its CLOSE runs)."""
    assert main(["check", "--home", str(provisioned_home), "--replay", "2011-01-25"]) == 0
    out = capsys.readouterr().out
    assert "vix        the replay data's vix.csv" in out and "will be skipped" not in out
