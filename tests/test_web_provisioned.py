"""The dashboard on a provisioned home with the real config API, ledger binding and `tbot users add`."""

from __future__ import annotations

import io

import pytest
from fixtures_web import fresh_token, settings_form, status_payload, write_status

from rigd_tbot.cli import main
from tbot_bot.core import users as users_mod
from tbot_bot.support.path_resolver import BotHome
from tbot_web.py.portal_web import create_app


@pytest.fixture
def home(provisioned_home, monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    for name, role in (("boss", "admin"), ("watcher", "viewer")):
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{name}-password-1\n"))
        assert (
            main(["users", "add", "--home", str(provisioned_home), "--username", name, "--role", role]) == 0
        )
    return BotHome(provisioned_home)


def signed_in(home, name):
    client = create_app(home.root, testing=True).test_client()
    token = fresh_token(client)
    resp = client.post(
        "/login", data={"username": name, "password": f"{name}-password-1", "csrf_token": token}
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return client


def test_cli_users_add_defaults_to_default_user_role(home, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("plain-password-1\n"))
    assert main(["users", "add", "--home", str(home.root), "--username", "plain"]) == 0
    assert users_mod.get_user(home, "plain").role == "viewer"  # DEFAULT_USER_ROLE in the template


def test_settings_edit_re_encrypts_and_refuses_invalid(home):
    client = signed_in(home, "boss")
    assert 'name="value__MAX_TRADES"' in client.get("/settings").get_data(as_text=True)
    before = home.env_bot_enc.read_bytes()
    resp = client.post("/settings", data=settings_form(client, value__MAX_TRADES="3"))
    assert resp.status_code == 400 and "WEIGHTS" in resp.get_data(as_text=True)
    assert home.env_bot_enc.read_bytes() == before
    resp = client.post(
        "/settings",
        data=settings_form(client, value__MAX_TRADES="2", value__WEIGHTS="0.5,0.5"),
    )
    assert resp.status_code == 302
    assert home.env_bot_enc.read_bytes() != before
    assert b"MAX_TRADES" not in home.env_bot_enc.read_bytes()  # still encrypted
    from tbot_bot.config.settings_bot import load_settings

    assert load_settings(home).MAX_TRADES == 2
    assert "web:boss" in (home.root / "logs" / "config_audit.log").read_text()


def test_ledger_view_uses_the_binding(home):
    import re

    client = signed_in(home, "boss")
    html = client.get("/ledger").get_data(as_text=True)
    assert "RGL_USA_main_SIM_TB01_BOT_ledger.db" in html
    # an accountant's view: the trial balance (equal totals, at the ledger's 1/10,000) and the newest transactions
    balance = html.split('id="trial-balance"')[1].split("</table>")[0]
    totals = re.findall(r'<th class="num">([0-9.,-]+)</th>', balance.split("<tfoot>")[1])
    assert len(totals) == 2 and totals[0] == totals[1] and totals[0] != "0.00"
    assert "<td>1030</td>" in balance and "does not balance" not in balance
    latest = html.split('id="latest-transactions"')[1].split("</table>")[0]
    assert "none yet" not in latest and "<td>1030</td>" not in latest
    # with the exchange's zone known (status.json), each posting is dated in exchange time and UTC
    write_status(home, status_payload("closed", bot={"bot_id": "TB01", "exchange_tz": "America/New_York"}))
    latest = client.get("/ledger").get_data(as_text=True).split('id="latest-transactions"')[1]
    assert "<th>Dated (exchange / UTC)</th>" in latest.split("</thead>")[0]
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d E[SD]T / (\d{4}-\d\d-\d\d )?\d\d:\d\dZ</td>", latest)


def test_ledger_view_lists_corrections_with_who_posted_them(home):
    import sqlite3

    from tbot_bot.accounting.accounting_config import load_binding

    ledger = load_binding(home).ledger_path
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as conn:
        (fitid,) = conn.execute("SELECT fitid FROM transactions").fetchone()
    argv = ["ledger", "correct", "--home", str(home.root), "--fitid", fitid, "--reverse", "--yes"]
    assert main([*argv, "--reason", "float booked twice by the accounting system"]) == 0
    html = signed_in(home, "boss").get("/ledger").get_data(as_text=True)
    table = html.split('id="corrections-table"')[1]
    assert f"{fitid}-REV" in table and "via tbot ledger correct" in table
    assert "float booked twice by the accounting system" in table


def test_an_admin_posts_a_correction_from_the_ledger_page_after_confirming(home, monkeypatch):
    import sqlite3

    from tbot_bot.accounting.accounting_config import load_binding
    from tbot_bot.core.audit import recent_user_activity

    ledger = load_binding(home).ledger_path

    def fitids() -> list[str]:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as conn:
            return [r[0] for r in conn.execute("SELECT fitid FROM transactions ORDER BY id")]

    (original,) = fitids()
    form = {"fitid": original, "kind": "amount", "value": "2400", "reason": "float was 2400"}
    assert signed_in(home, "watcher").post(
        "/ledger/correct", data={**form, "csrf_token": "x"}
    ).status_code in (400, 403)
    # a signed-in operator with a valid form and the confirmation still may not post: corrections are admin-only
    monkeypatch.setattr("sys.stdin", io.StringIO("ops-password-1\n"))
    assert main(["users", "add", "--home", str(home.root), "--username", "ops", "--role", "operator"]) == 0
    operator = signed_in(home, "ops")
    refused = operator.post(
        "/ledger/correct", data={**form, "confirm": "1", "csrf_token": fresh_token(operator)}
    )
    assert refused.status_code == 403 and fitids() == [original]
    admin = signed_in(home, "boss")
    assert 'id="correct-form"' in admin.get("/ledger").get_data(as_text=True)
    page = admin.post(
        "/ledger/correct", data={**form, "csrf_token": fresh_token(admin)}, follow_redirects=True
    )
    assert "Nothing posted yet" in page.get_data(as_text=True) and f"{original}-COR" in page.get_data(
        as_text=True
    )
    assert fitids() == [original]
    bad = {**form, "value": "24x", "confirm": "1", "csrf_token": fresh_token(admin)}
    assert "is not a number" in admin.post("/ledger/correct", data=bad, follow_redirects=True).get_data(
        as_text=True
    )
    # what the ledger's integers cannot hold, digits Decimal alone would read, and a leg to move with no account
    # to move it to: refused before anything is written (1e30 was an HTTP 500, 1e14 was posted)
    for value, extra, said in (
        ("1e30", {}, "must be a finite amount up to 1,000,000,000,000"),
        ("1e14", {}, "must be a finite amount up to 1,000,000,000,000"),
        ("１２", {}, "is not a number"),
        (
            "2400",
            {"from_account": "9999"},
            "&#39;From account&#39; only applies to &#39;move the non-cash leg to",
        ),
        # the form's own words, not `tbot ledger correct`'s options (a dashboard review)
        ("-5", {}, "the amount -5 must be positive"),
    ):
        odd = {**form, "value": value, **extra, "confirm": "1", "csrf_token": fresh_token(admin)}
        answer = admin.post("/ledger/correct", data=odd, follow_redirects=True)
        assert answer.status_code == 200 and said in answer.get_data(as_text=True), value
    assert fitids() == [original]
    done = {**form, "confirm": "1", "csrf_token": fresh_token(admin)}
    html = admin.post("/ledger/correct", data=done, follow_redirects=True).get_data(as_text=True)
    assert "Posted 2 correction entries" in html
    assert fitids() == [original, f"{original}-REV", f"{original}-COR"]
    assert "boss via dashboard" in html.split('id="corrections-table"')[1]
    assert any(
        a["event"] == "ledger_correction" and a["username"] == "boss" for a in recent_user_activity(home)
    )
    assert main(["ledger", "verify", "--home", str(home.root)]) == 0


def test_viewer_cannot_reach_settings(home):
    client = signed_in(home, "watcher")
    assert client.get("/settings").status_code == 403
    assert client.get("/status").status_code == 200
