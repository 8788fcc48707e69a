"""Issue 21 point 1: one PnL (net of fees) and one win (net > 0) on every surface a person reads for a day:
status.json, `tbot status`, `tbot trades`, the daily summary, `tbot logs summary`, the trade history and the
dashboard's status API all agree with the ledger's net result, rounded to cents for people."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.cli import main
from tbot_bot.core import users as users_mod
from tbot_bot.domain.results import cents, is_win, net_pnl
from tbot_bot.runtime.main import Supervisor
from tbot_bot.support.path_resolver import BotHome

DAY = date(2011, 1, 26)


@pytest.fixture(scope="module")
def day_home(tmp_path_factory: pytest.TempPathFactory) -> BotHome:
    home = provision_demo_home(tmp_path_factory.mktemp("truth") / "home")
    assert Supervisor(home, replay_day=DAY).run() == 0
    return home


def _cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_every_surface_reads_the_same_net_pnl_and_wins(
    day_home: BotHome, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(day_home.root)
    trades = _cli_json(["trades", "--home", home, "--date", DAY.isoformat(), "--format", "json"], capsys)
    assert isinstance(trades, dict)
    totals = trades["totals"]
    net, gross, fees = Decimal(totals["net_pnl"]), Decimal(totals["pnl"]), Decimal(totals["fees"])
    assert net == net_pnl(gross, fees) and fees > 0
    wins = totals["wins"]
    # the wins are counted on each trade's net result
    rows = trades["trades"]
    assert wins == sum(1 for r in rows if is_win(Decimal(r["pnl"]) - Decimal(r["fees"])))

    status = json.loads(day_home.status_json.read_text())
    assert Decimal(status["net_pnl"]) == Decimal(status["realized_pnl"]) == net
    assert Decimal(status["gross_pnl"]) == gross and Decimal(status["fees"]) == fees
    by_strategy = sum((Decimal(v) for v in status["realized_pnl_by_strategy"].values()), Decimal(0))
    assert by_strategy == net  # the per-strategy figures are net too
    # the broker's money after the day: read after the last fill, so flat cash is the float plus the day's net
    # (the sim keeps sub-cent amounts; status shows cents)
    money = status["money"]
    assert money["open_exposure"] == "0.00" and money["equity"] == money["cash"]
    assert abs(Decimal(money["equity"]) - (Decimal(money["float"]) + net)) <= Decimal("0.005")

    capsys.readouterr()
    assert main(["status", "--home", home]) == 0
    assert f"PnL        net {cents(net):.2f} today (gross {cents(gross):.2f}, fees {cents(fees):.2f})" in (
        capsys.readouterr().out
    )

    summary_file = next(day_home.output_dir.rglob(f"daily_summary_{DAY.isoformat()}.json"))
    summary = json.loads(summary_file.read_text())["totals"]
    assert Decimal(summary["net_pnl"]) == net and summary["wins"] == wins

    logs = _cli_json(["logs", "summary", "--home", home, "--json"], capsys)
    assert isinstance(logs, dict)
    per = logs["trades"].values()
    assert sum(t["wins"] for t in per) == wins
    assert cents(sum((Decimal(t["net_pnl"]) for t in per), Decimal(0))) == cents(net)

    history = json.loads(next(day_home.output_dir.rglob("*trade_history.json")).read_text())
    assert sum((net_pnl(Decimal(r["PnL"]), Decimal(r["fees"])) for r in history), Decimal(0)) == net

    # the dashboard's status API: the same net figure, in cents
    from tbot_web.py.portal_web import create_app

    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    monkeypatch.setattr("sys.stdin", io.StringIO("viewer-password-1\n"))
    assert main(["users", "add", "--home", home, "--username", "viewer", "--role", "viewer"]) == 0
    client = create_app(Path(home), testing=True).test_client()
    from fixtures_web import fresh_token

    login = {"username": "viewer", "password": "viewer-password-1", "csrf_token": fresh_token(client)}
    assert client.post("/login", data=login).status_code == 302
    api = client.get("/api/status").get_json()
    assert api["realized_pnl"] == f"{cents(net):.2f}" and api["fees"] == f"{cents(fees):.2f}"
    assert "Net PnL (after fees)" in client.get("/status").get_data(as_text=True)
    # the Trades page's per-strategy table: net, in cents, as status.json's per-strategy figures
    monkeypatch.setattr("sys.stdin", io.StringIO("auditor-password-1\n"))
    assert main(["users", "add", "--home", home, "--username", "auditor", "--role", "auditor"]) == 0
    auditor = create_app(Path(home), testing=True).test_client()
    login = {"username": "auditor", "password": "auditor-password-1", "csrf_token": fresh_token(auditor)}
    assert auditor.post("/login", data=login).status_code == 302
    page = auditor.get("/trades").get_data(as_text=True).split("By strategy")[1].split("</table>")[0]
    for strategy, value in status["realized_pnl_by_strategy"].items():
        assert f"<td>{strategy}</td>" in page and f"<td>{cents(Decimal(value)):.2f}</td>" in page

    # the one-day backtest of the same day (all windows, the home's float and fee profile) books the same
    out = day_home.root / "bt"
    argv = [
        "backtest",
        "--home",
        home,
        "--strategy",
        "all",
        "--start",
        DAY.isoformat(),
        "--end",
        DAY.isoformat(),
    ]
    capsys.readouterr()
    assert main([*argv, "--out", str(out), "--no-plots", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    net_metric = metrics.get("total_pnl", metrics.get("metrics", {}).get("total_pnl"))
    assert cents(Decimal(str(net_metric))) == cents(net)  # the backtest's PnL is net of fees
    assert metrics.get("wins", metrics.get("metrics", {}).get("wins")) == wins


def test_a_trade_that_wins_before_fees_and_loses_after_is_a_loss() -> None:
    gross, fees = Decimal("0.50"), Decimal("1.00")
    assert not is_win(net_pnl(gross, fees)) and cents(net_pnl(gross, fees)) == Decimal("-0.50")
