"""`tbot data fetch|import|list`: 1-minute bars into the bar store (or a file), and what the store holds.

`fetch` asks the configured broker's data API one UTC day at a time, caching each finished day under the home
(`data/cache/bars_1min/<broker>/<SYMBOL>/<day>.csv`) so a repeated fetch costs no API calls; the bars go into the
Parquet bar store (the home's `data/bars/`, or --store DIR), or with --out into one CSV/Parquet file (columns
timestamp (bar start, UTC ISO), symbol, open, high, low, close, volume). `import` checks CSV / NinjaTrader /
Parquet bar files once and writes them into the store (tbot_bot/data/bar_store.py); `list` shows its symbols,
dates and the sessions missing between them.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rigd_tbot.cli import add_home_argument
from tbot_bot.errors import ConfigError, UsageError
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import atomic_write_text, time_bound, utc_now

if TYPE_CHECKING:
    from tbot_bot.broker.broker_api import Bar, Broker
    from tbot_bot.data.bar_store import ImportResult

COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
SETTLE = timedelta(minutes=20)  # a day is cached only once it is over by this much (consolidated feed delay)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="market data tools (fetch, import and list minute bars for backtests)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True
    f = data_sub.add_parser(
        "fetch",
        help="fetch 1-minute bars from the configured broker into CSV/Parquet",
        description="Fetch 1-minute bars for SYMBOLS between START and END (UTC) into OUT, cached under the home.",
    )
    add_home_argument(f)
    f.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. SPY,QQQ")
    f.add_argument("--start", required=True, help="UTC start: YYYY-MM-DD or ISO time (inclusive)")
    f.add_argument(
        "--end", required=True, help="UTC end: YYYY-MM-DD (whole day included) or ISO time (exclusive)"
    )
    f.add_argument("--out", default=None, help="write one file into this directory instead of the bar store")
    f.add_argument(
        "--store", metavar="DIR", default=None, help="bar store folder (default: the home's data/bars)"
    )
    f.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="file format with --out (default csv)"
    )
    f.add_argument("--no-cache", action="store_true", help="ignore and do not write the day cache")
    f.set_defaults(func=run)
    i = data_sub.add_parser(
        "import",
        help="check bar files once and write them into the Parquet bar store",
        description=(
            "Check the 1-minute bars of FILE or of every bar file in DIR (CSV, .csv.gz, Parquet or NinjaTrader "
            "exports, as backtests read them) and write them into the bar store, one Parquet file per symbol and "
            "month; vix.csv and fundamentals.json beside them are copied in. Backtests, the optimizer and replays "
            "read the store with --data-source STORE."
        ),
    )
    add_home_argument(i)
    i.add_argument("source", metavar="FILE|DIR", help="a bar file or a folder of them")
    i.add_argument(
        "--store", metavar="DIR", default=None, help="bar store folder (default: the home's data/bars)"
    )
    i.add_argument(
        "--ninjatrader-symbol", default=None, help="symbol of a NinjaTrader export (default: its file name)"
    )
    i.set_defaults(func=run_import)
    ls = data_sub.add_parser(
        "list",
        help="show what the bar store holds: symbols, date ranges, gaps",
        description="Per symbol: first and last date, sessions and rows held, and the sessions missing between.",
    )
    add_home_argument(ls)
    ls.add_argument(
        "--store", metavar="DIR", default=None, help="bar store folder (default: the home's data/bars)"
    )
    ls.add_argument(
        "--calendar", default="XNYS", help="exchange calendar the gaps are counted in (default XNYS)"
    )
    ls.set_defaults(func=run_list)
    v = data_sub.add_parser(
        "vix",
        help="download the daily VIX history into the home's cache (CLOSE needs it)",
        description=(
            "Download the daily VIX history (Cboe's public CSV at VIX_HISTORY_URL, or with VIX_SOURCE=broker the "
            "broker's index data), validate it, merge it into data/cache/vix.csv and show the VIX the next CLOSE "
            "window will use. Exit 0 when that value is there, 75 when the source could not be reached (transient: run "
            "it again), 1 when it answered with something unusable or the history is stale."
        ),
    )
    add_home_argument(v)
    v.add_argument(
        "--url", default=None, help="Cboe-format CSV URL to use instead of VIX_HISTORY_URL / the broker"
    )
    v.set_defaults(func=run_vix)


def parse_bound(text: str, *, is_end: bool) -> datetime:
    """--start/--end: utils_bot.time_bound, its refusal naming the option."""
    try:
        return time_bound(text, end=is_end)
    except ValueError as exc:
        raise ConfigError(f"{'--end' if is_end else '--start'} {exc}") from None


def _cache_file(cache_root: Path, symbol: str, day: date) -> Path:
    return cache_root / symbol / f"{day.isoformat()}.csv"


def _write_day(path: Path, bars: Iterable[Bar]) -> None:
    lines = [",".join(COLUMNS)]
    lines += [",".join(_row(b)) for b in bars]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _row(b: Bar) -> list[str]:
    volume = int(b.volume) if float(b.volume).is_integer() else b.volume
    return [
        b.timestamp.astimezone(UTC).isoformat(),
        b.symbol,
        *(repr(v) for v in (b.open, b.high, b.low, b.close)),
        str(volume),
    ]


def _read_day(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if tuple(header or ()) != COLUMNS:
            raise ConfigError(f"cache file {path} has unexpected columns; delete it to refetch")
        return [row for row in reader if row]


def fetch_bars(
    broker: Broker,
    symbols: list[str],
    start: datetime,
    end: datetime,
    cache_root: Path | None,
    *,
    now: Callable[[], datetime] = utc_now,
    calendar: str = "XNYS",
) -> tuple[list[list[str]], int]:
    """Rows for [start, end) from cache or broker (one call per uncached day); returns rows and API calls.

    A day is cached only once it is complete: its session closed (MARKET_CALENDAR) at least SETTLE before `now`
    (the data source's own clock), so a day fetched while still trading is fetched again next time."""
    from tbot_bot.market_time import session_bounds

    rows: list[list[str]] = []
    calls = 0
    day = start.date()
    while datetime.combine(day, time(0), UTC) < end:
        day_start = datetime.combine(day, time(0), UTC)
        day_end = day_start + timedelta(days=1)
        bounds = session_bounds(day, calendar)
        complete = (bounds[1] if bounds else day_end) + SETTLE <= now()
        missing = [s for s in symbols if cache_root is None or not _cache_file(cache_root, s, day).exists()]
        fetched: dict[str, list[Bar]] = {}
        if missing:
            fetched = broker.get_bars(missing, day_start, day_end)
            calls += 1
        for symbol in symbols:
            if symbol in fetched:
                day_bars = sorted(fetched[symbol], key=lambda b: b.timestamp)
                if cache_root is not None and complete:
                    _write_day(_cache_file(cache_root, symbol, day), day_bars)
                day_rows = [_row(b) for b in day_bars]
            else:
                assert cache_root is not None
                day_rows = _read_day(_cache_file(cache_root, symbol, day))
            rows += [r for r in day_rows if start <= datetime.fromisoformat(r[0]) < end]
        day += timedelta(days=1)
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows, calls


def _source_now(broker: Broker) -> datetime:
    """The earlier of our clock and the data source's: a day is complete only when both agree it is over."""
    from tbot_bot.errors import TbotError

    try:
        theirs = broker.get_clock().timestamp.astimezone(UTC)
    except TbotError:
        return utc_now()
    return min(theirs, utc_now())


def _why_empty(symbols: list[str], start: datetime, end: datetime, calendar: str) -> str:
    from tbot_bot.market_time import session_bounds

    day, sessions = start.date(), 0
    while datetime.combine(day, time(0), UTC) < end:
        bounds = session_bounds(day, calendar)
        sessions += bounds is not None and bounds[0] < end and bounds[1] > start
        day += timedelta(days=1)
    period = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if not sessions:
        return f"{period} holds no {calendar} trading session (weekend, holiday or outside market hours)"
    return (
        f"the broker returned no bars for {', '.join(symbols)} in {period} ({sessions} {calendar} session(s)); "
        "check the symbols and that the data plan covers that period"
    )


def write_output(rows: list[list[str]], out_dir: Path, name: str, fmt: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        path = out_dir / f"{name}.csv"
        atomic_write_text(path, "\n".join([",".join(COLUMNS), *(",".join(r) for r in rows)]) + "\n")
        return path
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = pd.to_numeric(frame[col])
    path = out_dir / f"{name}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> int:
    from tbot_bot.broker.factory import build_broker
    from tbot_bot.config.settings_bot import load_settings

    symbols = list(dict.fromkeys(s.strip().upper() for s in args.symbols.split(",") if s.strip()))
    if not symbols:
        raise ConfigError("--symbols names no symbol")
    from tbot_bot.data.bar_store import SYMBOL_PATTERN

    bad = [s for s in symbols if not SYMBOL_PATTERN.fullmatch(s)]
    if bad:  # refused before any request: a path or a typo is never sent to the broker
        raise UsageError(
            f"--symbols {', '.join(map(repr, bad[:5]))}: a symbol is letters, digits and . _ - ^ (e.g. BRK.B)"
        )
    start, end = parse_bound(args.start, is_end=False), parse_bound(args.end, is_end=True)
    if start >= end:
        raise ConfigError(f"--start {args.start} must be before --end {args.end}")
    home = BotHome.resolve(args.home)
    settings = load_settings(home)
    # BROKER_NAME=SIM: the simulated exchange only replays bars it was given; there is no data API to ask
    if settings.BROKER_NAME == "SIM":
        raise ConfigError(
            "tbot data fetch needs a broker with a data API (BROKER_NAME=ALPACA or IBKR), not SIM"
        )
    broker = build_broker(settings, home)
    cache_root = None if args.no_cache else home.cache_dir / "bars_1min" / settings.BROKER_NAME.lower()
    try:
        source_now = _source_now(broker)
        rows, calls = fetch_bars(
            broker, symbols, start, end, cache_root, now=lambda: source_now, calendar=settings.MARKET_CALENDAR
        )
    finally:
        close = getattr(broker, "close", None)
        if callable(close):
            close()
    if not rows:
        print(f"tbot data fetch: no bars written: {_why_empty(symbols, start, end, settings.MARKET_CALENDAR)}",
              file=sys.stderr)  # fmt: skip
        return 1
    empty = sorted(set(symbols) - {r[1] for r in rows})
    if empty:
        print(
            f"warning: no bars at all for {', '.join(empty)} in that period (check the symbols)",
            file=sys.stderr,
        )
    name = f"bars_1min_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}"
    if args.out is None:
        store = store_path(args.store, home)
        done = write_to_store(rows, store, origin=f"{settings.BROKER_NAME.lower()}:{','.join(symbols)}")
        print(
            f"wrote {done.rows} bars for {len(symbols)} symbols into the bar store {store} "
            f"({len(done.partitions)} partitions; {calls} data API calls)"
        )
        _print_merge(done, f"the {settings.BROKER_NAME} data API")
        return 0
    path = write_output(rows, Path(args.out).expanduser(), name, args.format)
    print(f"wrote {len(rows)} bars for {len(symbols)} symbols to {path} ({calls} data API calls)")
    return 0


def store_path(given: str | None, home: BotHome) -> Path:
    """--store, else the home's bar store; a home folder that does not exist is a slip (a mistyped --home), never
    created by a data command."""
    if given:
        return Path(given).expanduser()
    if not home.root.is_dir():
        raise UsageError(
            f"no bot home at {home.root} (the folder does not exist): pass the --home of a provisioned home, or "
            "--store DIR for a bar store of its own"
        )
    return home.bar_store_dir


def write_to_store(rows: list[list[str]], store: Path, *, origin: str) -> ImportResult:
    """Fetched rows checked as a bar file is (the same messages) and merged into the store."""
    import pandas as pd

    from tbot_bot.backtest.bar_checks import Reading, check_bars
    from tbot_bot.data.bar_import import recorded_warnings
    from tbot_bot.data.bar_store import write_bars

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    with recorded_warnings() as tee:  # a feed's bars widened to hold their open and close: said and recorded
        checked = check_bars(frame, Path(origin), first_row=1, reading=Reading("symbol"))
    return write_bars(checked, store, origin=origin, findings=tee.lines())


def run_import(args: argparse.Namespace) -> int:
    from tbot_bot.data.bar_import import import_bars

    home = BotHome.resolve(args.home)
    store = store_path(args.store, home)
    if not args.source.strip():  # Path("") is the working folder: never imported by a slip
        raise UsageError("name the bar file or folder to import (a path, not an empty string)")
    source = Path(args.source).expanduser()
    done = import_bars(source, store, ninjatrader_symbol=args.ninjatrader_symbol)
    print(
        f"imported {done.rows} bars of {len(done.symbols)} symbol(s) from {source} into {store} "
        f"({len(done.partitions)} partitions written)"
    )
    # the symbols as read (a NinjaTrader export's come from its file name): a misnamed one is seen here
    names = sorted(done.symbols)
    print(f"symbols: {', '.join(names[:20])}{f' and {len(names) - 20} more' if len(names) > 20 else ''}")
    if done.side_files:
        print(f"merged {', '.join(done.side_files)} into the store's")
    print(f"bar checks: passed{f' with {len(done.findings)} finding(s) recorded' if done.findings else ''}")
    _print_merge(done, str(source))
    print(
        f"backtest from it: tbot backtest --strategy open --start YYYY-MM-DD --end YYYY-MM-DD --data-source {store}"
    )
    return 0


def _print_merge(done: ImportResult, source: str) -> None:
    """What a write into the store changed beyond adding bars (an import's and a fetch's alike)."""
    if done.replaced:  # the newer import wins at the same minute: said when it changed bars already held
        print(f"replaced {done.replaced} bar(s) already in the store with different values from {source}")
    for note in done.notes:  # a damaged partition replaced, VIX closes replaced: the person must know
        print(f"note: {note}")


def run_list(args: argparse.Namespace) -> int:
    from tbot_bot.data.bar_store import damaged_months, damaged_partitions, holdings

    home = BotHome.resolve(args.home)
    store = store_path(args.store, home)
    held = holdings(store, args.calendar)
    if not held:
        print(f"{store}: the bar store holds no bars")
        return 0
    print(f"bar store {store}")
    print(
        f"{'symbol':<10} {'first':<10}  {'last':<10}  {'days':>5} {'rows':>10}  gaps ({args.calendar} sessions)"
    )
    broken = damaged_months(store)
    for h in held:
        gaps = ", ".join(f"{a}" if a == b else f"{a}..{b} ({n})" for a, b, n in h.gaps) if h.gaps else "none"
        # a row of a damaged month counts what the manifest records, not what can be read: said on the row too
        hurt = f"  DAMAGED {', '.join(broken[h.symbol])} (below)" if h.symbol in broken else ""
        print(f"{h.symbol:<10} {h.first}  {h.last}  {h.days:>5} {h.rows:>10}  {gaps}{hurt}")
    damaged = damaged_partitions(store)
    for problem in damaged:
        print(f"DAMAGED: {problem}", file=sys.stderr)
    return 1 if damaged else 0  # a check that found a problem (README, Exit codes)


def run_vix(args: argparse.Namespace) -> int:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.inputs import vix

    home = BotHome.resolve(args.home)
    settings = load_settings(home)
    broker = None
    # VIX_SOURCE=broker: the index comes from the broker's data API (a --url still wins)
    if settings.VIX_SOURCE == "broker" and args.url is None:
        from tbot_bot.broker.factory import build_broker

        broker = build_broker(settings, home)
    try:
        done = vix.refresh(
            home, settings, vix.next_close_session(settings, utc_now()), url=args.url, broker=broker
        )
    finally:
        close = getattr(broker, "close", None)
        if callable(close):
            close()
    print(
        f"VIX history from {done.source}: {done.downloaded} rows ({done.added} new); "
        f"{home.relative(vix.cache_path(home))} holds {done.held}"
    )
    print(done.reading.describe())
    return 0 if done.reading.fresh else 1
