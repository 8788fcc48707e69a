"""Company fundamentals (market cap, P/E, debt/equity) for the screener and the fundamentals guard.

Two providers behind one interface: Finnhub through finnhub-python (rate-limited, cached per day in
`data/cache/fundamentals_{date}.json`) and a local JSON file (the sim/demo's bundled sample).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tbot_bot.errors import ConfigError, DataError, MarketDataError, NetworkError
from tbot_bot.screeners.rate_limit import TokenBucket
from tbot_bot.support.utils_bot import atomic_write_json, parse_json

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.support.path_resolver import BotHome

_log = logging.getLogger(__name__)

FINNHUB_DEFAULT_URL = "https://finnhub.io/api/v1"
METRIC_KEYS = ("marketCapitalization", "peNormalizedAnnual", "totalDebt/totalEquityAnnual")
USD_PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Fundamentals:
    symbol: str
    market_cap: Decimal | None  # USD (Finnhub reports millions; converted here)
    pe_normalized: float | None
    debt_equity: float | None

    @classmethod
    def from_metric(cls, symbol: str, metric: dict[str, Any]) -> Fundamentals:
        def num(key: str) -> float | None:
            return _figure(metric.get(key))

        cap_m = num("marketCapitalization")
        return cls(
            symbol=symbol,
            market_cap=(Decimal(str(cap_m)) * USD_PER_MILLION).quantize(Decimal(1))
            if cap_m is not None
            else None,
            pe_normalized=num("peNormalizedAnnual"),
            debt_equity=num("totalDebt/totalEquityAnnual"),
        )


@dataclass(slots=True)
class FundamentalsLookup:
    found: dict[str, Fundamentals] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # symbol -> why its fundamentals are unknown

    @property
    def outage(self) -> str | None:
        """Why the source stopped answering (the rest were not asked), when it did."""
        return next((e for e in self.errors.values() if e.startswith(OUTAGE)), None)


OUTAGE = "finnhub unavailable:"  # how an error of a source that stopped answering begins
OUTAGE_HOLD = (
    60.0  # seconds an outage holds: later parts of a screen are not asked of a source that just failed
)


def _figure(value: Any) -> float | None:
    """A metric the guard can compare, or None: NaN or infinity (a feed's placeholder), text and booleans are no
    figure at all."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_fundamentals_file(path: Path) -> dict[str, dict[str, Any]]:
    """A fundamentals file ({"SYM": {"marketCapitalization": <USD millions>, "peNormalizedAnnual": x,
    "totalDebt/totalEquityAnnual": y}}, a metric null when unknown), checked once for the backtest and the replay
    alike: DataError naming the file, the symbol and the metric."""
    allowed = f"an object mapping each symbol to its metrics ({', '.join(METRIC_KEYS)}: numbers or null)"
    try:
        raw = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a JSON file of fundamentals ({exc}); it must be {allowed}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a JSON {type(raw).__name__}; it must be {allowed}")
    out: dict[str, dict[str, Any]] = {}
    for symbol, metrics in raw.items():
        if not isinstance(metrics, dict):
            raise DataError(
                f"{path}: {symbol}: {metrics!r:.40} is not an object of metrics; it must be {allowed}"
            )
        for key in METRIC_KEYS:
            v = metrics.get(key)
            if v is not None and _figure(v) is None:
                raise DataError(f"{path}: {symbol}: {key} is {v!r:.40}; a finite number or null is allowed")
        out[str(symbol).upper()] = metrics
    return out


class FundamentalsProvider(Protocol):
    name: str

    def get(self, symbols: Iterable[str], day: date) -> FundamentalsLookup: ...


class LocalFileFundamentals:
    """Reads {"SYM": {"marketCapitalization": <USD millions>, "peNormalizedAnnual": x, ...}} once."""

    name = "local_file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._metrics: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._metrics is None:
            if not self.path.is_file():
                raise ConfigError(f"fundamentals file {self.path} does not exist")
            self._metrics = read_fundamentals_file(self.path)
        return self._metrics

    def get(self, symbols: Iterable[str], day: date) -> FundamentalsLookup:
        metrics = self._load()
        out = FundamentalsLookup()
        for sym in symbols:
            m = metrics.get(sym.upper())
            if m is None:
                out.errors[sym] = f"no fundamentals for {sym} in {self.path.name}"
            else:
                out.found[sym] = Fundamentals.from_metric(sym, m)
        return out


class FinnhubFundamentals:
    """company_basic_financials(sym, "all") under a token bucket, with backoff on 429 and a per-day cache."""

    name = "finnhub"

    def __init__(
        self,
        api_key: str,
        cache_dir: Path,
        bucket: TokenBucket,
        *,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_429_retries: int = 4,
        backoff_base: float = 2.0,
        timeout: float = 10.0,
        client: Any = None,
    ) -> None:
        if client is None:
            import finnhub

            client = finnhub.Client(api_key=api_key)
            client.API_URL = (base_url or FINNHUB_DEFAULT_URL).rstrip("/")
            client.DEFAULT_TIMEOUT = timeout
        self._client = client
        self.cache_dir = cache_dir
        self.bucket = bucket
        self._sleep = sleep
        self.max_429_retries = max_429_retries
        self.backoff_base = backoff_base
        self.calls = 0
        self.rate_limited = 0
        self._outage: tuple[str, float] | None = None  # the last outage and until when it holds (monotonic)

    def cache_path(self, day: date) -> Path:
        return self.cache_dir / f"fundamentals_{day.isoformat()}.json"

    def _read_cache(self, day: date) -> dict[str, dict[str, Any]]:
        path = self.cache_path(day)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as e:
            _log.warning("fundamentals cache %s unreadable (%s); refetching", path, e)
            return {}
        return raw if isinstance(raw, dict) else {}

    def get(self, symbols: Iterable[str], day: date) -> FundamentalsLookup:
        cache = self._read_cache(day)
        out = FundamentalsLookup()
        dirty = False
        # an outage met in an earlier call (a screen asks in parts) holds for a while: what is cached is served,
        # nothing more is asked until it has passed
        held = self._outage
        outage: str | None = held[0] if held is not None and time.monotonic() < held[1] else None
        for sym in symbols:
            if sym in cache:
                out.found[sym] = Fundamentals.from_metric(sym, cache[sym])
                continue
            if outage is not None:
                # one persistent failure is enough: do not hammer a failing API for every remaining symbol
                out.errors[sym] = outage
                continue
            try:
                metric = self._fetch(sym)
            # that symbol refused (a 404 for a delisted one): the others are still asked
            except MarketDataError as e:
                out.errors[sym] = str(e)
                continue
            except NetworkError as e:
                outage = f"{OUTAGE} {e}"
                self._outage = (outage, time.monotonic() + OUTAGE_HOLD)
                out.errors[sym] = outage
                continue
            cache[sym] = metric
            dirty = True
            out.found[sym] = Fundamentals.from_metric(sym, metric)
        if dirty:
            atomic_write_json(self.cache_path(day), cache)
        return out

    def _fetch(self, symbol: str) -> dict[str, Any]:
        import requests
        from finnhub.exceptions import FinnhubAPIException, FinnhubRequestException

        attempt = 0
        while True:
            self.bucket.acquire()
            self.calls += 1
            try:
                payload = self._client.company_basic_financials(symbol, "all")
            except FinnhubAPIException as e:
                status = getattr(e, "status_code", 0)
                if status == 429:
                    self.rate_limited += 1
                    self.bucket.drain()
                    if attempt >= self.max_429_retries:
                        raise NetworkError(
                            f"finnhub rate limit (429) persisted after {attempt} retries for {symbol}"
                        ) from e
                    delay = self.backoff_base * (2**attempt)
                    _log.warning("finnhub 429 for %s; backing off %.1fs", symbol, delay)
                    self._sleep(delay)
                    attempt += 1
                    continue
                if status in (401, 403):
                    raise ConfigError(f"FINNHUB_API_KEY was refused (HTTP {status}): {e.message}") from e
                if status >= 500:
                    if attempt < 1:  # one more try: a single 500 must not take the whole pass down
                        self._sleep(self.backoff_base)
                        attempt += 1
                        continue
                    raise NetworkError(f"finnhub HTTP {status} for {symbol}") from e
                raise MarketDataError(f"finnhub refused {symbol} (HTTP {status}): {e.message}") from e
            except FinnhubRequestException as e:
                raise NetworkError(f"finnhub returned an unreadable reply for {symbol}: {e.message}") from e
            except requests.RequestException as e:
                # the text of a requests error holds the URL, and finnhub-python sends the key as its `token`
                # query parameter: the reason is logged and shown, so the query never is
                raise NetworkError(f"finnhub request failed for {symbol}: {without_query(str(e))}") from e
            if not isinstance(payload, dict):
                raise NetworkError(f"finnhub returned {type(payload).__name__} for {symbol}, not an object")
            metric = payload.get("metric") or {}
            if not isinstance(metric, dict):
                metric = {}
            return {k: metric.get(k) for k in METRIC_KEYS}


def sample_fundamentals_path() -> Path:
    from tbot_bot.support.path_resolver import package_file

    return package_file("data", "sample", "fundamentals.json")


def build_fundamentals_provider(
    settings: BotSettings,
    home: BotHome,
    *,
    replay_file: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> FundamentalsProvider:
    """The sim reads a file: the replay data source's fundamentals.json (`replay_file`, as a backtest of that
    source reads it), else the bundled sample's; a live broker uses Finnhub (screener_api secret)."""
    # BROKER_NAME=SIM: replayed days use a local file, never the network
    if settings.BROKER_NAME == "SIM":
        return LocalFileFundamentals(replay_file or sample_fundamentals_path())
    from tbot_bot.support.decrypt_secrets import load_secret_json

    secret = load_secret_json(home, "screener_api")
    api_key = str(secret.get("FINNHUB_API_KEY") or "").strip()
    if not api_key:
        raise ConfigError("FINNHUB_API_KEY is missing from storage/secrets/screener_api.json.enc")
    bucket = TokenBucket(settings.FINNHUB_CALLS_PER_MINUTE, monotonic=monotonic, sleep=sleep)
    return FinnhubFundamentals(
        api_key,
        home.cache_dir,
        bucket,
        base_url=secret.get("FINNHUB_BASE_URL") or None,
        sleep=sleep,
    )


_QUERY = re.compile(r"((?:https?://|/)[^\s?'\"]*)\?[^\s'\")]*")


def without_query(text: str) -> str:
    """`text` with every URL's query string cut (`/stock/metric?token=...&symbol=X` -> `/stock/metric?...`)."""
    return _QUERY.sub(r"\1?...", text)
