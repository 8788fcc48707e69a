"""IbkrBroker market data (tickers, daily and minute bars, auction imbalance) and the imbalance gate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fakes.fake_ib import ACCOUNT, FakeTws
from helpers import make_settings
from ib_async import Stock
from ib_async.objects import BarData
from ib_async.ticker import Ticker

from tbot_bot.broker.brokers.ibkr import IbkrBroker
from tbot_bot.broker.brokers.ibkr_market import AuctionImbalance
from tbot_bot.config.error_handler import Severity, classify
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.enhancements.imbalance_scanner_ibkr import ImbalanceScanner
from tbot_bot.errors import MarketDataError, MarketDataUnreachable, NetworkError

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
IBKR = {"BROKER_NAME": "IBKR", "IBKR_ENABLED": "true", "SIM_ENABLED": "false"}
pytestmark = pytest.mark.filterwarnings(
    "ignore::pandas.errors.Pandas4Warning"
)  # exchange_calendars on pandas 3.1


def ticker(sym: str, **kw: float) -> Ticker:
    t = Ticker(contract=Stock(sym, "SMART", "USD"))  # __post_init__ resets prices: set them afterwards
    for k, v in kw.items():
        setattr(t, k, v)
    return t


@pytest.fixture
def tws() -> FakeTws:
    return FakeTws(now=NOW)


@pytest.fixture
def broker(tws: FakeTws) -> IbkrBroker:
    b = IbkrBroker(
        tws.ib, host="h", port=1, client_id=7, account=ACCOUNT, clock=ReplayClock(NOW), sleep=lambda s: None
    )
    b.connect()
    return b


def test_snapshots_and_quotes(broker: IbkrBroker, tws: FakeTws) -> None:
    tickers = {
        "SPY": ticker("SPY", bid=449.9, ask=450.1, last=450.0, open=448.0, close=447.0),
        "NOQ": ticker("NOQ", last=10.0, open=10.0, close=9.5),
        "DEAD": ticker("DEAD"),
    }
    tws.ib.reqTickers = lambda *cs: [tickers[c.symbol] for c in cs]  # type: ignore[method-assign]
    daily = [
        BarData(date(2026, 11, 23), volume=1_000),
        BarData(date(2026, 11, 24), volume=2_500_000),
        BarData(date(2026, 11, 25), volume=10),
    ]
    asked: list[tuple[Any, ...]] = []

    def hist(*args: Any) -> list[BarData]:
        asked.append(args)
        return daily

    tws.ib.reqHistoricalData = hist  # type: ignore[method-assign]
    snaps = broker.get_snapshots(["SPY", "NOQ", "DEAD"])
    assert set(snaps) == {"SPY", "NOQ"}  # no price at all: omitted
    spy = snaps["SPY"]
    assert (spy.price, spy.today_open, spy.prev_close, spy.prev_volume) == (
        Decimal("450.0"),
        Decimal("448.0"),
        Decimal("447.0"),
        2_500_000,
    )
    assert spy.quote is not None and spy.quote.bid == Decimal("449.9") and snaps["NOQ"].quote is None
    assert asked[0][2:6] == ("3 D", "1 day", "TRADES", True)
    broker.get_snapshots(["SPY"])
    assert len(asked) == 2  # SPY and NOQ once each: previous volume is remembered for the day
    assert broker.get_latest_quote("SPY").ask == Decimal("450.1")
    with pytest.raises(MarketDataError):
        broker.get_latest_quote("NOQ")


def test_a_puts_quote_asks_ib_for_the_option_not_a_stock(broker: IbkrBroker, tws: FakeTws) -> None:
    """A long put is priced by its OCC symbol; IB was asked for a *stock* of that name, had none, and every LongPut
    signal was denied missing_market_data (a broker review)."""
    asked: list[Any] = []

    def answer(*contracts: Any) -> list[Ticker]:
        asked.extend(contracts)
        out = []
        for c in contracts:
            if c.secType == "OPT":  # IB answers for listed contracts only
                t = Ticker(contract=c)
                t.bid, t.ask = 4.3, 4.4
                out.append(t)
        return out

    tws.ib.reqTickers = answer  # type: ignore[method-assign]
    quote = broker.get_latest_quote("SPY261127P00450000")
    assert quote.symbol == "SPY261127P00450000" and (quote.bid, quote.ask) == (Decimal("4.3"), Decimal("4.4"))
    (contract,) = asked
    assert (contract.secType, contract.symbol, contract.lastTradeDateOrContractMonth, contract.strike) == (
        "OPT", "SPY", "20261127", 450.0,
    )  # fmt: skip
    assert contract.right == "P" and contract.multiplier == "100"


def test_market_data_connection_error(broker: IbkrBroker, tws: FakeTws) -> None:
    def boom(*cs: Any) -> None:
        raise ConnectionError("Socket disconnect")

    tws.ib.reqTickers = boom  # type: ignore[method-assign]
    tws.ib.reqHistoricalData = boom  # type: ignore[method-assign]
    # a connection lost inside a call is an outage the supervisor rides out (as Alpaca's data host not
    # answering), not a market-data failure that shuts it down
    for call in (
        lambda: broker.get_snapshots(["SPY"]),
        lambda: broker.get_bars(["SPY"], NOW, NOW + timedelta(minutes=1)),
    ):
        with pytest.raises(MarketDataUnreachable, match="Socket disconnect"):
            call()
    assert classify(MarketDataUnreachable("x")).severity is Severity.SUSPEND


def test_minute_bars_are_filtered_to_the_range(broker: IbkrBroker, tws: FakeTws) -> None:
    start = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    raw = [BarData(start + timedelta(minutes=i), 1, 2, 0.5, 1.5, 100) for i in range(-1, 4)]
    tws.ib.reqHistoricalData = lambda *a: raw  # type: ignore[method-assign]
    bars = broker.get_bars(["SPY"], start, start + timedelta(minutes=3))["SPY"]
    assert [b.timestamp for b in bars] == [start + timedelta(minutes=i) for i in range(3)]
    assert bars[0].close == 1.5 and bars[0].volume == 100


def test_auction_imbalance(broker: IbkrBroker, tws: FakeTws) -> None:
    t = ticker("SPY", auctionImbalance=-120_000.0, auctionVolume=300_000.0, auctionPrice=450.5)
    calls: list[str] = []
    tws.ib.reqMktData = lambda c, ticks, *a: (calls.append(ticks), t)[1]  # type: ignore[method-assign]
    tws.ib.cancelMktData = lambda c: None  # type: ignore[method-assign]
    reading = broker.get_auction_imbalance("SPY", wait=0)
    assert reading is not None and reading.imbalance == -120_000 and reading.paired_volume == 300_000
    assert reading.price == 450.5 and reading.regulatory_imbalance is None and calls == ["225"]
    tws.ib.reqMktData = lambda c, ticks, *a: ticker("SPY")  # type: ignore[method-assign]
    assert broker.get_auction_imbalance("SPY", wait=0) is None


class Source:
    def __init__(self, imbalance: float | None, paired: float = 200_000, error: bool = False) -> None:
        self.imbalance, self.paired, self.error = imbalance, paired, error

    def get_auction_imbalance(self, symbol: str) -> AuctionImbalance | None:
        if self.error:
            raise NetworkError("IB unreachable")
        if self.imbalance is None:
            return None
        return AuctionImbalance(symbol, self.imbalance, self.paired, 450.0, None, NOW)


IN_WINDOW = datetime(2026, 11, 25, 20, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("imbalance", "direction", "allowed"),
    [
        (-100_000, "long", False),
        (100_000, "short", False),
        (100_000, "long", True),
        (-100_000, "short", True),
        (-40_000, "long", True),
        (-60_000, "long", True),
    ],  # fmt: skip
)
def test_imbalance_gate(imbalance: float, direction: str, allowed: bool) -> None:
    paired = 1_000_000 if imbalance == -60_000 else 200_000  # -60k of 1M paired is only 6%: not strong
    gate = ImbalanceScanner(make_settings(**IBKR), Source(imbalance, paired), ReplayClock(IN_WINDOW))
    d = gate.check("close", "SPY", direction)
    assert d.allowed is allowed
    if not allowed:
        assert "imbalance" in d.reason and d.context["imbalance"] == imbalance


def test_imbalance_gate_scope() -> None:
    strong_sell = Source(-500_000)
    gate = ImbalanceScanner(make_settings(**IBKR), strong_sell, ReplayClock(IN_WINDOW))
    assert gate.check("open", "SPY", "long").allowed  # CLOSE only
    assert gate.check(
        "close", "SPY", "long", datetime(2026, 11, 25, 20, 29, tzinfo=UTC)
    ).allowed  # before 20:30
    assert gate.check("close", "SPY", "long", datetime(2026, 11, 25, 21, 0, tzinfo=UTC)).allowed  # closed
    # early close on 2026-11-27 (18:00 UTC): the window moves with the session
    assert not gate.check("close", "SPY", "long", datetime(2026, 11, 27, 17, 45, tzinfo=UTC)).allowed
    sim = ImbalanceScanner(make_settings(), strong_sell, ReplayClock(IN_WINDOW))
    assert sim.check("close", "SPY", "long").allowed and sim.self_check().reason.startswith("inactive")


def test_imbalance_gate_without_data_allows() -> None:
    for source in (Source(None), Source(0, error=True)):
        gate = ImbalanceScanner(make_settings(**IBKR), source, ReplayClock(IN_WINDOW))
        assert gate.check("close", "SPY", "long").allowed
    assert ImbalanceScanner(make_settings(**IBKR), Source(None), ReplayClock(IN_WINDOW)).self_check().ok
