"""Read-only SQLite opens go through one percent-encoded URI: a home whose path holds `?`, `#` or `%` reads its own
files (spliced in raw, `?` began the URI's query, `#` its fragment and `%41` read as `A`)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from test_ledger_fixtures import fill, new_ledger

from tbot_bot.accounting.account_transaction import entries_for_fill
from tbot_bot.reporting.ledger_trades import read_trades
from tbot_bot.support.utils_bot import readonly_uri


@pytest.mark.parametrize("folder", ["desk?2", "desk#2", "desk%41"])
def test_a_ledger_under_an_odd_folder_name_is_read_read_only(tmp_path: Path, folder: str) -> None:
    home = tmp_path / folder
    home.mkdir()
    ledger, writer = new_ledger(home)
    writer.ingest(entries_for_fill(fill("E1", qty=Decimal(10), price=Decimal("100"))))
    (trade,) = read_trades(ledger)
    assert (trade.ticker, trade.size, trade.exit_time) == ("AAPL", Decimal(10), None)
    with sqlite3.connect(readonly_uri(ledger), uri=True) as conn:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM splits")
    # nothing is created where the raw path's prefix pointed
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
