"""Build the bundled sample data from ../shared/data (seeded, reproducible):

- spy_1min.csv.gz: REAL SPY 1-minute bars, Jan and Mar 2011, regular session only (PyAlgoTrade test data,
  Apache-2.0; see NOTICE). NinjaTrader stamps are bar ENDS in UTC: one minute is subtracted.
- derived_1min.csv.gz: DERIVED instruments, never real quotes: SH/SDS/SPXU = -1/-2/-3 x SPY minute returns;
  SYN1..SYN8 synthetic mid-caps = beta x SPY return + seeded noise, SPY's volume profile scaled.
- fundamentals.json: sample Finnhub-shaped metrics for SYN1..SYN8 (market caps 2e9..1e10 USD).
- vix.csv: real Cboe VIX daily closes for Dec 2010 - Mar 2011.

Run: python -m tbot_bot.data.sample.build_sample [--source DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from tbot_bot.backtest.load_historical_data import load_vix, read_ninjatrader
from tbot_bot.strategy.grid import regular_session
from tbot_bot.support.path_resolver import PROJECT_ROOT, package_file

SEED = 20110103
SAMPLE_DIR = package_file("data", "sample")
INVERSE = {"SH": (1, 42.0), "SDS": (2, 23.0), "SPXU": (3, 21.0)}  # leverage, first open (illustrative)
# symbol: (beta, minute noise sd, first price, volume scale vs SPY, market cap USD millions, P/E, D/E)
SYNTHETIC = {
    "SYN1": (1.2, 0.0012, 18.0, 0.045, 2600.0, 14.2, 0.45),
    "SYN2": (0.9, 0.0010, 42.5, 0.030, 5400.0, 21.7, 0.80),
    "SYN3": (1.5, 0.0016, 9.8, 0.080, 2200.0, 35.1, 1.60),
    "SYN4": (1.1, 0.0011, 64.0, 0.025, 8800.0, 18.9, 0.30),
    "SYN5": (0.8, 0.0009, 27.3, 0.035, 3900.0, 12.4, 1.10),
    "SYN6": (1.3, 0.0014, 74.0, 0.020, 9600.0, 27.5, 0.65),
    "SYN7": (1.0, 0.0013, 6.4, 0.120, 2050.0, 9.8, 2.10),
    "SYN8": (1.4, 0.0015, 35.9, 0.040, 6100.0, 44.0, 0.95),
}


def real_spy(source: Path) -> pd.DataFrame:
    files = sorted((source / "spy_1min_2011").glob("nt-spy-minute-2011*.csv"))
    spy = pd.concat([read_ninjatrader(f, "SPY") for f in files], ignore_index=True)
    spy = regular_session(spy).sort_values("timestamp").reset_index(drop=True)
    spy["volume"] = spy["volume"].astype(np.int64)
    return spy


def _path_from_returns(
    first_open: float, spy: pd.DataFrame, mult: np.ndarray, noise: np.ndarray
) -> pd.DataFrame:
    """OHLC whose every field moves `mult` x SPY's move from SPY's previous close, plus `noise` (per bar)."""
    prev_close = spy["close"].shift(1).fillna(spy["open"].iloc[0]).to_numpy()
    rel = {f: spy[f].to_numpy() / prev_close - 1 for f in ("open", "high", "low", "close")}
    level0 = first_open / (1 + mult[0] * rel["open"][0] + noise[0] / 2)
    closes = level0 * np.cumprod(1 + mult * rel["close"] + noise)
    level = np.r_[level0, closes[:-1]]  # each bar moves from the previous derived close
    out = {
        "open": level * (1 + mult * rel["open"] + noise / 2),
        "close": closes,
    }
    a, b = level * (1 + mult * rel["high"]), level * (1 + mult * rel["low"])
    out["high"] = np.maximum.reduce([a, b, out["open"], out["close"]])
    out["low"] = np.minimum.reduce([a, b, out["open"], out["close"]])
    return pd.DataFrame({f: np.round(v, 2) for f, v in out.items()})  # cent ticks, like the real tape


def derived(spy: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    n = len(spy)
    for sym, (lev, first) in INVERSE.items():
        px = _path_from_returns(first, spy, np.full(n, -float(lev)), np.zeros(n))
        vol = (spy["volume"].to_numpy() * 0.06 / lev).astype(np.int64)
        frames.append(px.assign(timestamp=spy["timestamp"].to_numpy(), symbol=sym, volume=vol))
    for sym, (beta, sd, first, vscale, *_rest) in SYNTHETIC.items():
        noise = rng.normal(0.0, sd, n)
        px = _path_from_returns(first, spy, np.full(n, beta), noise)
        vol = (spy["volume"].to_numpy() * vscale * rng.lognormal(0.0, 0.3, n)).astype(np.int64)
        frames.append(px.assign(timestamp=spy["timestamp"].to_numpy(), symbol=sym, volume=vol))
    cols = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    return pd.concat(frames, ignore_index=True)[cols].sort_values(["timestamp", "symbol"], kind="stable")


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    out = df.assign(timestamp=df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})


def build(source: Path, dest: Path = SAMPLE_DIR) -> dict[str, Path]:
    rng = np.random.default_rng(SEED)
    spy = real_spy(source)
    dest.mkdir(parents=True, exist_ok=True)
    paths = {"spy": dest / "spy_1min.csv.gz", "derived": dest / "derived_1min.csv.gz"}
    _write_csv_gz(spy[["timestamp", "symbol", "open", "high", "low", "close", "volume"]], paths["spy"])
    _write_csv_gz(derived(spy, rng), paths["derived"])
    fundamentals = {
        sym: {"marketCapitalization": cap, "peNormalizedAnnual": pe, "totalDebt/totalEquityAnnual": de}
        for sym, (_b, _s, _p, _v, cap, pe, de) in SYNTHETIC.items()
    }
    paths["fundamentals"] = dest / "fundamentals.json"
    paths["fundamentals"].write_text(
        json.dumps(fundamentals, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    vix = load_vix(next((source / "vix_daily").glob("vix_close_*.csv")))
    rows = sorted(
        (d, c)
        for d, c in vix.items()
        if pd.Timestamp("2010-12-01").date() <= d <= pd.Timestamp("2011-03-31").date()
    )
    paths["vix"] = dest / "vix.csv"
    pd.DataFrame(rows, columns=["date", "close"]).to_csv(paths["vix"], index=False)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        default=str(PROJECT_ROOT.parent / "shared" / "data"),
        help="folder with spy_1min_2011/ and vix_daily/",
    )
    parser.add_argument("--dest", default=str(SAMPLE_DIR))
    args = parser.parse_args(argv)
    for name, path in build(Path(args.source), Path(args.dest)).items():
        print(f"{name}: {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
