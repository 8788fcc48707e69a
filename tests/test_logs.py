"""`tbot logs summary|tail|prune`, the audit log parser, rotation at boot and daily, LOG_FORMAT changes (issue 14)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.reporting import audit_log_parser as alp
from tbot_bot.runtime.main import LOG_ROTATION_TRIGGER, Supervisor
from tbot_bot.support.utils_bot import time_bound
from tbot_bot.trading.logs_bot import StrategyLog

T = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)


def _age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    os.utime(path, (t, t))


def test_summary_of_a_replayed_day_matches_the_ledger_and_boot_rotates_every_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = provision_demo_home(tmp_path / "home")
    web = home.web_logs_dir
    web.mkdir(parents=True, exist_ok=True)
    (web / "access.2020-01-02.log").write_text("old\n")  # far beyond LOG_RETENTION_DAYS=30
    (web / "auth_failures.log").write_text("yesterday\n")
    _age(web / "auth_failures.log", 1)
    # the rotated copy is named by the file's last write (taken now: a run crossing midnight changes nothing)
    yesterday = datetime.fromtimestamp((web / "auth_failures.log").stat().st_mtime, UTC).date().isoformat()
    assert Supervisor(home, replay_day=DEMO_DAY).run() == 0
    assert not (web / "access.2020-01-02.log").exists()
    assert (web / f"auth_failures.{yesterday}.log").read_text() == "yesterday\n"

    assert main(["logs", "summary", "--home", str(home.root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    binding = load_binding(home)
    with sqlite3.connect(f"file:{binding.ledger_path}?mode=ro", uri=True) as conn:
        ledger = {
            strategy: (n, Decimal(total) / 10000)
            for strategy, n, total in conn.execute(
                "SELECT strategy, count(*), sum(pnl) FROM transactions WHERE pnl IS NOT NULL GROUP BY strategy"
            )
        }
    assert set(summary["trades"]) == {"open", "mid", "close"} == set(ledger)
    for strategy, (n, pnl) in ledger.items():
        row = summary["trades"][strategy]
        assert (row["trades"], Decimal(row["pnl"])) == (n, pnl), strategy
    assert summary["by_event"]["window_start"] == 3 and summary["by_level"]["error"] == 0
    assert summary["unreadable_lines"] == 0

    # a mistyped strategy or an empty span is not "no activity": refused, naming what there is
    assert main(["logs", "summary", "--home", str(home.root), "--strategy", "midd"]) == 2
    assert "--strategy 'midd': the logs hold close, mid, open, supervisor" in capsys.readouterr().err
    # a known name with nothing in the span is an empty summary, not an error
    assert (
        main(["logs", "summary", "--home", str(home.root), "--strategy", "close", "--until", "2000-01-01"])
        == 0
    )
    assert "records    0" in capsys.readouterr().out
    assert (
        main(["logs", "summary", "--home", str(home.root), "--since", "2011-02-01", "--until", "2011-01-01"])
        == 2
    )
    assert "is not after --since 2011-02-01" in capsys.readouterr().err
    assert main(["logs", "summary", "--home", str(home.root), "--strategy", "mid"]) == 0
    text = capsys.readouterr().out
    assert "mid    " in text and "open   " not in text
    # the span of the records in exchange time and UTC (the home's MARKET_CALENDAR is XNYS)
    assert re.search(r"records +\d+ from \d{4}-\d\d-\d\d \d\d:\d\d E[SD]T / \d\d:\d\dZ to ", text), text
    assert main(["logs", "tail", "--home", str(home.root), "-n", "3"]) == 0
    tail = capsys.readouterr().out.splitlines()
    assert len(tail) == 3 and "supervisor" in tail[-1]


def _write_day(logs: Path) -> None:
    log = StrategyLog(logs, "json", now=lambda: T)
    log.event("open", "window_start")
    log.event("open", "signal_denied", ticker="SPY", filter="risk:max_trades", reason="x")
    log.event("open", "signal_denied", ticker="QQQ", filter="risk:max_trades", reason="x")
    log.event("open", "signal_denied", ticker="SH", filter="ticker_blocklist", reason="y")
    log.event("open", "exit_fill", ticker="SPY", PnL="12.5000", net_pnl="12.1500", exit_reason="timeout")
    log.event(
        "open", "exit_fill", ticker="QQQ", PnL="-2.2500", net_pnl="-2.6000", exit_reason="trailing_stop"
    )
    later = StrategyLog(logs, "json", now=lambda: T + timedelta(days=1))
    later.error("mid", "broker refused", {"code": 403})
    later.error("mid", "broker refused", {"code": 403})
    later.event("mid", "exit_fill", ticker="SPY", PnL="1.0000", net_pnl="0.9000")
    later.unresolved("mid", broker="SIM", error_type="BrokerError", error_code="stale", ticker="SPY")


def test_summary_counts_errors_denials_and_pnl_and_filters(tmp_path: Path) -> None:
    _write_day(tmp_path)
    records, bad = alp.read_records(tmp_path)
    s = alp.summarize(records, bad)
    assert (s.records, s.by_level["error"], s.by_level["warning"]) == (10, 2, 1)
    assert s.errors == {"broker refused": (T + timedelta(days=1), 2)}
    assert dict(s.denials) == {"risk:max_trades": 2, "ticker_blocklist": 1}
    assert (s.trades["open"].trades, s.trades["open"].wins, s.trades["open"].pnl) == (2, 1, Decimal("10.25"))
    assert s.trades["open"].net_pnl == Decimal("9.55")
    # the logged exits are said to be that, not the books (a correction or a trade closed in two exits differs)
    shown = alp.render(s)
    assert "exits as logged when they filled (the books, corrections included: `tbot trades`)" in shown
    assert "open   2 exit(s), 1 win(s) net of fees, net PnL 9.55" in shown
    day1 = alp.read_records(tmp_path, until=time_bound("2026-11-16", end=True))[0]
    assert {r.strategy for r in day1} == {"open"}
    warn = alp.select(records, strategy="mid", level="warning")
    assert [r.level for r in warn] == ["error", "error", "warning"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        time_bound("yesterday", end=False)


def test_log_format_change_starts_a_new_file_and_both_are_read(tmp_path: Path) -> None:
    StrategyLog(tmp_path, "json", now=lambda: T).event("open", "window_start")
    StrategyLog(tmp_path, "csv", now=lambda: T + timedelta(minutes=1)).event("open", "window_end")
    active = (tmp_path / "open.log").read_text().splitlines()
    assert active[0].startswith("timestamp,strategy_name,event") and len(active) == 2  # CSV only
    [archived] = [p for p in tmp_path.glob("open.*.log")]
    assert archived.read_text().startswith("{") and len(archived.read_text().splitlines()) == 1
    records, bad = alp.read_records(tmp_path)
    assert [r.event for r in records] == ["window_start", "window_end"] and bad == 0


def test_prune_rotates_and_deletes_across_the_home_and_the_wrapper_runs(
    provisioned_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.support.path_resolver import BotHome

    home = BotHome(provisioned_home)
    logs = home.logs_dir(load_binding(home).scope)
    _write_day(logs)
    old = logs / "open.2026-01-01.log"
    old.write_text("{}\n")
    _age(logs / "open.log", 3)
    (home.web_logs_dir / "access.2026-01-01.log").write_text("x\n")
    assert main(["logs", "prune", "--home", str(provisioned_home), "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert not old.exists() and not (home.web_logs_dir / "access.2026-01-01.log").exists()
    assert not (logs / "open.log").exists() and "2 deleted" in out and "rotated" in out
    assert main(["logs", "prune", "--home", str(provisioned_home), "--days", "0"]) == 2
    wrapper = Path(__file__).resolve().parents[1] / "support" / "audit_log_parser.py"
    done = subprocess.run(
        [sys.executable, str(wrapper), "--home", str(provisioned_home), "--level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "levels     info 0, warning 0, error 2" in done.stdout
        and "first 2026-11-17 09:30 EST / 14:30Z" in done.stdout
    )
    bad = subprocess.run(
        [sys.executable, str(wrapper), "--home", str(provisioned_home), "--since", "last week"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr and "Traceback" not in bad.stderr
    # started by an interpreter without the bot's packages (its `#!/usr/bin/env python3` outside the virtualenv;
    # here: no site-packages), it runs itself again with the project's: a traceback before
    bare = subprocess.run(
        [sys.executable, "-S", str(wrapper), "--home", str(provisioned_home), "--level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 0 and "levels     info 0, warning 0, error 2" in bare.stdout, bare.stderr


def test_daily_rotation_job_fires_after_midnight_utc() -> None:
    nxt = LOG_ROTATION_TRIGGER.get_next_fire_time(None, datetime(2026, 11, 16, 23, 0, tzinfo=UTC))
    assert nxt == datetime(2026, 11, 17, 0, 5, tzinfo=UTC)
