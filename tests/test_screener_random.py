"""Randomized (seeded) symbol sets through the screener, checked against an independent statement of the rules."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import make_settings

from tbot_bot.broker.broker_api import Quote, Snapshot
from tbot_bot.domain.clock import ReplayClock
from tbot_bot.screeners.finnhub_screener import Screener, inverse_etf_whitelist
from tbot_bot.screeners.fundamentals import LocalFileFundamentals

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


class SnapshotBroker:
    def __init__(self, snaps: dict[str, Snapshot]) -> None:
        self.snaps = snaps

    def get_snapshots(self, symbols: list[str]) -> dict[str, Snapshot]:
        return {s: self.snaps[s] for s in symbols if s in self.snaps}


def random_world(
    rng: random.Random, n: int
) -> tuple[dict[str, Snapshot], dict[str, dict[str, float | None]]]:
    etfs = sorted(inverse_etf_whitelist())
    snaps: dict[str, Snapshot] = {}
    metrics: dict[str, dict[str, float | None]] = {}
    for i in range(n):
        sym = rng.choice(etfs) if rng.random() < 0.15 else f"S{i:03d}"
        price = Decimal(str(round(rng.uniform(1, 300), 2)))
        open_ = Decimal(str(round(float(price) * rng.uniform(0.8, 1.2), 2))) if rng.random() > 0.05 else None
        vol = (
            rng.choice([None, rng.randint(0, 5_000_000)]) if rng.random() < 0.1 else rng.randint(0, 5_000_000)
        )
        half_spread = Decimal(str(round(float(price) * rng.uniform(0, 0.02) / 2, 4)))
        quote = Quote(sym, price - half_spread, price + half_spread, NOW) if rng.random() > 0.05 else None
        if rng.random() > 0.03:  # some symbols have no snapshot at all
            snaps[sym] = Snapshot(sym, price, open_, price, vol, quote)
        if rng.random() > 0.1:
            metrics[sym] = {
                "marketCapitalization": rng.choice([None, rng.uniform(500, 20000)])
                if rng.random() < 0.1
                else rng.uniform(500, 20000),
                "peNormalizedAnnual": rng.uniform(-10, 80),
                "totalDebt/totalEquityAnnual": rng.uniform(0, 4),
            }
    return snaps, metrics


def expected_pass(
    sym: str, snaps: dict[str, Snapshot], metrics: dict, s: object, strategy: str, guard_on: bool
) -> bool:
    """The DESIGN §7 rules, written out again independently of the screener."""
    snap = snaps.get(sym)
    if snap is None or snap.quote is None or snap.prev_volume is None:
        return False
    q = snap.quote
    if not (s.MIN_PRICE <= snap.price <= s.MAX_PRICE) or snap.prev_volume < s.MIN_VOLUME_THRESHOLD:  # type: ignore[attr-defined]
        return False
    if q.bid <= 0 or (q.ask - q.bid) / ((q.ask + q.bid) / 2) > Decimal(str(s.MAX_SPREAD_PCT)):  # type: ignore[attr-defined]
        return False
    if sym in inverse_etf_whitelist():
        return True
    if snap.today_open is None or abs(snap.price / snap.today_open - 1) > Decimal(
        str(getattr(s, f"MAX_GAP_PCT_{strategy.upper()}"))
    ):
        return False
    m = metrics.get(sym)
    if m is None or m["marketCapitalization"] is None:
        return False
    cap = m["marketCapitalization"] * 1e6
    if (
        not getattr(s, f"MIN_MARKET_CAP_{strategy.upper()}")
        <= cap
        <= getattr(s, f"MAX_MARKET_CAP_{strategy.upper()}")
    ):
        return False
    if guard_on:
        pe, de = m["peNormalizedAnnual"], m["totalDebt/totalEquityAnnual"]
        if pe is None or pe <= 0 or pe > s.MAX_PE_RATIO or de is None or de > s.MAX_DEBT_EQUITY:  # type: ignore[attr-defined]
            return False
        if cap < s.MIN_MARKET_CAP_FUNDAMENTAL:  # type: ignore[attr-defined]
            return False
    return True


@pytest.mark.parametrize("seed", range(12))
def test_random_universes(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    snaps, metrics = random_world(rng, rng.randint(1, 120))
    path = tmp_path / "fundamentals.json"
    path.write_text(json.dumps(metrics), encoding="utf-8")
    strategy = rng.choice(["open", "mid", "close"])
    guard_on = rng.random() < 0.5
    settings = make_settings(
        ENABLE_FUNNHUB_FUNDAMENTALS_FILTER=str(guard_on).lower(),
        MAX_GAP_PCT_MID="0.05",
        MIN_MARKET_CAP_CLOSE="1000000000",
        MAX_MARKET_CAP_CLOSE="15000000000",
    )
    universe = list(snaps) + [f"MISSING{i}" for i in range(rng.randint(0, 3))]
    rng.shuffle(universe)
    screener = Screener(settings, SnapshotBroker(snaps), LocalFileFundamentals(path), ReplayClock(NOW))  # type: ignore[arg-type]
    result = screener.screen(strategy, universe, NOW)

    unique = list(dict.fromkeys(universe))
    assert sorted(result.symbols + [r.symbol for r in result.rejections]) == sorted(unique)
    assert len(set(result.symbols)) == len(result.symbols)
    assert all(r.reason and r.filter for r in result.rejections)
    expected = {sym for sym in unique if expected_pass(sym, snaps, metrics, settings, strategy, guard_on)}
    assert set(result.symbols) == expected
    for c in result.candidates:
        assert settings.MIN_PRICE <= c.price <= settings.MAX_PRICE
        assert c.spread_pct <= settings.MAX_SPREAD_PCT
