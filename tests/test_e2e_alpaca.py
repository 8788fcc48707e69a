"""End to end: the real supervisor replays the demo day against the fake Alpaca server (broker AND data source,
on the replay clock the supervisor drives) and books exactly the trades the sim exchange books for that day."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakes.alpaca_exchange import FakeAlpacaExchange
from fakes.alpaca_server import FakeAlpacaServer, broker_for
from integration_test_runner import check_outputs, ledger_rows, provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.broker.broker_api import Broker
from tbot_bot.broker.brokers.alpaca import AlpacaBroker
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.inputs.replay_bars import load_replay_bars
from tbot_bot.runtime.boot import SAMPLE_DATA
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome

ROUND_TRIP_FIELDS = (
    "strategy_name",
    "signal_ticker",
    "ticker",
    "side",
    "size",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "PnL",
    "error_code",
    "tag",
)


def _round_trips(home: BotHome) -> list[dict[str, Any]]:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.runtime.reports import report_paths

    path = report_paths(home, load_binding(home), DEMO_DAY)["trade_history_json"]
    records = json.loads(Path(path).read_text())
    return [{k: r.get(k) for k in ROUND_TRIP_FIELDS} for r in records]


class AlpacaOnReplay:
    """broker_wrapper for the supervisor: swaps the built sim broker for an AlpacaBroker talking to a fake
    Alpaca server whose `now()` is the sim's replay clock and whose bars are the same frame boot loaded."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars
        self.server: FakeAlpacaServer | None = None
        self.broker: AlpacaBroker | None = None

    def __call__(self, sim: Broker) -> Broker:
        clock = sim._clock  # type: ignore[attr-defined]
        assert isinstance(clock, ReplayClock)
        cash = sim.get_account().cash  # the home's broker float, as the sim was funded
        sim.close()  # type: ignore[attr-defined]
        exchange = FakeAlpacaExchange(bars=self.bars, now=clock.now, cash=cash, seed=7)
        self.server = FakeAlpacaServer(exchange).start()
        self.broker = AlpacaBroker(
            "test-key",
            "test-secret",
            base_url=self.server.url,
            data_url=self.server.url,
            timeout=5.0,
            retry=RetryPolicy(retries=3, sleep=clock.sleep),
            sleep=clock.sleep,  # as from_settings does with a replay clock: waits are replay time
        )
        return self.broker

    def stop(self) -> None:
        if self.server is not None:
            self.server.wait_idle()
            self.server.stop()


def _run(home: BotHome, wrapper: Callable[[Broker], Broker] | None = None) -> None:
    assert Supervisor(home, replay_day=DEMO_DAY, broker_wrapper=wrapper).run() == 0
    assert check_outputs(home, DEMO_DAY) == []


def test_alpaca_replay_books_the_same_trades_as_the_sim(tmp_path: Path) -> None:
    sim_home = provision_demo_home(tmp_path / "sim")
    _run(sim_home)
    sim_trips = _round_trips(sim_home)
    assert sim_trips, "the demo day trades nothing on the sim: nothing to compare"

    alpaca_home = provision_demo_home(tmp_path / "alpaca")
    bars = load_replay_bars(SAMPLE_DATA, DEMO_DAY, "XNYS")
    wrapper = AlpacaOnReplay(bars)
    try:
        _run(alpaca_home, wrapper)
    finally:
        wrapper.stop()
    alpaca_trips = _round_trips(alpaca_home)

    # the run really went through the adapter and the fake: orders, fills and bars all came over HTTP
    server = wrapper.server
    assert server is not None
    assert json.loads(alpaca_home.status_json.read_text())["broker"]["name"] == "alpaca"
    assert server.count("POST", "/v2/orders") == 2 * len(sim_trips)  # one entry and one exit each
    assert server.count("GET", "/v2/stocks/bars") > 0 and server.count("GET", "/v2/stocks/snapshots") > 0
    assert not server.exchange.positions  # flat at the close, as on the sim

    assert alpaca_trips == sim_trips
    # the same trades post the same splits; fees differ by broker: the sim charges its SIM_* fee model
    # (booked Dr 5010 / Cr 1030 as FITID-FEE entries), the fake Alpaca is commission-free like Alpaca
    alpaca_rows, sim_rows = ledger_rows(alpaca_home), ledger_rows(sim_home)
    assert [r for r in alpaca_rows if not r[0].endswith("-FEE")] == [
        r for r in sim_rows if not r[0].endswith("-FEE")
    ]
    assert not [r for r in alpaca_rows if r[0].endswith("-FEE")]
    assert {r[1] for r in sim_rows if r[0].endswith("-FEE")} == {"1030", "5010"}


def test_supervisor_retry_layer_does_not_multiply_adapter_retries() -> None:
    from tbot_bot.config.error_handler import ErrorHandler
    from tbot_bot.errors import NetworkError

    class Sink:
        def error(self, strategy: str, reason: str, context: dict[str, Any], exc: Any = None) -> None:
            pass

    limit = 3  # API_RETRY_LIMIT of the test template
    with FakeAlpacaServer(FakeAlpacaExchange(prices={"SPY": "450.00"})) as server:
        broker = broker_for(server, retry=RetryPolicy(retries=limit, sleep=lambda s: None))
        handler = ErrorHandler(RetryPolicy(retries=limit, sleep=lambda s: None), Sink())  # as boot builds it
        server.inject("GET", "/v2/clock", "status", times=100)
        try:
            with pytest.raises(NetworkError):
                handler.call(broker.get_clock)
        finally:
            broker.close()
        assert server.count("GET", "/v2/clock") == limit + 1
