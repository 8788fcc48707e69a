"""`tbot accounting sync`: resumable, idempotent push of the bot ledger to the accounting API (issue 14)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fakes.accounting_server import FakeAccountingServer

from rigd_tbot.cli import main
from tbot_bot.accounting.account_transaction import TradeFill, entries_for_fill
from tbot_bot.accounting.accounting_api import LedgerWriter
from tbot_bot.accounting.accounting_config import LedgerBinding, load_binding
from tbot_bot.accounting.acct_client import AccountingClient, AcctApiConfig
from tbot_bot.accounting.ledger_sync import sync_ledger, transactions_after
from tbot_bot.config.retry import RetryPolicy
from tbot_bot.errors import LedgerError, NetworkError
from tbot_bot.support.decrypt_secrets import save_secret_json
from tbot_bot.support.path_resolver import BotHome

T0 = datetime(2011, 1, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
def acct() -> Iterator[FakeAccountingServer]:
    with FakeAccountingServer() as srv:
        yield srv
        srv.wait_idle()


def _trades(binding: LedgerBinding, n: int) -> list[str]:
    """n round trips of SPY (buy, sell with a fee) written through the ingestion API; returns every FITID of the
    ledger in order (the opening float injection first)."""
    entries = []
    for i in range(n):
        common = dict(strategy="open", ticker="SPY", signal_ticker="SPY", side="long", instrument="equity",
                      broker="SIM", tag=None, leverage_multiplier=None, session_id="TB01-2011-01-10",
                      currency_code="USD")  # fmt: skip
        buy = TradeFill(fitid=f"B{i}", action="open", qty=Decimal(2), price=Decimal("127.5"), fee=Decimal(0),
                        posted_at=T0 + timedelta(minutes=i), client_order_id=f"B{i}", exit_reason=None, **common)  # type: ignore[arg-type]  # fmt: skip
        sell = TradeFill(fitid=f"S{i}", action="close", qty=Decimal(2), price=Decimal("128.25"), fee=Decimal("0.35"),
                         posted_at=T0 + timedelta(minutes=i, seconds=30), client_order_id=f"S{i}",
                         exit_reason="timeout", entry_price=Decimal("127.5"), **common)  # type: ignore[arg-type]  # fmt: skip
        entries += entries_for_fill(buy) + entries_for_fill(sell)
    LedgerWriter(binding.ledger_path, binding.backup_dir, 5, binding.coa_path).ingest(entries)
    with sqlite3.connect(f"file:{binding.ledger_path}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute("SELECT fitid FROM transactions ORDER BY id")]


def _client(srv: FakeAccountingServer, retries: int = 0) -> AccountingClient:
    from tbot_bot.accounting.accounting_config import BotIdentity

    return AccountingClient(
        AcctApiConfig(srv.url, "test-token", 0.5),
        BotIdentity("RGL", "USA", "main", "SIM", "TB01"),
        retry=RetryPolicy(retries=retries, sleep=lambda s: None),
    )


def test_lost_reply_mid_run_then_rerun_sends_each_fitid_once(
    provisioned_home: Path, acct: FakeAccountingServer
) -> None:
    binding = load_binding(BotHome(provisioned_home))
    fitids = _trades(binding, 4)  # the float, then 4 buys, 4 sells, 4 fees: 13 transactions
    assert len(fitids) == 13
    # the second batch is applied, then its connection dropped; no retry allowed, so the run stops there
    acct.inject("POST", "/v1/bots/TB01/ledger/transactions", "drop_after", skip=1)
    client = _client(acct, retries=0)
    with pytest.raises(NetworkError):
        sync_ledger(client, binding, batch_size=5)
    assert list(acct.transactions) == fitids[:10]  # applied although the reply was lost
    again = sync_ledger(client, binding, batch_size=5)  # resumes from the accounting system's cursor
    assert (again.pushed, again.duplicates, again.batches, again.last_fitid) == (3, 0, 1, fitids[-1])
    assert list(acct.transactions) == fitids
    assert sync_ledger(client, binding, batch_size=5).batches == 0  # nothing left: nothing sent
    tx = acct.transactions["S0"]
    assert tx["pnl"] == "1.5000" and {s["account_code"] for s in tx["splits"]} == {"1030", "1110", "4010"}
    assert all(isinstance(s["debit"], str) for s in tx["splits"])  # money as decimal strings


def test_a_retried_batch_is_deduplicated_by_the_receiver(
    provisioned_home: Path, acct: FakeAccountingServer
) -> None:
    binding = load_binding(BotHome(provisioned_home))
    fitids = _trades(binding, 2)
    acct.inject("POST", "/v1/bots/TB01/ledger/transactions", "status_after", status=502)
    result = sync_ledger(_client(acct, retries=2), binding, batch_size=100)
    assert (result.pushed, result.batches) == (7, 1)  # the retry carried the same key: applied once
    assert acct.count("POST", "/v1/bots/TB01/ledger/transactions") == 2 and list(acct.transactions) == fitids


def test_a_cursor_this_ledger_does_not_hold_is_refused(provisioned_home: Path) -> None:
    binding = load_binding(BotHome(provisioned_home))
    _trades(binding, 1)
    with pytest.raises(LedgerError, match="acknowledges FITID 'ZZZ'.*does not hold"):
        transactions_after(binding.ledger_path, "ZZZ", 10)


def test_cli_sync_and_its_wrapper(
    provisioned_home: Path, acct: FakeAccountingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    home = BotHome(provisioned_home)
    assert main(["accounting", "sync", "--home", str(provisioned_home)]) == 2
    assert "tbot secrets set acct_api" in capsys.readouterr().err
    save_secret_json(home, "acct_api_credentials", {"ACCT_API_URL": acct.url, "ACCT_API_TOKEN": "test-token"})
    fitids = _trades(load_binding(home), 2)
    assert main(["accounting", "sync", "--home", str(provisioned_home), "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert f"7 new, 0 already there, 2 batch(es); acknowledged up to {fitids[-1]}" in out
    wrapper = Path(__file__).resolve().parents[1] / "support" / "sync_to_accounting.py"
    done = subprocess.run([sys.executable, str(wrapper), "--home", str(provisioned_home)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 new, 0 already there, 0 batch(es)" in done.stdout
    assert main(["accounting", "sync", "--home", str(provisioned_home), "--batch-size", "0"]) == 2


def _snapshot(paths: list[Path], into: Path) -> None:
    """Consistent copies of SQLite files (online backup) and plain copies of the rest."""
    import shutil

    into.mkdir()
    for n, path in enumerate(paths):
        if path.suffix == ".db":
            src, dst = sqlite3.connect(path), sqlite3.connect(into / f"{n}")
            src.backup(dst)
            dst.close()
            src.close()
        else:
            shutil.copy2(path, into / f"{n}")


def _roll_back(paths: list[Path], snapshot: Path) -> None:
    import shutil

    for n, path in enumerate(paths):
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        shutil.copy2(snapshot / f"{n}", path)


def test_rolling_back_every_local_anchor_is_caught_by_the_acknowledged_head(
    provisioned_home: Path, acct: FakeAccountingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tbot_bot.accounting.ledger_anchor import sidecar_path

    home = BotHome(provisioned_home)
    binding = load_binding(home)
    save_secret_json(home, "acct_api_credentials", {"ACCT_API_URL": acct.url, "ACCT_API_TOKEN": "test-token"})
    writer = LedgerWriter.for_home(home, binding.ledger_path, binding, 5)
    fill = dict(strategy="open", ticker="SPY", signal_ticker="SPY", side="long", instrument="equity", broker="SIM",
                tag=None, leverage_multiplier=None, session_id="TB01-2011-01-10", currency_code="USD")  # fmt: skip
    buy = TradeFill(fitid="B0", action="open", qty=Decimal(2), price=Decimal("127.5"), fee=Decimal(0),
                    posted_at=T0, client_order_id="B0", exit_reason=None, **fill)  # type: ignore[arg-type]  # fmt: skip
    writer.ingest(entries_for_fill(buy))
    local = [binding.ledger_path, sidecar_path(binding.ledger_path, binding.backup_dir), home.core_db("LEDGER_STATUS"),
             home.state_dir / "acct_sync.json"]  # fmt: skip
    assert main(["accounting", "sync", "--home", str(home.root)]) == 0
    _snapshot(local, tmp_path / "before")
    sell = TradeFill(fitid="S0", action="close", qty=Decimal(2), price=Decimal("128.25"), fee=Decimal("0.35"),
                     posted_at=T0 + timedelta(minutes=5), client_order_id="S0", exit_reason="timeout",
                     entry_price=Decimal("127.5"), **fill)  # type: ignore[arg-type]  # fmt: skip
    writer.ingest(entries_for_fill(sell))
    writer.anchors.close()  # type: ignore[union-attr]
    assert main(["accounting", "sync", "--home", str(home.root)]) == 0
    assert acct.head["last_fitid"] == "S0-FEE"
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0
    capsys.readouterr()

    _roll_back(local, tmp_path / "before")  # the ledger, its sidecar, LEDGER_STATUS.db and the sync record
    assert main(["ledger", "verify", "--home", str(home.root)]) == 1
    out = capsys.readouterr().out
    assert "behind the head the accounting system acknowledged" in out and "'S0-FEE'" in out
    day = ["--replay", "2011-01-10", "--home", str(home.root)]
    for command in (["check", *day], ["start", *day]):
        assert main(command) == 2, command
        assert "the accounting system acknowledged" in capsys.readouterr().err

    acct.stop()  # unreachable: verify says which anchor it could not consult, and falls back to the local record
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0
    assert "off-machine anchor not consulted: the accounting API did not answer" in capsys.readouterr().out
