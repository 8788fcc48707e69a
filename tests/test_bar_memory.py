"""Issue 16 (scale): the replay's bars are loaded and indexed without extra full copies, with the same result."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tbot_bot.backtest import bar_checks
from tbot_bot.backtest.load_historical_data import load_bars
from tbot_bot.broker.brokers.sim_market import BarIndex
from tbot_bot.errors import DataError


def _write(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{ts},{sym},{px},{px + 1},{px - 1},{px},{1000 + i}" for i, (ts, sym, px) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows() -> list[tuple[str, str, float]]:
    # day-major, then symbol, then minute: neither (timestamp, symbol) nor (symbol, timestamp) order
    return [
        (f"2024-01-0{d}T14:3{m}:00Z", sym, 10.0 + d + m)
        for d in (2, 3)
        for sym in ("ZZ", "AA", "MM")
        for m in range(3)
    ]


def test_both_orders_hold_the_same_bars(tmp_path: Path) -> None:
    src = _write(tmp_path / "bars.csv", _rows())
    by_time = load_bars(src)
    by_symbol = load_bars(src, by_symbol=True)
    assert list(by_time.columns) == list(by_symbol.columns)
    expected = by_time.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(by_symbol, expected)
    assert by_time["timestamp"].is_monotonic_increasing
    assert list(by_symbol["symbol"].iloc[[0, 6, 12]]) == ["AA", "MM", "ZZ"]


def test_index_shares_a_by_symbol_frame_and_copies_another(tmp_path: Path) -> None:
    src = _write(tmp_path / "bars.csv", _rows())
    shared = load_bars(src, by_symbol=True)
    index = BarIndex(shared)
    assert np.shares_memory(index._by_symbol["AA"].close, shared["close"].to_numpy())
    other = BarIndex(load_bars(src))
    for sym in ("AA", "MM", "ZZ"):
        a, b = index._by_symbol[sym], other._by_symbol[sym]
        assert np.array_equal(a.ts, b.ts) and np.array_equal(a.close, b.close)
        assert np.all(np.diff(a.ts) > 0) and not a.close.flags.writeable
    now = int(pd.Timestamp("2024-01-03T14:32:00Z").value)
    assert index.daily_view("MM", now) == other.daily_view("MM", now) == (13.0, 14.0, 1006 + 1007 + 1008)


def test_sliced_stamp_checks_name_the_first_bad_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bar_checks, "_CHUNK_ROWS", 2)  # the problems sit in different slices
    rows = _rows()
    rows[3] = ("2024-01-02T14:30:00", "AA", 5.0)
    rows[7] = ("not a time", "MM", 5.0)
    with pytest.raises(DataError, match=r"row 5: timestamp '2024-01-02T14:30:00' has no time zone"):
        load_bars(_write(tmp_path / "a.csv", rows))
    rows[3] = ("2024-01-02T14:30:00Z", "AA", 5.0)
    rows[7] = ("2024-13-02T14:31:00Z", "MM", 5.0)
    with pytest.raises(DataError, match=r"row 9: timestamp '2024-13-02T14:31:00Z' is not a valid date"):
        load_bars(_write(tmp_path / "b.csv", rows))
    rows[7] = ("2024-01-02T14:29:00Z", "ZZ", 5.0)
    with pytest.raises(DataError, match=r"row 9: ZZ bar at .* comes after a later bar"):
        load_bars(_write(tmp_path / "c.csv", rows))


def test_checks_over_chunks_name_the_same_row_and_count_as_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows()
    rows[2] = ("2024-01-02T14:32:00Z", "ZZ", -1.0)  # a bad close in the second chunk
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{ts},{sym},{px},{px + 1},{px - 1},{px},{1000 + i}" for i, (ts, sym, px) in enumerate(rows)]
    lines[8] = lines[8].replace(",MM,", ",,")  # empty symbols in the fifth and eighth chunks
    lines[15] = lines[15].replace(",AA,", ",,")
    src = tmp_path / "bars.csv"
    src.write_text("\n".join(lines) + "\n")
    messages = []
    for chunk in (2, 3, 1000):  # many chunks, uneven chunks, one chunk: the same judgement
        monkeypatch.setattr(bar_checks, "_CHUNK_ROWS", chunk)
        with pytest.raises(DataError) as err:
            load_bars(src)
        messages.append(str(err.value))
    # the symbol check comes before the price checks, whatever chunk each problem sits in
    assert messages[0].endswith("bars.csv, row 9: the symbol is empty (1 more rows like it)")
    assert len(set(messages)) == 1


def test_a_number_column_with_text_in_one_chunk_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bar_checks, "_CHUNK_ROWS", 4)
    rows = _rows()
    src = _write(tmp_path / "bars.csv", rows)
    text = src.read_text().splitlines()
    text[11] = text[11].rsplit(",", 1)[0] + ",lots"
    src.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"row 12: volume='lots' is not a number$"):
        load_bars(src)


def test_symbols_made_of_digits_stay_as_written(tmp_path: Path) -> None:
    rows = [(ts, "0007" if sym == "AA" else sym, px) for ts, sym, px in _rows()]
    frame = load_bars(_write(tmp_path / "bars.csv", rows))
    assert sorted(frame["symbol"].unique()) == ["0007", "MM", "ZZ"]


def test_the_previous_session_condensed_to_one_bar_per_symbol(tmp_path: Path) -> None:
    src = _write(tmp_path / "bars.csv", _rows())
    full = load_bars(src, by_symbol=True)
    day = date(2024, 1, 3)
    for by_symbol in (True, False):
        short = load_bars(src, by_symbol=by_symbol, condense_before=day)
        assert len(short) == 3 + 9  # one bar per symbol for Jan 2, then Jan 3's minutes
        if not by_symbol:
            assert short["timestamp"].is_monotonic_increasing
        for sym in ("AA", "MM", "ZZ"):
            f, s = full[full["symbol"] == sym], short[short["symbol"] == sym]
            before, after = f[f["timestamp"].dt.date < day], f[f["timestamp"].dt.date == day]
            one = s[s["timestamp"].dt.date < day]
            assert len(one) == 1
            bar = one.iloc[0]
            assert bar["timestamp"] == before["timestamp"].iloc[-1]  # the session's last minute
            assert bar["open"] == before["open"].iloc[0] and bar["close"] == before["close"].iloc[-1]
            assert bar["high"] == before["high"].max() and bar["low"] == before["low"].min()
            assert bar["volume"] == before["volume"].sum()
            rest = s[s["timestamp"].dt.date == day].reset_index(drop=True)
            pd.testing.assert_frame_equal(rest, after.reset_index(drop=True))
    # what the sim exchange reads from the previous session is unchanged
    now = int(pd.Timestamp("2024-01-03T14:32:00Z").value)
    condensed = BarIndex(load_bars(src, by_symbol=True, condense_before=day))
    whole = BarIndex(full)
    for sym in ("AA", "MM", "ZZ"):
        assert condensed.daily_view(sym, now) == whole.daily_view(sym, now)
        assert condensed.bars(sym, now - 10**12, now, now) == whole.bars(sym, now - 10**12, now, now)


def test_several_files_condense_as_one(tmp_path: Path) -> None:
    rows = _rows()
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _write(tmp_path / "one" / "bars.csv", rows)
    _write(tmp_path / "two" / "a.csv", [r for r in rows if r[1] != "MM"])
    _write(tmp_path / "two" / "b.csv", [r for r in rows if r[1] == "MM"])
    day = date(2024, 1, 3)
    a = load_bars(one, by_symbol=True, condense_before=day)
    b = load_bars(tmp_path / "two", by_symbol=True, condense_before=day)
    pd.testing.assert_frame_equal(a[["timestamp", "symbol", "open", "high", "low", "close"]],
                                  b[["timestamp", "symbol", "open", "high", "low", "close"]])  # fmt: skip
    assert list(b.loc[b["symbol"] == "MM", "volume"])[0] == 1000 + 1001 + 1002  # b.csv's first three rows


def test_a_condensed_vwap_is_weighted_by_volume(tmp_path: Path) -> None:
    src = tmp_path / "bars.csv"
    src.write_text(
        "timestamp,symbol,open,high,low,close,volume,vwap\n"
        "2024-01-02T14:30:00Z,AA,10,11,9,10,100,10\n"
        "2024-01-02T14:31:00Z,AA,10,11,9,10,300,14\n"
        "2024-01-03T14:30:00Z,AA,10,11,9,10,100,10\n"
    )
    frame = load_bars(src, condense_before=date(2024, 1, 3))
    assert list(frame["vwap"]) == [13.0, 10.0] and list(frame["volume"]) == [400.0, 100.0]


def test_dates_outside_start_end_are_left_out_in_either_order(tmp_path: Path) -> None:
    src = _write(tmp_path / "bars.csv", _rows())
    whole = load_bars(src)
    for by_symbol in (False, True):
        jan3 = load_bars(src, start=date(2024, 1, 3), end=date(2024, 1, 3), by_symbol=by_symbol)
        expected = whole[whole["timestamp"].dt.date == date(2024, 1, 3)]
        if by_symbol:
            expected = expected.sort_values(["symbol", "timestamp"], kind="stable")
        pd.testing.assert_frame_equal(jan3, expected.reset_index(drop=True))
        assert load_bars(src, start=date(2024, 1, 5), by_symbol=by_symbol).empty  # rows, none of them kept


@pytest.mark.parametrize(
    ("stamp", "problem"),
    [
        ("/1", "timestamp '/1' is not a valid date and time"),  # no date at all: not "no time zone"
        ("notatime", "timestamp 'notatime' is not a valid date and time"),
        # words the parser would read as this moment: never a bar's time
        ("now", "timestamp 'now' is not a valid date and time"),
        ("today", "timestamp 'today' is not a valid date and time"),
        ("0001-01-01T00:00:00Z", "timestamp '0001-01-01T00:00:00Z' is not a valid date and time"),
        ("2400-01-01T00:00:00Z", "timestamp '2400-01-01T00:00:00Z' is not a valid date and time"),
    ],
)
def test_stamps_the_parser_cannot_hold_in_nanoseconds_are_refused(
    tmp_path: Path, stamp: str, problem: str
) -> None:
    rows = _rows()
    rows[0] = (stamp, "ZZ", 12.0)
    with pytest.raises(DataError, match=f"row 2: {problem}"):
        load_bars(_write(tmp_path / "bars.csv", rows))


def test_a_file_with_repeated_bars_is_read_again_before_it_is_condensed(tmp_path: Path) -> None:
    rows = _rows()
    lines = ["timestamp,symbol,open,high,low,close,volume"]
    lines += [f"{ts},{sym},{px},{px + 1},{px - 1},{px},{1000 + i}" for i, (ts, sym, px) in enumerate(rows)]
    lines.insert(3, lines[2])  # ZZ's second minute of Jan 2, twice with identical values
    src = tmp_path / "bars.csv"
    src.write_text("\n".join(lines) + "\n")
    day = date(2024, 1, 3)
    short = load_bars(src, by_symbol=True, condense_before=day)
    zz = short[(short["symbol"] == "ZZ") & (short["timestamp"].dt.date < day)]
    assert list(zz["volume"]) == [1000 + 1001 + 1002]  # the repeat is counted once
    assert len(short) == 3 + 9
    lines[3] = lines[3].replace(",1001", ",999")  # now the repeat disagrees: refused, naming both rows
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"row 4: ZZ at .* appears again with different values \(first at row 3\)"
    ):
        load_bars(src, by_symbol=True, condense_before=day)
