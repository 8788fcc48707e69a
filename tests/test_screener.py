"""Screener filters, the Finnhub fundamentals provider against a fake server, the day cache and the rate limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes.finnhub_server import FakeFinnhub
from helpers import make_settings

from tbot_bot.broker.broker_api import Quote, Snapshot
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.errors import ConfigError, DataError, NetworkError
from tbot_bot.screeners.finnhub_screener import Screener, inverse_etf_whitelist
from tbot_bot.screeners.fundamentals import (
    FinnhubFundamentals,
    LocalFileFundamentals,
    build_fundamentals_provider,
)
from tbot_bot.screeners.rate_limit import TokenBucket
from tbot_bot.support.path_resolver import BotHome

NOW = datetime(2026, 11, 25, 14, 50, tzinfo=UTC)


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class SnapshotBroker:
    """Only what the screener asks of a broker: get_snapshots."""

    def __init__(self, snaps: dict[str, Snapshot]) -> None:
        self.snaps = snaps
        self.asked: list[list[str]] = []

    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        self.asked.append(list(symbols))
        return {s: self.snaps[s] for s in symbols if s in self.snaps}


def snap(sym: str, price: str = "50", open_: str | None = "49.5", vol: int | None = 2_000_000,
         bid: str = "49.99", ask: str = "50.01") -> Snapshot:  # fmt: skip
    q = Quote(sym, Decimal(bid), Decimal(ask), NOW)
    return Snapshot(sym, Decimal(price), Decimal(open_) if open_ else None, Decimal(price), vol, q)


def metrics_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    p = tmp_path / "fundamentals.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


GOOD = {"marketCapitalization": 5000, "peNormalizedAnnual": 20, "totalDebt/totalEquityAnnual": 0.5}


def make_screener(snaps: dict[str, Snapshot], fundamentals: Any, **overrides: object) -> Screener:
    return Screener(make_settings(**overrides), SnapshotBroker(snaps), fundamentals, ReplayClock(NOW))  # type: ignore[arg-type]


def test_every_filter_rejects_with_a_reason(tmp_path: Path) -> None:
    snaps = {
        "OK": snap("OK"),
        "CHEAP": snap("CHEAP", price="4", open_="4"),
        "DEAR": snap("DEAR", price="250", open_="250"),
        "THIN": snap("THIN", vol=999_999),
        "NOVOL": snap("NOVOL", vol=None),
        "WIDE": snap("WIDE", bid="49", ask="51"),
        "NOQUOTE": Snapshot("NOQUOTE", Decimal(50), Decimal(50), None, 2_000_000, None),
        "GAPPY": snap("GAPPY", price="50", open_="40"),
        "NOOPEN": snap("NOOPEN", open_=None),
        "SMALL": snap("SMALL"),
        "BIG": snap("BIG"),
        "NOCAP": snap("NOCAP"),
    }
    fund = LocalFileFundamentals(metrics_file(tmp_path, {
        "OK": GOOD, "SMALL": {**GOOD, "marketCapitalization": 1999}, "BIG": {**GOOD, "marketCapitalization": 10001},
        "NOCAP": {"peNormalizedAnnual": 10},
    }))  # fmt: skip
    result = make_screener(snaps, fund).screen("open", [*snaps, "GHOST"], NOW)
    assert result.symbols == ["OK"]
    by_sym = {r.symbol: r for r in result.rejections}
    assert by_sym["CHEAP"].filter == "MIN_PRICE" and "4 < MIN_PRICE 5" in by_sym["CHEAP"].reason
    assert by_sym["DEAR"].filter == "MAX_PRICE"
    assert by_sym["THIN"].filter == "MIN_VOLUME_THRESHOLD" and "999,999" in by_sym["THIN"].reason
    assert by_sym["NOVOL"].filter == "MIN_VOLUME_THRESHOLD"
    assert by_sym["WIDE"].filter == "MAX_SPREAD_PCT" and "4.0000%" in by_sym["WIDE"].reason
    assert by_sym["NOQUOTE"].filter == "MAX_SPREAD_PCT"
    assert by_sym["GAPPY"].filter == "MAX_GAP_PCT_OPEN" and "25.0000%" in by_sym["GAPPY"].reason
    assert by_sym["NOOPEN"].filter == "MAX_GAP_PCT_OPEN"
    assert by_sym["SMALL"].filter == "MIN_MARKET_CAP_OPEN" and "1,999,000,000" in by_sym["SMALL"].reason
    assert by_sym["BIG"].filter == "MAX_MARKET_CAP_OPEN"
    assert by_sym["NOCAP"].reason == "market cap unknown"
    assert by_sym["GHOST"].filter == "snapshot"
    assert len(result.rejections) == len(snaps)  # 11 rejected + GHOST, OK passed
    assert result.candidates[0].market_cap == Decimal(5_000_000_000)
    assert result.rejection_counts()["MAX_MARKET_CAP_OPEN"] == 1


def test_gap_limit_is_per_strategy(tmp_path: Path) -> None:
    fund = LocalFileFundamentals(metrics_file(tmp_path, {"A": GOOD}))
    snaps = {"A": snap("A", price="50", open_="47")}  # gap 6.38%
    assert make_screener(snaps, fund, MAX_GAP_PCT_MID="0.05").screen("mid", ["A"], NOW).symbols == []
    assert make_screener(snaps, fund, MAX_GAP_PCT_MID="0.07").screen("mid", ["A"], NOW).symbols == ["A"]
    assert make_screener(snaps, fund, MAX_GAP_PCT_MID="0.05").screen("open", ["A"], NOW).symbols == ["A"]


def test_fundamentals_guard_inside_screener(tmp_path: Path) -> None:
    fund = LocalFileFundamentals(metrics_file(tmp_path, {"A": GOOD, "B": {**GOOD, "peNormalizedAnnual": 80}}))
    snaps = {"A": snap("A"), "B": snap("B")}
    off = make_screener(snaps, fund, ENABLE_FUNNHUB_FUNDAMENTALS_FILTER="false").screen(
        "mid", ["A", "B"], NOW
    )
    assert off.symbols == ["A", "B"]
    on = make_screener(snaps, fund, ENABLE_FUNNHUB_FUNDAMENTALS_FILTER="true").screen("mid", ["A", "B"], NOW)
    assert on.symbols == ["A"]
    assert (
        on.rejections[0].filter == "ENABLE_FUNNHUB_FUNDAMENTALS_FILTER"
        and "P/E 80.00" in on.rejections[0].reason
    )


def test_inverse_etfs_whitelist_and_no_market_cap(tmp_path: Path) -> None:
    assert len(inverse_etf_whitelist()) == 20 and "SQQQ" in inverse_etf_whitelist()
    fund = LocalFileFundamentals(tmp_path / "absent.json")  # would raise if the screener asked it
    snaps = {"SH": snap("SH", price="40", open_="30"), "PSQ": snap("PSQ", vol=10), "XYZ": snap("XYZ"),
             "SQQQ": snap("SQQQ", bid="39", ask="41")}  # fmt: skip
    result = make_screener(snaps, fund).screen_inverse_etfs("close", ["SH", "PSQ", "XYZ", "SQQQ"], NOW)
    assert result.symbols == ["SH"]  # a 33% gap is no reason to refuse the hedge
    assert result.candidates[0].is_inverse_etf and result.candidates[0].market_cap is None
    reasons = {r.symbol: r.filter for r in result.rejections}
    assert reasons == {"XYZ": "INVERSE_ETF_TOP20", "PSQ": "MIN_VOLUME_THRESHOLD", "SQQQ": "MAX_SPREAD_PCT"}


def test_local_file_provider_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        LocalFileFundamentals(tmp_path / "nope.json").get(["A"], NOW.date())
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    # a damaged file is a data file's problem, named with the file (the same reader as the backtest's)
    with pytest.raises(DataError, match="bad.json: not a JSON file of fundamentals"):
        LocalFileFundamentals(bad).get(["A"], NOW.date())
    look = LocalFileFundamentals(metrics_file(tmp_path, {"a": GOOD})).get(["A", "B"], NOW.date())
    assert set(look.found) == {"A"} and "no fundamentals for B" in look.errors["B"]


def test_build_provider_for_sim_uses_bundled_file(tmp_path: Path) -> None:
    provider = build_fundamentals_provider(make_settings(), BotHome(tmp_path))
    assert isinstance(provider, LocalFileFundamentals)
    assert provider.path.name == "fundamentals.json"


# ---- Finnhub through finnhub-python against the fake server


@pytest.fixture
def finnhub_fake() -> Iterator[FakeFinnhub]:
    with FakeFinnhub() as fake:
        fake.set_metric("AAA", 5000, 20, 0.5)
        fake.set_metric("BBB", 3000, 15, 1.0)
        fake.set_metric("CCC", 1000, 15, 1.0)
        yield fake


def finnhub_provider(fake: FakeFinnhub, cache: Path, clock: FakeTime, token: str = "test-token",
                     per_minute: int = 60, retries: int = 4) -> FinnhubFundamentals:  # fmt: skip
    bucket = TokenBucket(per_minute, monotonic=clock.monotonic, sleep=clock.sleep)
    return FinnhubFundamentals(
        token, cache, bucket, base_url=fake.base_url, sleep=clock.sleep, max_429_retries=retries, timeout=5
    )


def test_finnhub_fetch_and_day_cache(finnhub_fake: FakeFinnhub, tmp_path: Path) -> None:
    clock = FakeTime()
    provider = finnhub_provider(finnhub_fake, tmp_path / "cache", clock)
    look = provider.get(["AAA", "BBB", "ZZZ"], date(2026, 11, 25))
    assert look.found["AAA"].market_cap == Decimal(5_000_000_000)
    assert look.found["AAA"].pe_normalized == 20 and look.found["AAA"].debt_equity == 0.5
    assert look.found["ZZZ"].market_cap is None  # unknown symbol: empty metric, cached as unknown
    assert finnhub_fake.metric_calls() == ["AAA", "BBB", "ZZZ"]
    path = tmp_path / "cache" / "fundamentals_2026-11-25.json"
    assert json.loads(path.read_text())["BBB"]["marketCapitalization"] == 3000
    assert any(q.get("token") == "test-token" and q.get("metric") == "all" for _, q in finnhub_fake.requests)

    again = finnhub_provider(finnhub_fake, tmp_path / "cache", clock)  # a restart the same day
    assert again.get(["AAA", "BBB"], date(2026, 11, 25)).found["BBB"].pe_normalized == 15
    assert finnhub_fake.metric_calls() == ["AAA", "BBB", "ZZZ"]  # served from the cache
    again.get(["AAA"], date(2026, 11, 26))
    assert finnhub_fake.metric_calls()[-1] == "AAA"  # a new day refetches


def test_finnhub_429_backs_off_then_succeeds(finnhub_fake: FakeFinnhub, tmp_path: Path) -> None:
    clock = FakeTime()
    provider = finnhub_provider(finnhub_fake, tmp_path, clock)
    finnhub_fake.fail_next(2, 429)
    look = provider.get(["AAA"], NOW.date())
    assert "AAA" in look.found and provider.rate_limited == 2
    backoffs = [s for s in clock.sleeps if s >= 2.0]
    assert backoffs[:2] == [2.0, 4.0]


def test_finnhub_persistent_429_is_an_outage_not_a_hammering(
    finnhub_fake: FakeFinnhub, tmp_path: Path
) -> None:
    clock = FakeTime()
    provider = finnhub_provider(finnhub_fake, tmp_path, clock, retries=2)
    finnhub_fake.fail_next(100, 429)
    look = provider.get(["AAA", "BBB", "CCC"], NOW.date())
    assert look.found == {}
    assert all("finnhub unavailable" in look.errors[s] for s in ("AAA", "BBB", "CCC"))
    assert finnhub_fake.metric_calls() == ["AAA"] * 3  # 1 + 2 retries, then the others are not tried
    assert not (tmp_path / f"fundamentals_{NOW.date()}.json").exists()


def test_finnhub_outage_rejects_in_screener(finnhub_fake: FakeFinnhub, tmp_path: Path) -> None:
    clock = FakeTime()
    finnhub_fake.fail_next(100, 503)
    provider = finnhub_provider(finnhub_fake, tmp_path, clock)
    result = make_screener({"AAA": snap("AAA")}, provider).screen("open", ["AAA"], NOW)
    assert result.symbols == [] and result.rejections[0].filter == "fundamentals"
    with pytest.raises(NetworkError):
        provider._fetch("AAA")


def test_finnhub_bad_key_is_a_config_error(finnhub_fake: FakeFinnhub, tmp_path: Path) -> None:
    provider = finnhub_provider(finnhub_fake, tmp_path, FakeTime(), token="wrong")
    with pytest.raises(ConfigError, match="FINNHUB_API_KEY"):
        provider.get(["AAA"], NOW.date())


def test_finnhub_connection_refused_is_network_error(tmp_path: Path) -> None:
    fake = FakeFinnhub().start()
    url = fake.base_url
    fake.stop()
    bucket = TokenBucket(60, monotonic=FakeTime().monotonic, sleep=FakeTime().sleep)
    provider = FinnhubFundamentals("sekret-key-123", tmp_path, bucket, base_url=url, timeout=2)
    reason = provider.get(["AAA"], NOW.date()).errors["AAA"]
    assert "finnhub unavailable" in reason
    # the reason is logged and shown: the key finnhub-python sends in the URL's query never is
    assert "sekret-key-123" not in reason and "token=" not in reason and "/stock/metric?..." in reason, reason


def test_screener_with_finnhub_end_to_end(finnhub_fake: FakeFinnhub, tmp_path: Path) -> None:
    provider = finnhub_provider(finnhub_fake, tmp_path, FakeTime())
    snaps = {s: snap(s) for s in ("AAA", "BBB", "CCC", "SH")}
    snaps["BBB"] = snap("BBB", price="3", open_="3")
    result = make_screener(snaps, provider).screen("open", ["AAA", "BBB", "CCC", "SH"], NOW)
    assert result.symbols == ["AAA", "SH"]
    assert finnhub_fake.metric_calls() == ["AAA", "CCC"]  # only survivors of the market filters, no ETF


# ---- token bucket


def test_token_bucket_keeps_the_rate() -> None:
    clock = FakeTime()
    bucket = TokenBucket(60, capacity=10, monotonic=clock.monotonic, sleep=clock.sleep)
    start = clock.t
    for _ in range(70):
        bucket.acquire()
    # 10 burst + 60 more at 1/s
    assert clock.t - start == pytest.approx(60.0, abs=1e-6)
    bucket.drain()
    assert bucket.acquire() == pytest.approx(1.0)


def test_token_bucket_refills_while_idle() -> None:
    clock = FakeTime()
    bucket = TokenBucket(30, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    clock.t += 3600
    for _ in range(10):
        assert bucket.acquire() == 0.0
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_bundled_sample_fundamentals_load(tmp_path: Path) -> None:
    # the provider boot builds for the sim: the bundled sample file
    provider = build_fundamentals_provider(make_settings(), BotHome(tmp_path))
    assert isinstance(provider, LocalFileFundamentals)
    raw = json.loads(provider.path.read_text(encoding="utf-8"))
    look = provider.get(list(raw), NOW.date())
    assert set(look.found) == {s.upper() for s in raw} and not look.errors
    assert all(f.market_cap is not None for f in look.found.values())


def test_one_refused_symbol_or_one_500_does_not_take_the_pass_down(
    finnhub_fake: FakeFinnhub, tmp_path: Path
) -> None:
    """A 404 for one symbol (a delisted one) was taken for an outage: every later symbol was rejected as
    "finnhub unavailable" unasked. A single 500 did the same; it gets one more try now."""
    clock = FakeTime()
    provider = finnhub_provider(finnhub_fake, tmp_path, clock)
    finnhub_fake.fail_next(1, 404)
    look = provider.get(["AAA", "BBB", "CCC"], NOW.date())
    assert sorted(look.found) == ["BBB", "CCC"] and "finnhub refused AAA (HTTP 404)" in look.errors["AAA"]
    assert finnhub_fake.metric_calls() == ["AAA", "BBB", "CCC"]
    finnhub_fake.fail_next(1, 500)
    again = provider.get(["AAA"], date(2026, 11, 26))
    assert "AAA" in again.found and not again.errors


def test_a_first_screen_of_many_symbols_keeps_the_watchdog_fed_and_its_work_cached(
    finnhub_fake: FakeFinnhub, tmp_path: Path
) -> None:
    """At Finnhub's 60 calls a minute, the fundamentals of a thousand equities take 17 minutes: as one call it
    outlasted the keep-alive's limit on one external wait (systemd restarted the bot) and wrote its day cache only
    at the end (the restart started again from nothing). Parts of 100, each its own call, each cached as it ends;
    here 250 symbols against a 150 s limit on one call."""
    from tbot_bot.runtime.liveness import Liveness, Watched

    clock = FakeTime()
    live = Liveness(stale_after=61.0, max_external=150.0, monotonic=clock.monotonic)
    stalled: list[str] = []
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        real_sleep(seconds)
        ok, why = live.alive()
        if not ok:
            stalled.append(why)

    clock.sleep = sleep  # type: ignore[method-assign]
    symbols = [f"S{i:03d}" for i in range(250)]
    for s in symbols:
        finnhub_fake.set_metric(s, 5000, 20, 0.5)
    provider = finnhub_provider(finnhub_fake, tmp_path, clock)
    cache = provider.cache_path(NOW.date())
    sizes: list[int] = []
    real_get = provider.get

    def get(part: list[str], day: date) -> Any:
        sizes.append(len(part))
        got = real_get(part, day)
        assert len(json.loads(cache.read_text())) == sum(sizes)  # each part is cached as it ends
        return got

    provider.get = get  # type: ignore[method-assign]
    screener = make_screener({s: snap(s) for s in symbols}, Watched(provider, live, "fundamentals"))
    result = screener.screen("open", symbols, NOW)
    assert len(result.symbols) == 250 and sizes == [100, 100, 50]
    assert clock.t > 150 and stalled == []  # over 4 minutes in all, never one call over the limit


def test_a_fundamentals_outage_refuses_the_rest_unasked_and_is_said_once(
    finnhub_fake: FakeFinnhub, tmp_path: Path
) -> None:
    symbols = [f"S{i:03d}" for i in range(150)]
    for s in symbols:
        finnhub_fake.set_metric(s, 5000, 20, 0.5)
    provider = finnhub_provider(finnhub_fake, tmp_path, FakeTime(), retries=1)
    finnhub_fake.fail_next(2, 429)  # the first part's first symbol: rate limited for good
    result = make_screener({s: snap(s) for s in symbols}, provider).screen("open", symbols, NOW)
    assert result.symbols == [] and finnhub_fake.metric_calls() == ["S000", "S000"]  # the second part unasked
    assert result.fundamentals_outage is not None and result.fundamentals_outage.startswith(
        "finnhub unavailable"
    )
    # what the day's cache holds is still served after an outage (an earlier screen fetched it)
    fresh = finnhub_provider(finnhub_fake, tmp_path, FakeTime(), retries=1)
    fresh.cache_path(NOW.date()).write_text(json.dumps(dict.fromkeys(symbols[100:], GOOD)), encoding="utf-8")
    finnhub_fake.fail_next(2, 429)
    again = make_screener({s: snap(s) for s in symbols}, fresh).screen("open", symbols, NOW)
    assert again.symbols == symbols[100:] and again.fundamentals_outage is not None


def test_the_supervisor_asks_the_days_fundamentals_before_the_open(
    finnhub_fake: FakeFinnhub, tmp_path: Path
) -> None:
    """Asked at the first window's start, hundreds of symbols at Finnhub's 60 calls a minute held its screen for
    minutes of its breakout. Before the open the live loop asks them, a part per poll; the screen then reads the
    day's cache and asks nothing."""
    from types import SimpleNamespace

    from tbot_bot.runtime.main import PREFETCH_PART, Supervisor

    clock, day = FakeTime(), date(2026, 11, 25)
    provider = finnhub_provider(finnhub_fake, tmp_path / "cache", clock)
    universe = ["AAA", "BBB", "CCC", *[f"X{i:02d}" for i in range(12)], "SH"]  # SH: an inverse ETF, not asked
    events: list[tuple[str, dict[str, Any]]] = []
    now = [datetime(2026, 11, 25, 12, 59, tzinfo=UTC)]  # 07:59 New York: 91 minutes before the open
    r = SimpleNamespace(
        fundamentals=provider, settings=make_settings(), universe=["OLD"],
        clock=SimpleNamespace(now=lambda: now[0]), log=SimpleNamespace(event=lambda *a, **k: events.append((a[1], k))),
    )  # fmt: skip
    sup = Supervisor(BotHome(tmp_path / "home"))
    rewarmed: list[date] = []

    def rewarm(services: Any, today: date) -> None:
        # the day's warm-up judges today's universe first (it asked for yesterday's, judged by the last warm-up)
        rewarmed.append(today)
        services.universe = universe

    sup._rewarm = rewarm  # type: ignore[method-assign]
    assert sup._prefetch_fundamentals(r) is False and finnhub_fake.metric_calls() == []  # not yet
    now[0] = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
    polls = [(sup._prefetch_fundamentals(r), len(finnhub_fake.metric_calls())) for _ in range(2)]
    assert polls == [(True, PREFETCH_PART), (False, len(universe) - 1)]  # a part per poll; then none left
    assert sorted(finnhub_fake.metric_calls()) == sorted(s for s in universe if s != "SH")
    assert events == [("fundamentals_prefetch", {"session_date": "2026-11-25", "symbols": 15})]
    assert rewarmed == [day] and "OLD" not in finnhub_fake.metric_calls()
    asked = len(finnhub_fake.requests)
    assert sup._prefetch_fundamentals(r) is False  # done for the day
    look = finnhub_provider(finnhub_fake, tmp_path / "cache", clock).get(
        ["AAA", "X11"], day
    )  # the window's screen
    assert look.found["AAA"].market_cap == Decimal(5_000_000_000) and len(finnhub_fake.requests) == asked
    now[0] = datetime(2026, 11, 26, 13, 5, tzinfo=UTC)  # Thanksgiving: no session, nothing asked
    assert sup._prefetch_fundamentals(r) is False and len(finnhub_fake.requests) == asked


def test_a_prefetch_that_fails_stops_itself_not_the_supervisor(tmp_path: Path) -> None:
    """A refused key (401) before the open ended the supervisor without an alert: the prefetch is a head start, and
    the window's screen meets the refusal and reports it as ever."""
    from types import SimpleNamespace

    from tbot_bot.runtime.main import Supervisor

    class Refusing:
        def get(self, symbols: object, day: date) -> None:
            raise ConfigError("FINNHUB_API_KEY was refused (HTTP 401): invalid token")

    events: list[tuple[str, dict[str, Any]]] = []
    r = SimpleNamespace(
        fundamentals=Refusing(), settings=make_settings(), universe=["AAA", "BBB"], warmup=None,
        clock=SimpleNamespace(now=lambda: datetime(2026, 11, 25, 13, 5, tzinfo=UTC)),
        log=SimpleNamespace(event=lambda *a, **k: events.append((a[1], k))),
    )  # fmt: skip
    sup = Supervisor(BotHome(tmp_path / "home"))
    assert sup._prefetch_fundamentals(r) is False and sup._prefetch_fundamentals(r) is False
    assert [e for e, _ in events] == ["fundamentals_prefetch", "fundamentals_prefetch_stopped"]
    assert "HTTP 401" in events[1][1]["reason"]
