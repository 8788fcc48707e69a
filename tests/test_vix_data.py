"""`tbot data vix` against a fake Cboe endpoint on 127.0.0.1: good, truncated, HTML error page, 404, stale;
validation and merging of the home's VIX cache; the IBKR index source."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fakes.cboe_server import CSV, HTML, FakeCboeServer, cboe_csv
from helpers import make_settings

from rigd_tbot.cli import main
from tbot_bot.inputs import vix
from tbot_bot.market_time import market_calendar
from tbot_bot.support.path_resolver import BotHome
from tbot_bot.support.utils_bot import utc_now

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


def sessions_before(day: date, n: int) -> list[date]:
    cal = market_calendar("XNYS")
    days = cal.sessions_in_range(
        pd.Timestamp(day) - pd.Timedelta(days=3 * n), pd.Timestamp(day) - pd.Timedelta(days=1)
    )
    return [d.date() for d in days][-n:]


@pytest.fixture(scope="module")
def sim_home_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vixhome") / "home"
    args = ["provision", "--home", str(root), "--broker", "sim", "--entity", "RGL", "--jurisdiction", "USA"]
    assert main([*args, "--account", "main", "--bot-id", "TB01", "--float", "2500"]) == 0
    return root


@pytest.fixture()
def home(sim_home_template: Path, tmp_path: Path) -> BotHome:
    root = tmp_path / "home"
    shutil.copytree(sim_home_template, root)
    return BotHome(root)


@pytest.fixture()
def cboe() -> Iterator[FakeCboeServer]:
    with FakeCboeServer() as srv:
        yield srv


def next_session() -> date:
    return vix.next_close_session(make_settings(), utc_now())


def test_good_file_fills_the_cache_and_names_the_value_close_will_use(
    home: BotHome, cboe: FakeCboeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    days = sessions_before(next_session(), 10)
    cboe.files["/VIX_History.csv"] = (200, CSV, cboe_csv((d, 15.0 + i) for i, d in enumerate(days)))
    assert main(["data", "vix", "--home", str(home.root), "--url", cboe.url("/VIX_History.csv")]) == 0
    out = capsys.readouterr().out
    assert "10 rows (10 new)" in out
    assert f"VIX 24.00 (close of {days[-1]})" in out
    held = vix.closes(vix.load_cache(home))
    assert held[days[0]] == 15.0 and held[days[-1]] == 24.0 and len(held) == 10


@pytest.mark.parametrize(
    ("path", "answer", "message", "code"),
    [
        # what a struggling server sends: transient, worth a retry (exit 75)
        ("/truncated.csv", (200, CSV, cboe_csv([(date(2026, 1, 2), 17.0)])[:-9]), "truncated", 75),
        (
            "/error.html",
            (200, HTML, b"<!DOCTYPE html><html><body>Service unavailable</body></html>"),
            "HTML",
            75,
        ),
        ("/html-as-csv.csv", (200, CSV, b"<html><body>Access Denied</body></html>\n"), "HTML", 75),
        ("/empty.csv", (200, CSV, b""), "empty", 75),
        ("/busy.csv", (503, CSV, b"busy"), "HTTP 503", 75),
        # a wrong address or a file that is not the VIX history: a person fixes the URL (exit 2)
        ("/missing.csv", None, "HTTP 404", 2),
        ("/garbage.csv", (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n13/45/2026,1,1,1,1\n"), "not MM/DD/YYYY", 2),
        (
            "/negative.csv",
            (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2026,1,1,1,-3\n"),
            "is not a VIX level (a number above 0, at most 500)",
            2,
        ),
        (
            "/nan.csv",
            (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2026,1,1,1,nan\n"),
            "is not a VIX level",
            2,
        ),
        # a value no VIX ever was (1e308 would open every CLOSE window's gate)
        (
            "/absurd.csv",
            (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2026,1e308,1e308,1e308,1e308\n"),
            "is not a VIX level",
            2,
        ),
        ("/nodate.csv", (200, CSV, b"DAY,VALUE\n01/02/2026,1\n"), "lacks DATE and CLOSE", 2),
        # a close the row's own range contradicts, a day given twice differently, a day not yet traded
        (
            "/huge.csv",
            (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2026,15.8,17,15.5,172.5\n"),
            "CLOSE 172.5 is outside its day's LOW..HIGH 15.5..17",
            2,
        ),
        (
            "/twice.csv",
            (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2026,15.8,17,15.5,17\n01/02/2026,15.8,56,15.5,55\n"),
            "2026-01-02 appears twice, with closes 17 and 55",
            2,
        ),
        (
            "/future.csv",
            (200, CSV, b"DATE,OPEN,HIGH,LOW,CLOSE\n01/02/2026,16,17,15,16.5\n12/31/2099,15.8,17,15.5,16\n"),
            "date 2099-12-31 is after today",
            2,
        ),
    ],
)
def test_a_bad_download_is_refused_and_the_cache_is_untouched(
    home: BotHome,
    cboe: FakeCboeServer,
    capsys: pytest.CaptureFixture[str],
    path: str,
    answer: tuple[int, str, bytes] | None,
    message: str,
    code: int,
) -> None:
    vix.merge_into_cache(home, vix.parse_history(cboe_csv([(date(2026, 1, 2), 17.0)]).decode(), "seed"))
    before = vix.cache_path(home).read_bytes()
    if answer is not None:
        cboe.files[path] = answer
    # README "Exit codes": 75 when a retry may help, 2 when the URL or the file must change
    assert main(["data", "vix", "--home", str(home.root), "--url", cboe.url(path)]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert vix.cache_path(home).read_bytes() == before


@pytest.mark.parametrize("url", ["notaurl", "file:///etc/passwd", "ftp://example.com/vix.csv"])
def test_only_an_http_address_is_fetched(home: BotHome, capsys: pytest.CaptureFixture[str], url: str) -> None:
    assert main(["data", "vix", "--home", str(home.root), "--url", url]) == 2
    err = capsys.readouterr().err
    assert "give the http:// or https:// address of a Cboe-format VIX CSV" in err and "root:" not in err


def test_stale_file_is_merged_but_reported_as_no_vix(
    home: BotHome, cboe: FakeCboeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    days = sessions_before(next_session(), 12)[:-3]  # the last three sessions are missing
    cboe.files["/stale.csv"] = (200, CSV, cboe_csv((d, 20.0) for d in days))
    assert main(["data", "vix", "--home", str(home.root), "--url", cboe.url("/stale.csv")]) == 1
    out = capsys.readouterr().out
    assert "no_vix" in out and f"newest close {days[-1]}" in out
    assert len(vix.load_cache(home)) == 9


def test_merge_keeps_older_history_and_takes_the_new_value_of_a_shared_date(home: BotHome) -> None:
    d1, d2, d3 = date(2026, 1, 2), date(2026, 1, 5), date(2026, 1, 6)
    vix.merge_into_cache(home, vix.parse_history(cboe_csv([(d1, 10.0), (d2, 11.0)]).decode(), "a"))
    added, held = vix.merge_into_cache(
        home, vix.parse_history(cboe_csv([(d2, 12.5), (d3, 13.0)]).decode(), "b")
    )
    assert (added, held) == (1, 3)
    assert vix.closes(vix.load_cache(home)) == {d1: 10.0, d2: 12.5, d3: 13.0}


def test_reading_needs_exactly_the_previous_session() -> None:
    # Monday 2026-11-30: the previous session is Friday 2026-11-27 (the early close after Thanksgiving)
    monday = date(2026, 11, 30)
    fresh = vix.reading_for({date(2026, 11, 25): 18.0, date(2026, 11, 27): 19.5}, monday, "XNYS")
    assert fresh.value == 19.5 and fresh.needed == date(2026, 11, 27)
    stale = vix.reading_for({date(2026, 11, 25): 18.0}, monday, "XNYS")
    assert stale.value is None and not stale.fresh and stale.newest == date(2026, 11, 25)
    assert "no_vix" in stale.describe() and "2026-11-27" in stale.describe()


def test_next_close_session_skips_weekends_and_passed_windows() -> None:
    s = make_settings()  # START_TIME_CLOSE from the template
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert vix.next_close_session(s, saturday) == date(2026, 11, 30)
    monday_late = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert vix.next_close_session(s, monday_late) == date(2026, 12, 1)
    monday_early = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert vix.next_close_session(s, monday_early) == date(2026, 11, 30)


def test_ibkr_index_source(tmp_path: Path) -> None:
    from fakes.fake_ib import ACCOUNT, FakeTws

    from tbot_bot.broker.brokers.ibkr import IbkrBroker
    from tbot_bot.domain.clock import ReplayClock

    now = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    tws = FakeTws(now=now)
    # daily bars as TWS sends them (YYYYmmdd), answered through ib_async's own historical-data request
    tws.history = {"VIX": [("20261125", 17.0, 17.5, 16.9, 17.25, 0), ("20261127", 18.0, 18.6, 17.9, 18.5, 0)]}
    broker = IbkrBroker(
        tws.ib, host="h", port=1, client_id=7, account=ACCOUNT, clock=ReplayClock(now), sleep=lambda s: None
    )
    broker.connect()
    home = BotHome(tmp_path)
    settings = make_settings(
        BROKER_NAME="IBKR", IBKR_ENABLED="true", SIM_ENABLED="false", VIX_SOURCE="broker"
    )
    done = vix.refresh(home, settings, date(2026, 11, 30), broker=broker)
    contract = tws.history_requests[0][0]
    assert (getattr(contract, "secType", None), getattr(contract, "symbol", None)) == ("IND", "VIX")
    assert done.reading.value == 18.5 and done.added == 2


def test_vix_source_broker_needs_ibkr() -> None:
    from tbot_bot.errors import ConfigError

    with pytest.raises(ConfigError, match="VIX_SOURCE=broker needs BROKER_NAME=IBKR"):
        make_settings(VIX_SOURCE="broker")


def test_cboes_own_history_with_its_2006_row_is_accepted(cboe: FakeCboeServer) -> None:
    """Cboe's VIX_History.csv holds `03/20/2006,12.11,12.21,11.82,11.79`: a close 3 cents under its own low. The
    whole download was refused for it, and the CLOSE window ran without a VIX every day. An old row may miss its
    range by a little; a recent one (what the gate reads) may not, and no row by a factor."""
    body = cboe_csv([(date(2026, 11, 25), 20.0), (date(2026, 11, 27), 21.25)]).decode()
    header, *rows = body.splitlines()
    real = "\n".join([header, "03/20/2006,12.110000,12.210000,11.820000,11.790000", *rows]) + "\n"
    cboe.files["/VIX_History.csv"] = (200, CSV, real.encode())
    history = vix.download_cboe(cboe.url("/VIX_History.csv"), 5.0)
    assert history[date(2006, 3, 20)].close == 11.79 and history[date(2026, 11, 27)].close == 21.25
    recent = (datetime.now(UTC).date() - timedelta(days=3)).strftime("%m/%d/%Y")
    cboe.files["/recent.csv"] = (200, CSV, f"{header}\n{recent},12.11,12.21,11.82,11.79\n".encode())
    with pytest.raises(vix.VixDataError, match="CLOSE 11.79 is outside its day's LOW..HIGH 11.82..12.21"):
        vix.download_cboe(cboe.url("/recent.csv"), 5.0)


@pytest.mark.parametrize("how", ["cut off", "trickled"])
def test_a_download_cut_off_or_trickled_is_a_source_outage_in_bounded_time(how: str) -> None:
    """A body cut off mid-way raised http.client.IncompleteRead, which no handler took: the supervisor crashed with
    exit 1 ("unexpected") instead of riding out an outage (75). A server sending a byte at a time never tripped the
    per-read timeout and held the supervisor past the watchdog's minute. Both are a source outage, within seconds."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 5000\r\n\r\nDATE,CLOSE\n")
        if how == "trickled":
            for _ in range(100):  # a byte every 0.2 s: each read answers in time, the whole never arrives
                try:
                    conn.sendall(b"1")
                except OSError:
                    break
                time.sleep(0.2)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(vix.VixSourceError, match="broke off|too slow"):
            vix.download_cboe(f"http://127.0.0.1:{server.getsockname()[1]}/VIX_History.csv", 0.5)
    finally:
        server.close()
    assert time.monotonic() - started < 10
