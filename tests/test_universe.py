"""`tbot universe build` against the fake Alpaca asset list (active/inactive/non-tradable/OTC), the cap by
liquidity, bad options, and a provisioned Alpaca home that passes `tbot check` after `universe build` and
`data vix` and shows the VIX it will use."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_market import asset, synthetic_bars
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from fakes.cboe_server import CSV, FakeCboeServer, cboe_csv
from integration_test_runner import provision_alpaca as provision_alpaca_home

from rigd_tbot.cli import main
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.inputs import universe, vix
from tbot_bot.market_time import market_calendar
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

PREV = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)  # Wednesday before Thanksgiving
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Friday (early close), after the open
VOLUMES = {"AAPL": 30, "MSFT": 20, "XOM": 10}  # volume multipliers: the liquidity ranking


def assets() -> list[dict[str, object]]:
    return [
        asset("AAPL", "NASDAQ"),
        asset("MSFT", "NASDAQ"),
        asset("XOM", "NYSE"),
        asset("PENNY", "NYSE"),  # priced under MIN_PRICE
        asset("OLDCO", "NYSE", status="inactive"),
        asset("HALTD", "NYSE", tradable=False),
        asset("OTCX", "OTC"),
        asset("SH", "ARCA"),
        asset("SQQQ", "NASDAQ"),
        asset("BTCUSD", "CRYPTO", asset_class="crypto"),
    ]


@pytest.fixture()
def server() -> Iterator[FakeAlpacaServer]:
    frames = []
    for sym, mult in VOLUMES.items():
        f = synthetic_bars({sym: 100.0}, PREV, 30, seed=mult)
        f["volume"] = f["volume"] * mult
        frames.append(f)
    frames.append(synthetic_bars({"PENNY": 0.5, "SH": 14.0, "SQQQ": 20.0, "OTCX": 3.0}, PREV, 30, seed=5))
    clock = ReplayClock(NOW)
    exchange = FakeAlpacaExchange(bars=pd.concat(frames, ignore_index=True), now=clock.now)
    exchange.set_assets(assets())
    with FakeAlpacaServer(exchange) as srv:
        yield srv


@pytest.fixture()
def alpaca_home(tmp_path: Path, server: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch) -> BotHome:
    for key, value in {
        "ALPACA_API_KEY": "test-key",
        "ALPACA_SECRET_KEY": "test-secret",
        "ALPACA_BASE_URL": server.url,
        "ALPACA_DATA_URL": server.url,
    }.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "home"
    args = [
        "provision",
        "--home",
        str(root),
        "--broker",
        "alpaca",
        "--entity",
        "RGL",
        "--jurisdiction",
        "USA",
    ]
    assert main([*args, "--account", "main", "--bot-id", "TB01", "--float", "2500"]) == 0
    return BotHome(root)


def test_assets_endpoint_filters_like_alpaca(server: FakeAlpacaServer) -> None:
    broker = broker_for(server)
    listed = {e.symbol: e.exchange for e in broker.list_equities()}
    # inactive, non-tradable and crypto assets never come back; OTC does (the builder drops it by exchange)
    assert listed == {
        "AAPL": "NASDAQ",
        "MSFT": "NASDAQ",
        "XOM": "NYSE",
        "PENNY": "NYSE",
        "OTCX": "OTC",
        "SH": "ARCA",
        "SQQQ": "NASDAQ",
    }
    assert server.requests[-1].query == {"status": "active", "asset_class": "us_equity"}


def test_universe_build_writes_the_file_with_reasons(
    alpaca_home: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["universe", "build", "--home", str(alpaca_home.root)]) == 0
    out = capsys.readouterr().out
    assert universe.read_universe(alpaca_home) == ["AAPL", "MSFT", "XOM", "SH", "SQQQ"]
    assert "3 equities + 2 inverse ETFs" in out
    assert "1 exchange" in out and "1 price" in out  # OTCX by exchange, PENNY by price
    text = alpaca_home.universe_file.read_text()
    assert text.startswith("# trading universe built") and "OTCX" not in text and "OLDCO" not in text


def test_max_symbols_keeps_the_most_liquid(alpaca_home: BotHome, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["universe", "build", "--home", str(alpaca_home.root), "--max-symbols", "2"]) == 0
    assert universe.read_universe(alpaca_home) == ["AAPL", "MSFT", "SH", "SQQQ"]  # XOM traded least
    assert "1 cap" in capsys.readouterr().out


def test_exchanges_and_price_options(alpaca_home: BotHome, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "universe",
                "build",
                "--home",
                str(alpaca_home.root),
                "--exchanges",
                "NYSE",
                "--min-price",
                "0.1",
            ]
        )
        == 0
    )
    assert universe.read_universe(alpaca_home) == ["PENNY", "XOM", "SH", "SQQQ"]
    capsys.readouterr()
    for bad, message in (
        (["--exchanges", "LSE"], "allowed are NYSE"),
        (["--min-price", "abc"], "is not a number"),
        (["--min-price", "50", "--max-price", "10"], "must be below"),
        (["--max-symbols", "0"], "at least 1"),
        (["--min-price", "150", "--max-price", "190"], "came out empty"),
    ):
        before = alpaca_home.universe_file.read_bytes()
        assert main(["universe", "build", "--home", str(alpaca_home.root), *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert alpaca_home.universe_file.read_bytes() == before  # a refused build never touches the file


def test_given_symbols_are_looked_up_at_the_broker(alpaca_home: BotHome, tmp_path: Path) -> None:
    wanted = tmp_path / "wanted.txt"
    wanted.write_text("aapl  # a comment\nOLDCO\nNOPE\n")
    assert main(["universe", "build", "--home", str(alpaca_home.root), "--symbols-file", str(wanted)]) == 0
    assert universe.read_universe(alpaca_home) == ["AAPL", "SH", "SQQQ"]


def test_fresh_alpaca_home_passes_check_after_universe_and_vix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Done-when of issue 16, on the wall clock: the fake broker's data is the real previous session."""
    from tbot_bot.market_time import next_session_date, previous_session_date, session_for

    now = utc_now()
    session = next_session_date(now, "XNYS")
    prev = session_for(previous_session_date(session, "XNYS"), "XNYS")
    assert prev is not None
    prices = {"AAPL": 150.0, "MSFT": 90.0, "XOM": 110.0, "SH": 14.0, "SQQQ": 20.0}
    bars = synthetic_bars(prices, prev.open, 30, seed=9)
    exchange = FakeAlpacaExchange(bars=bars, now=None)  # the wall clock, like `tbot check`
    exchange.set_assets([asset(s, "ARCA" if s in ("SH", "SQQQ") else "NASDAQ") for s in prices])
    with FakeAlpacaServer(exchange) as server:
        home = provision_alpaca(tmp_path / "home", server, monkeypatch)
        capsys.readouterr()
        assert main(["check", "--home", str(home.root)]) == 0  # check builds the universe in memory only
        first = capsys.readouterr().out
        assert "universe   none yet: `tbot start` builds data/universe.txt" in first and "(WARNING)" in first
        assert not home.universe_file.exists()
        assert main(["universe", "build", "--home", str(home.root)]) == 0
        # the VIX history ends with the close `check` asks for: the session before the next CLOSE window's,
        # which is today's from the CLOSE window's start to the session's close (not the session before
        # `session` then)
        needed = previous_session_date(vix.next_close_session(universe_settings(home), now), "XNYS")
        days = [
            d.date()
            for d in market_calendar("XNYS").sessions_in_range(
                pd.Timestamp(needed) - pd.Timedelta(days=20), pd.Timestamp(needed)
            )
        ]
        with FakeCboeServer() as cboe:
            cboe.files["/VIX_History.csv"] = (200, CSV, cboe_csv((d, 16.5) for d in days))
            assert main(["data", "vix", "--home", str(home.root), "--url", cboe.url("/VIX_History.csv")]) == 0
        capsys.readouterr()
        assert main(["check", "--home", str(home.root)]) == 0
    out = capsys.readouterr().out
    close_session = vix.next_close_session(universe_settings(home), now)
    assert f"VIX 16.50 (close of {previous_session_date(close_session, 'XNYS')})" in out
    assert f"for the CLOSE window of {close_session}" in out
    assert "universe   data/universe.txt: 5 symbols" in out and "OK: ready to start" in out


def provision_alpaca(root: Path, server: FakeAlpacaServer, monkeypatch: pytest.MonkeyPatch) -> BotHome:
    return provision_alpaca_home(root, server.url, monkeypatch)


def test_an_empty_universe_file_is_refused_by_check(
    alpaca_home: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    alpaca_home.universe_file.parent.mkdir(parents=True, exist_ok=True)
    alpaca_home.universe_file.write_text("# nothing\n")
    assert main(["check", "--home", str(alpaca_home.root)]) == 2
    assert "lists no symbol" in capsys.readouterr().err


def universe_settings(home: BotHome):  # type: ignore[no-untyped-def]
    from tbot_bot.config.settings_bot import load_settings

    return load_settings(home)


def test_sessions_helper_sanity() -> None:
    assert date(2026, 11, 26) not in {
        d.date() for d in market_calendar("XNYS").sessions_in_range("2026-11-20", "2026-11-30")
    }
    assert NOW - PREV > timedelta(days=1)


def test_ibkr_looks_given_symbols_up_by_contract_search() -> None:
    from fakes.fake_ib import ACCOUNT, FakeTws

    from tbot_bot.broker.brokers.ibkr import IbkrBroker
    from tbot_bot.errors import BrokerError

    tws = FakeTws(now=NOW)
    tws.listings = {"AAPL": "NASDAQ", "SH": "NYSEARCA", "SQQQ": "NASDAQ"}  # NOPE is answered with error 200
    broker = IbkrBroker(
        tws.ib, host="h", port=1, client_id=7, account=ACCOUNT, clock=ReplayClock(NOW), sleep=lambda s: None
    )
    broker.connect()
    with pytest.raises(BrokerError, match="--symbols-file"):
        broker.list_equities()
    found = {e.symbol: e.exchange for e in broker.list_equities(["aapl", "NOPE", "SH", "SQQQ"])}
    assert found == {"AAPL": "NASDAQ", "SH": "ARCA", "SQQQ": "NASDAQ"} and tws.contract_requests == [
        "AAPL",
        "NOPE",
        "SH",
        "SQQQ",
    ]


def test_tradier_looks_given_symbols_up_by_quote_and_the_builder_keeps_listed_equities() -> None:
    from fakes.tradier_server import ACCOUNT, FakeTradierServer

    from tbot_bot.broker.brokers.tradier import TradierBroker
    from tbot_bot.config.retry import RetryPolicy
    from tbot_bot.errors import BrokerError

    prices = {
        "AAPL": "150.00",
        "XOM": "110.00",
        "OTCX": "3.00",
        "SH": "14.00",
        "SPXU": "12.00",
        "OPTN": "5.00",
    }
    with FakeTradierServer(prices=prices) as srv:
        srv.listings.update(
            {
                "AAPL": ("stock", "Q"),
                "OTCX": ("stock", "V"),
                "SH": ("etf", "P"),
                "SPXU": ("etf", "P"),
                "OPTN": ("option", "C"),
            }
        )
        broker = TradierBroker(
            "test-token",
            ACCOUNT,
            base_url=srv.url,
            timeout=0.5,
            retry=RetryPolicy(retries=1, sleep=lambda s: None),
        )
        try:
            with pytest.raises(BrokerError, match="--symbols-file"):
                broker.list_equities()
            build = universe.build_universe(
                broker,
                exchanges=["NYSE", "NASDAQ"],
                min_price=Decimal("5"),
                max_price=Decimal("200"),
                max_symbols=10,
                symbols=["AAPL", "XOM", "OTCX", "OPTN", "NOPE"],
            )
        finally:
            broker.close()
    assert build.equities == ["AAPL", "XOM"] and build.inverse_etfs == ["SH", "SPXU"]
    assert build.excluded["OTCX"].startswith("exchange: listed on V")
    assert build.excluded["OPTN"].startswith("not tradable") and build.excluded["NOPE"].startswith(
        "not tradable"
    )
