"""The dashboard's optimizer proposals: every role reads them; only an admin approves or rejects, with a CSRF
token; approval goes through the encrypted config path and is audited."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from fixtures_web import Clock, build_home, fresh_token, login, system_events
from helpers import template_text
from markupsafe import escape

from tbot_bot.config.settings_bot import load_settings, save_env_text
from tbot_bot.core import users as users_mod
from tbot_bot.core.audit import recent_user_activity
from tbot_bot.optimizer.evidence import decide
from tbot_bot.optimizer.proposals import write_proposal
from tbot_bot.support.path_resolver import BotHome
from tbot_web.py.portal_web import create_app


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


def summary(run_id: str, buffer: float, dsr: float = 0.987654) -> dict:
    """A run's summary as `results.summarise` makes it, its verdict from the one `decide` (significant unless
    `dsr` is below 0.95)."""
    oos = {"total_pnl": 12.5, "sharpe": 1.5}
    pick = {"fold": 2, "trial": 3, "is_start": "2011-01-03", "is_end": "2011-01-18",
            "params": {"STRAT_OPEN_BUFFER": buffer}, "fold_objectives": [1.5123456]}  # fmt: skip
    return {
        "run_id": run_id, "strategy": "open", "algorithm": "grid_search", "objective": "sharpe",
        "pick": {**pick, "oos_all": oos, "oos_objective": 1.5123456},
        "current": {"oos_all": oos, "oos_objective": 0.7}, "verdict": decide("sharpe", pick, [0.7], {"dsr": dsr}),
        "walk_forward_efficiency": 0.8, "deflated_sharpe": {"dsr": dsr},
        "folds": [{"fold": 2, "oos_start": "2011-01-19", "oos_end": "2011-03-02", "oos": oos}],
    }  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> BotHome:
    home = build_home(tmp_path / "home")
    save_env_text(home, template_text(), actor="test")  # an encrypted config, as on a provisioned bot
    for run_id, buffer, dsr in (
        ("run-a", 0.004, 0.987654),
        ("run-b", 0.006, 0.987654),
        ("run-c", 0.008, 6.4e-6),
    ):
        results = home.root / "backtest_results" / "strategy_tuning" / run_id
        results.mkdir(parents=True)
        (results / "report.html").write_text("<html>report</html>")
        # the runner's warning for a key another window reads (runner.other_windows)
        warnings = [f"STRAT_OPEN_BUFFER is read by the CLOSE window too ({run_id})"]
        write_proposal(home, summary(run_id, buffer, dsr), results, warnings=warnings)
    return home


def client_for(home: BotHome, role: str):  # noqa: ANN201
    client = create_app(home.root, testing=True, clock=Clock()).test_client()
    login(client, role)
    return client


def test_every_role_reads_only_admin_decides(home: BotHome) -> None:
    viewer = client_for(home, "viewer")
    listing = viewer.get("/proposals").get_data(as_text=True)
    assert "run-a" in listing and "STRAT_OPEN_BUFFER 0.002&rarr;0.004" in listing
    page = viewer.get("/proposals/run-a").get_data(as_text=True)
    statement = summary("run-a", 0.004)["verdict"]["statement"]
    assert statement.startswith("Recommend trial 3, the in-sample best of fold 2 (2011-01-03..2011-01-18)")
    assert str(escape(statement)) in page and "approve-form" not in page
    assert "<b>Warning:</b> STRAT_OPEN_BUFFER is read by the CLOSE window too (run-a)" in page
    # numbers for people: 4 significant digits
    assert "deflated Sharpe probability 0.9877" in page and "1.512" in page and "1.5123456" not in page
    assert viewer.get("/proposals/run-a/files/report.html").data == b"<html>report</html>"
    assert viewer.get("/proposals/nope").status_code == 404
    for role in ("viewer", "operator", "auditor"):
        c = client_for(home, role)
        resp = c.post("/proposals/run-a/approve", data={"csrf_token": fresh_token(c)})
        assert resp.status_code == 403
    assert load_settings(home).STRAT_OPEN_BUFFER == 0.002
    admin = client_for(home, "admin")
    assert "approve-form" in admin.get("/proposals/run-a").get_data(as_text=True)
    # a run that filed no improvement: its statement, and nothing to approve even for an admin
    kept = admin.get("/proposals/run-c").get_data(as_text=True)
    statement = summary("run-c", 0.008, 6.4e-6)["verdict"]["statement"]
    assert statement.startswith("Keep the current settings") and "6.4e-06 is below 0.95" in statement
    assert str(escape(statement)) in kept and "approve-form" not in kept and "keep_current" in kept
    resp = admin.post("/proposals/run-c/approve", data={"csrf_token": fresh_token(admin)})
    assert resp.status_code == 302 and "nothing to approve" in admin.get("/proposals/run-c").get_data(
        as_text=True
    )
    assert load_settings(home).STRAT_OPEN_BUFFER == 0.002
    # no CSRF token: refused, nothing changes
    assert admin.post("/proposals/run-a/approve", data={}).status_code == 400
    assert load_settings(home).STRAT_OPEN_BUFFER == 0.002


def test_admin_approves_and_rejects_with_audit(home: BotHome) -> None:
    admin = client_for(home, "admin")
    resp = admin.post("/proposals/run-a/approve", data={"csrf_token": fresh_token(admin)})
    assert resp.status_code == 302
    assert load_settings(home).STRAT_OPEN_BUFFER == 0.004
    assert list((home.versioned_env_dir).glob(".env_bot.enc.*"))  # the previous config is kept
    doc = json.loads((home.versioned_env_dir / "proposals" / "run-a.json").read_text())
    assert doc["status"] == "approved" and doc["decision"]["actor"] == "web:admin"
    assert "approved" in admin.get("/proposals/run-a").get_data(as_text=True)
    events = system_events(home)
    assert any(
        e["event"] == "proposal_approved" and "STRAT_OPEN_BUFFER 0.002->0.004" in e["detail"] for e in events
    )
    assert any(a["event"] == "proposal_approved" for a in recent_user_activity(home))
    # run-b was made against 0.002: now stale, approval is refused and explained, nothing changes
    admin.post("/proposals/run-b/approve", data={"csrf_token": fresh_token(admin)})
    page = admin.get("/proposals/run-b").get_data(as_text=True)
    assert "changed since this proposal was made" in page
    assert load_settings(home).STRAT_OPEN_BUFFER == 0.004
    resp = admin.post("/proposals/run-b/reject", data={"csrf_token": fresh_token(admin), "reason": "stale"})
    assert resp.status_code == 302
    doc = json.loads((home.versioned_env_dir / "proposals" / "run-b.json").read_text())
    assert doc["status"] == "rejected" and doc["decision"]["reason"] == "stale"
    audit = [json.loads(x) for x in (home.root / "logs" / "optimizer_audit.log").read_text().splitlines()]
    assert [(a["run_id"], a["action"]) for a in audit] == [("run-a", "approved"), ("run-b", "rejected")]


def test_a_study_of_other_base_values_or_another_float_is_not_approved_without_force(
    home: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """A study run on an --env-file scored its candidate against that file's value of the tuned key, yet the
    proposal showed the live value as "old" and approve applied it silently; a study sized from another float
    (--float) was approved silently too (a researcher's review)."""
    from rigd_tbot.cli import main as tbot
    from tbot_bot.config.settings_bot import read_env_text
    from tbot_bot.optimizer.proposals import approve, load_proposal

    live = load_settings(home)
    studied = live.model_copy(update={"STRAT_OPEN_BUFFER": 0.003})  # what the --env-file said
    results = home.root / "backtest_results" / "strategy_tuning" / "run-e"
    results.mkdir(parents=True)
    write_proposal(home, {**summary("run-e", 0.004), "float": "25000"}, results, studied)
    [change] = load_proposal(home, "run-e")["changes"]
    assert (change["old"], change["live"], change["new"]) == ("0.003", "0.002", "0.004")  # old: what it beat
    before = read_env_text(home)
    with pytest.raises(
        Exception, match="evaluated other values than the live config's for STRAT_OPEN_BUFFER"
    ):
        approve(home, "run-e", actor="t")
    assert read_env_text(home) == before
    # the float the study sized from, shown, and checked against the home's
    capsys.readouterr()
    assert tbot(["optimize", "show", "run-e", "--home", str(home.root)]) == 0
    assert "float: 25000 (the study's" in capsys.readouterr().out
    with pytest.raises(Exception, match="sized its trades from a float of 25000, the home's is 2500"):
        approve(home, "run-e", actor="t", home_float=Decimal("2500"))
    assert approve(home, "run-e", actor="t", force=True)  # a person who knows may still apply it


def test_a_trial_approved_by_number_is_what_show_and_list_name(
    home: BotHome, capsys: pytest.CaptureFixture[str]
) -> None:
    """`approve --trial N` applied trial N while show and list went on naming the candidate's changes and
    evidence as what was approved (a researcher's review)."""
    from rigd_tbot.cli import main as tbot

    results = home.root / "backtest_results" / "strategy_tuning" / "run-a"
    (results / "trials.csv").write_text("fold,trial,STRAT_OPEN_BUFFER\n2,0,0.009\n2,3,0.004\n")
    capsys.readouterr()
    assert tbot(["optimize", "approve", "run-a", "--trial", "0", "--home", str(home.root), "--force"]) == 0
    out = capsys.readouterr().out
    assert "warning: trial 0 is applied as asked; the proposal's evidence" in out
    assert tbot(["optimize", "show", "run-a", "--home", str(home.root)]) == 0
    assert (
        "applied trial 0 (not the candidate above, whose evidence this is): STRAT_OPEN_BUFFER 0.002 -> 0.009"
        in (capsys.readouterr().out)
    )
    assert tbot(["optimize", "list", "--home", str(home.root)]) == 0
    assert "trial 0 applied: STRAT_OPEN_BUFFER 0.002->0.009" in capsys.readouterr().out
