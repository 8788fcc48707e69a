"""The trading universe (`data/universe.txt`): built from the broker's active, tradable US equities plus the
inverse ETFs of the spec's pools, so an operator never types it.

Steps: the broker's list (Alpaca's asset master list; IBKR's contract search over given symbols; the sim's
replay symbols) -> listing exchange in UNIVERSE_EXCHANGES -> previous close within [min price, max price] (from
snapshots, 100 symbols per request, paced by the broker's data rate) -> the most liquid UNIVERSE_MAX_SYMBOLS by
previous-session volume -> plus every pool inverse ETF the broker lists. The screener's own filters (price,
previous volume, gap, market cap, spread, fundamentals) still decide each window's candidates; this list only
bounds what it looks at. Every symbol left out has a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tbot_bot.strategy.strategy_meta import BROAD_MARKET_FALLBACK, ETF_POOLS, is_inverse_etf
from tbot_bot.support.utils_bot import atomic_write_text

if TYPE_CHECKING:
    from tbot_bot.broker.broker_api import Broker, Snapshot
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.screeners.rate_limit import TokenBucket
    from tbot_bot.support.path_resolver import BotHome

SNAPSHOT_CHUNK = 100  # symbols per snapshot request (Alpaca's limit per call)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def pool_inverse_etfs() -> list[str]:
    """Every inverse ETF a bearish signal may be routed to (the spec's ETF_POOLS and the broad-market fallback)."""
    return sorted({s for pool in ETF_POOLS.values() for s in pool} | set(BROAD_MARKET_FALLBACK))


@dataclass(slots=True)
class UniverseBuild:
    source: str
    equities: list[str] = field(default_factory=list)
    inverse_etfs: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)  # symbol -> why it is not in the universe
    calls: int = 0  # market-data requests made

    @property
    def symbols(self) -> list[str]:
        return self.equities + self.inverse_etfs

    def exclusion_counts(self) -> dict[str, int]:
        return dict(Counter(reason.split(":")[0] for reason in self.excluded.values()))

    def summary(self) -> str:
        counts = ", ".join(f"{n} {why}" for why, n in sorted(self.exclusion_counts().items())) or "none"
        return (
            f"{len(self.equities)} equities + {len(self.inverse_etfs)} inverse ETFs from {self.source}; "
            f"left out: {counts}"
        )


def _reference_price(snap: Snapshot) -> Decimal | None:
    """The previous close (known before the session), else the last price."""
    for p in (snap.prev_close, snap.price):
        if p is not None and p > 0:
            return p
    return None


def build_universe(
    broker: Broker,
    *,
    exchanges: Sequence[str],
    min_price: Decimal,
    max_price: Decimal,
    max_symbols: int,
    symbols: Sequence[str] | None = None,
    bucket: TokenBucket | None = None,
    progress: Progress | None = None,
) -> UniverseBuild:
    """The universe from the broker's listing (or the given `symbols`, looked up at the broker)."""
    pool = pool_inverse_etfs()
    asked = (
        None
        if symbols is None
        else list(dict.fromkeys([s.strip().upper() for s in symbols if s.strip()] + pool))
    )
    listed = broker.list_equities(asked)
    build = UniverseBuild(source=f"{broker.name} ({'given list' if symbols is not None else 'asset list'})")
    found = {e.symbol for e in listed}
    for s in asked or []:
        if s not in found and not is_inverse_etf(s):
            build.excluded[s] = "not tradable: the broker does not list it as an active US equity"
    allowed = {x.upper() for x in exchanges}
    names: list[str] = []
    for e in listed:
        if is_inverse_etf(e.symbol):
            continue
        # UNIVERSE_EXCHANGES: only equities listed on these exchanges (OTC and others stay out)
        if e.exchange.upper() not in allowed and e.exchange != "SIM":
            build.excluded[e.symbol] = (
                f"exchange: listed on {e.exchange or 'no exchange'}, not {','.join(sorted(allowed))}"
            )
            continue
        names.append(e.symbol)
    names = sorted(set(names))
    volume: dict[str, int] = {}
    for i in range(0, len(names), SNAPSHOT_CHUNK):
        chunk = names[i : i + SNAPSHOT_CHUNK]
        if bucket is not None:
            bucket.acquire()
        snaps = broker.get_snapshots(chunk)
        build.calls += 1
        for sym in chunk:
            snap = snaps.get(sym)
            price = _reference_price(snap) if snap is not None else None
            if snap is None or price is None:
                build.excluded[sym] = "price: no snapshot or price from the broker"
            elif not min_price <= price <= max_price:
                build.excluded[sym] = f"price: {price} outside [{min_price}, {max_price}]"
            else:
                volume[sym] = snap.prev_volume or 0
        if progress is not None:
            progress("prices", min(i + SNAPSHOT_CHUNK, len(names)), len(names))
    ranked = sorted(volume, key=lambda s: (-volume[s], s))
    # --max-symbols / UNIVERSE_MAX_SYMBOLS: keep the most liquid by previous-session volume
    for sym in ranked[max_symbols:]:
        build.excluded[sym] = f"cap: beyond the {max_symbols} most liquid"
    build.equities = sorted(ranked[:max_symbols])
    build.inverse_etfs = [s for s in pool if s in found]
    for s in pool:
        if s not in found:
            build.excluded[s] = "not tradable: the broker does not list this inverse ETF"
    return build


def write_universe(home: BotHome, build: UniverseBuild, now: datetime) -> None:
    header = [
        f"# trading universe built {now.isoformat(timespec='seconds')} by `tbot universe build`",
        f"# {build.summary()}",
    ]
    atomic_write_text(home.universe_file, "\n".join([*header, *build.symbols]) + "\n")


def read_universe(home: BotHome) -> list[str] | None:
    """Symbols of data/universe.txt (one per line or whitespace-separated; `#` starts a comment); None if absent."""
    path = home.universe_file
    if not path.exists():
        return None
    symbols = []
    for line in path.read_text(encoding="utf-8").splitlines():
        symbols += line.split("#", 1)[0].upper().split()
    return list(dict.fromkeys(symbols))


def build_for_home(
    home: BotHome,
    settings: BotSettings,
    broker: Broker,
    now: datetime,
    *,
    exchanges: Sequence[str] | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    max_symbols: int | None = None,
    symbols: Sequence[str] | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
    write: bool = True,
) -> UniverseBuild:
    """Build with the home's settings as defaults (UNIVERSE_EXCHANGES, MIN_PRICE, MAX_PRICE,
    UNIVERSE_MAX_SYMBOLS), paced by the broker's data rate, and write data/universe.txt."""
    import time

    from tbot_bot.errors import ConfigError
    from tbot_bot.screeners.rate_limit import TokenBucket

    lo = settings.MIN_PRICE if min_price is None else min_price
    hi = settings.MAX_PRICE if max_price is None else max_price
    if lo >= hi:
        raise ConfigError(f"--min-price {lo} must be below --max-price {hi}")
    rate = broker.capabilities.data_calls_per_minute
    bucket = TokenBucket(rate, sleep=sleep or time.sleep) if rate else None
    build = build_universe(
        broker,
        exchanges=exchanges or settings.UNIVERSE_EXCHANGES,
        min_price=Decimal(lo),
        max_price=Decimal(hi),
        max_symbols=max_symbols or settings.UNIVERSE_MAX_SYMBOLS,
        symbols=symbols,
        bucket=bucket,
        progress=progress,
    )
    if not build.equities:
        raise ConfigError(
            f"the universe came out empty ({build.summary()}); widen --exchanges or the price range"
        )
    if write:
        write_universe(home, build, now)
    return build
