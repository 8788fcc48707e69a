"""Load 1-minute bars for backtests, the sim exchange and the supervisor's replay (DESIGN §11).

Input: a CSV (optionally .gz) or Parquet file, or a folder of them, with columns timestamp (UTC, bar START),
symbol, open, high, low, close, volume[, vwap]; or a NinjaTrader minute export (`YYYYMMDD HHMMSS;o;h;l;c;v`,
timestamp = bar END in UTC). Output: one DataFrame, timestamp as datetime64[ns, UTC], sorted by
(timestamp, symbol), duplicates dropped.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd

from tbot_bot.errors import MarketDataError

COLUMNS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".txt")


def _is_ninjatrader(path: Path) -> bool:
    opener = __import__("gzip").open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        first = fh.readline().strip()
    head = first.split(";")
    return len(head) == 6 and len(head[0]) == 15 and head[0][:8].isdigit()


def read_ninjatrader(path: str | os.PathLike[str], symbol: str) -> pd.DataFrame:
    """A NinjaTrader minute export: the stamp is the bar END in UTC, so one minute is subtracted."""
    raw = pd.read_csv(path, sep=";", header=None, names=["stamp", "open", "high", "low", "close", "volume"])
    ts = pd.to_datetime(raw["stamp"].str.strip(), format="%Y%m%d %H%M%S", utc=True) - pd.Timedelta(minutes=1)
    out = raw.drop(columns="stamp").assign(timestamp=ts, symbol=symbol)
    return _normalise(out, str(path))


def _normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    df = df.rename(columns={c: c.strip().lower() for c in df.columns})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise MarketDataError(
            f"{source}: missing columns {', '.join(missing)} (need {', '.join(COLUMNS)}[, vwap])"
        )
    ts = pd.to_datetime(df["timestamp"], utc=True)
    out = pd.DataFrame({"timestamp": ts.astype("datetime64[ns, UTC]"), "symbol": df["symbol"].astype(str)})
    for c in ("open", "high", "low", "close", "volume"):
        out[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    if "vwap" in df.columns:
        out["vwap"] = pd.to_numeric(df["vwap"], errors="coerce").astype(float)
    bad = out[["open", "high", "low", "close"]].isna().any(axis=1)
    if bad.any():
        raise MarketDataError(f"{source}: {int(bad.sum())} rows with missing prices")
    return out


def _read_file(path: Path, symbol: str | None) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return _normalise(pd.read_parquet(path), str(path))
    if _is_ninjatrader(path):
        return read_ninjatrader(path, symbol or path.name.split(".")[0].upper())
    return _normalise(pd.read_csv(path), str(path))


def load_bars(
    source: str | os.PathLike[str],
    *,
    start: date | None = None,
    end: date | None = None,
    symbols: list[str] | None = None,
    ninjatrader_symbol: str | None = None,
) -> pd.DataFrame:
    """Bars from a file or a folder (non-recursive; files named *.csv, *.csv.gz, *.parquet, *.txt), limited to
    UTC dates start..end inclusive and to `symbols` when given."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
    elif path.is_file():
        files = [path]
    else:
        raise MarketDataError(f"no market data at {path}")
    frames = [
        _read_file(p, ninjatrader_symbol)
        for p in files
        if not p.name.lower().startswith(("vix", "fundamentals"))
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        raise MarketDataError(f"no bar files found in {path}")
    df = pd.concat(frames, ignore_index=True)
    if symbols:
        df = df[df["symbol"].isin(symbols)]
    days = df["timestamp"].dt.date
    if start is not None:
        df = df[days >= start]
        days = days[df.index]
    if end is not None:
        df = df[days <= end]
    df = df.drop_duplicates(subset=["timestamp", "symbol"], keep="last")
    return df.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)


def load_vix(path: str | os.PathLike[str]) -> dict[date, float]:
    """Daily VIX closes, from `date,close` (our sample) or Cboe's `DATE,OPEN,HIGH,LOW,CLOSE` (MM/DD/YYYY)."""
    df = pd.read_csv(path)
    df.columns = [c.strip().lower() for c in df.columns]
    fmt = "%m/%d/%Y" if "/" in str(df["date"].iloc[0]) else "%Y-%m-%d"
    days = pd.to_datetime(df["date"], format=fmt).dt.date
    return dict(zip(days, df["close"].astype(float), strict=True))


def vix_at_start(vix_closes: dict[date, float], session: date) -> float | None:
    """DESIGN §7: in replays and backtests the VIX at the CLOSE window start is the previous session's close."""
    earlier = [d for d in vix_closes if d < session]
    return vix_closes[max(earlier)] if earlier else None
