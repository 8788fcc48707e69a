"""The optimizer's study preparation cached on disk (issue 25): a cache hit gives exactly the results of a cold
preparation; changed bars, side inputs, dates or settings miss it; a damaged cache file is rebuilt, not trusted."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from helpers import make_settings

from tbot_bot.optimizer import prep_cache
from tbot_bot.optimizer.prepared import PreparedData
from tbot_bot.support.path_resolver import package_file

SAMPLE = package_file("data", "sample")
START, END = date(2011, 1, 4), date(2011, 1, 14)
PARAMS = [{}, {"STRAT_OPEN_BUFFER": 0.002, "OPEN_MONITORING_TIME": 45}]


@pytest.fixture(autouse=True)
def _writers_joined() -> Iterator[None]:
    """Each test starts with no forked cache writer pending (another file's tests in this worker may have left
    one) and leaves none behind."""
    prep_cache.wait_for_writes()
    yield
    prep_cache.wait_for_writes()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "bars"
    shutil.copytree(SAMPLE, folder)
    return folder


def _prep(data: Path, cache: Path, **kw: object) -> PreparedData:
    settings = kw.pop("settings", None) or make_settings()
    start = kw.pop("start", START)
    return PreparedData(settings, "open", data, start, END, seed=3, cache_dir=cache)  # type: ignore[arg-type]


def _results(prep: PreparedData) -> list[tuple[object, list[dict[str, object]]]]:
    return [(prep.evaluate(p).to_dict(), prep.trades(p).records) for p in PARAMS]


def test_a_cache_hit_gives_the_results_of_a_cold_preparation(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = PreparedData(make_settings(), "open", data, START, END, seed=3)
    assert cold.cache_status == "off"
    first = _prep(data, cache)
    assert first.cache_status == "built"
    # the file is written by a forked writer; a load in this process waits for it
    hit = _prep(data, cache)
    assert hit.cache_status == "hit" and len(list(cache.glob("*.prep"))) == 1
    expected = _results(cold)
    assert any(m["trades"] for m, _ in expected)  # the comparison covers booked trades
    assert _results(hit) == expected == _results(first)
    assert np.array_equal(hit.grid.close, cold.grid.close, equal_nan=True) and hit.days == cold.days
    # a hit's arrays are copy-on-write views of the file: writable, and a write never reaches the cache
    hit.grid.close[0, 0] = -1.0
    assert _prep(data, cache).grid.close[0, 0] == cold.grid.close[0, 0]


def test_changed_data_side_inputs_or_settings_miss_the_cache(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _prep(data, cache)
    assert first.cache_status == "built"
    volume = first.market.prev_session_volume("SPY", date(2011, 1, 11))
    assert volume is not None
    other_calendar = make_settings().model_copy(update={"MARKET_CALENDAR": "XNAS"})
    assert _prep(data, cache, settings=other_calendar).cache_status == "built"
    vix = data / "vix.csv"
    vix.write_text(vix.read_text().replace("\n2011-01-05,", "\n2011-01-05,1", 1))
    assert _prep(data, cache).cache_status == "built"
    # one bar's volume changed (inside the range): another key, and the new preparation holds the new bar
    bars = data / "spy_1min.csv.gz"
    lines = gzip.decompress(bars.read_bytes()).decode().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith("2011-01-10T15:00:00Z,SPY,"))
    cells = lines[row].rstrip("\n").split(",")
    cells[-1] = str(int(cells[-1]) + 1000)
    lines[row] = ",".join(cells) + "\n"
    bars.write_bytes(gzip.compress("".join(lines).encode()))
    changed = _prep(data, cache)
    assert changed.cache_status == "built"
    assert changed.market.prev_session_volume("SPY", date(2011, 1, 11)) == volume + 1000
    assert _prep(data, cache).cache_status == "hit"
    # another date range over the same files: another preparation
    later = _prep(data, cache, start=START + timedelta(days=2))
    assert later.cache_status == "built" and later.days[0] > changed.days[0]
    prep_cache.wait_for_writes()
    # five preparations were built; the cache keeps the most recently used (the retention's own test is below)
    assert len(list(cache.glob("*.prep"))) == prep_cache.KEEP_PREPARATIONS
    assert (cache / f"{later.data_key}.prep").exists() and (cache / f"{changed.data_key}.prep").exists()


def test_a_damaged_cache_file_is_rebuilt_not_trusted(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    first = _prep(data, cache)
    expected = _results(first)
    prep_cache.wait_for_writes()
    (path,) = cache.glob("*.prep")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    again = _prep(data, cache)
    assert again.cache_status == "built"
    assert "damaged (checksum); preparing again" in capsys.readouterr().err
    assert _results(again) == expected
    prep_cache.wait_for_writes()  # the rebuilt file on disk (its writer renamed it over a truncation otherwise)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert _prep(data, cache).cache_status == "built"


def test_every_span_of_a_cache_file_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body's CRC is kept per span (checked on every core at once): a file of many spans reads back whole,
    and a flipped byte in any span, or a span cut off, is refused."""
    monkeypatch.setattr(prep_cache, "_CRC_SPAN", 4096)
    value = ("meta", np.arange(5_000, dtype=np.float64), np.arange(3_001, dtype=np.int64))
    path = prep_cache._write(tmp_path / "x.prep", value, "test")
    assert path is not None
    raw = path.read_bytes()
    back = prep_cache._read(path, "test")
    assert back[0] == "meta" and all(np.array_equal(a, b) for a, b in zip(back[1:], value[1:], strict=True))
    for at in [*range(0, len(raw), 4096), len(raw) - 1]:  # the magic, then a byte in every span of the body
        damaged = bytearray(raw)
        damaged[at] ^= 0x01
        path.write_bytes(bytes(damaged))
        assert prep_cache._read(path, "test") is None, at
    path.write_bytes(raw[:-4096])
    assert prep_cache._read(path, "test") is None


def test_session_indicators_are_cached_beside_the_preparation(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MID's VWAP, ADX and Bollinger bands: computed once, kept on disk, read by the next study over the same
    data with the same results; a damaged indicator file is computed again."""
    cache = tmp_path / "cache"
    params = [{}, {"BOLLINGER_STD": 2.5}]

    def mid() -> PreparedData:
        return PreparedData(make_settings(), "mid", data, START, END, seed=3, cache_dir=cache)

    cold = PreparedData(make_settings(), "mid", data, START, END, seed=3)
    expected = [(cold.evaluate(p).to_dict(), cold.trades(p).records) for p in params]
    first = mid()
    assert [(first.evaluate(p).to_dict(), first.trades(p).records) for p in params] == expected
    prep_cache.wait_for_writes()
    stored = sorted(cache.glob("*.ind-*"))
    assert len(stored) >= 3  # vwap, adx, and one set of bands per BOLLINGER_STD
    written = [p.stat().st_mtime_ns for p in stored]
    hit = mid()
    assert hit.cache_status == "hit"
    assert [(hit.evaluate(p).to_dict(), hit.trades(p).records) for p in params] == expected
    # read, not computed and written again
    assert sorted(cache.glob("*.ind-*")) == stored and [p.stat().st_mtime_ns for p in stored] == written
    raw = bytearray(stored[0].read_bytes())
    raw[-1] ^= 0xFF
    stored[0].write_bytes(bytes(raw))
    again = mid()
    assert [(again.evaluate(p).to_dict(), again.trades(p).records) for p in params] == expected
    assert "session indicator cache" in capsys.readouterr().err


def test_the_preparation_is_written_by_a_forked_writer_while_the_study_goes_on(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    first = _prep(data, cache)
    (path,) = prep_cache._writers  # handed over: not written by this process
    assert path.parent == cache and prep_cache._writers[path][0].pid != os.getpid()
    # a study's forked worker has no writer of its own to wait for (it could not join its parent's child)
    ctx = multiprocessing.get_context("fork")
    held = ctx.SimpleQueue()
    worker = ctx.Process(target=lambda: held.put(len(prep_cache._writers)))
    worker.start()
    worker.join()
    assert held.get() == 0 and len(prep_cache._writers) == 1
    prep_cache.wait_for_writes()
    assert not prep_cache._writers and path.is_file()
    # a cache that cannot be written costs only time: the writer says so, the preparation is used all the same
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    again = _prep(data, blocked)
    assert again.cache_status == "built" and _results(again) == _results(first)
    prep_cache.wait_for_writes()
    assert f"note: study preparation not cached in {blocked}" in capfd.readouterr().err


def test_writers_are_bounded_and_a_failed_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A study meeting many new indicators forks at most _MAX_WRITERS writers at once (it waits for the oldest);
    a writer that dies of an error _write does not catch is named when it is waited for."""
    payload = np.zeros(1 << 16)
    for i in range(prep_cache._MAX_WRITERS + 3):
        prep_cache._write_later(tmp_path / f"ind-{i}", payload, "session indicator")
        assert len(prep_cache._writers) <= prep_cache._MAX_WRITERS
    prep_cache.wait_for_writes()
    assert len(list(tmp_path.glob("ind-*"))) == prep_cache._MAX_WRITERS + 3

    def broken(path: Path, obj: object, what: str) -> None:
        raise RuntimeError("disk controller on fire (test)")

    monkeypatch.setattr(prep_cache, "_write", broken)  # the forked child inherits it
    capfd.readouterr()
    prep_cache._write_later(tmp_path / "lost", payload, "session indicator")
    prep_cache.wait_for_writes()
    err = capfd.readouterr().err
    assert f"note: session indicator not cached in {tmp_path} (its writer exited with 1)" in err
    assert not (tmp_path / "lost").exists()


def test_the_base_settings_results_are_cached_beside_the_preparation(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base settings' trades over the range (the evidence floor) and their metrics on out-of-sample blocks (the
    choosing step): evaluated once, then read by a later study over the same data and settings; other settings,
    float or seed evaluate again; a damaged file is evaluated again."""
    cache = tmp_path / "cache"
    first = _prep(data, cache)
    counted = first.baseline_trades()
    assert counted == first.evaluate({}).trades > 0
    (held,) = cache.glob("*.floor-*")
    spans = (first.days[:3], first.days[3:])
    blocks = first.baseline_spans(*spans)
    assert [m.to_dict() for m in blocks] == [m.to_dict() for m in first.evaluate_spans({}, *spans)]

    def refuse(self: PreparedData, *args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated again")

    with monkeypatch.context() as patched:
        patched.setattr(PreparedData, "evaluate", refuse)
        patched.setattr(PreparedData, "evaluate_spans", refuse)
        again = _prep(data, cache)
        assert again.baseline_trades() == counted
        assert [m.to_dict() for m in again.baseline_spans(*spans)] == [m.to_dict() for m in blocks]
    other = _prep(data, cache, settings=make_settings(STRAT_OPEN_BUFFER="0.004"))
    assert other.baseline_trades() == other.evaluate({}).trades
    assert len(list(cache.glob("*.floor-*"))) == 2
    held.write_bytes(held.read_bytes()[:-1] + b"x")  # damaged: its CRC fails
    assert _prep(data, cache).baseline_trades() == counted


def test_a_store_is_keyed_by_its_bars_and_a_hit_refuses_a_partition_gone_since(
    data: Path, tmp_path: Path
) -> None:
    """A re-import of the same bars (the manifest's import record changed) keeps the key; a partition of the range
    deleted or cut after the cache was built is refused as a read refuses it (a hit had run on the cached bars)."""
    from tbot_bot.data.bar_import import import_bars
    from tbot_bot.errors import DataError

    store, cache = tmp_path / "store", tmp_path / "cache"
    import_bars(data, store)
    assert _prep(store, cache).cache_status == "built"
    import_bars(data, store)
    assert _prep(store, cache).cache_status == "hit"
    part = store / "SPY" / "2011-01.parquet"
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"partition SPY/2011-01\.parquet is not the size .*tbot data import"):
        _prep(store, cache)
    import_bars(data, store)  # repaired: the same bars, the same key
    assert _prep(store, cache).cache_status == "hit"
    # altered in place, its size kept: the manifest's SHA-256 still names the key, but the file is not those bytes
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    part.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"partition SPY/2011-01\.parquet is corrupted .*tbot data import"):
        _prep(store, cache)
    import_bars(data, store)
    assert _prep(store, cache).cache_status == "hit"
    (store / "SPY" / "2011-03.parquet").unlink()  # outside the range (January): a read would not open it
    assert _prep(store, cache).cache_status == "hit"


def test_a_worker_maps_a_cached_preparation_in_one_call(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork does not carry a file mapping's page tables over: each `--jobs` worker faulted the cached arrays in a
    page at a time. It asks for the whole mapping of the file its arrays are views of, once."""
    cache = tmp_path / "cache"
    built = _prep(data, cache)
    asked: list[int] = []
    monkeypatch.setattr(prep_cache, "_populate", lambda mapped: asked.append(len(mapped)))
    prep_cache.populate_after_fork(built.grid.close)  # built here, not a view of a file: nothing to map
    assert asked == []
    hit = _prep(data, cache)
    assert (
        hit.cache_status == "hit" and len(asked) == 1
    )  # the load maps it too (its checksum reads every page)
    prep_cache.populate_after_fork(hit.grid.close)
    (cached,) = cache.glob("*.prep")
    assert asked == [cached.stat().st_size] * 2


def test_the_cache_keeps_the_most_recently_used_preparations_only(data: Path, tmp_path: Path) -> None:
    """Every new data range writes a preparation of a hundred megabytes or more (the scheduled optimizer: one a
    session): the cache keeps the KEEP_PREPARATIONS most recently used, with what is cached beside them."""
    cache = tmp_path / "cache"
    starts = [date(2011, 1, 4), date(2011, 1, 5), date(2011, 1, 6), date(2011, 1, 7)]
    keys = []
    for i, start in enumerate(starts):
        prep = _prep(data, cache, start=start)
        prep.evaluate(PARAMS[0])  # writes base results and indicators beside the preparation
        prep_cache.wait_for_writes()
        keys.append(prep.data_key)
        os.utime(cache / f"{prep.data_key}.prep", (1_000_000 + i, 1_000_000 + i))  # used in this order
        if i == 1:
            # the first is used again: a hit makes it the most recently used
            assert _prep(data, cache, start=starts[0]).cache_status == "hit"
    assert prep_cache.KEEP_PREPARATIONS == 3
    held = {p.name.split(".", 1)[0] for p in cache.iterdir()}
    # the fourth made room by deleting the least recently used one, the second (the first was used after it)
    assert held == {keys[0], keys[2], keys[3]}
    assert _prep(data, cache, start=starts[1]).cache_status == "built"


def test_prune_deletes_old_temporary_files_and_leaves_other_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    keys = [f"{i:064x}" for i in range(5)]
    for i, key in enumerate(keys):
        for suffix in (".prep", ".ind-0123456789abcdef", ".base-1"):
            (cache / f"{key}{suffix}").write_bytes(b"x")
        os.utime(cache / f"{key}.prep", (1_000_000 + i, 1_000_000 + i))
    old_tmp, new_tmp = cache / f".{keys[4]}.prep.abc", cache / f".{keys[4]}.ind-1.def"
    old_tmp.write_bytes(b"x")
    new_tmp.write_bytes(b"x")
    os.utime(old_tmp, (1_000_000, 1_000_000))
    (cache / "README").write_text("not the cache's")
    deleted = prep_cache.prune(cache, keep=keys[0])
    # keys[0] is kept (about to be written), and the two most recently used others: 4 (being written now: its
    # young temporary file) and 3
    assert {p.name.removeprefix(".").split(".", 1)[0] for p in deleted} == {keys[1], keys[2], keys[4]}
    assert old_tmp in deleted and new_tmp.exists() and (cache / "README").exists()
    assert {p.name.split(".", 1)[0] for p in cache.glob("*.prep")} == {keys[0], keys[3], keys[4]}


def test_prune_keeps_a_preparation_whose_writer_is_still_writing(tmp_path: Path) -> None:
    """A study's background writer writes its .prep under a temporary name while the study already wrote what it
    keeps beside it: a prune by another study meanwhile ranked that newest key as never used and deleted them."""
    cache = tmp_path / "cache"
    cache.mkdir()
    old = [f"{i:064x}" for i in (1, 2)]
    for i, key in enumerate(old):
        (cache / f"{key}.prep").write_bytes(b"x")
        os.utime(cache / f"{key}.prep", (1_000_000 + i, 1_000_000 + i))
    writing = f"{10:064x}"
    (cache / f".{writing}.prep.abc123").write_bytes(b"half")
    (cache / f"{writing}.floor-1234").write_bytes(b"x")
    deleted = prep_cache.prune(cache, keep=f"{11:064x}")
    assert (cache / f"{writing}.floor-1234").exists() and (cache / f".{writing}.prep.abc123").exists()
    assert deleted == [cache / f"{old[0]}.prep"]  # the least recently used goes instead


def test_the_background_writer_yields_the_cores_to_the_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preparation is written while the study's trials run: at the same priority its pickling, checksums and
    writes took CPU from a 2-job study's two workers on two cores."""
    from tbot_bot.support.utils_bot import BACKGROUND_NICENESS

    seen = tmp_path / "priority"

    def recording(path: Path, obj: object, what: str) -> Path:
        seen.write_text(str(os.getpriority(os.PRIO_PROCESS, 0)))
        return path

    monkeypatch.setattr(prep_cache, "_write", recording)  # the forked writer inherits it
    prep_cache._write_later(tmp_path / "x.prep", ("meta",), "test")
    prep_cache.wait_for_writes()
    assert int(seen.read_text()) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICENESS)
