"""`tbot broker-check` and `tbot data fetch` on a provisioned Alpaca home pointed at the fake Alpaca server."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer

from rigd_tbot.cli import main
from rigd_tbot.commands.data import parse_bound
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.errors import ConfigError

DAY1 = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)  # a Monday
DAY2 = DAY1 + timedelta(days=1)


@pytest.fixture()
def server() -> Iterator[FakeAlpacaServer]:
    bars = pd.concat(
        [
            synthetic_bars({"SPY": 450.0, "QQQ": 380.0}, DAY1, 60, seed=11),
            synthetic_bars({"SPY": 452.0, "QQQ": 381.0}, DAY2, 60, seed=12),
        ],
        ignore_index=True,
    )
    clock = ReplayClock(DAY2 + timedelta(hours=2))
    with FakeAlpacaServer(FakeAlpacaExchange(bars=bars, now=clock.now)) as srv:
        yield srv


def provision(home: Path, broker: str, monkeypatch: pytest.MonkeyPatch, url: str | None = None) -> None:
    if url is not None:
        monkeypatch.setenv("ALPACA_API_KEY", "test-key")
        monkeypatch.setenv("ALPACA_SECRET_KEY", "test-secret")
        monkeypatch.setenv("ALPACA_BASE_URL", url)
        monkeypatch.setenv("ALPACA_DATA_URL", url)
    args = ["provision", "--home", str(home), "--broker", broker, "--entity", "RGL", "--jurisdiction", "USA"]
    args += ["--account", "main", "--bot-id", "TB01", "--float", "2500"]
    assert main(args) == 0


@pytest.fixture()
def alpaca_home(
    tmp_path: Path,
    server: FakeAlpacaServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    home = tmp_path / "home"
    provision(home, "alpaca", monkeypatch, server.url)
    capsys.readouterr()
    return home


def test_broker_check_against_the_fake_server(
    alpaca_home: Path, server: FakeAlpacaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broker-check", "--home", str(alpaca_home), "--symbol", "QQQ"]) == 0
    out = capsys.readouterr().out
    assert "broker ALPACA" in out
    for label in ("account", "clock", "positions", "quote"):
        assert f"OK   {label}" in out
    assert "buying_power=100000" in out and "QQQ bid" in out and "broker-check OK" in out


def test_broker_check_says_a_symbol_without_a_quote_is_not_an_unreachable_broker(
    alpaca_home: Path, server: FakeAlpacaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The broker answered every step; it has no quote for the symbol asked: the check fails on that step, and
    does not send the operator after the network ("the broker cannot be reached")."""
    assert main(["broker-check", "--home", str(alpaca_home), "--symbol", "NOSUCH"]) == 1
    out = capsys.readouterr().out
    assert "OK   positions" in out and "FAIL quote" in out and "no quote for NOSUCH" in out
    assert "cannot be reached" not in out and "broker-check FAILED: quote" in out


def test_broker_check_reports_an_unreachable_broker(
    alpaca_home: Path, server: FakeAlpacaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.config.settings_bot import update_env_values
    from tbot_bot.support.path_resolver import BotHome

    # API_RETRY_LIMIT=1 keeps the backoff short (1 s); the check honours the configured retries
    update_env_values(BotHome(alpaca_home), {"API_RETRY_LIMIT": "1"}, actor="test")
    server.inject("*", "/v2/", kind="status", status=503, times=999)
    assert main(["broker-check", "--home", str(alpaca_home)]) == 1
    out = capsys.readouterr().out
    assert "FAIL account" in out and "NetworkError" in out and "stopped" in out
    assert server.count("GET", "/v2/account") == 2 and server.count("GET", "/v2/clock") == 0


def test_broker_check_reports_bad_credentials(
    alpaca_home: Path, server: FakeAlpacaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.api_key = "another-key"
    assert main(["broker-check", "--home", str(alpaca_home)]) == 1
    out = capsys.readouterr().out
    assert "FAIL account" in out and "not authorized" in out
    # the broker was reached and refused the keys: that is what the operator is told to fix
    assert "stopped: the broker refused the credentials" in out and "cannot be reached" not in out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_data_fetch_writes_backtest_csv_and_caches_whole_days(
    alpaca_home: Path, server: FakeAlpacaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    args = ["data", "fetch", "--home", str(alpaca_home), "--symbols", "spy,QQQ", "--start", "2026-11-16"]
    args += ["--end", "2026-11-17", "--out", str(out_dir)]
    assert main(args) == 0
    first_calls = server.count("GET", "/v2/stocks/bars")
    assert first_calls >= 2  # one per day
    (path,) = out_dir.glob("*.csv")
    rows = _read_csv(path)
    assert list(rows[0]) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert len(rows) == 240
    assert rows[0]["timestamp"] == "2026-11-16T14:30:00+00:00" and rows[0]["symbol"] == "QQQ"
    expected = server.exchange.bars["SPY"][0]
    spy0 = next(r for r in rows if r["symbol"] == "SPY")
    assert float(spy0["open"]) == expected.open and float(spy0["volume"]) == expected.volume
    assert (alpaca_home / "data" / "cache" / "bars_1min" / "alpaca" / "SPY" / "2026-11-16.csv").exists()
    # the fake exchange's clock is 2026-11-17 16:30 UTC: the 17th is still trading, so only the 16th is cached
    assert not (alpaca_home / "data" / "cache" / "bars_1min" / "alpaca" / "SPY" / "2026-11-17.csv").exists()
    # again, as Parquet: the complete day from the cache, the partial day fetched again (one call)
    assert main([*args, "--format", "parquet"]) == 0
    assert server.count("GET", "/v2/stocks/bars") == first_calls + 1
    frame = pd.read_parquet(next(out_dir.glob("*.parquet")))
    assert len(frame) == 240 and str(frame["timestamp"].dt.tz) == "UTC"
    assert "(1 data API calls)" in capsys.readouterr().out
    # without --out: the same bars, checked, into the home's bar store, read back by the backtest loader
    store_args = [a for a in args if a not in ("--out", str(out_dir))]
    assert main(store_args) == 0
    assert "into the bar store" in capsys.readouterr().out
    from tbot_bot.backtest.load_historical_data import load_bars

    held = load_bars(alpaca_home / "data" / "bars")
    assert len(held) == 240 and sorted(held["symbol"].unique()) == ["QQQ", "SPY"]
    assert held["open"].iloc[0] == float(rows[0]["open"])


def test_regression_a_partial_session_is_not_cached_and_zero_bars_exit_1(
    alpaca_home: Path, server: FakeAlpacaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the exchange's clock stands one minute into the 17th's trading: one bar has ended
    server.exchange.now = lambda: DAY2 + timedelta(minutes=1)  # type: ignore[method-assign]
    args = ["data", "fetch", "--home", str(alpaca_home), "--symbols", "SPY", "--out", str(tmp_path / "o")]
    args += ["--start", "2026-11-17", "--end", "2026-11-17"]
    assert main(args) == 0
    assert "wrote 1 bars" in capsys.readouterr().out
    server.exchange.now = lambda: DAY2 + timedelta(hours=8)  # type: ignore[method-assign]
    calls = server.count("GET", "/v2/stocks/bars")
    assert main(args) == 0  # before the fix: 1 bar from the cache, 0 API calls
    assert "wrote 60 bars" in capsys.readouterr().out
    assert server.count("GET", "/v2/stocks/bars") == calls + 1
    weekend = ["data", "fetch", "--home", str(alpaca_home), "--symbols", "SPY", "--out", str(tmp_path / "w")]
    assert main([*weekend, "--start", "2026-11-14", "--end", "2026-11-15"]) == 1
    err = capsys.readouterr().err
    assert "no bars written" in err and "holds no XNYS trading session" in err
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())
    assert main([*weekend, "--symbols", "NOPE", "--start", "2026-11-16", "--end", "2026-11-16"]) == 1
    assert "the broker returned no bars for NOPE" in capsys.readouterr().err
    # what cannot be a symbol is refused before any request
    calls = server.count("GET", "/v2/stocks/bars")
    assert main([*weekend, "--symbols", "SPY,../x", "--start", "2026-11-16", "--end", "2026-11-16"]) == 2
    assert "--symbols '../X': a symbol is letters, digits and . _ - ^" in capsys.readouterr().err
    assert server.count("GET", "/v2/stocks/bars") == calls


def test_data_fetch_time_window_and_errors(
    alpaca_home: Path, server: FakeAlpacaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["data", "fetch", "--home", str(alpaca_home), "--symbols", "SPY", "--out", str(tmp_path / "o")]
    assert (
        main([*args, "--start", "2026-11-17T14:35:00Z", "--end", "2026-11-17T14:40:00Z", "--no-cache"]) == 0
    )
    (path,) = (tmp_path / "o").glob("*.csv")
    assert [r["timestamp"][11:16] for r in _read_csv(path)] == ["14:35", "14:36", "14:37", "14:38", "14:39"]
    assert not (alpaca_home / "data" / "cache" / "bars_1min").exists()
    assert main([*args, "--start", "2026-11-17", "--end", "2026-11-16"]) == 2
    assert main([*args, "--start", "yesterday", "--end", "2026-11-16"]) == 2


def test_data_fetch_refuses_the_sim_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "sim"
    provision(home, "sim", monkeypatch)
    args = ["data", "fetch", "--home", str(home), "--symbols", "SPY", "--start", "2026-11-16"]
    assert main([*args, "--end", "2026-11-16", "--out", str(tmp_path / "o")]) == 2
    assert "BROKER_NAME=ALPACA" in capsys.readouterr().err


def test_parse_bound() -> None:
    assert parse_bound("2026-11-16", is_end=True) == datetime(2026, 11, 17, tzinfo=UTC)
    assert parse_bound("2026-11-16T09:30:00-05:00", is_end=False) == datetime(
        2026, 11, 16, 14, 30, tzinfo=UTC
    )
    with pytest.raises(ConfigError):
        parse_bound("16/11/2026", is_end=False)


def test_provision_names_the_next_step_by_what_the_environment_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    provision(tmp_path / "bare", "alpaca", monkeypatch)
    assert "next: tbot secrets set broker" in capsys.readouterr().out
    provision(
        tmp_path / "given", "alpaca", monkeypatch, "http://127.0.0.1:9"
    )  # credentials from the environment
    out = capsys.readouterr().out
    assert "next: tbot secrets list" in out and "secrets set broker" not in out


def test_a_fetch_into_the_store_says_what_it_replaced(
    alpaca_home: Path, server: FakeAlpacaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged month replaced by a fetch is said, as an import says it (the fetch printed nothing of it)."""
    store = tmp_path / "bars"
    args = [
        "data",
        "fetch",
        "--home",
        str(alpaca_home),
        "--symbols",
        "SPY",
        "--store",
        str(store),
        "--no-cache",
    ]
    assert main([*args, "--start", "2026-11-16", "--end", "2026-11-16"]) == 0
    part = store / "SPY" / "2026-11.parquet"
    part.write_bytes(part.read_bytes()[:-10])
    capsys.readouterr()
    assert main([*args, "--start", "2026-11-17", "--end", "2026-11-17"]) == 0
    assert "note: partition SPY/2026-11.parquet was corrupted" in capsys.readouterr().out
