"""Issue 26: every change of the encrypted config goes through one writer with a lock and compare-and-swap.
Admins approving and rejecting one proposal while others save settings, all at the same moment: exactly one
decision, no change lost, every refused save names the newer version; the CLI and the library refuse a stale
write the same way."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from fixtures_web import Clock, build_home, fresh_token, login, settings_form
from helpers import template_text
from test_web_proposals import summary

from rigd_tbot.cli import main
from tbot_bot.config import settings_bot
from tbot_bot.config.env_bot import parse_env_text
from tbot_bot.config.settings_bot import (
    StaleConfigError,
    audit_records,
    config_version,
    read_env_text,
    save_env_text,
    update_env_values,
)
from tbot_bot.core import users as users_mod
from tbot_bot.core.audit import recent_user_activity
from tbot_bot.optimizer import proposals as store
from tbot_bot.support.path_resolver import BotHome
from tbot_web.py.portal_web import create_app

APPROVERS, REJECTERS, SAVERS = 4, 2, 3
NEWER = re.compile(r"now version ([0-9a-f]{16})")


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def home(tmp_path: Path) -> BotHome:
    home = build_home(tmp_path / "home")
    save_env_text(home, template_text(), actor="test")
    results = home.root / "backtest_results" / "strategy_tuning" / "run-a"
    results.mkdir(parents=True)
    store.write_proposal(home, summary("run-a", 0.004), results)
    return home


def live(home: BotHome) -> dict[str, str]:
    return parse_env_text(read_env_text(home))[0]


@pytest.mark.parametrize("round_no", range(3))
def test_approvals_rejections_and_saves_at_once_lose_nothing(home: BotHome, round_no: int) -> None:
    app = create_app(
        home.root, testing=True, clock=Clock(), config_overrides={"LOGIN_RATE_LIMIT": "1000/minute"}
    )
    clients = []
    for _ in range(APPROVERS + REJECTERS + SAVERS):
        client = app.test_client()
        assert login(client, "admin").status_code == 302
        clients.append(client)
    forms: list[dict[str, str]] = []
    for i, client in enumerate(clients):
        if i < APPROVERS + REJECTERS:
            forms.append({"csrf_token": fresh_token(client), "reason": f"no {i}"})
        else:  # each saver read the settings page before anyone acted, and changes its own value
            forms.append(settings_form(client, value__SLIPPAGE_MEAN_PCT=f"0.{i + 1}"))
    read_version = config_version(read_env_text(home))
    barrier = threading.Barrier(len(clients))
    results: dict[int, Any] = {}

    def act(i: int) -> None:
        client = clients[i]
        barrier.wait()
        if i < APPROVERS:
            results[i] = client.post("/proposals/run-a/approve", data=forms[i])
        elif i < APPROVERS + REJECTERS:
            results[i] = client.post("/proposals/run-a/reject", data=forms[i])
        else:
            results[i] = client.post("/settings", data=forms[i])

    threads = [threading.Thread(target=act, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    # exactly one decision, recorded once
    doc = store.load_proposal(home, "run-a")
    decisions = [json.loads(x) for x in (home.root / "logs" / "optimizer_audit.log").read_text().splitlines()]
    assert len(decisions) == 1 and decisions[0]["action"] == doc["status"] != "pending"
    events = [a["event"] for a in recent_user_activity(home, 200)]
    assert events.count("proposal_approved") + events.count("proposal_rejected") == 1
    # the decision is what the config says: approved means the proposal's value is live
    values = live(home)
    assert values["STRAT_OPEN_BUFFER"] == ("0.004" if doc["status"] == "approved" else "0.002")

    # saves: each either landed and is live, or was refused naming a version newer than the one it read
    saved = [i for i in range(APPROVERS + REJECTERS, len(clients)) if results[i].status_code == 302]
    refusals = [i for i in range(APPROVERS + REJECTERS, len(clients)) if results[i].status_code == 409]
    assert len(saved) + len(refusals) == SAVERS and len(saved) <= 1
    if saved:
        assert values["SLIPPAGE_MEAN_PCT"] == f"0.{saved[0] + 1}"
    else:
        assert values["SLIPPAGE_MEAN_PCT"] == "0.15"
    known_versions = {r.get("version") for r in audit_records(home)}
    for i in refusals:
        page = results[i].get_data(as_text=True)
        assert "changed by" in page and "reload" in page
        newer = NEWER.search(page)
        assert newer and newer.group(1) != read_version and newer.group(1) in known_versions
    # every config save is in the audit log once: the first save, the approval (if any), the landed save
    assert len(audit_records(home)) == 1 + (doc["status"] == "approved") + len(saved)


def test_concurrent_library_writes_never_lose_a_change(home: BotHome) -> None:
    """Threads setting different keys without a read version: each read-modify-write happens under the lock."""
    keys = {"MAX_PE_RATIO": "41", "MAX_DEBT_EQUITY": "1.5", "SLIPPAGE_MEAN_PCT": "0.2", "API_TIMEOUT": "12"}
    barrier = threading.Barrier(len(keys))

    def set_one(key: str, value: str) -> None:
        barrier.wait()
        update_env_values(home, {key: value}, actor=f"thread {key}")

    threads = [threading.Thread(target=set_one, args=kv) for kv in keys.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    values = live(home)
    assert {k: values[k] for k in keys} == keys


def test_stale_write_is_refused_with_who_and_when(home: BotHome) -> None:
    read = config_version(read_env_text(home))
    update_env_values(home, {"MAX_PE_RATIO": "42"}, actor="cli:alice")
    with pytest.raises(
        StaleConfigError, match=r"changed by cli:alice at 20\d\d-.*now version [0-9a-f]{16}.*reload"
    ):
        update_env_values(home, {"MAX_DEBT_EQUITY": "1"}, actor="web:bob", expected_version=read)
    assert live(home)["MAX_PE_RATIO"] == "42" and live(home)["MAX_DEBT_EQUITY"] == "2.5"


def test_config_edit_saved_while_someone_else_saved_is_refused(
    home: BotHome, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tbot config edit`: another save lands while the editor is open; the edit is refused, exit 2."""
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\n"
        "from tbot_bot.config.settings_bot import update_env_values\n"
        "from tbot_bot.support.path_resolver import BotHome\n"
        f"update_env_values(BotHome(pathlib.Path({str(home.root)!r})), {{'MAX_PE_RATIO': '43'}}, actor='web:carol')\n"
        "p = pathlib.Path(sys.argv[1]); p.write_text(p.read_text().replace('MAX_DEBT_EQUITY=2.5', 'MAX_DEBT_EQUITY=3'))\n"
    )
    import sys

    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    assert main(["config", "edit", "--home", str(home.root)]) == 2
    err = capsys.readouterr().err
    assert "changed by web:carol at" in err and "reload" in err
    assert live(home)["MAX_PE_RATIO"] == "43" and live(home)["MAX_DEBT_EQUITY"] == "2.5"


def test_config_edit_with_a_binary_result_is_refused(
    home: BotHome, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    editor = tmp_path / "binary_editor.py"
    editor.write_text(
        "import sys, pathlib\npathlib.Path(sys.argv[1]).write_bytes(b'\\xff\\xfe\\x00binary')\n"
    )
    import sys

    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.delenv("VISUAL", raising=False)
    before = home.env_bot_enc.read_bytes()
    assert main(["config", "edit", "--home", str(home.root)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8 text" in err and "nothing was saved" in err and "Unexpected" not in err
    assert home.env_bot_enc.read_bytes() == before


def test_env_key_rotation_waits_for_the_config_lock(home: BotHome) -> None:
    from tbot_bot.config.key_rotation import rotate

    order: list[str] = []
    with settings_bot.config_lock(home):
        t = threading.Thread(target=lambda: (rotate(home, "env"), order.append("rotated")))
        t.start()
        t.join(0.3)
        order.append("save done")  # a save holding the lock finishes before the rotation starts
    t.join(30)
    assert order == ["save done", "rotated"]
    assert live(home)["MAX_PE_RATIO"] == "50"  # still readable with the new key
