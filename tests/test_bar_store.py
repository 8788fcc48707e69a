"""The Parquet bar store (issue 25): `tbot data import` of the bundled sample, a backtest from the store equal to
the one from CSV, a damaged partition refused by name, `tbot data list`, and `--no-plots`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import make_settings

from rigd_tbot.cli import main as tbot
from tbot_bot.backtest.backtest_engine import run_backtest
from tbot_bot.backtest.load_historical_data import load_bars, load_columns, load_vix
from tbot_bot.data.bar_import import import_bars
from tbot_bot.data.bar_store import last_date
from tbot_bot.errors import DataError
from tbot_bot.inputs.replay_bars import load_replay_bars
from tbot_bot.strategy.grid import BarColumns
from tbot_bot.support.path_resolver import package_file

SAMPLE = package_file("data", "sample")
FIRST, LAST = date(2011, 1, 3), date(2011, 3, 31)  # every sample day (January and March)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    assert tbot(["data", "import", str(SAMPLE), "--store", str(root / "bars"), "--home", str(root)]) == 0
    return root / "bars"


def test_import_writes_typed_partitions_with_a_checked_manifest(store: Path) -> None:
    manifest = json.loads((store / "manifest.json").read_text())
    csv = load_bars(SAMPLE)
    parts = manifest["partitions"]
    assert sum(p["rows"] for p in parts.values()) == len(csv)
    assert {p["symbol"] for p in parts.values()} == set(csv["symbol"].unique())
    assert {p["month"] for p in parts.values()} == {"2011-01", "2011-03"}
    assert len(parts) == 2 * len(set(csv["symbol"].unique()))
    assert manifest["imports"][-1]["checks"] == "passed"
    assert (store / "vix.csv").is_file() and (store / "fundamentals.json").is_file()
    schema = pq.read_schema(store / "SPY" / "2011-01.parquet")
    assert str(schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("close").type) == "double" and str(schema.field("volume").type) == "int64"
    assert "symbol" not in schema.names  # the partition is the symbol
    # one row group per UTC week (Monday..Sunday): a read of a few days skips the month's other weeks
    spy = pq.ParquetFile(store / "SPY" / "2011-01.parquet")
    weeks = {d.isocalendar()[:2] for d in map(date.fromisoformat, parts["SPY/2011-01.parquet"]["days"])}
    assert spy.metadata.num_row_groups == len(weeks)
    for i in range(spy.metadata.num_row_groups):
        stats = spy.metadata.row_group(i).column(0).statistics
        assert stats.min.isocalendar()[:2] == stats.max.isocalendar()[:2]


def test_store_reads_exactly_the_csv_bars_with_pruning(store: Path) -> None:
    pd.testing.assert_frame_equal(load_bars(store), load_bars(SAMPLE))
    day = date(2011, 3, 16)
    kw = {"start": date(2011, 3, 15), "end": day, "symbols": ["SPY", "SYN3"], "by_symbol": True}
    pd.testing.assert_frame_equal(
        load_bars(store, condense_before=day, **kw), load_bars(SAMPLE, condense_before=day, **kw)
    )
    # the replay's (and through the sim broker the warm-up's) bars, and the optimizer's default end date
    pd.testing.assert_frame_equal(
        load_replay_bars(store, day, "XNYS", by_symbol=True),
        load_replay_bars(SAMPLE, day, "XNYS", by_symbol=True),
    )
    assert last_date(store) == LAST
    # what the backtest and the optimizer simulate on: the store's arrays straight from the partitions give the
    # CSV's bars (in another order: the grid and the MarketView sort them)
    # whole months (each partition copied into its place as read) and a range cutting both months (joined)
    for first, last in ((date(2011, 1, 3), date(2011, 1, 31)), (date(2011, 1, 10), date(2011, 3, 15))):
        kw2 = {"start": first, "end": last, "calendar": "XNYS"}
        a, b = load_columns(store, **kw2), load_columns(SAMPLE, **kw2)
        assert list(a.names) == list(b.names)
        pd.testing.assert_frame_equal(_rows(a), _rows(b))


def _rows(c: BarColumns) -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": c.ts_ns, "symbol": c.names[c.code], "open": c.open, "high": c.high, "low": c.low,
         "close": c.close, "volume": c.volume}
    ).sort_values(["ts", "symbol"], ignore_index=True)  # fmt: skip


def test_whole_months_read_into_place_refuse_a_damaged_partition_by_name(store: Path, tmp_path: Path) -> None:
    whole = {"start": date(2011, 1, 1), "end": date(2011, 1, 31), "calendar": "XNYS"}
    cut = _copy(store, tmp_path / "cut")
    part = cut / "SYN4" / "2011-01.parquet"
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"SYN4/2011-01\.parquet is corrupted.*tbot data import"):
        load_columns(cut, **whole)
    # a manifest whose row count is not the partition's (its checksum edited to match) is refused, not trusted
    edited = _copy(store, tmp_path / "edited")
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["partitions"]["SYN4/2011-01.parquet"]["rows"] -= 1
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        DataError, match=r"SYN4/2011-01\.parquet is 7800 rows where the manifest records 7799"
    ):
        load_columns(edited, **whole)
    assert len(load_columns(store, **whole)) == len(load_columns(SAMPLE, **whole)) > 0
    # a row count no month can hold (a read sizes its columns from it) is a damaged manifest, named
    for rows in (10**12, -1):
        manifest["partitions"]["SYN4/2011-01.parquet"]["rows"] = rows
        (edited / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(
            DataError, match=rf"damaged \(partition 'SYN4/2011-01\.parquet': 'rows' is {rows}, not 0 to"
        ):
            load_columns(edited, **whole)


@pytest.mark.parametrize("strategy", ["open", "mid", "close", "all"])
def test_backtest_from_store_equals_backtest_from_csv(strategy: str, store: Path, tmp_path: Path) -> None:
    settings = make_settings()
    from_csv = run_backtest(settings, strategy, SAMPLE, FIRST, LAST, tmp_path / "csv", plots=False)
    from_store = run_backtest(settings, strategy, store, FIRST, LAST, tmp_path / "store", plots=False)
    assert len(from_csv.trades) > 0
    pd.testing.assert_frame_equal(from_store.trades, from_csv.trades)
    assert from_store.metrics == from_csv.metrics
    assert [(s.session, s.code) for s in from_store.skips] == [(s.session, s.code) for s in from_csv.skips]
    assert (tmp_path / "store" / "metrics.json").read_text() == (
        tmp_path / "csv" / "metrics.json"
    ).read_text()


def test_data_list_shows_symbols_ranges_and_gaps(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert tbot(["data", "list", "--store", str(store), "--home", str(store.parent)]) == 0
    spy = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("SPY "))
    # the sample holds January and March: February's 19 sessions are the gap
    assert "2011-03-31" in spy and "2011-02-01..2011-02-28 (19)" in spy


def _copy(store: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(store, to)
    return to


def test_truncated_partition_is_refused_by_name(store: Path, tmp_path: Path) -> None:
    damaged = _copy(store, tmp_path / "bars")
    part = damaged / "SPY" / "2011-01.parquet"
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(DataError) as err:
        load_bars(damaged, start=date(2011, 1, 10), end=date(2011, 1, 10))
    text = str(err.value)
    assert "SPY/2011-01.parquet" in text and "corrupted" in text
    assert f"tbot data import {SAMPLE.resolve()} --store {damaged}" in text
    # the other months are untouched and still read
    assert len(load_bars(damaged, start=date(2011, 3, 1), end=date(2011, 3, 31))) > 0


def test_an_open_or_close_outside_the_range_widens_it_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real feeds send such bars (each field from different trade conditions): kept, the range made to hold them,
    said once and recorded in the manifest's findings."""
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2011-01-03T14:30:00Z,ARES,121.60,121.60,121.60,130.59,100\n"  # close above the high
        "2011-01-03T14:31:00Z,ARES,119.00,121.00,120.00,120.50,100\n"  # open below the low
        "2011-01-03T14:32:00Z,ARES,120.50,121.00,120.00,120.75,100\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert tbot(["data", "import", str(bars), "--store", str(tmp_path / "st"), "--home", str(tmp_path)]) == 0
    warning = (
        f"warning: {bars}: 2 bar(s) with the open or close outside high..low; their high and low were widened"
    )
    assert capsys.readouterr().err.count(warning) == 1
    held = load_bars(tmp_path / "st")
    assert held[["high", "low"]].values.tolist() == [[130.59, 121.60], [121.0, 119.0], [121.0, 120.0]]
    manifest = json.loads((tmp_path / "st" / "manifest.json").read_text())
    assert any("widened" in f for f in manifest["imports"][-1]["findings"])
    # read by date with a repeated bar (the path that reads the file twice): said once all the same
    bars.write_text(bars.read_text() + "2011-01-03T14:32:00Z,ARES,120.50,121.00,120.00,120.75,100\n")
    capsys.readouterr()
    load_bars(bars, start=date(2011, 1, 3), end=date(2011, 1, 3))
    assert capsys.readouterr().err.count(f"warning: {bars}: 2 bar(s)") == 1
    # two different bars at one minute are a conflict, judged on the values as written (not made equal by widening)
    bars.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2011-01-03T14:30:00Z,ARES,131.50,130.00,120.00,125.00,100\n"
        "2011-01-03T14:30:00Z,ARES,131.50,131.50,120.00,125.00,100\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="ARES"):
        load_bars(bars)


def test_data_list_names_a_missing_or_cut_partition(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = _copy(store, tmp_path / "bars")
    (damaged / "SPY" / "2011-01.parquet").unlink()
    cut = damaged / "SPY" / "2011-03.parquet"
    cut.write_bytes(cut.read_bytes()[:-10])
    capsys.readouterr()
    assert tbot(["data", "list", "--store", str(damaged), "--home", str(tmp_path)]) == 1
    listed = capsys.readouterr()
    err = listed.err
    # the table's row says it too (its counts are the manifest's, not what can be read)
    (spy,) = [line for line in listed.out.splitlines() if line.startswith("SPY ")]
    assert spy.endswith("DAMAGED 2011-01, 2011-03 (below)"), spy
    assert not any("DAMAGED" in line for line in listed.out.splitlines() if not line.startswith("SPY "))
    assert "DAMAGED: bar store" in err and "partition SPY/2011-01.parquet is missing" in err
    assert "partition SPY/2011-03.parquet is not the size the manifest records; re-import it" in err
    assert tbot(["data", "list", "--store", str(store), "--home", str(tmp_path)]) == 0


def test_altered_partition_of_same_size_is_refused_by_checksum(store: Path, tmp_path: Path) -> None:
    damaged = _copy(store, tmp_path / "bars")
    part = damaged / "SYN3" / "2011-03.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(
        DataError, match=r"partition SYN3/2011-03\.parquet is corrupted .*SHA-256.*tbot data import"
    ):
        load_bars(damaged)


def test_bad_file_is_refused_at_import_with_the_csv_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,symbol,open,high,low,close,volume\n2024-01-02T14:30:00Z,SPY,1,1,1,-1,10\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError) as at_import:
        import_bars(bad, tmp_path / "bars")
    with pytest.raises(DataError) as as_csv:
        load_bars(bad)
    assert str(at_import.value) == str(as_csv.value)
    assert not (tmp_path / "bars" / "manifest.json").exists()  # nothing written


@pytest.mark.parametrize(
    ("bar", "problem"),
    [
        (
            "126.71,126.74,126.66,126.72,1e30",
            "row 2: volume=1e+30 is beyond any minute's volume (at most 9,007",
        ),
        (  # 2**53 + 1 reads as the float 2**53: a volume that cannot be kept exactly is refused whole
            "126.71,126.74,126.66,126.72,9007199254740993",
            "row 2: volume=9.0072e+15 is beyond any minute's volume (at most 9,007,199,254,740,991)",
        ),
        (
            "126.71,1e300,126.66,126.72,100",
            "row 2: a price of 1e+300 is beyond any share's (at most 1,000,000,000)",
        ),
        ("126.71,120,130,126.72,100", "row 2: high=120.0 is below low=130.0"),
    ],
)
def test_a_bar_no_market_makes_is_refused_and_the_store_keeps_its_bars(
    store: Path, tmp_path: Path, bar: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each number alone passes; the bar does not (a volume of 1e30 was stored as -9223372036854775808, a high
    below its low replaced SPY's real first bar)."""
    kept = _copy(store, tmp_path / "bars")  # the module's store must not change
    before = {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()}
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"timestamp,symbol,open,high,low,close,volume\n2011-01-03T14:30:00Z,SPY,{bar}\n", encoding="utf-8"
    )
    capsys.readouterr()
    assert tbot(["data", "import", str(bad), "--store", str(kept), "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, {problem}" in err and "Traceback" not in err and "Warning" not in err
    assert {p: p.read_bytes() for p in kept.rglob("*") if p.is_file()} == before  # nothing replaced


def _damage(m: dict, how: str) -> None:  # type: ignore[type-arg]
    rel = next(iter(m["partitions"]))
    if how == "partitions as a list":
        m["partitions"] = list(m["partitions"])
    elif how == "a partition as text":
        m["partitions"][rel] = "SPY"
    elif how == "days as a number":
        m["partitions"][rel]["days"] = 5
    elif how == "a day that is no date":
        m["partitions"][rel]["days"][0] = "2011-02-30"
    elif how == "rows as text":
        m["partitions"][rel]["rows"] = "abc"
    else:
        m["imports"] = "x"


@pytest.mark.parametrize(
    "how",
    ["partitions as a list", "a partition as text", "days as a number", "a day that is no date", "rows as text",
     "imports as text"],
)  # fmt: skip
def test_a_damaged_manifest_is_refused_by_every_reader(
    store: Path, tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = _copy(store, tmp_path / "bars")
    manifest = json.loads((damaged / "manifest.json").read_text())
    _damage(manifest, how)
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    home = ["--home", str(tmp_path)]
    one = tmp_path / "one.csv"
    one.write_text("timestamp,symbol,open,high,low,close,volume\n2011-04-01T14:30:00Z,SPY,1,1,1,1,1\n")
    for argv in (
        ["data", "list", "--store", str(damaged)],
        ["backtest", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-05", "--no-plots",
         "--data-source", str(damaged), "--out", str(tmp_path / "out")],
        ["data", "import", str(one), "--store", str(damaged)],
    ):  # fmt: skip
        capsys.readouterr()
        assert tbot([*argv, *home]) == 2, argv
        err = capsys.readouterr().err
        assert "manifest.json is damaged" in err and "tbot data import SOURCE --store" in err, err
        assert "Unexpected error" not in err and "Traceback" not in err


def test_no_plots_writes_everything_but_the_charts(tmp_path: Path) -> None:
    settings = make_settings()
    day = date(2011, 1, 10)
    plain = run_backtest(settings, "open", SAMPLE, day, day, tmp_path / "plain", plots=False)
    drawn = run_backtest(settings, "open", SAMPLE, day, day, tmp_path / "drawn")
    charts = {"equity_drawdown.png", "daily_pnl.png"}
    plain_files = {p.name for p in (tmp_path / "plain").iterdir()}
    drawn_files = {p.name for p in (tmp_path / "drawn").iterdir()}
    assert drawn_files - plain_files == charts and not plain_files & charts
    for name in plain_files:
        if name.endswith((".csv", ".json")):
            assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "drawn" / name).read_bytes(), name
    assert "equity_png" not in plain.files and drawn.files["equity_png"].is_file()
    # a report written with charts lists them; one without lists none
    drawn_md = (tmp_path / "drawn" / "report.md").read_text()
    assert "(equity_drawdown.png)" in drawn_md and "(daily_pnl.png)" in drawn_md
    assert ".png" not in (tmp_path / "plain" / "report.md").read_text()
    assert "<img" in (tmp_path / "drawn" / "report.html").read_text()
    assert "<img" not in (tmp_path / "plain" / "report.html").read_text()


def test_no_plots_run_never_imports_matplotlib(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom datetime import date\nfrom pathlib import Path\n"
        "sys.path.insert(0, 'tests')\nfrom helpers import make_settings\n"
        "from tbot_bot.backtest.backtest_engine import run_backtest\n"
        "from tbot_bot.support.path_resolver import package_file\n"
        f"run_backtest(make_settings(), 'open', package_file('data', 'sample'), date(2011, 1, 10), "
        f"date(2011, 1, 10), Path({str(tmp_path)!r}), plots=False)\n"
        "print('matplotlib' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_reimport_merges_and_the_newer_bar_wins(tmp_path: Path) -> None:
    head = "timestamp,symbol,open,high,low,close,volume\n"
    first = tmp_path / "a.csv"
    first.write_text(
        head + "2024-01-02T14:30:00Z,SPY,10,11,9,10.5,100\n2024-01-02T14:31:00Z,SPY,10.5,11,10,10.7,200\n",
        encoding="utf-8",
    )
    second = tmp_path / "b.csv"
    second.write_text(
        head + "2024-01-02T14:31:00Z,SPY,10.5,11,10,10.9,250\n2024-02-01T14:30:00Z,SPY,12,12,12,12,5\n",
        encoding="utf-8",
    )
    store = tmp_path / "bars"
    import_bars(first, store)
    assert import_bars(first, store).replaced == 0  # the same bars again change nothing
    assert import_bars(second, store).replaced == 1  # 14:31 held with other values: said, and recorded
    held = load_bars(store)
    assert held["close"].tolist() == [10.5, 10.9, 12.0] and held["volume"].tolist() == [100.0, 250.0, 5.0]
    manifest = json.loads((store / "manifest.json").read_text())
    assert sorted(manifest["partitions"]) == ["SPY/2024-01.parquet", "SPY/2024-02.parquet"]
    assert manifest["partitions"]["SPY/2024-01.parquet"]["rows"] == 2 and len(manifest["imports"]) == 3
    assert [i["replaced"] for i in manifest["imports"]] == [0, 0, 1]


def test_check_findings_are_shown_and_recorded_at_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repeated = tmp_path / "rep.csv"
    row = "2024-01-02T14:30:00Z,SPY,10,11,9,10.5,100\n"
    repeated.write_text("timestamp,symbol,open,high,low,close,volume\n" + row + row, encoding="utf-8")
    import_bars(repeated, tmp_path / "bars")
    shown = capsys.readouterr().err
    assert "dropped 1 repeated bar(s) with identical values" in shown
    manifest = json.loads((tmp_path / "bars" / "manifest.json").read_text())
    assert manifest["imports"][-1]["findings"] == [line for line in shown.splitlines() if line.strip()]
    assert len(load_bars(tmp_path / "bars")) == 1


def test_partitions_with_and_without_vwap_read_as_the_csv_does(tmp_path: Path) -> None:
    """A store read streams partitions: one symbol's file has vwap, another's none (NaN there, as a CSV folder
    joining both gives); the previous day condensed for a replay; a store written before partitions recorded
    their vwap column reads the same."""
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "timestamp,symbol,open,high,low,close,volume,vwap\n"
        "2024-01-02T14:30:00Z,AAA,10,11,9,10.5,100,10.2\n2024-01-02T14:31:00Z,AAA,10.5,11,10,10.7,300,10.6\n"
        "2024-01-03T14:30:00Z,AAA,11,12,10,11.5,50,11.1\n",
        encoding="utf-8",
    )
    (folder / "b.csv").write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-02T14:30:00Z,BBB,20,21,19,20.5,10\n2024-01-03T14:30:00Z,BBB,21,22,20,21.5,20\n",
        encoding="utf-8",
    )
    store = tmp_path / "bars"
    import_bars(folder, store)
    manifest = json.loads((store / "manifest.json").read_text())
    assert [p["vwap"] for p in manifest["partitions"].values()] == [True, False]
    kw = {"start": date(2024, 1, 2), "end": date(2024, 1, 3), "condense_before": date(2024, 1, 3)}
    for order in (False, True):
        expected = load_bars(folder, by_symbol=order, **kw)
        pd.testing.assert_frame_equal(load_bars(store, by_symbol=order, **kw), expected)
    assert expected["vwap"].isna().tolist() == [False, False, True, True]  # BBB has none, condensed or not
    for entry in manifest["partitions"].values():
        del entry["vwap"]  # as an older import wrote it
    (store / "manifest.json").write_text(json.dumps(manifest))
    pd.testing.assert_frame_equal(load_bars(store, by_symbol=True, **kw), expected)


def _files(store: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}


def test_a_damaged_partition_is_replaced_by_its_reimport_and_a_refused_import_changes_nothing(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The read's refusal says "re-import it": that import used to read the damaged file first and fail the same
    way, after it had rewritten the partitions before it (their new bytes against the manifest's old checksums)."""
    kept = _copy(store, tmp_path / "bars")
    cut = kept / "SPY" / "2011-01.parquet"
    cut.write_bytes(cut.read_bytes()[:-10])
    (kept / "SYN2" / "2011-01.parquet").unlink()
    # one file of several symbols, SPY's damaged month among them, and a bad row at its end: refused whole
    january = load_bars(SAMPLE, start=date(2011, 1, 3), end=date(2011, 1, 31))
    rows = january[january["symbol"].isin(["SDS", "SPY", "SYN2"])]
    mix = tmp_path / "mix.csv"
    text = rows.assign(timestamp=rows["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(index=False)
    mix.write_text(text + "2011-01-31T20:59:00Z,AAB,1,1,1,-1,10\n", encoding="utf-8")
    before = _files(kept)
    home = ["--store", str(kept), "--home", str(tmp_path)]
    assert tbot(["data", "import", str(mix), *home]) == 2
    assert _files(kept) == before and not (kept / "AAB").exists()
    # the same bars without the bad row: SDS merged, SPY and SYN2 replaced (said), every partition reads again
    mix.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert tbot(["data", "import", str(mix), *home]) == 0
    out = capsys.readouterr().out
    assert (
        "note: partition SPY/2011-01.parquet was corrupted (its SHA-256 differs from the manifest's): replaced"
        in out
    )
    assert "note: partition SYN2/2011-01.parquet was missing: replaced by this import's" in out
    pd.testing.assert_frame_equal(load_bars(kept), load_bars(SAMPLE))
    assert tbot(["data", "list", *home]) == 0


def test_side_files_are_checked_before_anything_is_written_and_merged(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = _copy(store, tmp_path / "bars")
    folder = tmp_path / "new"
    folder.mkdir()
    spy = load_bars(SAMPLE, start=date(2011, 3, 1), end=date(2011, 3, 1), symbols=["SPY"])
    spy.assign(timestamp=spy["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(
        folder / "b.csv", index=False
    )
    (folder / "vix.csv").write_text("date,close\n2011-01-03,abc\n", encoding="utf-8")
    before = _files(kept)
    home = ["--store", str(kept), "--home", str(tmp_path)]
    capsys.readouterr()
    assert tbot(["data", "import", str(folder), *home]) == 2
    assert "vix.csv, row 2" in capsys.readouterr().err and _files(kept) == before
    # one valid close: added to the store's history, not in place of it; a changed close is said
    held = load_vix(kept / "vix.csv")
    (folder / "vix.csv").write_text("date,close\n2011-03-01,99\n2031-01-02,20\n", encoding="utf-8")
    assert tbot(["data", "import", str(folder), *home]) == 0
    assert "note: vix.csv: 1 close(s) the store held replaced" in capsys.readouterr().out
    assert load_vix(kept / "vix.csv") == {**held, date(2011, 3, 1): 99.0, date(2031, 1, 2): 20.0}
    (folder / "vix.csv").unlink()
    (folder / "fundamentals.json").write_text('{"SYN1": {"marketCapitalization": 1}}', encoding="utf-8")
    assert tbot(["data", "import", str(folder), *home]) == 0
    assert "note: fundamentals.json: 1 symbol(s)' metrics the store held replaced" in capsys.readouterr().out
    (folder / "fundamentals.json").write_text('{"SPY": {"marketCapitalization": "many"}}', encoding="utf-8")
    assert tbot(["data", "import", str(folder), *home]) == 2
    assert "SPY: marketCapitalization is 'many'" in capsys.readouterr().err


def test_data_list_lists_bars_beyond_the_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An import of bars dated outside the calendar this build knows passed, and `data list` then refused the
    whole store ("choose a date inside it", naming no symbol)."""
    bars = tmp_path / "old.csv"
    bars.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "1800-01-06T15:00:00Z,OLD,1,1,1,1,10\n2011-01-03T15:00:00Z,OLD,1,1,1,1,10\n",
        encoding="utf-8",
    )
    home = ["--store", str(tmp_path / "bars"), "--home", str(tmp_path)]
    assert tbot(["data", "import", str(bars), *home]) == 0
    capsys.readouterr()
    assert tbot(["data", "list", *home]) == 0
    # the sessions the calendar knows (from 20 years before today) up to the 2011 bar are the gap
    assert re.search(
        r"OLD +1800-01-06  2011-01-03 +2 +2  \d{4}-\d\d-\d\d\.\.2010-12-31 \(\d+\)", capsys.readouterr().out
    )


def test_a_store_imports_into_another_and_an_empty_path_is_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`data import STORE` said "no bars in STORE" of a store holding 201,240 bars; "" imported the working folder."""
    other = ["--store", str(tmp_path / "other"), "--home", str(tmp_path)]
    assert tbot(["data", "import", str(store), *other]) == 0
    pd.testing.assert_frame_equal(load_bars(tmp_path / "other"), load_bars(SAMPLE))
    capsys.readouterr()
    assert tbot(["data", "import", "", *other]) == 2
    assert "name the bar file or folder to import" in capsys.readouterr().err
    assert tbot(["data", "import", str(store), "--store", str(store), "--home", str(tmp_path)]) == 2
    assert "is the store being imported into" in capsys.readouterr().err


def test_an_import_cut_off_before_its_manifest_loses_no_bar(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its partitions renamed in, the manifest not yet written: reads take the import's records (pending), and the
    next import writes them down. The partitions had been taken for damaged and replaced, dropping held days."""
    from tbot_bot.data import bar_store

    kept = _copy(store, tmp_path / "bars")
    march = load_bars(SAMPLE, start=date(2011, 3, 1), end=date(2011, 3, 1), symbols=["SPY"])
    changed = march.assign(volume=march["volume"] + 1)
    bars = tmp_path / "b.csv"
    changed.assign(timestamp=changed["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(bars, index=False)

    def cut_off(*_: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(bar_store, "_write_manifest", cut_off)
        with pytest.raises(KeyboardInterrupt):
            import_bars(bars, kept)
    assert (kept / bar_store.PENDING).exists()
    expected = pd.concat(
        [
            load_bars(SAMPLE, symbols=["SPY"]).pipe(lambda f: f[f["timestamp"].dt.date != date(2011, 3, 1)]),
            changed,
        ]
    )
    expected = expected.sort_values("timestamp", ignore_index=True)
    pd.testing.assert_frame_equal(load_bars(kept, symbols=["SPY"]), expected)  # read as the import left it
    import_bars(bars, kept)  # the same import again: its records written down, nothing replaced as damaged
    assert not (kept / bar_store.PENDING).exists()
    assert json.loads((kept / "manifest.json").read_text())["imports"][-1]["notes"] == []
    pd.testing.assert_frame_equal(load_bars(kept, symbols=["SPY"]), expected)


def test_a_refused_write_leaves_no_temporary_file_or_new_folder(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.data import bar_store

    kept = _copy(store, tmp_path / "bars")
    before = _files(kept)
    real, calls = bar_store._write_partition, []

    def fail_second(path: Path, part: dict, rel: str) -> None:  # type: ignore[type-arg]
        calls.append(path)
        if len(calls) == 2:  # the disk fills while the second partition is written (its folder made)
            path.parent.mkdir(parents=True, exist_ok=True)
            raise OSError(28, "No space left on device")
        real(path, part, rel)

    bars = tmp_path / "b.csv"
    bars.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2011-01-03T15:00:00Z,AAA,1,1,1,1,10\n2011-01-03T15:00:00Z,ZZZ,1,1,1,1,10\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(bar_store, "_write_partition", fail_second)
    with pytest.raises(OSError):
        import_bars(bars, kept)
    assert _files(kept) == before and not (kept / "AAA").exists() and not (kept / "ZZZ").exists()


def test_a_symbol_missing_from_part_of_the_range_is_said(store: Path, tmp_path: Path) -> None:
    """A store without one symbol's March gave fewer trades and no word of why."""
    kept = _copy(store, tmp_path / "bars")
    manifest = json.loads((kept / "manifest.json").read_text())
    del manifest["partitions"]["SYN7/2011-03.parquet"]
    (kept / "manifest.json").write_text(json.dumps(manifest))
    (kept / "SYN7" / "2011-03.parquet").unlink()
    done = run_backtest(make_settings(), "all", kept, FIRST, LAST, tmp_path / "out", plots=False)
    march = sum(1 for d in load_bars(SAMPLE, symbols=["SPY"])["timestamp"].dt.date.unique() if d.month == 3)
    notes = json.loads((tmp_path / "out" / "metrics.json").read_text())["notes"]
    assert any(f"SYN7 ({march})" in n and "are not traded on those" in n for n in notes)
    assert any("are not traded on those" in w for w in done.report.warnings)  # printed and in the reports
    run_backtest(make_settings(), "all", kept, FIRST, date(2011, 1, 31), tmp_path / "jan", plots=False)
    # January: every symbol whole; only the data's first day has no session before it (said too)
    notes = json.loads((tmp_path / "jan" / "metrics.json").read_text())["notes"]
    [note] = [
        n for n in notes if "bid-ask spread" not in n
    ]  # (and that fills pay no spread: no slippage model)
    assert note.startswith(f"the data has no bars for 2010-12-31, the session before {FIRST}")


def test_a_damaged_month_merged_from_several_imports_names_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPY's January merged from two imports, then cut: the refusal named only the last import, whose re-import
    replaced the whole month with its ten days (the other eleven lost). It names both, in order, and running them
    brings the month back whole."""
    january = load_bars(SAMPLE, start=date(2011, 1, 3), end=date(2011, 1, 31))
    spy = january[january["symbol"] == "SPY"]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    early = spy[spy["timestamp"] < pd.Timestamp("2011-01-13", tz="UTC")]
    for path, rows in (
        (first, spy[spy["timestamp"] >= pd.Timestamp("2011-01-13", tz="UTC")]),
        (second, early),
    ):
        path.write_text(
            rows.assign(timestamp=rows["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(index=False)
        )
    store = tmp_path / "store"
    home = ["--store", str(store), "--home", str(tmp_path)]
    for path in (first, second):
        assert tbot(["data", "import", str(path), *home]) == 0
    cut = store / "SPY" / "2011-01.parquet"
    cut.write_bytes(cut.read_bytes()[:-100])
    capsys.readouterr()
    with pytest.raises(DataError) as refused:
        load_bars(store, start=date(2011, 1, 3), end=date(2011, 1, 31))
    message = str(refused.value)
    assert (
        f"re-import it: tbot data import {first} --store {store}; then tbot data import {second} --store {store}"
        in message
    )
    assert "came from 2 imports" in message
    for path in (first, second):
        assert tbot(["data", "import", str(path), *home]) == 0
    pd.testing.assert_frame_equal(
        load_bars(store, start=date(2011, 1, 3), end=date(2011, 1, 31)), spy.reset_index(drop=True)
    )


def test_the_store_counts_sessions_not_the_utc_dates_of_post_market_bars(tmp_path: Path) -> None:
    """An evening's post-market bars are stamped the next UTC date: the store listed that date as held (and as its
    last date, which a study without --end then ran to), while the loaders, which read regular-session bars only,
    found no bar on it (a researcher's review)."""
    from tbot_bot.data.bar_store import holdings

    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for day in ("2011-01-27", "2011-01-28"):
        rows += [f"{day}T{h}:{m:02d}:00Z,SPY,1,1,1,1,100" for h in ("14", "15") for m in range(0, 60, 15)]
    rows += [f"2011-01-29T00:{m:02d}:00Z,SPY,1,1,1,1,100" for m in range(0, 30, 10)]  # 19:00 EST on the 28th
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "bars.csv").write_text("\n".join(rows) + "\n")
    store = tmp_path / "store"
    import_bars(tmp_path / "src", store)
    assert last_date(store) == date(2011, 1, 28)
    [spy] = holdings(store)
    assert (spy.first, spy.last, spy.days, spy.gaps) == (date(2011, 1, 27), date(2011, 1, 28), 2, ())


def test_lower_case_tickers_are_read_as_the_tickers_they_are(tmp_path: Path) -> None:
    """A vendor's lower-case symbols passed the bar checks, then matched no inverse ETF, fundamentals or blocklist
    entry (all upper-case): every bearish signal was skipped (96 trades instead of 119). They are upper-cased on
    reading, so the backtest (from CSV and from an import) is the sample's."""
    folder = tmp_path / "lower"
    folder.mkdir()
    for path in SAMPLE.glob("*_1min.csv.gz"):  # the bars; vix.csv and fundamentals.json as they are
        frame = load_bars(path)
        frame = frame.assign(symbol=frame["symbol"].str.lower())
        frame.to_csv(folder / path.name.replace(".csv.gz", ".csv"), index=False)
    for name in ("vix.csv", "fundamentals.json"):
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    settings = make_settings()
    expected = run_backtest(settings, "all", SAMPLE, FIRST, LAST, tmp_path / "upper", plots=False)
    from_csv = run_backtest(settings, "all", folder, FIRST, LAST, tmp_path / "csv", plots=False)
    pd.testing.assert_frame_equal(from_csv.trades, expected.trades)
    assert (
        tbot(["data", "import", str(folder), "--store", str(tmp_path / "store"), "--home", str(tmp_path)])
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "store").iterdir() if p.is_dir()) == sorted(
        str(s) for s in load_bars(SAMPLE)["symbol"].unique()
    )


def test_no_bars_says_which_days_the_data_holds(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backtest or replay of days the data lacks said "no bars between ..." alone: from a store (its manifest) or
    the bundled sample, the days it holds are listed, one line per month."""
    settings = make_settings()
    for source in (store, SAMPLE):
        with pytest.raises(DataError) as refused:
            run_backtest(
                settings, "open", source, date(2011, 2, 1), date(2011, 2, 28), tmp_path / "out", plots=False
            )
        text = str(refused.value)
        assert "no bars between 2011-02-01 and 2011-02-28; days it holds (--start/--end YYYY-MM-DD):" in text
        assert "\n  2011-01: 03 04 05" in text and "\n  2011-03: 01 02 03" in text and "2011-02:" not in text
    from tbot_bot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no bars for 2011-02-15; days it holds \(--replay YYYY-MM-DD\)"):
        load_replay_bars(store, date(2011, 2, 15), "XNYS")


def test_partitions_are_read_ahead_in_order_holding_only_a_few(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tbot_bot.data import bar_store

    damaged = _copy(store, tmp_path / "bars")
    chosen = sorted(json.loads((damaged / "manifest.json").read_text())["partitions"])
    bad = chosen[len(chosen) // 2]
    (damaged / bad).write_bytes((damaged / bad).read_bytes()[:-100])
    monkeypatch.setattr(bar_store.os, "cpu_count", lambda: 2)
    started: list[str] = []
    real = bar_store._read_partition

    def counting(store_: Path, rel: str, *args: object) -> dict:  # type: ignore[type-arg]
        started.append(rel)
        return real(store_, rel, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bar_store, "_read_partition", counting)
    parts = bar_store.iter_parts(damaged, columns=("timestamp", "close"))
    seen = []
    with pytest.raises(DataError, match=re.escape(bad) + " is corrupted"):
        for symbol, part in parts:
            seen.append(symbol)
            # two threads: at most four partitions read beyond the one just handed over
            assert len(started) - len(seen) <= 4
            assert len(part["timestamp"]) and list(part) == ["timestamp", "close"]
    # every partition before the damaged one came, in the manifest's order, and nothing after it
    assert seen == [rel.split("/")[0] for rel in chosen[: chosen.index(bad)]]


def test_columns_of_masked_and_cut_partitions_are_the_csv_columns(tmp_path: Path) -> None:
    """load_columns from a store places each partition as its thread reads it: one wholly regular and wanted
    whole has a place of its manifest's rows; one with pre-market bars (masked) or cut by the dates has a place of
    its whole size and its rows move down after. The columns hold exactly the CSV's regular-session bars."""
    folder = tmp_path / "csv"
    folder.mkdir()
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for day in ("2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"):
        for minute in range(3):
            stamp = f"{day}T14:3{minute}:00Z"
            rows += [f"{stamp},AAA,10,11,9,10.{minute},100", f"{stamp},CCC,30,31,29,30.{minute},300"]
        rows.append(f"{day}T13:00:00Z,BBB,20,21,19,20.5,10")  # 08:00 New York: pre-market
        rows.append(f"{day}T14:30:00Z,BBB,21,22,20,21.5,20")
    (folder / "bars.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    store = tmp_path / "bars"
    import_bars(folder, store)
    regular = {
        e["symbol"]: e["regular_only"]
        for e in json.loads((store / "manifest.json").read_text())["partitions"].values()
    }
    assert regular == {"AAA": True, "BBB": False, "CCC": True}
    for first, last in ((date(2024, 1, 1), date(2024, 2, 29)), (date(2024, 1, 31), date(2024, 2, 1))):
        kw = {"start": first, "end": last, "calendar": "XNYS"}
        a, b = load_columns(store, **kw), load_columns(folder, **kw)
        assert list(a.names) == list(b.names) == ["AAA", "BBB", "CCC"]
        pd.testing.assert_frame_equal(_rows(a), _rows(b))
        assert len(a) == (24 + 4 if first.day == 1 else 12 + 2)
        # each symbol's bars one run in time order (what MarketView's sort expects of the store), in columns
        # holding exactly these rows (no month-sized array kept behind a cut month's few)
        assert (np.diff(a.code) >= 0).all() and (np.diff(a.ts_ns)[np.diff(a.code) == 0] > 0).all()
        for column in (a.ts_ns, a.open, a.close, a.volume):
            assert (column.base if column.base is not None else column).nbytes == column.nbytes
