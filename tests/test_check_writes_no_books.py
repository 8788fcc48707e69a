"""`tbot check` runs start's boot but never writes the books: an accounting-API float that disagrees with the
float ledger is reported as the injection `tbot start` will make, and both ledgers stay byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fakes.accounting_server import FakeAccountingServer
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from rigd_tbot.commands.demo import DEMO_DAY
from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.support.decrypt_secrets import save_secret_json


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_reports_a_float_disagreement_without_injecting_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    home = provision_demo_home(tmp_path / "home")  # float ledger: 25,000
    binding = load_binding(home)
    with FakeAccountingServer(float_amount="30000.00") as acct:
        save_secret_json(
            home, "acct_api_credentials", {"ACCT_API_URL": acct.url, "ACCT_API_TOKEN": "test-token"}
        )
        before = {p: _digest(p) for p in (binding.ledger_path, binding.float_ledger_path)}
        code = main(["check", "--home", str(home.root), "--replay", DEMO_DAY.isoformat()])
        acct.wait_idle()
    out = capsys.readouterr()
    assert code == 0, out.err
    assert {p: _digest(p) for p in before} == before
    logs = "".join(p.read_text() for p in home.logs_dir(binding.scope).glob("*.log"))
    assert "tbot start will inject the difference" in logs
