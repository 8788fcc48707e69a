"""Reading a long-lived ledger: the trade history (`read_trades`, behind `tbot trades`, the summaries and the
position check) and planning a correction (`plan_correction`, which pairs an entry with its exit the same way),
over N round trips of one instrument with their fee entries (default 2,500: ten years of one ticker at one trade
a day, 10,000 transactions).

Both once read a row per row: the history's fee sub-query could use no index and planning resolved each row's
corrections with queries of their own (most of a minute and ~6 s at 2,500 round trips). Prints seconds per call.

Run: .venv/bin/python benchmarks/bench_ledger_reads.py [--trips N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_ledger_fixtures import at, fill, new_ledger  # noqa: E402

from tbot_bot.accounting.account_transaction import entries_for_fill  # noqa: E402
from tbot_bot.accounting.ledger_correction import plan_correction  # noqa: E402
from tbot_bot.errors import UsageError  # noqa: E402
from tbot_bot.reporting.ledger_trades import read_trades  # noqa: E402


def build(folder: Path, trips: int) -> Path:
    ledger, writer = new_ledger(folder)
    entries = []
    for i in range(trips):
        day = timedelta(days=i)
        entries += entries_for_fill(
            fill(f"E{i}", ticker="SH", posted_at=at(14, 45) + day, fee=Decimal("0.01"))
        )
        entries += entries_for_fill(
            fill(
                f"X{i}", ticker="SH", action="close", price=Decimal("191"), entry_price=Decimal("190.25"),
                exit_reason="timeout", posted_at=at(15, 10) + day, fee=Decimal("0.01"),
            )
        )  # fmt: skip
    writer.ingest(entries)
    return ledger


def timed(call: object) -> float:
    t0 = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=2500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = build(Path(tmp), args.trips)
        middle = f"E{args.trips // 2}"
        trades: list[object] = []

        def history() -> None:
            trades[:] = read_trades(ledger)

        def amount() -> None:
            plan_correction(ledger, middle, reason="bench", user="u", source="bench", amount=Decimal("1905"))

        def reverse() -> None:
            try:
                plan_correction(ledger, middle, reason="bench", user="u", source="bench")
            except UsageError:
                pass  # refused: its exit stands (the pairing is what is timed)

        report = {
            "round_trips": args.trips,
            "read_trades_s": round(timed(history), 3),
            "trades_read": len(trades),
            "plan_amount_correction_s": round(timed(amount), 3),
            "plan_reversal_s": round(timed(reverse), 3),
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
