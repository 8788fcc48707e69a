"""Backtests charge the sim's fees (SIM_FEE_PROFILE, trading/fees.py): per trade PnL before fees, fees and net PnL;
metrics, daily summary, trade history and report on net; --no-fees for a gross-only run."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from helpers import has_exponent_notation, template_text, with_values

from rigd_tbot.cli import main as tbot
from tbot_bot.support.path_resolver import package_file
from tbot_bot.trading.fees import FeeSchedule

SAMPLE = package_file("data", "sample")
D = Decimal


def _run(tmp_path: Path, name: str, *extra: str, **keys: object) -> Path:
    env = tmp_path / f"{name}.env"
    env.write_text(with_values(template_text(), **keys), encoding="utf-8")
    out = tmp_path / name
    argv = ["backtest", "--strategy", "open", "--start", "2011-01-03", "--end", "2011-01-07", "--quiet"]
    argv += ["--data-source", str(SAMPLE), "--out", str(out), "--env-file", str(env), "--home", str(tmp_path)]
    assert tbot([*argv, *extra]) == 0
    return out


def test_backtest_outputs_carry_fees_and_metrics_use_net(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SIM_FEE_PROFILE=custom, SIM_COMMISSION_PER_ORDER=5 with the template's per-share, minimum and regulatory keys
    out = _run(tmp_path, "net", SIM_FEE_PROFILE="custom", SIM_COMMISSION_PER_ORDER="5")
    captured = capsys.readouterr()
    printed = captured.out
    history = json.loads((out / "trade_history_backtest.json").read_text())
    assert len(history) >= 2
    schedule = FeeSchedule(
        per_share=D("0.005"), per_order=D(5), minimum=D("1.00"), sec_fee_rate=D("0.0000278"),
        taf_per_share=D("0.000166"), taf_max=D("8.30"),
    )  # fmt: skip
    for r in history:
        fees = schedule.round_trip(
            D(r["size"]), D(r["entry_price"]), D(r["exit_price"]), short=r["side"] == "short"
        )
        assert D(r["fees"]) == fees >= D(10)  # two orders at 5.00 each at least
        assert D(r["net_PnL"]) == D(r["PnL"]) - fees
    csv = pd.read_csv(out / "trade_history_backtest.csv", dtype=str)
    assert list(csv["fees"]) == [r["fees"] for r in history]
    # every number in the export in positional notation (a float's 2.02e-05 is no figure for a person)
    assert not has_exponent_notation(csv)
    assert all(D(x) > 0 for x in csv["strength"])
    gross = sum((D(r["PnL"]) for r in history), D(0))
    fees_total = sum((D(r["fees"]) for r in history), D(0))
    net = gross - fees_total
    metrics = json.loads((out / "metrics.json").read_text())
    # money in metrics.json is exact: the trade history's sums, as decimal strings
    assert D(metrics["total_pnl"]) == net and D(metrics["total_fees"]) == fees_total
    assert metrics["wins"] == sum(1 for r in history if D(r["net_PnL"]) > 0)
    daily = json.loads((out / "daily_summary_backtest.json").read_text())
    assert sum((D(d["fees"]) for d in daily), D(0)) == fees_total
    assert sum((D(d["net_PnL"]) for d in daily), D(0)) == net
    md = (out / "report.md").read_text()
    cent = D("0.01")
    assert (
        f"| PnL before fees | {gross.quantize(cent):,} |" in md
        and f"| fees | {fees_total.quantize(cent):,} |" in md
    )
    assert f"| {gross.quantize(cent):,} | {fees_total.quantize(cent):,} | {net.quantize(cent):,} |" in md
    html = (out / "report.html").read_text()
    assert "<th>fees</th>" in html and "<th>net PnL</th>" in html
    assert f"PnL {net.quantize(cent):,}," in printed and f"fees:    {fees_total.quantize(cent):,} " in printed
    # the profile in force is printed and reported; the smallest order (default float 100,000 x 0.02 x 0.2 = 400:
    # 80 shares at MIN_PRICE 5) pays 0.40 + 5.00 each way, + 0.02 SEC + 0.02 TAF on the sale: 10.84 = 2.71%
    assert metrics["fee_profile"].startswith("SIM_FEE_PROFILE=custom: 0.005/share, 5/order, min 1.00")
    assert "fee profile " + metrics["fee_profile"] in printed
    assert f"| fee profile | {metrics['fee_profile']} |" in md
    [warning] = metrics["fee_warnings"]
    assert "pays an expected 10.84 in fees" in warning and "2.71% of its notional" in warning
    assert "SIM_FEE_PROFILE" in warning and "SIM_COMMISSION_PER_ORDER" in warning
    assert f"warning: {warning}" in captured.err and warning in md

    # --no-fees: the same trades, gross only
    out = _run(tmp_path, "gross", "--no-fees", SIM_FEE_PROFILE="custom", SIM_COMMISSION_PER_ORDER="5")
    free = json.loads((out / "trade_history_backtest.json").read_text())
    assert [r["PnL"] for r in free] == [r["PnL"] for r in history]
    assert all(D(r["fees"]) == 0 and r["net_PnL"] == r["PnL"] for r in free)
    metrics = json.loads((out / "metrics.json").read_text())
    assert D(metrics["total_pnl"]) == gross and D(metrics["total_fees"]) == 0
    assert metrics["fee_profile"].startswith("none") and metrics["fee_warnings"] == []
