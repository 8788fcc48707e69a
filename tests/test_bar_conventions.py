"""Bar files whose values are valid but whose stamps or names mean something else than the loader reads: each
loaded without a word and backtested wrong (a data review). Now refused by name, or read as meant."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from rigd_tbot.cli import main
from tbot_bot.backtest.load_historical_data import load_bars, load_columns
from tbot_bot.errors import DataError
from tbot_bot.support.path_resolver import package_file

SAMPLE = package_file("data", "sample")
DAYS = (date(2011, 1, 3), date(2011, 1, 6))  # four sessions of the sample


@pytest.fixture(scope="module")
def spy() -> pd.DataFrame:
    return load_bars(SAMPLE, symbols=["SPY"], start=DAYS[0], end=DAYS[1])


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out[["timestamp", "symbol", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return path


def _ninjatrader(frame: pd.DataFrame, path: Path, zone: str = "UTC", bom: bool = False) -> Path:
    """NinjaTrader's export: the bar's END, `YYYYMMDD HHMMSS;o;h;l;c;v`, in the zone it was made in."""
    end = (frame["timestamp"] + pd.Timedelta(minutes=1)).dt.tz_convert(zone)
    lines = [
        f"{t:%Y%m%d %H%M%S};{o};{h};{lo};{c};{int(v)}"
        for t, o, h, lo, c, v in zip(
            end, frame["open"], frame["high"], frame["low"], frame["close"], frame["volume"], strict=True
        )
    ]
    text = ("\ufeff" if bom else "") + "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("variant", "said"),
    [
        ("bar_end", "the stamps look like bar ENDS"),
        ("new_york_time", "are the stamps in UTC?"),
        ("five_minutes", "5-minute bars"),
        ("half_minutes", "bars shorter than a minute"),
    ],
)
def test_stamps_of_another_convention_are_refused_by_name(
    spy: pd.DataFrame, tmp_path: Path, variant: str, said: str
) -> None:
    if variant == "bar_end":
        path = _csv(spy.assign(timestamp=spy["timestamp"] + pd.Timedelta(minutes=1)), tmp_path / "spy.csv")
    elif variant == "new_york_time":
        path = _ninjatrader(spy, tmp_path / "SPY.Last.txt", zone="America/New_York")
    elif variant == "five_minutes":
        path = _csv(spy[spy["timestamp"].dt.minute % 5 == 0], tmp_path / "spy.csv")
    else:
        half = spy.assign(timestamp=spy["timestamp"] + pd.Timedelta(seconds=30))
        path = _csv(pd.concat([spy, half]).sort_values("timestamp"), tmp_path / "spy.csv")
    with pytest.raises(DataError) as refused:
        load_bars(path)
    assert said in str(refused.value) and str(path) in str(refused.value) and "SPY" in str(refused.value)
    # as a backtest reads files: the regular session only (what it leaves out is weighed all the same)
    with pytest.raises(DataError, match=said.replace("?", r"\?")):
        load_columns(path, start=DAYS[0], end=DAYS[1], calendar="XNYS")
    # the import refuses it too, before anything is written
    assert main(["data", "import", str(path), "--store", str(tmp_path / "store")]) == 2
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_the_same_bars_in_utc_load_as_the_sample(spy: pd.DataFrame, tmp_path: Path) -> None:
    as_csv = load_bars(_csv(spy, tmp_path / "spy.csv"))
    as_ninjatrader = load_bars(_ninjatrader(spy, tmp_path / "SPY.Last.txt"))
    for got in (as_csv, as_ninjatrader):
        assert (
            got["timestamp"].tolist() == spy["timestamp"].tolist()
            and got["close"].tolist() == spy["close"].tolist()
        )


def test_two_files_disagreeing_on_a_bar_are_refused_naming_both(spy: pd.DataFrame, tmp_path: Path) -> None:
    """Unadjusted and split-adjusted copies in one folder: the last file's bars replaced the other's."""
    folder = tmp_path / "bars"
    folder.mkdir()
    _csv(spy, folder / "a_unadjusted.csv")
    _csv(spy.assign(**{c: spy[c] * 0.5 for c in ("open", "high", "low", "close")}), folder / "b_adjusted.csv")
    with pytest.raises(DataError) as refused:
        load_bars(folder)
    text = str(refused.value)
    assert "SPY at 2011-01-03 14:30:00+00:00 has other values in" in text
    assert "a_unadjusted.csv" in text and "b_adjusted.csv" in text
    assert main(["data", "import", str(folder), "--store", str(tmp_path / "store")]) == 2
    # the same bars twice (overlapping downloads) are one
    _csv(spy, folder / "b_adjusted.csv")
    assert len(load_bars(folder)) == len(spy)


def test_ninjatrader_names_keep_a_class_shares_dot_and_are_shown(
    spy: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BRK.A.Last.txt and BRK.B.Last.txt were one symbol BRK, B's bars replacing A's; a .txt.gz in a folder was
    skipped; a byte-order mark sent the file to the CSV reader ("missing columns")."""
    folder = tmp_path / "nt"
    folder.mkdir()
    _ninjatrader(spy, folder / "BRK.A.Last.txt")
    _ninjatrader(spy.assign(close=spy["close"] * 2, high=spy["high"] * 2), folder / "BRK.B.Last.txt.gz")
    _ninjatrader(spy, folder / "QQQ.Last.txt", bom=True)
    got = load_bars(folder)
    assert sorted(got["symbol"].unique()) == ["BRK.A", "BRK.B", "QQQ"]
    assert main(["data", "import", str(folder), "--store", str(tmp_path / "store")]) == 0
    assert "symbols: BRK.A, BRK.B, QQQ" in capsys.readouterr().out
    # one name for several exports made them one symbol: refused
    assert (
        main(["data", "import", str(folder), "--store", str(tmp_path / "s2"), "--ninjatrader-symbol", "SPY"])
        == 2
    )
    assert "names one instrument" in capsys.readouterr().err


def test_a_partition_swapped_with_another_symbols_is_refused_even_with_its_manifest_edited(
    spy: pd.DataFrame, tmp_path: Path
) -> None:
    """SH's file copied as SDS's, its size and SHA-256 written into the manifest: it loaded as SDS's bars."""
    import hashlib
    import json

    bars = tmp_path / "bars.csv"
    both = pd.concat([spy, spy.assign(symbol="QQQ", close=spy["close"] * 0.5, low=spy["low"] * 0.5)])
    _csv(both.sort_values(["timestamp", "symbol"]), bars)
    store = tmp_path / "store"
    assert main(["data", "import", str(bars), "--store", str(store)]) == 0
    assert len(load_bars(store, symbols=["QQQ"])) == len(spy)
    swapped = (store / "SPY" / "2011-01.parquet").read_bytes()
    (store / "QQQ" / "2011-01.parquet").write_bytes(swapped)
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["partitions"]["QQQ/2011-01.parquet"].update(
        bytes=len(swapped), sha256=hashlib.sha256(swapped).hexdigest()
    )
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as refused:
        load_bars(store, symbols=["QQQ"])
    assert "partition QQQ/2011-01.parquet is the file written as SPY/2011-01.parquet; re-import it" in str(
        refused.value
    )


def test_a_ninjatrader_export_saved_as_csv_keeps_its_symbol(spy: pd.DataFrame, tmp_path: Path) -> None:
    for name in ("IWM.csv", "QQQ.Last.csv.gz"):
        got = load_bars(_ninjatrader(spy, tmp_path / name))
        assert got["symbol"].unique().tolist() == [name.split(".")[0]]
