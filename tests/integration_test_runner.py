"""A full replay session from boot to shutdown, checking every output (the owner's integration_test_runner).

Run it directly (`python tests/integration_test_runner.py [HOME]`) or through pytest (test_integration.py).
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from tbot_bot.support.path_resolver import BotHome

TRADE_FIELDS = (
    "timestamp",
    "strategy_name",
    "ticker",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "PnL",
    "broker",
    "error_code",
    "exit_reason",
)


def provision_demo_home(root: Path) -> BotHome:
    from tbot_bot.support.provision import ProvisionRequest, provision

    home = BotHome(root)
    provision(
        home,
        ProvisionRequest(
            broker="sim",
            entity="RGL",
            jurisdiction="USA",
            account="main",
            bot_id="TB01",
            float_amount="25000",
        ),
    )
    return home


def run_session(home: BotHome, day: date) -> int:
    from tbot_bot.runtime.main import Supervisor

    return Supervisor(home, replay_day=day).run()


def ledger_rows(home: BotHome) -> list[tuple[str, str, int, int]]:
    """(fitid, account, debit, credit) for every trading split: the books of a run, comparable across runs (the
    opening float's FITID carries its provisioning time, so float movements are compared by amount only)."""
    from tbot_bot.accounting.accounting_config import load_binding

    path = load_binding(home).ledger_path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT t.fitid, s.account_code, s.debit, s.credit FROM splits s JOIN transactions t ON t.id = s.transaction_id ORDER BY t.fitid, s.account_code, s.debit, s.credit"
        ).fetchall()
    return [
        ("FLOAT" if str(a).startswith("FLOAT-") else str(a), str(b), int(c), int(d)) for a, b, c, d in rows
    ]


def check_outputs(home: BotHome, day: date) -> list[str]:
    """Every output of a finished session; returns the problems found (empty = all good)."""
    from ofxtools.Parser import OFXTree

    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.accounting.ledger_verify import verify_ledger
    from tbot_bot.runtime.reports import report_paths

    problems: list[str] = []
    binding = load_binding(home)
    status = json.loads(home.status_json.read_text())
    if status["state"] != "closed":
        problems.append(f"status.json state is {status['state']}, expected closed")
    for key in (
        "state",
        "active_strategy",
        "windows",
        "counts",
        "positions",
        "realized_pnl",
        "broker",
        "api",
        "defense_mode",
        "kill_switch",
        "version",
        "updated_at",
    ):
        if key not in status:
            problems.append(f"status.json lacks {key}")
    from tbot_bot.accounting.ledger_anchor import AnchorStore

    anchors = AnchorStore.for_home(home)
    problems += [
        f"ledger: {p}"
        for p in verify_ledger(binding.ledger_path, anchors=anchors, backup_dir=binding.backup_dir)
    ]
    if not ledger_rows(home):
        problems.append("ledger has no trades")
    paths = report_paths(home, binding, day)
    tree = OFXTree()
    try:
        tree.parse(str(paths["ofx"]))
        tree.convert()
    except Exception as exc:  # any parser failure is a finding, reported with its message
        problems.append(f"OFX {paths['ofx']} does not parse: {exc}")
    with open(paths["trade_history_csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        problems.append("trade history CSV is empty")
    for f in TRADE_FIELDS:
        if rows and f not in rows[0]:
            problems.append(f"trade history lacks {f}")
    records = json.loads(Path(paths["trade_history_json"]).read_text())
    if len(records) != len(rows):
        problems.append("trade history CSV and JSON disagree")
    summary = json.loads(Path(paths["summary"]).read_text())
    if not summary:
        problems.append("daily summary is empty")
    for s in ("open", "mid", "close"):
        log = Path(paths["logs"]) / f"{s}.log"
        if not log.exists() or not log.read_text().strip():
            problems.append(f"{log} missing or empty")
    # the PnL people read is net of fees: the history's PnL (gross, the ledger's) minus its fees
    pnl_total = sum((Decimal(str(r["PnL"])) - Decimal(str(r["fees"] or 0)) for r in records), Decimal(0))
    # less the fees the broker posted apart from fills that day (the ledger's FEE transactions)
    from tbot_bot.accounting.ledger_read import account_fees

    pnl_total -= account_fees(binding.ledger_path, day.isoformat())
    if f"{pnl_total:.4f}" != status["realized_pnl"]:
        problems.append(
            f"status realised PnL {status['realized_pnl']} != trade history net total {pnl_total:.4f}"
        )
    return problems


def main(argv: list[str]) -> int:
    from rigd_tbot.commands.demo import DEMO_DAY

    root = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="tbot-itest-")) / "home"
    home = provision_demo_home(root) if not (root / ".env_bot.enc").exists() else BotHome(root)
    code = run_session(home, DEMO_DAY)
    problems = check_outputs(home, DEMO_DAY)
    for p in problems:
        print(f"FAIL {p}")
    print(f"integration run in {root}: exit {code}, {len(problems)} problems")
    return 0 if code == 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def unmark_booked(home: BotHome, day: date) -> None:
    """As if the process died after the day's books were written but before the day was marked finished: the
    next start resumes the day (a booked day is otherwise refused), which is how a restart is replayed here."""
    from tbot_bot.runtime.order_journal import OrderJournal

    journal = OrderJournal(home.state_dir / "journal.db")
    try:
        journal.delete_value(f"booked:{day.isoformat()}")
    finally:
        journal.close()


def provision_alpaca(root: Path, server_url: str, monkeypatch: Any, *, paper: bool = True) -> BotHome:
    """An Alpaca home (paper unless told) whose broker and data URLs are a fake server on 127.0.0.1; the screener's
    Finnhub URL points at a closed port (these homes never screen)."""
    from rigd_tbot.cli import main

    for key, value in {
        "ALPACA_API_KEY": "test-key", "ALPACA_SECRET_KEY": "test-secret", "ALPACA_BASE_URL": server_url,
        "ALPACA_DATA_URL": server_url, "ALPACA_PAPER": "true" if paper else "false",
        "FINNHUB_API_KEY": "test-finnhub", "FINNHUB_BASE_URL": "http://127.0.0.1:9/api/v1",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    args = [
        "provision",
        "--home",
        str(root),
        "--broker",
        "alpaca",
        "--entity",
        "RGL",
        "--jurisdiction",
        "USA",
    ]
    assert main([*args, "--account", "main", "--bot-id", "TB01", "--float", "2500"]) == 0
    assert main(["secrets", "set", "screener", "--from-env", "--home", str(root)]) == 0
    return BotHome(root)
