"""The bundled sample data: provenance, shape, derived instruments, reproducibility of the generator."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tbot_bot.backtest.load_historical_data import load_bars, load_vix, read_ninjatrader
from tbot_bot.data.sample import build_sample
from tbot_bot.enhancements.vix_gatekeeper import previous_close_vix
from tbot_bot.support.path_resolver import PROJECT_ROOT, package_file

SAMPLE = package_file("data", "sample")
SHARED = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_bars(SAMPLE)


def test_files_are_compact_and_attributed() -> None:
    total = sum(p.stat().st_size for p in SAMPLE.iterdir() if p.is_file())
    assert total < 4_000_000
    notice = (SAMPLE / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "Gabriel Martin Becedillas Ruiz" in notice
    readme = (SAMPLE / "README.md").read_text()
    assert "DERIVED" in readme and "not real quotes" in readme


def test_loader_frame_shape(frame: pd.DataFrame) -> None:
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert list(frame.columns[:7]) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    spy = frame[frame["symbol"] == "SPY"]
    per_day = spy.groupby(spy["timestamp"].dt.date).size()
    assert len(per_day) == 43 and (per_day == 390).all()
    first = spy["timestamp"].min()
    assert first == pd.Timestamp("2011-01-03 14:30", tz="UTC")  # bar START of the 09:30 New York bar
    assert set(frame["symbol"]) == {"SPY", "SH", "SDS", "SPXU"} | {f"SYN{i}" for i in range(1, 9)}


def test_derived_instruments(frame: pd.DataFrame) -> None:
    wide = frame.pivot(index="timestamp", columns="symbol", values="close")
    day = wide[wide.index.date == pd.Timestamp("2011-01-05").date()]
    half_hourly = day.iloc[::30]  # cent rounding dominates single minutes of a $21 ETF
    r_spy = half_hourly["SPY"].pct_change().dropna()
    for sym, k in (("SH", 1), ("SDS", 2), ("SPXU", 3)):
        r = half_hourly[sym].pct_change().dropna()
        assert np.corrcoef(r, r_spy)[0, 1] < -0.9
        big = r_spy.abs() > 5e-4
        assert np.median(np.abs(r[big] / r_spy[big] + k)) < 0.25 * k
    assert frame[frame["symbol"].str.startswith("SYN")]["close"].between(5, 100).all()
    daily = frame.groupby([frame["symbol"], frame["timestamp"].dt.date])["volume"].sum()
    assert (daily >= 1_000_000).all()


def test_fundamentals_and_vix() -> None:
    fundamentals = json.loads((SAMPLE / "fundamentals.json").read_text())
    assert set(fundamentals) == {f"SYN{i}" for i in range(1, 9)}
    for metrics in fundamentals.values():
        assert 2e9 <= metrics["marketCapitalization"] * 1e6 <= 1e10
        assert {"peNormalizedAnnual", "totalDebt/totalEquityAnnual"} <= set(metrics)
    vix = load_vix(SAMPLE / "vix.csv")
    assert (
        previous_close_vix(vix, pd.Timestamp("2011-01-03").date()) == vix[pd.Timestamp("2010-12-31").date()]
    )


def test_vix_closes_in_both_formats_and_refusals_by_row(tmp_path: Path) -> None:
    import gzip

    from tbot_bot.errors import DataError

    cboe = tmp_path / "VIX_History.csv.gz"  # Cboe's own download, gzipped, a blank line and CRLF included
    with gzip.open(cboe, "wt", encoding="utf-8", newline="") as fh:
        fh.write(
            "DATE,OPEN,HIGH,LOW,CLOSE\r\n01/03/2011,17.94,18.56,17.2, 17.61\r\n\r\n01/04/2011,17.5,17.9,17,17.38\r\n"
        )
    assert load_vix(cboe) == {date(2011, 1, 3): 17.61, date(2011, 1, 4): 17.38}
    ours = tmp_path / "vix.csv"
    cases = [
        ("when,close\n2011-01-03,17.61\n", "need columns date and close with at least one row"),
        ("date,close\n", "need columns date and close with at least one row"),
        ("", "need columns date and close with at least one row"),
        (
            "date,close\n2011-01-03,17.61\n2011-01-04,-1\n",
            "row 3: date '2011-01-04' / close '-1' is not a valid date (%Y-%m-%d) with a VIX close above 0, at most 500",
        ),
        (
            "date,close\n2011-01-03,17.61\n2011-02-30,17\n",
            "row 3: date '2011-02-30' / close '17' is not a valid date (%Y-%m-%d) with a VIX close above 0, at most 500",
        ),
        ("date,close\n2011-01-03\n", "row 2: date '2011-01-03' / close '' is not a valid date"),
        ("date,close\n2011-01-03,nan\n", "row 2: date '2011-01-03' / close 'nan' is not a valid date"),
        ("date,close\n2011-01-03,1e308\n", "row 2: date '2011-01-03' / close '1e308' is not a valid date"),
        # two closes for one date: refused as `tbot data vix` refuses them, never the last one silently
        (
            "date,close\n2011-01-10,17\n2011-01-10,99\n",
            "row 3: 2011-01-10 appears twice with different closes",
        ),
    ]
    for text, problem in cases:
        ours.write_text(text, encoding="utf-8")
        with pytest.raises(
            DataError, match=re.escape(f"{ours}{', ' if problem.startswith('row') else ': '}{problem}")
        ):
            load_vix(ours)
    ours.write_bytes(b"date,close\n2011-01-03,\xff\n")
    with pytest.raises(DataError, match="not UTF-8 text"):
        load_vix(ours)


def test_ninjatrader_conversion_subtracts_one_minute(tmp_path: Path) -> None:
    src = tmp_path / "nt.csv"
    src.write_text("20110103 143100;126.71;126.8;126.7;126.75;1000\r\n", encoding="utf-8")
    bars = read_ninjatrader(src, "SPY")
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2011-01-03 14:30", tz="UTC")
    assert load_bars(src, ninjatrader_symbol="SPY")["symbol"].iloc[0] == "SPY"


@pytest.mark.skipif(not (SHARED / "spy_1min_2011").is_dir(), reason="../shared/data not present")
def test_generator_is_reproducible(tmp_path: Path) -> None:
    paths = build_sample.build(SHARED, tmp_path)
    for name in ("spy_1min.csv.gz", "derived_1min.csv.gz", "fundamentals.json", "vix.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    assert set(paths) == {"spy", "derived", "fundamentals", "vix"}
