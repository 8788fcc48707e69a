"""Vectorised backtest of one strategy over historical 1-minute bars (DESIGN §11, spec "Backtest Engine").

The strategy's `simulate()` finds every signal and exit on all (session, symbol) rows at once; the execution
layer applies the live risk rules, the bearish instrument, the slippage model and the sim's fees (SIM_* keys of
the home, else the template; --no-fees for a gross-only run); every metric uses PnL net of fees. Results are
written under `backtest_results/<run>/` (or --out). No ledger writes, no broker.

CLI: python -m tbot_bot.backtest.backtest_engine --strategy=open --start=2011-01-03 --end=2011-01-31
     --data_source=tbot_bot/data/sample [--out DIR] [--home DIR] [--env-file PATH] [--float 100000] [--no-fees]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm import tqdm

from tbot_bot.backtest import performance_metrics
from tbot_bot.backtest.chart_worker import ChartJob, ChartWorker
from tbot_bot.backtest.day_skips import day_skips, skip_summary
from tbot_bot.backtest.execution import (
    MarketView,
    SessionState,
    Skip,
    execute_day,
    fee_schedule,
    fundamentals_of,
)
from tbot_bot.backtest.load_historical_data import load_columns, load_vix, no_bars
from tbot_bot.backtest.report import BacktestReport, build_report, print_report, write_html, write_markdown
from tbot_bot.backtest.slippage import SlippageModel
from tbot_bot.broker.capabilities import capabilities_for
from tbot_bot.config.env_bot import ShortType
from tbot_bot.config.template import template_path
from tbot_bot.domain.results import FLOAT_MAX, cents_text, percent_text
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix
from tbot_bot.errors import ConfigError, DataError, LogicError, UsageError
from tbot_bot.market_time import (
    WindowSpec,
    calendar_range,
    compute_window,
    previous_session_date,
    session_bounds,
    sessions_between,
)
from tbot_bot.optimizer.evidence import MIN_SESSIONS_PER_FOLD
from tbot_bot.screeners.fundamentals import read_fundamentals_file
from tbot_bot.strategy.grid import SessionGrid, build_grid
from tbot_bot.strategy.strategy_meta import signal_universe
from tbot_bot.strategy.strategy_router import route, strategy_module
from tbot_bot.support.path_resolver import BotHome, package_file
from tbot_bot.support.utils_bot import (
    atomic_write_json,
    atomic_write_text,
    claim_numbered,
    counted,
    iso_date,
    utc_now,
)
from tbot_bot.trading.fees import FeeSchedule, describe_profile, fee_warning

if TYPE_CHECKING:
    from tbot_bot.broker.capabilities import BrokerCapabilities
    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.screeners.fundamentals import Fundamentals

DEFAULT_FLOAT = Decimal("100000")
ALL = "all"  # --strategy all: every window the live day runs, sharing each session's state
NET = "net_PnL"  # the trades' column every metric, plot and daily figure uses: PnL after fees
PROGRESS_DELAY_SECONDS = 2.0  # a run shorter than this prints no progress bar
EMPTY_TRADES_CSV = "timestamp,strategy_name,ticker,side,size,entry_price,exit_price,PnL,fees,net_PnL,mode\n"


@dataclass(frozen=True, slots=True)
class BacktestResult:
    out_dir: Path
    trades: pd.DataFrame
    skips: list[Skip]
    metrics: performance_metrics.Metrics
    files: dict[str, Path]
    report: BacktestReport
    # wall seconds per stage (calendar, load, arrays, signals, fills, outputs[, charts]): what a run pays for
    stages: dict[str, float] = field(default_factory=dict)
    # the worker still drawing the charts and the report (run_backtest(wait_for_charts=False)): finish_charts
    charts: ChartWorker | None = None


def _side_inputs(
    data_source: Path, vix_path: Path | None, fundamentals_path: Path | None
) -> tuple[dict[date, float], dict[str, Any]]:
    folder = data_source if data_source.is_dir() else data_source.parent
    vix_file = vix_path or (folder / "vix.csv")
    fund_file = fundamentals_path or (folder / "fundamentals.json")
    # exists(), not is_file(): a folder in a side input's place is refused by name, as the replay refuses it
    vix = load_vix(vix_file) if vix_file.exists() else {}
    fundamentals: dict[str, Any] = read_fundamentals_file(fund_file) if fund_file.exists() else {}
    return vix, fundamentals


def run_backtest(
    settings: BotSettings,
    strategy: str,
    data_source: str | Path,
    start: date,
    end: date,
    out_dir: Path,
    *,
    broker_current_float: Decimal = DEFAULT_FLOAT,
    vix_path: Path | None = None,
    fundamentals_path: Path | None = None,
    seed: int = 0,
    charge_fees: bool = True,
    plots: bool = True,
    charts: ChartWorker | None = None,
    wait_for_charts: bool = True,
) -> BacktestResult:
    """`charge_fees=False` (--no-fees): a gross-only run, fees 0; else the settings' fee schedule (SIM_FEE_PROFILE).
    `plots=False` (--no-plots): every table, trade and metric, no chart (the report then lists none).
    `charts`: a ChartWorker the caller started earlier (the command starts it first thing); with plots and
    none given, one is started here. On return it has drawn the charts and written the report listing them;
    with `wait_for_charts=False` the numbers are on disk and the worker is still drawing: the caller prints,
    then calls finish_charts (the command does)."""
    source = Path(data_source)
    if not plots and charts is not None:
        charts.cancel()
        charts = None
    elif plots and charts is None:
        # forked before the bars are loaded: the worker imports matplotlib while this process simulates
        charts = ChartWorker().start()
    try:
        names = strategies_for(strategy, settings)
        result = _run(
            settings, names, strategy, source, start, end, out_dir, broker_current_float, vix_path,
            fundamentals_path, seed, charge_fees, charts,
        )  # fmt: skip
    except BaseException:
        if charts is not None:
            charts.cancel()  # an error before the job: the worker exits without drawing
        raise
    return finish_charts(result) if wait_for_charts else result


def finish_charts(result: BacktestResult) -> BacktestResult:
    """Wait for the charts and the report listing them (drawn since the numbers were written); when drawing
    failed, the report is written without charts and says what is missing (the numbers stand)."""
    if result.charts is None:
        return result
    started = time.perf_counter()
    files, report = dict(result.files), result.report
    try:
        files.update(result.charts.result())
    except LogicError as exc:  # a charting bug or a stuck renderer: the report says what is missing
        report = replace(report, warnings=(*report.warnings, str(exc)))
        files["report_md"] = write_markdown(report, result.out_dir / "report.md", {})
        files["report_html"] = write_html(report, result.out_dir / "report.html", {})
    result.stages["charts"] = time.perf_counter() - started
    return replace(result, files=files, report=report, charts=None)


def _run(
    settings: BotSettings, names: tuple[str, ...], strategy: str, source: Path, start: date, end: date,
    out_dir: Path, broker_current_float: Decimal, vix_path: Path | None, fundamentals_path: Path | None,
    seed: int, charge_fees: bool, charts: ChartWorker | None,
) -> BacktestResult:  # fmt: skip
    # one progress bar over the stages (loading dominates long runs); it appears only after the delay
    progress = tqdm(
        total=5,
        desc=f"backtest {strategy}",
        unit="stage",
        delay=PROGRESS_DELAY_SECONDS,
        file=sys.stderr,
        leave=False,
    )
    progress.set_postfix_str("loading bars", refresh=False)
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[stage], clock = now - clock, now

    # the session before --start is loaded too (previous-session volume for the screener), so a one-day
    # backtest of D sees what the live replay of D sees; it is never traded or reported
    warm_up = previous_session_date(start, settings.MARKET_CALENDAR)
    lap("calendar")  # the exchange calendar's first use is built here, apart from loading
    # loaded once as arrays: the signal grid (from --start) and the execution's MarketView (warm-up included)
    # share them
    columns = load_columns(source, start=warm_up, end=end, calendar=settings.MARKET_CALENDAR)
    vix_closes, fundamentals = _side_inputs(source, vix_path, fundamentals_path)  # reading files: loading too
    lap("load")
    progress.update(1)
    progress.set_postfix_str("building arrays", refresh=False)
    if not len(columns):
        raise DataError(no_bars(source, f"between {start} and {end}", "--start/--end"))
    # the UTC date >= start, compared on the stamps (no date object per bar)
    traded = columns.where(columns.ts_ns >= pd.Timestamp(start, tz="UTC").value)
    if not len(traded):
        raise DataError(no_bars(source, f"between {start} and {end}", "--start/--end"))
    grid = build_grid(traded, settings.MARKET_CALENDAR, symbols=signal_universe(traded.symbols()))
    vix = {d: v for d in grid.days if (v := previous_close_vix(vix_closes, d)) is not None}
    lap("arrays")
    progress.update(1)
    progress.set_postfix_str("signals", refresh=False)
    skips: list[Skip] = []
    per_strategy: dict[str, dict[date, pd.DataFrame]] = {}
    all_signals: list[pd.DataFrame] = []
    for name in names:
        strat = strategy_module(name)
        params = strat.params_from_settings(settings)
        signals = strat.simulate(grid, params, vix=vix)
        skips += day_skips(name, settings, params, grid.days, vix)
        per_strategy[name] = dict(tuple(signals.groupby("session"))) if len(signals) else {}
        all_signals.append(signals)
    signals = pd.concat(all_signals, ignore_index=True) if len(all_signals) > 1 else all_signals[0]
    lap("signals")
    progress.update(1)
    progress.set_postfix_str("fills and sizing", refresh=False)
    market = MarketView(columns, settings.MARKET_CALENDAR)
    capabilities = capabilities_for(settings.BROKER_NAME)
    slipped = SlippageModel.from_settings(settings, seed=seed)
    fees = fee_schedule(settings) if charge_fees else FeeSchedule()
    fee_profile, fee_warnings = _fee_notes(settings, broker_current_float, capabilities, charge_fees)
    # the warm-up session (the one before --start) holds bars when the columns reach before --start
    warm_up_held = len(traded) < len(columns)
    notes = (
        _carry_note(settings, grid.days)
        + _gaps_note(grid.days, start, end, settings.MARKET_CALENDAR, warm_up if not warm_up_held else None)
        + _coverage_note(grid)
        + simulation_notes(settings, names)
    )
    fills = _execute_sessions(
        names, per_strategy, grid.days, settings, capabilities, market, fundamentals_of(fundamentals),
        broker_current_float, slipped, fees, skips,
    )  # fmt: skip
    trades = pd.DataFrame(fills)
    lap("fills")
    progress.update(1)
    progress.set_postfix_str("writing outputs", refresh=False)
    files, report, metrics = write_outputs(
        out_dir, strategy, settings, trades, skips, signals, grid.days, vix, broker_current_float, slipped,
        fee_profile=fee_profile, fee_warnings=fee_warnings, notes=notes, charts=charts,
    )  # fmt: skip
    lap("outputs")
    progress.update(1)
    progress.close()
    return BacktestResult(out_dir, trades, skips, metrics, files, report, stages, charts)


def strategies_for(strategy: str, settings: BotSettings) -> tuple[str, ...]:
    """`all`: the windows the live day runs, in STRATEGY_SEQUENCE order (strategy_router.route); else the one."""
    if strategy != ALL:
        return (strategy,)
    names = route(settings).run
    if not names:
        raise ConfigError(
            "--strategy all: no strategy runs with these settings (STRATEGY_SEQUENCE, STRATEGY_OVERRIDE, "
            "STRAT_*_ENABLED); enable one or name it with --strategy open|mid|close"
        )
    return names


def _execute_sessions(
    names: tuple[str, ...], per_strategy: dict[str, dict[date, pd.DataFrame]], days: tuple[date, ...],
    settings: BotSettings, capabilities: BrokerCapabilities, market: MarketView,
    fundamentals: dict[str, Fundamentals], float_: Decimal, slipped: SlippageModel, fees: FeeSchedule,
    skips: list[Skip],
) -> list[dict[str, Any]]:  # fmt: skip
    """Session by session, the windows in order sharing the session's state (blocklist, open positions, kill
    switch, defense mode); a defense switch carries into the next session, as runtime/defense.py keeps it."""
    fills: list[dict[str, Any]] = []
    carried: str | None = None
    previous: date | None = None
    for day in days:
        prev = previous_session_date(day, settings.MARKET_CALENDAR)
        state = SessionState(
            settings, capabilities, float_, carried_defense=carried if previous == prev else None
        )
        for name in names:
            if day in per_strategy[name]:
                f, s = execute_day(
                    per_strategy[name][day], name, settings, capabilities, market, fundamentals, float_,
                    slipped.for_session(day, name), fees, state=state,
                )  # fmt: skip
                fills += f
                skips += s
        state.close_day()
        carried = f"carried over from {day}: {state.switched}" if state.switched else None
        previous = day
    return fills


def _fee_notes(
    settings: BotSettings, float_: Decimal, capabilities: BrokerCapabilities, charge_fees: bool
) -> tuple[str, tuple[str, ...]]:
    """The fee profile a run charges, and a warning when fees eat the smallest order (none with --no-fees)."""
    if not charge_fees:
        return "none (--no-fees: PnL before fees)", ()
    # FRACTIONAL (when the broker allows it) decides whether the smallest order is whole shares
    warning = fee_warning(settings, float_, fractional=settings.FRACTIONAL and capabilities.fractional)
    return describe_profile(settings), (warning,) if warning else ()


def _carry_note(settings: BotSettings, days: tuple[date, ...]) -> tuple[str, ...]:
    """What a backtest cannot know of the session before its first day: a defense mode the triggers switched on
    there carries into the first day live (runtime/defense.py). Said, so a replay that differs is explained."""
    # DEFENSE_MODE_TRIGGER_* disabled (None) or DEFENSE_MODE_ACTIVE=true: nothing can carry over
    automatic = (
        settings.DEFENSE_MODE_TRIGGER_DRAWDOWN is not None
        or settings.DEFENSE_MODE_TRIGGER_WIN_RATE is not None
    )
    if not days or settings.DEFENSE_MODE_ACTIVE or not automatic:
        return ()
    return (
        f"defense mode starts off on {days[0]}: a switch the DEFENSE_MODE_TRIGGER_* made on the session before "
        "carries into that day live, and a backtest does not see it; a replay on a home that traded that session "
        "may differ on its first day (start the backtest earlier to include it)",
    )


def simulation_notes(settings: BotSettings, names: Sequence[str]) -> tuple[str, ...]:
    """What a backtest (or an optimizer study) of these windows cannot reproduce of the replays of its days, in
    words: every figure it prints would otherwise read as the live bot's."""
    notes = []
    run = route(settings)
    for name in names:
        # a window the live bot does not run (STRAT_X_ENABLED=false, STRATEGY_SEQUENCE, STRATEGY_OVERRIDE)
        if name in run.skipped:
            notes.append(
                f"the live bot does not run the {name} window ({run.skipped[name]}): these results describe a "
                "window that does not trade"
            )
    puts = [n for n in names if settings.short_type(n) == ShortType.LONG_PUT]
    if puts:
        # SHORT_TYPE_X=LongPut: recorded bars hold no option prices, so bearish signals are skipped (no_option_data)
        keys = ", ".join(f"SHORT_TYPE_{n.upper()}=LongPut" for n in puts)
        notes.append(
            f"{keys}: the bars hold no option prices, so bearish signals are not traded here (no_option_data) "
            "while the live bot and its replays buy puts on them: these results cover the bullish trades only, "
            "and even those can differ from the replays' (a put bought there takes a MAX_TRADES slot, part of "
            "the session cap and its ticker for the day, which the trades here have to themselves)"
        )
    # ENABLE_SLIPPAGE_MODEL with SLIPPAGE_SIMULATION_TYPE=randomized: the draws are seeded per window here, per
    # fill in the sim exchange
    if settings.ENABLE_SLIPPAGE_MODEL and settings.SLIPPAGE_SIMULATION_TYPE == "randomized":
        notes.append(
            "SLIPPAGE_SIMULATION_TYPE=randomized: the slippage draws here are not the replays' (the simulated "
            "exchange draws per fill), so fill prices and PnL differ from the replays of these days by them "
            "(rule_based slippage matches the replays)"
        )
    return tuple(notes)


# the fewest sessions whose annualised figures a report presents without a warning: the optimizer's minimum per block
ANNUALISED_MIN_SESSIONS = max(MIN_SESSIONS_PER_FOLD.values())


def _reading_notes(sessions: int, slipped: SlippageModel) -> tuple[str, ...]:
    """What a reader of the figures must know that the figures do not say (a research review found a two-session
    backtest reporting a Sharpe of 8.3 and a Calmar of 174 without a word, and fills that pay no spread)."""
    notes = []
    if 0 < sessions < ANNUALISED_MIN_SESSIONS:
        notes.append(
            f"{sessions} session(s): the annualised figures (Sharpe, Sortino, Calmar, annual return) extrapolate "
            f"too few days to be evidence (the optimizer asks {ANNUALISED_MIN_SESSIONS} sessions of a block)"
        )
    # ENABLE_SLIPPAGE_MODEL=false or SLIPPAGE_SIMULATION_TYPE=none: fills at the next bar's open, no spread paid
    if not slipped.active:
        notes.append(
            "fills are at the next bar's open and pay no bid-ask spread (no slippage model), as the replays' "
            "simulated exchange fills; a live market order buys at the ask and sells at the bid: "
            "ENABLE_SLIPPAGE_MODEL=true with rule_based slippage of half the spread or more charges it"
        )
    return tuple(notes)


def _gaps_note(
    days: tuple[date, ...], start: date, end: date, calendar: str, warm_up_missing: date | None = None
) -> tuple[str, ...]:
    """Exchange sessions of the range the data holds no bar of: not traded and not counted (Sharpe, the annual
    return and exposure are over the sessions with bars), and the session after each has no previous-session
    volume, so its screen refuses every symbol. Said, so a gap is not read as days without signals; so is a
    missing warm-up session (`warm_up_missing`, the one before --start)."""
    held = set(days)
    missing = [d for d in sessions_between(start, end, calendar) if d not in held]
    before = (
        (
            f"the data has no bars for {warm_up_missing}, the session before {start}: {start} has no "
            "previous-session volume or close, so its screen refuses every symbol",
        )
        if warm_up_missing is not None and start in held
        else ()
    )
    if not missing:
        return before
    runs: list[list[date]] = []
    for d in missing:
        if runs and previous_session_date(d, calendar) == runs[-1][-1]:
            runs[-1].append(d)
        else:
            runs.append([d])
    spans = [f"{r[0]}..{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
    listed = ", ".join(spans[:5]) + (f" and {len(spans) - 5} more" if len(spans) > 5 else "")
    return before + (
        f"{len(missing)} of the {len(missing) + len(held)} {calendar} sessions from {start} to {end} have no bars "
        f"({listed}): they are not traded and not counted in the metrics, and the session after each gap has no "
        "previous-session volume, so its screen refuses every symbol",
    )


def _coverage_note(grid: SessionGrid) -> tuple[str, ...]:
    """Symbols without bars on some sessions of the range are not traded on those: said, so a month missing from
    the data is not read as a month without signals (a store lacking one symbol's March was silent)."""
    sessions = Counter(map(str, grid.symbol))  # a grid row is one symbol's session
    short = sorted(((len(grid.days) - n, s) for s, n in sessions.items() if n < len(grid.days)), reverse=True)
    if not short:
        return ()
    listed = ", ".join(f"{s} ({gap})" for gap, s in short[:5]) + (
        f" and {len(short) - 5} more" if len(short) > 5 else ""
    )
    return (
        f"{len(short)} symbol(s) have no bars on some of the {len(grid.days)} sessions with data, and are not traded "
        f"on those (sessions missing): {listed}",
    )


def market_minutes(days: tuple[date, ...], calendar: str) -> float:
    """Regular-session minutes of `days` from the exchange calendar (early closes count short)."""
    total = 0.0
    for d in days:
        bounds = session_bounds(d, calendar)
        if bounds is not None:
            total += (bounds[1] - bounds[0]).total_seconds() / 60
    return total


def _metrics(
    trades: pd.DataFrame, float_: Decimal, days: tuple[date, ...], pnl_col: str, calendar: str
) -> performance_metrics.Metrics:
    if trades.empty:
        frame = pd.DataFrame(
            {
                "entry_time": pd.Series([], dtype="datetime64[ns, UTC]"),
                "exit_time": pd.Series([], dtype="datetime64[ns, UTC]"),
                "pnl": [],
                "session": [],
            }
        )
    else:
        frame = pd.DataFrame(
            {
                "entry_time": pd.to_datetime(trades["entry_time"], utc=True, format="ISO8601"),
                "exit_time": pd.to_datetime(trades["exit_time"], utc=True, format="ISO8601"),
                # exact amounts (the trade history's strings): money metrics are Decimal sums
                "pnl": [Decimal(str(x)) for x in trades[pnl_col]],
                "fees": [Decimal(str(x)) for x in trades["fees"]] if "fees" in trades.columns else Decimal(0),
                "session": pd.to_datetime(trades["session"], format="ISO8601").dt.date,
            }
        )
    return performance_metrics.compute(frame, float_, days, market_minutes(days, calendar))


# a backtest's files (trades, summaries, metrics, reports) are written whole and renamed into place, without waiting
# for the disk: a crash leaves the previous file or none, never a torn one, and running the backtest again writes
# them anew (the books, the journal and the configuration are the ones fsynced). The wait was a third of the
# outputs' time (issue 25)
RESEARCH_DURABLE = False


def write_outputs(
    out_dir: Path, strategy: str, settings: BotSettings, trades: pd.DataFrame, skips: list[Skip],
    signals: pd.DataFrame, days: tuple[date, ...], vix: dict[date, float], float_: Decimal, slipped: SlippageModel,
    *, fee_profile: str | None = None, fee_warnings: tuple[str, ...] = (), notes: tuple[str, ...] = (),
    charts: ChartWorker | None = None,
) -> tuple[dict[str, Path], BacktestReport, performance_metrics.Metrics]:  # fmt: skip
    """Trades, daily summary, metrics (and the slippage comparison) first; then, with `charts` (a started
    ChartWorker), the job of drawing the charts and the report listing them is handed over (finish_charts
    waits for it), else (--no-plots) the report without charts is written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    notes = (*notes, *_reading_notes(len(days), slipped))
    # a field a trade does not have (leverage_multiplier of a stock) is null, as the CSV leaves it empty: NaN is
    # not JSON, and strict readers (JavaScript's JSON.parse) refuse the whole file
    records: list[dict[str, Any]] = [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        for r in (trades.to_dict(orient="records") if len(trades) else [])
    ]
    files["trades_csv"] = out_dir / "trade_history_backtest.csv"
    atomic_write_text(
        files["trades_csv"],
        trades.to_csv(index=False) if len(trades) else EMPTY_TRADES_CSV,
        durable=RESEARCH_DURABLE,
    )
    files["trades_json"] = out_dir / "trade_history_backtest.json"
    atomic_write_json(files["trades_json"], records, durable=RESEARCH_DURABLE)
    specs = [WindowSpec.from_settings(name, settings) for name in strategies_for(strategy, settings)]
    daily = []
    for d in days:
        windows = [compute_window(spec, d, settings.MARKET_CALENDAR, settings.TRADING_DAYS) for spec in specs]
        w = windows[0]
        day_trades = [r for r in records if r["session"] == d.isoformat()]
        gross = sum((Decimal(r["PnL"]) for r in day_trades), Decimal(0))
        fees = sum((Decimal(r["fees"]) for r in day_trades), Decimal(0))
        n_signals = int((signals["session"] == d).sum()) if len(signals) else 0
        daily.append(
            {
                "date": d.isoformat(), "strategy": strategy, "mode": "backtest",
                "window": {"start": w.start.isoformat(), "breakout_end": windows[-1].breakout_end.isoformat(), "fits": any(x.fits for x in windows), "cut": any(x.cut for x in windows), "reason": "; ".join(x.reason for x in windows if x.reason)},
                "vix_at_start": vix.get(d), "signals": n_signals, "entered": len(day_trades),
                "skipped": dict(Counter(s.code for s in skips if s.session == d)),
                "wins": sum(1 for r in day_trades if Decimal(r[NET]) > 0),
                "losses": sum(1 for r in day_trades if Decimal(r[NET]) < 0),
                "PnL": str(gross), "fees": str(fees), "net_PnL": str(gross - fees),
            }
        )  # fmt: skip
    files["daily_summary"] = out_dir / "daily_summary_backtest.json"
    atomic_write_json(files["daily_summary"], daily, durable=RESEARCH_DURABLE)
    metrics = _metrics(trades, float_, days, NET, settings.MARKET_CALENDAR)
    files["metrics"] = out_dir / "metrics.json"
    atomic_write_json(
        files["metrics"],
        {**metrics.to_dict(), "strategy": strategy, "mode": "backtest", "start": days[0].isoformat() if days else None,
         "end": days[-1].isoformat() if days else None, "skips": [asdict(s) for s in skips],
         "fee_profile": fee_profile, "fee_warnings": list(fee_warnings), "notes": list(notes)},
        durable=RESEARCH_DURABLE,
    )  # fmt: skip
    # ENABLE_SLIPPAGE_MODEL with SLIPPAGE_SIMULATION_TYPE != none: compare with the same trades unslipped
    if slipped.active:
        raw = _metrics(trades, float_, days, "net_PnL_no_slippage", settings.MARKET_CALENDAR)
        files["slippage"] = out_dir / "backtest_slippage_comparison.json"
        atomic_write_json(
            files["slippage"],
            {"slippage_model": {"type": slipped.kind, "mean_pct": slipped.mean_pct, "stddev_pct": slipped.stddev_pct},
             "with_slippage": metrics.to_dict(), "without_slippage": raw.to_dict(),
             "pnl_difference": metrics.total_pnl - raw.total_pnl},
            durable=RESEARCH_DURABLE,
        )  # fmt: skip
    report = build_report(
        trades,
        metrics,
        strategy=strategy,
        sessions=len(days),
        start=days[0].isoformat() if days else "-",
        end=days[-1].isoformat() if days else "-",
        fee_profile=fee_profile,
        warnings=fee_warnings + notes,
    )
    if charts is None:  # --no-plots: the report lists no chart
        files["report_md"] = write_markdown(report, out_dir / "report.md", {})
        files["report_html"] = write_html(report, out_dir / "report.html", {})
        return files, report, metrics
    # every number is on disk before a chart is drawn; the worker draws the charts, then the report listing them
    frame = _metric_frame(trades, NET)
    daily_pnl = pd.Series(
        {d: float(Decimal(str(x[NET]))) for d, x in zip(days, daily, strict=True)}, dtype=float
    )
    job = ChartJob(
        out_dir, performance_metrics.equity_curve(frame, float(float_)), frame, daily_pnl,
        f"{strategy.upper()} backtest {days[0] if days else ''} to {days[-1] if days else ''}", report,
    )  # fmt: skip
    charts.submit(job)
    return files, report, metrics


def _metric_frame(trades: pd.DataFrame, col: str) -> pd.DataFrame:
    if trades.empty:
        return pd.DataFrame({"entry_time": [], "exit_time": [], "pnl": []})
    return pd.DataFrame(
        {"entry_time": pd.to_datetime(trades["entry_time"], utc=True), "exit_time": pd.to_datetime(trades["exit_time"], utc=True),
         "pnl": trades[col].astype(float)}
    )  # fmt: skip


# ---------------------------------------------------------------- command line


SEED_MAX = 2**32 - 1  # numpy's seed range


def seed_value(text: str) -> int:
    """An argparse type: a random seed numpy accepts (a whole number 0..2**32-1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0..{SEED_MAX})") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{SEED_MAX}")
    return value


def check_dates_in_calendar(start: date, end: date, calendar_name: str) -> None:
    """Dates this build's MARKET_CALENDAR knows (the session before --start is the warm-up, so it must exist)."""
    first, last = calendar_range(calendar_name)
    if end < start:
        raise UsageError(f"--end {end} is before --start {start}")
    if start <= first or end > last:
        raise UsageError(
            f"--start {start} .. --end {end} reaches beyond the {calendar_name} calendar "
            f"(MARKET_CALENDAR; exchange_calendars knows sessions after {first} up to {last}); choose dates inside it"
        )


def add_arguments(p: argparse.ArgumentParser, *, underscore: bool) -> None:
    p.add_argument(
        "--strategy",
        required=True,
        choices=("open", "mid", "close", ALL),
        help="which strategy to test; all = the day's windows in STRATEGY_SEQUENCE order sharing each session",
    )
    p.add_argument("--start", required=True, type=iso_date, help="first date, YYYY-MM-DD")
    p.add_argument("--end", required=True, type=iso_date, help="last date, YYYY-MM-DD")
    src = ["--data_source", "--data-source"] if underscore else ["--data-source", "--data_source"]
    p.add_argument(
        *src,
        dest="data_source",
        default=str(package_file("data", "sample")),
        help="CSV/Parquet file, folder of 1-minute bars or bar store (tbot data import) (default: the bundled sample, "
        "2011-01-03..2011-01-31 and 2011-03-01..2011-03-31)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default: backtest_results/<run>/ under the home)"
    )
    p.add_argument("--env-file", default=None, help="plaintext .env_bot to use (default: the home's config)")
    p.add_argument(
        "--float",
        dest="float_",
        default=None,
        help=f"broker_current_float (default: the home's float when a home is set up, else {DEFAULT_FLOAT})",
    )
    p.add_argument(
        "--seed", type=seed_value, default=0, help=f"seed of the randomized slippage model, 0..{SEED_MAX}"
    )
    p.add_argument(
        "--quiet", action="store_true", help="print only the one-line result, not the report tables"
    )
    p.add_argument(
        "--no-fees",
        dest="no_fees",
        action="store_true",
        help="gross-only run: charge no commissions or regulatory fees (default: the home's SIM_FEE_PROFILE)",
    )
    p.add_argument(
        "--no-plots",
        dest="no_plots",
        action="store_true",
        help="write the trades, tables, metrics and report but draw no chart (faster; matplotlib is not loaded)",
    )


def load_settings_for(args: argparse.Namespace, home: BotHome) -> BotSettings:
    from tbot_bot.config.env_bot import settings_from_text

    if args.env_file:
        from tbot_bot.config.settings_bot import decode_config_text

        path = Path(args.env_file)
        if not path.is_file():
            raise ConfigError(f"--env-file {path}: no such file (a plaintext .env_bot)", source=str(path))
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"--env-file {path} cannot be read ({exc.strerror or exc})", source=str(path)
            ) from None
        # the same reading as the home's plaintext config: an undecodable file is named, never a traceback
        return settings_from_text(decode_config_text(raw, path), source=args.env_file)
    if home.env_bot_enc.exists() or home.env_bot_plain.exists():
        from tbot_bot.config.settings_bot import load_settings

        return load_settings(home)
    if not home.root.is_dir():
        # a mistyped home would run on the template's settings and the default float: some other bot's numbers
        raise UsageError(
            f"--home {home.root} does not exist: name the home of the bot to test (or an existing research "
            "folder; a folder without a bot configuration runs on the template's settings)"
        )
    template = template_path()
    # the float: --float where the command has it (backtest, optimize), else the default
    where = "--float or the default" if hasattr(args, "float_") else f"the default {DEFAULT_FLOAT:,.2f}"
    print(
        f"note: no bot configuration in {home.root}: the settings are {template.name}'s and the float is {where}, "
        "not any bot's",
        file=sys.stderr,
    )
    return settings_from_text(template.read_text(encoding="utf-8"), source=str(template))


def backtest_float(given: str | None, home: BotHome) -> Decimal:
    """--float, else the home's float (its float ledger), else the default."""
    if given is not None:
        refusal = UsageError(f"--float {given!r}: use a positive amount up to {FLOAT_MAX:,}, such as 25000")
        try:
            value = Decimal(given)
        except ArithmeticError:
            raise refusal from None
        if not value.is_finite() or not 0 < value <= FLOAT_MAX:
            raise refusal
        return value
    from tbot_bot.accounting.float_ledger import UnverifiedFloat, home_float

    try:
        # the float check and start would refuse is no float to size a study by
        amount = home_float(home)
    except UnverifiedFloat as exc:
        raise UsageError(f"{exc}\nor give the float to test with: --float N") from None
    return amount if amount is not None else DEFAULT_FLOAT  # no provisioned home: the documented default


def new_run_dir(parent: Path, name: str) -> Path:
    """A results folder of its own: `name`, or `name-1`, `name-2`, ... when another run of the same second took it
    (two backtests started together wrote into one folder, the later over the earlier)."""
    parent.mkdir(parents=True, exist_ok=True)
    return claim_numbered(lambda n: parent / f"{name}{n}", Path.mkdir)


def run_cli(args: argparse.Namespace) -> int:
    plots = not getattr(args, "no_plots", False)
    # first thing: the chart worker imports matplotlib while the settings, the calendar and the bars load
    charts = ChartWorker().start() if plots else None
    reserved: Path | None = None  # the run folder this command made (removed again if the run writes nothing)
    try:
        home = BotHome.resolve(getattr(args, "home", None))
        settings = load_settings_for(args, home)
        check_dates_in_calendar(args.start, args.end, settings.MARKET_CALENDAR)
        run_name = f"{args.strategy}_{args.start:%Y%m%d}_{args.end:%Y%m%d}_{utc_now():%Y%m%dT%H%M%SZ}"
        float_ = backtest_float(args.float_, home)
        out = Path(args.out) if args.out else (reserved := new_run_dir(home.backtest_results_dir, run_name))
        result = run_backtest(
            settings, args.strategy, args.data_source, args.start, args.end, out,
            broker_current_float=float_, seed=args.seed, charge_fees=not getattr(args, "no_fees", False),
            plots=plots, charts=charts, wait_for_charts=False,
        )  # fmt: skip
    except BaseException:
        if charts is not None:
            charts.cancel()  # a refused argument or data error: the worker exits without drawing
        if reserved is not None and not any(reserved.iterdir()):
            reserved.rmdir()
        raise
    warned = len(result.report.warnings)
    try:
        _print_summary(args, result, float_)
    finally:
        # the worker has drawn the charts while the summary printed; whatever stopped the printing (a closed
        # pipe, Ctrl-C), the charts and the report are waited for; a drawing failure is the report's warning
        result = finish_charts(result)
    for warning in result.report.warnings[warned:]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"results: {result.out_dir}")
    print(f"report:  {result.files['report_html']}  (and report.md)")
    return 0


def _print_summary(args: argparse.Namespace, result: BacktestResult, float_: Decimal) -> None:
    for warning in result.report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print_report(result.report)
    m = result.metrics
    win = percent_text(m.win_rate) if m.win_rate is not None else "n/a"
    sharpe = f"{m.sharpe:.2f}" if m.sharpe is not None else "n/a"
    print(
        f"{args.strategy}: {counted(m.trades, 'trade')}, win rate {win}, PnL {cents_text(m.total_pnl)}, max drawdown "
        f"{cents_text(m.max_drawdown)}, Sharpe {sharpe}"
    )
    print(
        f"fees:    {cents_text(m.total_fees)} (PnL above is net; before fees "
        f"{cents_text(m.total_pnl + m.total_fees)})"
    )
    print(f"         fee profile {dict(result.report.metrics).get('fee profile', '-')}")
    print(f"skipped: {skip_summary(result.skips)}")
    print(f"float:   {float_:,.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tbot_bot.backtest.backtest_engine", description=__doc__.splitlines()[0]
    )
    add_arguments(parser, underscore=True)
    parser.add_argument(
        "--home", default=None, help="bot home (default: $TBOT_HOME, else the current directory)"
    )
    args = parser.parse_args(argv)
    try:
        return run_cli(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"{DataError.label}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
