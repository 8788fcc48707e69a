"""`tbot plot day`: a candlestick chart of one symbol's session with windows, indicators, entries and exits."""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rigd_tbot.cli import add_home_argument, replaceable_output
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome, package_file
from tbot_bot.support.utils_bot import iso_date

if TYPE_CHECKING:
    import pandas as pd

    from tbot_bot.config.env_bot import BotSettings
    from tbot_bot.reporting.plot_day import DayTrade

STRATEGIES = ("open", "mid", "close")


def register(sub: argparse._SubParsersAction) -> None:
    plot = sub.add_parser(
        "plot", help="charts for people (plot day: one symbol's session with windows and trades)"
    )
    kinds = plot.add_subparsers(dest="plot_kind", metavar="KIND")
    kinds.required = True
    p = kinds.add_parser(
        "day",
        help="candlestick chart of one session: windows, opening range, VWAP, Bollinger, entries and exits",
        description=(
            "With --home: bars from the home's bar cache (data/cache/bars_1min/) or, for a SIM home, the bundled "
            "sample the replay used; trades from the home's ledger. With --data-source: bars from that file or "
            "folder, trades from a backtest of the day (each strategy, or --strategy)."
        ),
    )
    add_home_argument(p)
    p.add_argument(
        "--date", dest="day", type=iso_date, required=True, metavar="YYYY-MM-DD", help="session date"
    )
    p.add_argument("--symbol", required=True, help="ticker to chart (trades signalled by it are marked too)")
    p.add_argument(
        "--data-source",
        type=Path,
        default=None,
        metavar="PATH",
        help="1-minute bars file or folder; without --home the trades come from a backtest of the day",
    )
    p.add_argument(
        "--strategy", choices=STRATEGIES, default=None, help="only this strategy's window and trades"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="where to write the PNG (default: output/<scope>/charts/<date>_<SYMBOL>.png in the home, "
        "or ./<date>_<SYMBOL>.png with --data-source)",
    )
    p.add_argument(
        "--env-file", default=None, help="plaintext .env_bot for windows and indicators (default: the home's)"
    )
    p.set_defaults(func=run_day)


def _home_bars(home: BotHome, settings: BotSettings, symbol: str, day: date) -> tuple[pd.DataFrame, str]:
    from tbot_bot.backtest.load_historical_data import load_bars

    cached = sorted(home.cache_dir.glob(f"bars_1min/*/{symbol}/{day.isoformat()}.csv"))
    if cached:
        return load_bars(cached[0], symbols=[symbol]), f"bars: {home.relative(cached[0])}"
    # BROKER_NAME=SIM: the replay read the bundled sample, so the chart does too
    if settings.BROKER_NAME == "SIM":
        return load_bars(package_file("data", "sample"), start=day, end=day, symbols=[symbol]), "bars: sample"
    raise ConfigError(
        f"no cached bars for {symbol} on {day} under {home.cache_dir / 'bars_1min'}; "
        f"fetch them with `tbot data fetch` or pass --data-source PATH"
    )


def _ledger_trades(home: BotHome, day: date, symbol: str, strategy: str | None) -> list[DayTrade]:
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.reporting.ledger_trades import read_trades
    from tbot_bot.reporting.plot_day import DayTrade

    ledger = load_binding(home).ledger_path
    return [
        DayTrade(
            t.strategy,
            t.ticker,
            t.signal_ticker,
            t.direction,
            t.entry_time,
            t.exit_time,
            t.entry_price,
            t.exit_price,
            t.net_pnl,  # the PnL people read: net of fees
            t.exit_reason,
        )  # fmt: skip
        for t in read_trades(ledger, day=day, strategy=strategy)
        if symbol in (t.ticker, t.signal_ticker)
    ]


def _backtest_trades(
    settings: BotSettings, source: Path, day: date, symbol: str, strategies: tuple[str, ...]
) -> list[DayTrade]:
    import pandas as pd

    from tbot_bot.backtest.backtest_engine import run_backtest
    from tbot_bot.market_time import previous_session_date
    from tbot_bot.reporting.plot_day import DayTrade

    out: list[DayTrade] = []
    said: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tbot_plot_") as tmp:
        for s in strategies:
            # from the previous session: the volume screen needs yesterday's volume, as in a longer backtest
            start = previous_session_date(day, settings.MARKET_CALENDAR)
            result = run_backtest(settings, s, source, start, day, Path(tmp) / s, plots=False)
            trades = result.trades
            # a gap in the data (the session before the day missing) explains an empty chart: said, once
            for note in result.report.warnings:
                if "have no bars" in note and note not in said:
                    said.append(note)
                    print(f"note: {note}", file=sys.stderr)
            if trades.empty:
                continue
            mine = trades[(trades["session"] == day.isoformat())]
            mine = mine[(mine["ticker"] == symbol) | (mine["signal_ticker"] == symbol)]
            for r in mine.itertuples():
                out.append(
                    DayTrade(
                        s,
                        r.ticker,
                        r.signal_ticker,
                        r.direction,
                        pd.Timestamp(r.entry_time).to_pydatetime(),
                        pd.Timestamp(r.exit_time).to_pydatetime(),
                        Decimal(r.entry_price),
                        Decimal(r.exit_price),
                        Decimal(r.PnL),
                        r.exit_reason,
                    )  # fmt: skip
                )
    return out


def run_day(args: argparse.Namespace) -> int:
    from tbot_bot.backtest.backtest_engine import load_settings_for
    from tbot_bot.backtest.load_historical_data import load_bars
    from tbot_bot.market_time import market_calendar, session_bounds, window_for
    from tbot_bot.reporting.plot_day import day_figure, write_day_chart

    symbol = args.symbol.strip().upper()
    home = BotHome.resolve(args.home)
    # checked before any work: a mistyped --out (the ledger's path, a notes file) is never replaced by a chart
    out = (
        replaceable_output(args.out, "a PNG chart", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
                           f"{args.day.isoformat()}_{symbol}.png", folder_must_exist=False)
        if args.out
        else None
    )  # fmt: skip
    use_home = args.home is not None or args.data_source is None
    if use_home and not (home.env_bot_enc.exists() or home.env_bot_plain.exists()):
        raise ConfigError(
            f"{home.root} is not a bot home (no .env_bot.enc); pass --home DIR or --data-source PATH"
            + (
                " alone (--data-source without --home backtests the day)"
                if args.data_source is not None
                else ""
            )
        )
    settings = load_settings_for(args, home)
    bounds = session_bounds(args.day, settings.MARKET_CALENDAR)
    if bounds is None:
        raise ConfigError(f"{args.day} is not a trading session of {settings.MARKET_CALENDAR}")
    strategies = (args.strategy,) if args.strategy else STRATEGIES
    if args.data_source is not None:
        bars = load_bars(args.data_source, start=args.day, end=args.day, symbols=[symbol])
        source = f"bars: {args.data_source.name}"
    else:
        bars, source = _home_bars(home, settings, symbol, args.day)
    bars = bars[(bars["timestamp"] >= bounds[0]) & (bars["timestamp"] < bounds[1])]
    if bars.empty:
        held = ""
        if args.data_source is not None:
            # which symbols the data does hold that day (one day's bars: read again on this refusal only)
            names = sorted(
                map(str, load_bars(args.data_source, start=args.day, end=args.day)["symbol"].unique())
            )
            shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            held = f"; symbols with bars that day: {shown}" if names else "; no symbol has bars that day"
        raise ConfigError(
            f"no bars for {symbol} on {args.day} ({source}){held}; check the symbol and the date"
        )
    if use_home:
        trades = _ledger_trades(home, args.day, symbol, args.strategy)
        source += ", trades: ledger"
    else:
        trades = _backtest_trades(settings, args.data_source, args.day, symbol, strategies)
        source += ", trades: backtest"
    windows = [window_for(s, args.day, settings) for s in strategies]
    fig = day_figure(
        bars, symbol, args.day, windows, trades,
        exchange_tz=str(market_calendar(settings.MARKET_CALENDAR).tz),
        bollinger=(settings.BOLLINGER_PERIOD, float(settings.BOLLINGER_STD)), source=source,
    )  # fmt: skip
    out = out or _default_out(home, use_home, args.day, symbol)
    write_day_chart(fig, out)
    print(f"{symbol} {args.day}: {len(trades)} trade(s) marked; chart written to {out}")
    return 0


def _default_out(home: BotHome, use_home: bool, day: date, symbol: str) -> Path:
    name = f"{day.isoformat()}_{symbol}.png"
    if not use_home:
        return Path.cwd() / name
    from tbot_bot.accounting.accounting_config import load_binding

    return home.bot_output_dir(load_binding(home).scope) / "charts" / name
