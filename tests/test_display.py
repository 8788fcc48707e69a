"""Tables for people: a number is never cut short, however many text columns compete for the width."""

from __future__ import annotations

import io

from rigd_tbot.display import print_table


def test_money_columns_are_never_truncated_when_the_table_is_wider_than_the_output() -> None:
    headers = ["day", "ticker", "note", "PnL", "fees"]
    rows = [
        ["2011-01-25", "SYN8", "x" * 120, "-1234.5678", "2.02"],
        ["2011-01-26", "SH (SYN5)", "y" * 90, "0.80", "8.10"],
    ]
    out = io.StringIO()  # not a terminal
    print_table(
        "trades", headers, rows, footer=["TOTAL", "", "", "-1233.7678", "10.12"], right=(3, 4), file=out
    )
    text = out.getvalue()
    for money in ("-1234.5678", "0.80", "2.02", "8.10", "-1233.7678", "10.12"):
        assert money in text
    assert "x" * 120 in text and "…" not in text  # a file or pipe gets the whole table
