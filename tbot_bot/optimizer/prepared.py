"""Everything a trial needs that does not depend on its parameters, built once per worker: bars as a
`SessionGrid`, instrument prices, VIX, fundamentals, the fill context; and per window timing, the grid's
columns trimmed to the window with the session indicators (VWAP, ADX, Bollinger, first open) computed once
over whole sessions and sliced. A trial is then `evaluate(params)`: signals, fills, sizing, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tbot_bot.backtest.backtest_engine import _side_inputs
from tbot_bot.backtest.execution import MarketView
from tbot_bot.backtest.fast_execution import FillContext, TradeArrays, execute_all
from tbot_bot.backtest.load_historical_data import load_columns
from tbot_bot.backtest.slippage import SlippageModel
from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.data.bar_store import is_store, partition_stats, refused_partitions
from tbot_bot.enhancements import adx_filter, bollinger_confluence, vix_gatekeeper
from tbot_bot.errors import ConfigError, DataError
from tbot_bot.market_time import WindowSpec, previous_session_date
from tbot_bot.optimizer import prep_cache
from tbot_bot.optimizer.metrics import TrialMetrics, trial_metrics
from tbot_bot.strategy import signals as sig
from tbot_bot.strategy.decisions import WindowArrays
from tbot_bot.strategy.grid import SessionGrid, build_grid
from tbot_bot.strategy.strategy_base import window_arrays
from tbot_bot.strategy.strategy_meta import signal_universe
from tbot_bot.strategy.strategy_router import strategy_module
from tbot_bot.support.utils_bot import decimal_key

if TYPE_CHECKING:
    from tbot_bot.config.env_bot import BotSettings


@dataclass(slots=True)
class SessionIndicators:
    """Indicators over whole sessions (computed on first use, then reused by every trial)."""

    grid: SessionGrid
    disk: prep_cache.IndicatorCache | None = None  # beside the cached preparation (None: not cached)
    _memo: dict[Any, Any] = field(default_factory=dict)

    def get(self, key: Any, make: Any) -> Any:
        if key not in self._memo:
            value = self.disk.load(key) if self.disk is not None else None
            if value is None:
                value = make()
                if self.disk is not None:
                    self.disk.store(key, value)
            self._memo[key] = value
        return self._memo[key]

    def vwap(self) -> np.ndarray:
        g = self.grid
        return self.get("vwap", lambda: sig.session_vwap(g.high, g.low, g.close, g.volume))  # type: ignore[no-any-return]

    def adx(self, period: int) -> np.ndarray:
        g = self.grid
        return self.get(("adx", period), lambda: adx_filter.wilder_adx(g.high, g.low, g.close, period))  # type: ignore[no-any-return]

    def bollinger(self, period: int, num_std: float) -> tuple[np.ndarray, np.ndarray]:
        def make() -> tuple[np.ndarray, np.ndarray]:
            _, upper, lower = bollinger_confluence.bollinger_bands(self.grid.close, period, num_std)
            return upper, lower

        return self.get(("bb", period, num_std), make)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class SlicedIndicators:
    """`SessionIndicators` seen through a column slice [c0, c1) (the strategy's IndicatorSource)."""

    full: SessionIndicators
    c0: int
    c1: int

    def vwap(self) -> np.ndarray:
        return self.full.vwap()[:, self.c0 : self.c1]

    def adx(self, period: int) -> np.ndarray:
        return self.full.adx(period)[:, self.c0 : self.c1]

    def bollinger(self, period: int, num_std: float) -> tuple[np.ndarray, np.ndarray]:
        upper, lower = self.full.bollinger(period, num_std)
        return upper[:, self.c0 : self.c1], lower[:, self.c0 : self.c1]

    def first_open(self) -> np.ndarray:
        return self.full.grid.open[:, 0]


@dataclass(frozen=True, slots=True)
class WindowView:
    grid: SessionGrid  # columns [c0, c1) of every row
    win: WindowArrays
    source: SlicedIndicators


def trim_columns(grid: SessionGrid, win: WindowArrays, monitoring: int) -> tuple[int, int]:
    """The column span every trade of this window timing can touch: from the window start to the exit fill
    of the latest possible entry (or the row's last bar when no later bar exists)."""
    t = grid.t
    n = grid.nbars
    width = t.shape[1]
    before_start = (t < win.analysis_start[:, None]).sum(axis=1)
    c0 = int(before_start.min()) if len(before_start) else 0
    # latest possible entry: the first bar at or after the breakout end (a signal on the window's last bar)
    e = np.minimum((t < win.breakout_end[:, None]).sum(axis=1), np.maximum(n - 1, 0))
    rows = np.arange(grid.rows)
    deadline = np.minimum(t[rows, e] + monitoring, win.last_bar)
    d = (t < deadline[:, None]).sum(axis=1)
    c1 = int(np.minimum(d, np.maximum(n - 1, 0)).max()) + 1 if len(d) else width
    return min(c0, c1 - 1) if c1 > 0 else 0, min(c1, width)


def _slice(grid: SessionGrid, c0: int, c1: int) -> SessionGrid:
    return SessionGrid(
        grid.t[:, c0:c1], grid.open[:, c0:c1], grid.high[:, c0:c1], grid.low[:, c0:c1], grid.close[:, c0:c1],
        grid.volume[:, c0:c1], np.clip(grid.nbars - c0, 0, c1 - c0), grid.symbol, grid.day, grid.days,
        grid.session_open, grid.session_close,
    )  # fmt: skip


def _prepare(
    source: Path, start: date, end: date, calendar: str, vix_path: Path | None
) -> prep_cache.Preparation:
    # the session before --start is loaded too: previous-session volume and VIX for the first day
    warmup = previous_session_date(start, calendar)
    # the stat of each partition before it is read (and checked): a file changed later differs from it
    stats = partition_stats(source, start=warmup, end=end) if is_store(source) else None
    # loaded once as the arrays the grid and the MarketView share (from a store: straight from its partitions)
    columns = load_columns(source, start=warmup, end=end, calendar=calendar)
    if not len(columns):
        raise ConfigError(f"no bars in {source} between {start} and {end}")
    vix_closes, fundamentals = _side_inputs(source, vix_path, None)
    grid = build_grid(columns, calendar, symbols=signal_universe(columns.symbols()))
    return prep_cache.Preparation(grid, MarketView(columns, calendar), vix_closes, fundamentals, stats)


class PreparedData:
    """One strategy over one data set and date range, ready for many trials (one per worker process)."""

    def __init__(
        self,
        settings: BotSettings,
        strategy: str,
        data_source: str | Path,
        start: date,
        end: date,
        *,
        broker_current_float: Decimal = Decimal("100000"),
        seed: int = 0,
        vix_path: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """`cache_dir`: where the preparation is cached on disk (prep_cache; the runner passes the home's
        data/cache/prepared); None builds it every time. `cache_status` tells what happened: off, hit, built."""
        source = Path(data_source)
        if not source.exists():
            raise ConfigError(f"--data-source {source} does not exist")
        calendar = settings.MARKET_CALENDAR
        status, cached = "off", None
        # the bars' and side inputs' checksums with the range: what a study's trials were evaluated on
        key = prep_cache.cache_key(source, start, end, calendar, vix_path, None)
        self.data_key = key
        if cache_dir is not None:
            cached = prep_cache.load(cache_dir, key)
            status = "hit" if cached is not None else "built"
        if cached is not None and is_store(source):
            # the bars come from the cache, not the store: a partition of the range gone or cut since is refused
            # as a read of it would be (the cache holds what it was, but the store no longer does)
            # and a file changed in place since (same size, other bytes) as a read of it refuses it
            damaged = refused_partitions(
                source, start=previous_session_date(start, calendar), end=end, known=cached.store_stats or {}
            )
            if damaged:
                raise DataError(damaged[0])
        if cached is None:
            cached = _prepare(source, start, end, calendar, vix_path)
            if cache_dir is not None:
                prep_cache.store(cache_dir, key, cached)
        self.cache_status = status
        self.fundamentals = cached.fundamentals
        self.strategy = strategy
        self.module = strategy_module(strategy)
        self.settings = settings
        self.float_ = broker_current_float
        self.seed = seed
        self.grid = cached.grid
        self.days: tuple[date, ...] = tuple(d for d in self.grid.days if start <= d <= end)
        if not self.days:
            raise ConfigError(f"no {calendar} session with bars between {start} and {end} in {source}")
        self.vix = {
            d: v
            for d in self.grid.days
            if (v := vix_gatekeeper.previous_close_vix(cached.vix_closes, d)) is not None
        }
        self.market = cached.market
        self.capabilities = capabilities_for(settings.BROKER_NAME)
        self.fills = FillContext(self.grid, self.market, self.fundamentals, strategy)
        disk = prep_cache.IndicatorCache(cache_dir, key) if cache_dir is not None else None
        self._base = prep_cache.BaseResults(cache_dir, key) if cache_dir is not None else None
        self.indicators = SessionIndicators(self.grid, disk)
        self._views: dict[WindowSpec, WindowView] = {}
        self._day_index = {d: i for i, d in enumerate(self.grid.days)}

    def day_indices(self, days: tuple[date, ...] | list[date]) -> set[int]:
        return {self._day_index[d] for d in days}

    def view(self, spec: WindowSpec, calendar: str) -> WindowView:
        if spec not in self._views:
            full = window_arrays(self.grid, spec, calendar)
            c0, c1 = trim_columns(self.grid, full, spec.monitoring)
            self._views[spec] = WindowView(
                _slice(self.grid, c0, c1), full, SlicedIndicators(self.indicators, c0, c1)
            )
        return self._views[spec]

    def settings_for(self, params: dict[str, Any]) -> BotSettings:
        """The base settings with a trial's keys replaced (validated in full again at approval)."""
        return self.settings.model_copy(update=params)

    def trades(self, params: dict[str, Any], days: tuple[date, ...] | None = None) -> TradeArrays:
        settings = self.settings_for(params)
        p = self.module.params_from_settings(settings)
        v = self.view(p.spec, p.calendar)
        a = self.module.signal_arrays(v.grid, p, vix=self.vix, win=v.win, source=v.source)
        slippage = SlippageModel.from_settings(settings, seed=self.seed)
        return execute_all(
            self.fills, a, settings, self.capabilities, self.float_, slippage,
            days=self.day_indices(days or self.days),
        )  # fmt: skip

    def _base_identity(self, *spans: tuple[date, ...]) -> list[Any]:
        from tbot_bot.config.env_bot import trading_values

        return [self.strategy, trading_values(self.settings), decimal_key(self.float_), self.seed,
                [[d.isoformat() for d in span] for span in spans]]  # fmt: skip

    def baseline_trades(self) -> int:
        """How many trades the base settings make over the whole range (the evidence floor's count); read from
        beside the cached preparation when a study over the same data and settings counted them before."""
        identity = self._base_identity()
        held = self._base.load("floor", identity) if self._base is not None else None
        if isinstance(held, int):
            return held
        trades = self.evaluate({}).trades
        if self._base is not None:
            self._base.store("floor", identity, trades)
        return trades

    def baseline_spans(self, *spans: tuple[date, ...]) -> list[TrialMetrics]:
        """evaluate_spans of the base settings (the choosing step's comparison), kept like baseline_trades."""
        identity = self._base_identity(*spans)
        held = self._base.load("base", identity) if self._base is not None else None
        if (
            isinstance(held, list)
            and len(held) == len(spans)
            and all(isinstance(m, TrialMetrics) for m in held)
        ):
            return held
        metrics = self.evaluate_spans({}, *spans)
        if self._base is not None:
            self._base.store("base", identity, metrics)
        return metrics

    def evaluate(self, params: dict[str, Any], days: tuple[date, ...] | None = None) -> TrialMetrics:
        """One trial: signals, fills, sizing and metrics over `days` (default: the whole range)."""
        span = days or self.days
        tr = self.trades(params, span)
        return trial_metrics(tr, float(self.float_), sorted(self.day_indices(span)))

    def evaluate_spans(self, params: dict[str, Any], *spans: tuple[date, ...]) -> list[TrialMetrics]:
        """Metrics of several spans (a fold's in-sample and out-of-sample) from ONE pass of signals and fills
        over their sessions: sessions are independent (sizing state starts afresh each day), so each span's
        trades are those of its own sessions."""
        union = tuple(sorted({d for span in spans for d in span}))
        tr = self.trades(params, union)
        out = []
        for span in spans:
            idx = sorted(self.day_indices(span))
            keep = np.isin(tr.day, idx)
            part = TradeArrays(tr.pnl[keep], tr.entry_t[keep], tr.exit_t[keep], tr.day[keep], [])
            out.append(trial_metrics(part, float(self.float_), idx))
        return out
