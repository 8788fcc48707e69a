"""LongPut in the simulated exchange (issue 10, item 6): OCC roots with digits parse everywhere, the sim quotes
puts from the underlying, a replay books a put round trip through 1120/4020, and a missing quote never sleeps in
real time."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from integration_test_runner import provision_demo_home
from ofxtools.Parser import OFXTree

from tbot_bot.broker.broker_api import OptionContract, Quote
from tbot_bot.config.settings_bot import update_env_values
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.errors import MarketDataError
from tbot_bot.runtime.main import Supervisor
from tbot_bot.runtime.order_journal import OrderJournal
from tbot_bot.runtime.wiring import DEFAULT_OPTION_VOLATILITY, option_volatility
from tbot_bot.support.path_resolver import BotHome

PUT_DAY = date(2011, 1, 27)  # a sample day on which a bearish signal buys a put on SYN5


@pytest.mark.parametrize(
    ("symbol", "root", "expiry", "strike", "right"),
    [
        ("SPY110121P00127000", "SPY", date(2011, 1, 21), Decimal(127), "P"),
        ("ABC1110204P00012500", "ABC1", date(2011, 2, 4), Decimal("12.5"), "P"),
        ("SYN7110128C00008500", "SYN7", date(2011, 1, 28), Decimal("8.5"), "C"),
        ("BRK.B261218P00450000", "BRK.B", date(2026, 12, 18), Decimal(450), "P"),
    ],
)
def test_occ_symbols_parse_including_roots_with_digits(
    symbol: str, root: str, expiry: date, strike: Decimal, right: str
) -> None:
    contract = OptionContract.from_occ(symbol)
    assert contract == OptionContract(root, expiry, strike, right)
    assert contract.occ_symbol == symbol


@pytest.mark.parametrize(
    "symbol",
    [
        "SPY",
        "SYN7",
        "spy110121P00127000",
        "SPY111321P00127000",
        "TOOLONG1110121P00127000",
        "SPY110121X00127000",
    ],
)
def test_what_is_not_an_occ_symbol_is_none(symbol: str) -> None:
    assert OptionContract.from_occ(symbol) is None


def test_put_volatility_comes_from_the_previous_sessions_vix() -> None:
    closes = {date(2011, 1, 25): 17.5, date(2011, 1, 26): 16.0}
    assert option_volatility(closes, date(2011, 1, 27)) == pytest.approx(0.16)
    assert option_volatility(closes, date(2011, 1, 25)) == DEFAULT_OPTION_VOLATILITY
    assert option_volatility({}, date(2011, 1, 27)) == DEFAULT_OPTION_VOLATILITY


def _long_put_home(tmp_path: Path) -> BotHome:
    home = provision_demo_home(tmp_path / "home")
    update_env_values(
        home,
        {"SHORT_TYPE_OPEN": "LongPut", "SHORT_TYPE_MID": "LongPut", "SHORT_TYPE_CLOSE": "LongPut"},
        actor="test",
    )
    return home


def test_long_put_replay_books_a_put_round_trip_through_the_option_accounts(tmp_path: Path) -> None:
    home = _long_put_home(tmp_path)
    assert Supervisor(home, replay_day=PUT_DAY).run() == 0
    (ledger,) = home.root.glob("entities/*/ledgers/bot/*_BOT_ledger.db")
    with sqlite3.connect(ledger) as conn:
        puts = conn.execute(
            "SELECT ticker, trntype, tag, signal_ticker FROM transactions WHERE tag = 'LongPut' AND trntype != 'FEE' ORDER BY id"
        ).fetchall()
        accounts = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT s.account_code FROM splits s JOIN transactions t ON t.id = s.transaction_id "
                "WHERE t.tag = 'LongPut'"
            )
        }
    assert [p[1] for p in puts] == ["BUYTOOPEN", "SELLTOCLOSE"]
    contract = OptionContract.from_occ(puts[0][0])
    assert contract is not None and contract.right == "P" and contract.underlying == puts[0][3] == "SYN5"
    assert {"1030", "1120", "4020"} <= accounts
    (ofx_file,) = home.root.glob(f"output/*/exports/*_{PUT_DAY.isoformat()}.ofx")  # LEDGER_EXPORT_MODE=auto
    tree = OFXTree()
    tree.parse(str(ofx_file))
    ofx = tree.convert()
    (opt,) = [s for s in ofx.securities if type(s).__name__ == "OPTINFO"]
    assert opt.opttype == "PUT" and opt.strikeprice == contract.strike


def test_a_missing_option_quote_in_a_replay_is_skipped_without_real_sleeps(tmp_path: Path) -> None:
    home = _long_put_home(tmp_path)

    class _NoOptionQuotes:
        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self._inner, self.name, self.capabilities = inner, inner.name, inner.capabilities

        def __getattr__(self, item):  # type: ignore[no-untyped-def]
            return getattr(self._inner, item)

        def get_latest_quote(self, symbol: str):  # type: ignore[no-untyped-def]
            if OptionContract.from_occ(symbol) is not None:
                raise MarketDataError(f"no option chain for {symbol}")
            return self._inner.get_latest_quote(symbol)

    sup = Supervisor(home, replay_day=PUT_DAY, broker_wrapper=_NoOptionQuotes)
    assert sup.run() == 0
    ctx = sup.ctx
    assert ctx is not None and isinstance(ctx.clock, ReplayClock)
    # the back-offs happened, and they waited on the replay clock (which advances instantly), not time.sleep
    assert ctx.errors.retries > 0
    assert ctx.errors.policy.sleep == ctx.clock.sleep
    logs = "".join(p.read_text() for p in home.root.glob("output/*/logs/*") if p.is_file())
    assert "missing_market_data" in logs


def test_the_bsm_filter_takes_the_sims_fair_premium(tmp_path: Path) -> None:
    """The sim prices a put to its expiry's close; the filter measured whole days and rejected that very premium as
    17% over its own theoretical (a broker review: 2011-03-02, SYN8)."""
    home = _long_put_home(tmp_path)
    assert Supervisor(home, replay_day=date(2011, 3, 2)).run() == 0
    logged = "".join(p.read_text() for p in home.root.glob("output/*/logs/*.log"))
    assert "SYN8110304P00034000" in logged and '"event": "entry_order"' in logged  # the put is bought


@pytest.mark.parametrize(
    ("today", "expiry"),
    [
        (date(2024, 3, 18), date(2024, 3, 22)),  # an ordinary week: its Friday
        (date(2024, 3, 25), date(2024, 3, 28)),  # Good Friday: the Thursday before, as listed
        (date(2024, 3, 28), date(2024, 4, 5)),  # Thursday: the Friday a week on (two sessions out)
    ],
)
def test_the_weekly_expiry_is_a_session(today: date, expiry: date) -> None:
    from types import SimpleNamespace

    from tbot_bot.trading.instruments import nearest_expiry

    ctx = SimpleNamespace(session_date=today, settings=SimpleNamespace(MARKET_CALENDAR="XNYS"))
    assert nearest_expiry(ctx) == expiry  # type: ignore[arg-type]


class _OptionQuotes:
    """The sim's option quotes made wider around the same mid: bid = mid x (1 - half), ask = mid x (1 + half)."""

    def __init__(self, inner, half: Decimal) -> None:  # type: ignore[no-untyped-def]
        self._inner, self.name, self.capabilities, self.half = inner, inner.name, inner.capabilities, half
        self.quoted: dict[str, Quote] = {}

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        return getattr(self._inner, item)

    def get_latest_quote(self, symbol: str):  # type: ignore[no-untyped-def]
        q = self._inner.get_latest_quote(symbol)
        if OptionContract.from_occ(symbol) is None:
            return q
        self.quoted[symbol] = Quote(symbol, q.mid * (1 - self.half), q.mid * (1 + self.half), q.timestamp)
        return self.quoted[symbol]


def _put_entries(home: BotHome, day: date) -> list[Any]:
    journal = OrderJournal(home.state_dir / "journal.db")
    try:
        return [
            i for i in journal.intents(day.isoformat()) if i.purpose == "entry" and i.instrument == "option"
        ]
    finally:
        journal.close()


def test_a_put_is_sized_at_the_ask_a_market_buy_pays(tmp_path: Path) -> None:
    """Sized at the mid, a put quoted wide bought more contracts than its slot pays for at the ask (a risk review:
    bid 0 / ask twice the fair premium bought 1.93 times the slot)."""
    home = _long_put_home(tmp_path)
    wrappers: list[_OptionQuotes] = []
    sup = Supervisor(
        home,
        replay_day=PUT_DAY,
        broker_wrapper=lambda b: wrappers.append(_OptionQuotes(b, Decimal("0.04"))) or wrappers[0],
    )
    assert sup.run() == 0
    (entry,) = _put_entries(home, PUT_DAY)
    ask = wrappers[0].quoted[entry.symbol].ask
    assert entry.qty >= 1 and entry.qty * ask * 100 <= entry.notional < (entry.qty + 1) * ask * 100


def test_a_put_without_a_bid_is_not_bought(tmp_path: Path) -> None:
    home = _long_put_home(tmp_path)
    sup = Supervisor(home, replay_day=PUT_DAY, broker_wrapper=lambda b: _OptionQuotes(b, Decimal(1)))
    assert sup.run() == 0
    assert _put_entries(home, PUT_DAY) == []
    logged = "".join(p.read_text() for p in home.root.glob("output/*/logs/*.log"))
    assert "has no two-sided market (bid 0" in logged and "no_option_data" in logged
