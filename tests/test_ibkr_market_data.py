"""IbkrBroker market data (tickers, daily and minute bars, auction imbalance) and the imbalance gate, through ib_async's
own request code: the fake TWS answers the socket-level requests through the wrapper's callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fakes.fake_ib import ACCOUNT, FakeTws
from helpers import make_settings

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


BID, ASK, LAST, CLOSE, OPEN = 1, 2, 4, 9, 14  # TWS's tick types
AUCTION_VOLUME, AUCTION_PRICE, AUCTION_IMBALANCE = 34, 35, 36


def daily(*volumes: float) -> list[tuple[str, float, float, float, float, float]]:
    """Daily bars as TWS sends them (date text YYYYmmdd) for 2026-11-23 onwards."""
    return [(f"202611{23 + i}", 1.0, 1.0, 1.0, 1.0, v) for i, v in enumerate(volumes)]


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
    tws.ticks = {
        "SPY": {BID: 449.9, ASK: 450.1, LAST: 450.0, OPEN: 448.0, CLOSE: 447.0},
        "NOQ": {LAST: 10.0, OPEN: 10.0, CLOSE: 9.5},
        "DEAD": {},
    }
    tws.history = {"SPY": daily(1_000, 2_500_000, 10), "NOQ": daily(1_000, 2_500_000, 10)}
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
    assert [(c.symbol, ticks, snap) for c, ticks, snap in tws.market_requests] == [
        ("SPY", "", True), ("NOQ", "", True), ("DEAD", "", True),
    ]  # fmt: skip
    assert tws.history_requests[0][0].symbol == "SPY" and tws.history_requests[0][2:6] == (
        "3 D",
        "1 day",
        "TRADES",
        True,
    )
    # ib_async keys its tickers by IB's contract id: each symbol was looked up once (DEAD is known, but not
    # quoted), and asked for with its id
    assert tws.contract_requests == ["SPY", "NOQ", "DEAD"]
    assert [c.conId for c, *_ in tws.market_requests] == [tws.con_ids[s] for s in ("SPY", "NOQ", "DEAD")]
    broker.get_snapshots(["SPY"])
    assert len(tws.history_requests) == 2  # SPY and NOQ once each: previous volume is remembered for the day
    assert broker.get_latest_quote("SPY").ask == Decimal("450.1")
    assert tws.contract_requests == ["SPY", "NOQ", "DEAD"]  # an id is kept: not asked again
    assert broker.get_snapshots(["ZZZZ"]) == {}  # a symbol IB does not know: no data, and no ticker asked for
    assert tws.contract_requests[-1] == "ZZZZ" and len(tws.market_requests) == 5
    with pytest.raises(MarketDataError):
        broker.get_latest_quote("NOQ")


def test_a_puts_quote_asks_ib_for_the_option_not_a_stock(broker: IbkrBroker, tws: FakeTws) -> None:
    """A long put is priced by its OCC symbol; IB was asked for a *stock* of that name, had none, and every LongPut
    signal was denied missing_market_data (a broker review)."""
    tws.ticks = {"SPY261127P00450000": {BID: 4.3, ASK: 4.4}}  # IB answers for the listed option
    quote = broker.get_latest_quote("SPY261127P00450000")
    assert quote.symbol == "SPY261127P00450000" and (quote.bid, quote.ask) == (Decimal("4.3"), Decimal("4.4"))
    ((contract, _, _),) = tws.market_requests
    assert (contract.secType, contract.symbol, contract.lastTradeDateOrContractMonth, contract.strike) == (
        "OPT", "SPY", "20261127", 450.0,
    )  # fmt: skip
    assert contract.right == "P" and contract.multiplier == "100"


def test_market_data_connection_error(broker: IbkrBroker, tws: FakeTws) -> None:
    tws.ticks = {"SPY": {LAST: 450.0}}
    tws.market_data_lost = True
    # a connection lost inside a call is an outage the supervisor rides out (as Alpaca's data host not
    # answering), not a market-data failure that shuts it down
    for call in (
        lambda: broker.get_snapshots(["SPY"]),
        lambda: broker.get_bars(["SPY"], NOW, NOW + timedelta(minutes=1)),
        lambda: broker.get_auction_imbalance("SPY", wait=0),
    ):
        with pytest.raises(MarketDataUnreachable, match="Socket disconnect"):
            call()
    assert classify(MarketDataUnreachable("x")).severity is Severity.SUSPEND


def test_minute_bars_are_filtered_to_the_range(broker: IbkrBroker, tws: FakeTws) -> None:
    start = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    # formatDate=2: TWS stamps intraday bars in epoch seconds
    tws.history = {
        "SPY": [
            (str(int((start + timedelta(minutes=i)).timestamp())), 1, 2, 0.5, 1.5, 100) for i in range(-1, 4)
        ]
    }
    bars = broker.get_bars(["SPY"], start, start + timedelta(minutes=3))["SPY"]
    assert [b.timestamp for b in bars] == [start + timedelta(minutes=i) for i in range(3)]
    assert bars[0].close == 1.5 and bars[0].volume == 100
    ((contract, end, duration, bar_size, what, rth, date_format),) = tws.history_requests
    assert (contract.symbol, end, duration, bar_size, what, rth, date_format) == (
        "SPY", "20261125 14:33:00 UTC", "180 S", "1 min", "TRADES", True, 2,
    )  # fmt: skip


def test_auction_imbalance(broker: IbkrBroker, tws: FakeTws) -> None:
    tws.ticks = {"SPY": {AUCTION_IMBALANCE: -120_000.0, AUCTION_VOLUME: 300_000.0, AUCTION_PRICE: 450.5}}
    reading = broker.get_auction_imbalance("SPY", wait=0)
    assert reading is not None and reading.imbalance == -120_000 and reading.paired_volume == 300_000
    assert reading.price == 450.5 and reading.regulatory_imbalance is None
    ((contract, ticks, snapshot),) = tws.market_requests
    assert (contract.symbol, ticks, snapshot) == ("SPY", "225", False)  # a subscription, cancelled after
    assert len(tws.market_data_cancelled) == 1
    tws.ticks = {"SPY": {}}  # no imbalance published
    assert broker.get_auction_imbalance("SPY", wait=0) is None
    assert len(tws.market_data_cancelled) == 2


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


def test_a_snapshot_ended_by_an_error_gives_no_prices_not_the_previous_ones(
    broker: IbkrBroker, tws: FakeTws
) -> None:
    """ib_async keeps one ticker per contract and a request writes only what TWS sends: a snapshot TWS ended with
    an error (10197, a competing live session: the account holder opened TWS or the mobile app) left the previous
    snapshot's bid/ask/last in place, and the adapter stamped them as current."""
    tws.ticks = {"SPY": {BID: 450.0, ASK: 450.1, LAST: 450.05, CLOSE: 449.0}}
    tws.history = {"SPY": daily(1_000, 2_500_000, 10)}
    assert broker.get_latest_quote("SPY").bid == Decimal("450.0")
    tws.market_data_refusal = (10197, "No market data during competing live session")
    with pytest.raises(MarketDataError, match="no bid/ask for SPY"):
        broker.get_latest_quote("SPY")
    assert broker.get_snapshots(["SPY"]) == {}  # no price: omitted, as the interface allows
    tws.market_data_refusal = None
    assert broker.get_snapshots(["SPY"])["SPY"].price == Decimal("450.05")


def test_a_request_tws_never_answers_times_out_and_the_link_is_made_again(tws: FakeTws) -> None:
    """ib_async waits for ever by default (IB.RequestTimeout 0): a frozen Gateway or a half-open socket held the
    supervisor until the watchdog killed it. A request now gives up after API_TIMEOUT (the adapter's connect
    timeout) as an outage, and the silent link is closed so the next call connects again."""
    import time

    quick = IbkrBroker(
        tws.ib, host="h", port=1, client_id=7, account=ACCOUNT, clock=ReplayClock(NOW), sleep=lambda s: None,
        connect_timeout=0.2,
    )  # fmt: skip
    quick.connect()
    tws.ticks = {"SPY": {BID: 450.0, ASK: 450.1}}
    tws.market_data_silent = True
    started = time.monotonic()
    with pytest.raises(MarketDataUnreachable):
        quick.get_latest_quote("SPY")
    assert time.monotonic() - started < 5 and not tws.connected  # given up, and the link closed
    tws.market_data_silent = False
    connects = tws.connect_calls
    assert quick.get_latest_quote("SPY").ask == Decimal("450.1")
    assert tws.connect_calls == connects + 1  # connected again (and reconciled) before asking
