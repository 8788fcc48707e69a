"""What a trader looks at from the command line: trades, summary, status, plot day, --version, help, demo days.

One demo replay of 2011-01-25 (the demo day) is shared by the module; its ledger holds four round trips:
open SYN1 +0.6934, open SYN8 -2.9009, mid SH (signal SYN5) +1.8173, close SYN3 +1.1933.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rigd_tbot.cli import build_parser
from rigd_tbot.cli import main as tbot
from rigd_tbot.status_view import render_status_view
from tbot_bot.support.path_resolver import BotHome, package_file

DAY = "2011-01-25"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("views") / "demo_home"
    assert tbot(["demo", "--home", str(home), "--day", DAY]) == 0
    return home


def test_trades_table_lists_the_demo_trades_with_totals(
    demo_home: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    assert tbot(["trades", "--home", str(demo_home)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    body = [ln for ln in lines if ln.strip().startswith(DAY)]
    assert len(body) == 4
    assert any("SH (SYN5)" in ln and "long (bearish)" in ln and "mid" in ln and "1.82" in ln for ln in body)
    assert "09:59 EST / 14:59Z" in out  # exchange time and UTC
    total = next(ln for ln in lines if ln.strip().startswith("TOTAL"))
    assert "4 trades" in total and "3 won, 1 lost" in total and "0.80" in total
    # each trade's gross PnL, fees and net result, as the ledger books them (the exit alert says "PnL 0.67")
    assert any(re.search(r"SYN1 .* 0\.69\s+0\.02\s+0\.67\s+timeout", ln) for ln in body), out
    assert re.search(r"0\.80\s+0\.10\s+0\.70", total)
    assert lines.index(total) > max(lines.index(b) for b in body)  # totals at the bottom


def test_trades_csv_and_json_are_exact_and_filtered(demo_home: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert tbot(["trades", "--home", str(demo_home), "--format", "csv", "--strategy", "open"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["ticker"] for r in rows[:-1]] == ["SYN1", "SYN8"]
    assert [r["pnl"] for r in rows[:-1]] == ["0.6934", "-2.9009"]
    assert rows[-1]["session"] == "TOTAL" and rows[-1]["pnl"] == "-2.2075"
    assert tbot(["trades", "--home", str(demo_home), "--format", "json", "--date", DAY]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["trades"]) == 4 and doc["totals"]["trades"] == 4
    assert sum(Decimal(t["pnl"]) for t in doc["trades"]) == Decimal(doc["totals"]["pnl"]) == Decimal("0.8031")
    assert tbot(["trades", "--home", str(demo_home), "--format", "json", "--since", "2011-01-26"]) == 0
    assert json.loads(capsys.readouterr().out)["trades"] == []


def test_trades_outside_a_home_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert tbot(["trades", "--home", str(tmp_path)]) == 2
    assert "not a bot home" in capsys.readouterr().err


def test_summary_per_session_and_per_strategy(demo_home: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert tbot(["summary", "--home", str(demo_home)]) == 0
    out = capsys.readouterr().out
    row = re.search(rf"{DAY}\s+4\s+3\s+1\s+75\.00%\s+0\.80\s+([\d.,-]+)\s+([\d.,-]+)\s+8\s+4\s+0", out)
    assert row, out
    fees, net = (Decimal(x.replace(",", "")) for x in row.groups())
    assert net == Decimal("0.80") - fees  # net = realised PnL - fees
    assert re.search(rf"TOTAL\s+4\s+3\s+1\s+75\.00%\s+0\.80\s+{row.group(1)}\s+{row.group(2)}", out)
    assert tbot(["summary", "--home", str(demo_home), "--date", DAY]) == 0
    out = capsys.readouterr().out
    names = [m.group(1) for m in re.finditer(r"^\s+(open|mid|close)\s", out, re.MULTILINE)]
    assert names == ["open", "mid", "close"] and re.search(r"open\s+2\s+1\s+1\s+50\.00%\s+-2\.21", out)
    assert tbot(["summary", "--home", str(demo_home), "--date", "2011-01-24"]) == 2
    assert "sessions: 2011-01-25" in capsys.readouterr().err


def test_status_is_a_table_in_exchange_time_and_utc(demo_home: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert tbot(["status", "--home", str(demo_home)]) == 0
    out = capsys.readouterr().out
    assert "REPLAY of 2011-01-25" in out and "Windows (exchange time America/New_York / UTC)" in out
    assert re.search(r"mid\s+done\s+10:30 EST / 15:30Z\s+11:25 EST / 16:25Z", out)
    assert "{" not in out  # not a Python dict


def test_status_flags_a_running_state_that_stopped_being_written() -> None:
    data = {
        "state": "trading",
        "bot": {"mode": "live"},
        "windows": [],
        "updated_at": "2026-11-25T15:00:00+00:00",
    }
    now = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    stale = render_status_view(
        data, exchange_tz="America/New_York", written_at=datetime(2026, 11, 25, 15, 0, tzinfo=UTC), now=now
    )
    assert "STALE" in stale and "30 min ago" in stale
    fresh = render_status_view(data, exchange_tz="America/New_York", written_at=now, now=now)
    assert "STALE" not in fresh
    closed = render_status_view({**data, "state": "closed"}, exchange_tz="UTC", written_at=None, now=now)
    assert "STALE" not in closed
    # killed a minute ago: the file is fresh, but no supervisor holds the run lock; said at once
    killed = render_status_view(data, exchange_tz="America/New_York", written_at=now, now=now, running=False)
    assert "NOT RUNNING" in killed and "'trading' above is the last one written" in killed
    assert "NOT RUNNING" not in render_status_view(
        data, exchange_tz="America/New_York", written_at=now, now=now, running=True
    )
    # an outage being waited out writes only when the broker's state changes: its age alone is no alarm
    waiting = {**data, "state": "suspended"}
    eight_min = datetime(2026, 11, 25, 15, 22, tzinfo=UTC)
    view = render_status_view(waiting, exchange_tz="UTC", written_at=eight_min, now=now, running=True)
    assert "STALE" not in view and "NOT RUNNING" not in view
    assert "NOT RUNNING" in render_status_view(
        waiting, exchange_tz="UTC", written_at=eight_min, now=now, running=False
    )
    # a live supervisor killed between windows (idle, "waiting: next window ...") or after a halt: no process
    # will run that window, so it is said at once, with where its log is
    for state in ("idle", "halted"):
        view = render_status_view(
            {**data, "state": state}, exchange_tz="UTC", written_at=now, now=now, running=False,
            log_file="output/DEMO/logs/supervisor.log",
        )  # fmt: skip
        assert f"NOT RUNNING no supervisor holds the run lock: the state '{state}'" in view
        assert "output/DEMO/logs/supervisor.log" in view
    # a live day's end with no process: true, but no later session will trade; a finished replay says nothing
    ended = render_status_view(
        {**data, "state": "closed"}, exchange_tz="UTC", written_at=now, now=now, running=False
    )
    assert "NOT RUNNING no supervisor holds the run lock: no later session trades" in ended
    replayed = {**data, "state": "closed", "bot": {"mode": "replay"}}
    assert "NOT RUNNING" not in render_status_view(
        replayed, exchange_tz="UTC", written_at=now, now=now, running=False
    )


def test_plot_day_from_the_home_ledger(
    demo_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "d.png"
    argv = ["plot", "day", "--date", DAY, "--home", str(demo_home), "--symbol", "SYN5", "--out", str(out)]
    assert tbot(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 30_000
    assert "1 trade(s) marked" in capsys.readouterr().out  # SH bought on SYN5's signal
    from rigd_tbot.commands.plot import _ledger_trades

    (sh,) = _ledger_trades(BotHome(demo_home), date(2011, 1, 25), "SYN5", None)
    assert (sh.ticker, sh.direction, sh.exit_reason) == (
        "SH",
        "bearish",
        "timeout",
    )  # marked as a bearish entry
    # default place: the home's charts folder (the dashboard links to it)
    assert tbot(["plot", "day", "--date", DAY, "--home", str(demo_home), "--symbol", "syn1"]) == 0
    assert list((demo_home / "output").glob("*/charts/2011-01-25_SYN1.png"))


def test_plot_day_from_a_data_source_backtests_the_day(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = tmp_path / "bars"
    bars.mkdir()
    for name in ("spy_1min.csv.gz", "derived_1min.csv.gz", "vix.csv", "fundamentals.json"):
        shutil.copy(package_file("data", "sample", name), bars / name)
    out = tmp_path / "m.png"
    monkeypatch.chdir(tmp_path)  # no home here: the template configuration is used
    argv = ["plot", "day", "--date", "2011-01-10", "--data-source", str(bars), "--symbol", "SYN4",
            "--strategy", "open", "--out", str(out)]  # fmt: skip
    assert tbot(argv) == 0
    assert out.is_file()
    captured = capsys.readouterr()
    assert re.search(r"SYN4 2011-01-10: \d+ trade\(s\) marked", captured.out)
    assert "have no bars" not in captured.err
    # the day after a gap (the sample has no February): the empty chart says why (a researcher's review)
    argv[3] = "2011-03-01"
    assert tbot(argv) == 0
    assert "note: 1 of the 2 XNYS sessions from 2011-02-28 to 2011-03-01 have no bars (2011-02-28)" in (
        capsys.readouterr().err
    )


def test_plot_day_refuses_a_holiday_and_an_unknown_symbol(
    demo_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["plot", "day", "--home", str(demo_home), "--out", str(tmp_path / "day.png")]
    assert tbot([*base, "--date", "2011-01-17", "--symbol", "SPY"]) == 2
    assert "not a trading session" in capsys.readouterr().err
    assert tbot([*base, "--date", DAY, "--symbol", "NOPE"]) == 2
    assert "no bars for NOPE" in capsys.readouterr().err
    # with --data-source: the symbols the data does hold that day are named
    sample = str(package_file("data", "sample"))
    assert tbot([*base, "--date", DAY, "--symbol", "NOPE", "--data-source", sample]) == 2
    err = capsys.readouterr().err
    assert "no bars for NOPE" in err and "symbols with bars that day: " in err and "SPY" in err


def test_version_flag(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--version"])
    assert exc.value.code == 0
    assert re.fullmatch(r"tbot v\d+\.\d+\.\d+\n", capsys.readouterr().out)


def _missing_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                if not helps.get(name):
                    missing.append(f"{path} {name}")
                missing += _missing_help(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{path} {action.option_strings or action.dest}")
    return missing


def test_every_command_and_option_has_help() -> None:
    assert _missing_help(build_parser(), "tbot") == []


def test_demo_day_without_bars_lists_the_sample_days(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert tbot(["demo", "--home", str(tmp_path / "h"), "--day", "2011-02-10"]) == 2
    err = capsys.readouterr().err
    assert "no bars for 2011-02-10" in err and "2011-01: 03 04 05" in err and "2011-03: 01 02" in err
    assert not (tmp_path / "h").exists()  # nothing provisioned for a day that cannot run


def test_summary_total_win_rate_is_each_rows_rule(
    provisioned_home: Path, capsys: pytest.CaptureFixture
) -> None:
    """Wins over the closed trades (an open trade has no result yet): one session of 3 trades, 1 still open and
    1 won, reads 50.00% on its row and on TOTAL; a file written before `closed_trades` gives the same."""
    from tbot_bot.accounting.accounting_config import load_binding

    home = BotHome(provisioned_home)
    folder = home.summaries_dir(load_binding(home).scope)
    folder.mkdir(parents=True, exist_ok=True)
    totals = {"total_trades": 3, "closed_trades": 2, "wins": 1, "losses": 1, "win_rate": "0.5000",
              "total_pnl": "1.0000", "total_fees": "0.1000", "net_pnl": "0.9000"}  # fmt: skip
    for day, block in (
        ("2011-01-25", totals),
        ("2011-01-26", {k: v for k, v in totals.items() if k != "closed_trades"}),
    ):
        (folder / f"daily_summary_{day}.json").write_text(json.dumps({"session_date": day, "totals": block}))
    capsys.readouterr()
    assert tbot(["summary", "--home", str(home.root)]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"2011-01-2[56]\s+3\s+1\s+1\s+50\.00%", out)) == 2, out
    assert re.search(r"TOTAL\s+6\s+2\s+2\s+50\.00%", out), out


def test_the_cli_and_the_dashboard_show_a_moment_alike() -> None:
    """Exchange time then UTC; the UTC side names its own date when it is another day (the CLI dropped it)."""
    from zoneinfo import ZoneInfo

    from rigd_tbot.display import both_times
    from tbot_web.py.time_web import both

    late = datetime(2026, 11, 17, 1, 0, tzinfo=UTC)
    shown = "2026-11-16 20:00 EST / 2026-11-17 01:00Z"
    assert both_times(late, "America/New_York", with_date=True) == shown
    assert both(late.isoformat(), ZoneInfo("America/New_York"), with_date=True) == shown


def _correct(home: list[str], fitid: str, *how: str) -> int:
    return tbot(["ledger", "correct", "--fitid", fitid, *how, "--reason", "statement", "--yes", *home])


def test_a_closed_days_summary_rebuilt_is_the_one_closed_so_a_later_correction_counts_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A correction posted after the month's close is its posting day's prior-period adjustment. A closed day's
    summary rebuilt (lost or damaged, `tbot trades --rebuild`) held it too: `tbot summary` counted it twice."""
    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.reporting.ledger_trades import read_trades

    root = tmp_path / "home"
    assert tbot(["demo", "--home", str(root), "--day", DAY]) == 0
    home = ["--home", str(root)]
    assert tbot(["ledger", "close", "--period", "2011-01", *home]) == 0
    fitid = "DEMO01-20110125-open-SYN1-1"
    assert _correct(home, fitid, "--amount", "190") == 0
    binding = load_binding(BotHome(root))
    summaries = BotHome(root).bot_output_dir(binding.scope) / "summaries"

    def total() -> Decimal:
        return sum(
            (
                Decimal(json.loads(p.read_text())["totals"]["total_pnl"])
                for p in summaries.glob("daily_summary_2*.json")
            ),
            Decimal(0),
        )

    trades = sum((t.pnl or Decimal(0) for t in read_trades(binding.ledger_path)), Decimal(0))
    assert total() == trades
    (summaries / f"daily_summary_{DAY}.json").unlink()
    assert tbot(["trades", "--rebuild", *home]) == 0
    assert total() == trades
    # every summary lost: the posting day of the prior-period adjustment (no trading day) is rebuilt too (it was
    # not, and `tbot summary` was short of the ledger by the adjustment: an accountant's review)
    for path in summaries.glob("daily_summary_*.json"):
        path.unlink()
    assert tbot(["trades", "--rebuild", *home]) == 0
    assert total() == trades
    # every trade of the closed day reversed after the close (exits first), and its summary lost again: it is
    # rebuilt as closed (it had been left out: no corrected record names its day), and the sum still agrees
    with sqlite3.connect(binding.ledger_path) as conn:
        rows = conn.execute(
            "SELECT fitid FROM transactions WHERE trntype IN ('SELL', 'BUY') AND fitid NOT IN "
            "(SELECT correction_of FROM transactions WHERE trntype = 'CORRECTION') ORDER BY trntype = 'BUY', id"
        ).fetchall()
    for (fitid,) in rows:
        assert _correct(home, fitid, "--reverse") == 0
    assert read_trades(binding.ledger_path) == []
    (summaries / f"daily_summary_{DAY}.json").unlink()
    assert tbot(["trades", "--rebuild", *home]) == 0
    assert (summaries / f"daily_summary_{DAY}.json").exists() and total() == 0


def test_a_correction_rewrites_the_later_session_statements_and_a_closed_months_posting_day(
    tmp_path: Path,
) -> None:
    """An earlier-dated correction changes the cash every later statement closes with (they kept the old
    AVAILCASH); a closed month's correction, dated on its posting day, was in no session statement at all."""
    from ofxtools.Parser import OFXTree

    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_read import trial_balance

    root = tmp_path / "home"
    home = ["--home", str(root)]
    assert tbot(["demo", "--home", str(root), "--day", DAY]) == 0
    assert tbot(["start", "--replay", "2011-01-26", *home]) == 0
    bot = BotHome(root)
    binding = load_binding(bot)

    def statement(day: date) -> Any:
        tree = OFXTree()
        tree.parse(str(bot.session_ofx(binding.scope, day)))
        return tree.convert().invstmtmsgsrsv1[0].invstmtrs

    def cash() -> Decimal:
        return next(d - c for code, _, d, c in trial_balance(binding.ledger_path) if code == "1030")

    fitid = "DEMO01-20110125-open-SYN1-1"
    assert _correct(home, fitid, "--amount", "190") == 0
    assert statement(date(2011, 1, 26)).invbal.availcash == cash()
    assert tbot(["ledger", "close", "--period", "2011-01", *home]) == 0
    other = "DEMO01-20110125-open-SYN8-2"  # an exit (its entry cannot go while it stands)
    assert _correct(home, other, "--reverse") == 0
    # the posting day's statement holds the reversal (it is a valid statement: ofxtools parses it)
    assert statement(date(2011, 2, 1)).invbal.availcash == cash()
    assert f"<FITID>{other}-REV</FITID>" in bot.session_ofx(binding.scope, date(2011, 2, 1)).read_text()


def test_a_day_replayed_after_a_later_one_rewrites_the_later_statements_cash(tmp_path: Path) -> None:
    """A session booked after a later one (a replay out of order, a day booked late) changes the cash every later
    statement closes with; only its own statement was written, the later one kept the old AVAILCASH (an
    accountant's review)."""
    from ofxtools.Parser import OFXTree

    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_read import trial_balance

    root = tmp_path / "home"
    home = ["--home", str(root)]
    assert tbot(["demo", "--home", str(root), "--day", "2011-01-24"]) == 0
    assert tbot(["start", "--replay", "2011-01-26", *home]) == 0
    assert tbot(["start", "--replay", DAY, *home]) == 0  # the day between, booked last
    bot = BotHome(root)
    binding = load_binding(bot)
    tree = OFXTree()
    tree.parse(str(bot.session_ofx(binding.scope, date(2011, 1, 26))))
    cash = next(d - c for code, _, d, c in trial_balance(binding.ledger_path) if code == "1030")
    assert tree.convert().invstmtmsgsrsv1[0].invstmtrs.invbal.availcash == cash
