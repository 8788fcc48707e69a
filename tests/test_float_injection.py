"""The float is in the bot ledger (issue 12 item 2): provisioning and later injections post to both ledgers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_ledger_fixtures import account_balances

from tbot_bot.accounting.accounting_config import load_binding
from tbot_bot.accounting.float_injection import inject_float
from tbot_bot.accounting.float_ledger import broker_current_float
from tbot_bot.accounting.ledger_anchor import AnchorStore
from tbot_bot.accounting.ledger_verify import verify_ledger
from tbot_bot.errors import LedgerError
from tbot_bot.support.path_resolver import BotHome

D = Decimal


def test_provisioning_posts_the_opening_float_into_the_bot_ledger(provisioned_home: Path) -> None:
    binding = load_binding(BotHome(provisioned_home))
    assert broker_current_float(binding.float_ledger_path) == D("2500")
    assert account_balances(binding.ledger_path) == {"1030": D("2500"), "3010": D("-2500")}


def test_inject_float_posts_both_ledgers_once_and_returns_go_back(provisioned_home: Path) -> None:
    home = BotHome(provisioned_home)
    binding = load_binding(home)
    at = datetime(2011, 2, 1, 13, tzinfo=UTC)
    first = inject_float(binding, D("500.25"), posted_at=at, fitid="ACCT-42", home=home)
    assert (first.float_ledger.written, first.bot_ledger.written) == (1, 1)
    again = inject_float(
        binding, D("500.25"), posted_at=at, fitid="ACCT-42", home=home
    )  # a retry after a crash
    assert (again.float_ledger.written, again.bot_ledger.written) == (0, 0)
    inject_float(binding, D("200"), posted_at=at, fitid="ACCT-43", returned=True, home=home)
    assert broker_current_float(binding.float_ledger_path) == D("2800.25")
    assert account_balances(binding.ledger_path) == {"1030": D("2800.25"), "3010": D("-2800.25")}
    anchors = AnchorStore.for_home(home)
    for path in (binding.ledger_path, binding.float_ledger_path):
        assert verify_ledger(path, anchors=anchors, backup_dir=binding.backup_dir) == []


@pytest.mark.parametrize("amount", [D(0), D("-5"), 12.5, D("0.00001")])
def test_inject_float_refuses_bad_amounts_and_writes_nothing(provisioned_home: Path, amount: object) -> None:
    home = BotHome(provisioned_home)
    binding = load_binding(home)
    with pytest.raises(LedgerError):
        inject_float(binding, amount, posted_at=datetime(2011, 2, 1, tzinfo=UTC), home=home)  # type: ignore[arg-type]
    assert account_balances(binding.ledger_path)["1030"] == D("2500")
    assert broker_current_float(binding.float_ledger_path) == D("2500")


def test_no_reports_for_a_non_trading_day(provisioned_home: Path) -> None:
    from tbot_bot.config.settings_bot import load_settings
    from tbot_bot.runtime.reports import write_reports

    home = BotHome(provisioned_home)
    events: list[tuple[str, str]] = []
    ctx = SimpleNamespace(
        binding=load_binding(home),
        settings=load_settings(home),
        session_date=date(2011, 1, 17),  # Martin Luther King Jr. Day: NYSE closed
        day_key="2011-01-17",
        home=home,
        log=SimpleNamespace(event=lambda who, what, **kw: events.append((who, what))),
    )
    assert write_reports(ctx, exported=False) is None  # type: ignore[arg-type]
    assert events == [("supervisor", "reports_skipped")]
    scope = ctx.binding.scope
    summaries = home.summaries_dir(scope)
    assert not summaries.exists() or not any(summaries.iterdir())
    exports = home.bot_output_dir(scope) / "exports"
    assert not exports.exists() or not list(exports.iterdir())
