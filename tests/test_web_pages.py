"""Dashboard pages: status JSON, charts, logs filters, settings validation, control files, user admin,
password reset, auditor views."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from fixtures_web import (
    PASSWORDS,
    Clock,
    FakeSettingsApi,
    build_home,
    fresh_token,
    login,
    settings_form,
    settings_text,
    status_payload,
    system_events,
    write_status,
)
from helpers import template_text

from tbot_bot.core import users as users_mod
from tbot_bot.core.audit import recent_user_activity
from tbot_bot.runtime.control import SupervisorLock
from tbot_web.py.portal_web import create_app

PENDING_ID = "TB01-20110118-open-SPY-1"


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def home(tmp_path):
    return build_home(tmp_path / "home")


@pytest.fixture
def api():
    return FakeSettingsApi(settings_text())


def client_for(home, role, api=None):
    app = create_app(
        home.root, testing=True, settings_api=api or FakeSettingsApi(settings_text()), clock=Clock()
    )
    client = app.test_client()
    login(client, role)
    return client


def post(client, path, **data):
    return client.post(path, data={"csrf_token": fresh_token(client), **data})


def test_status_json_has_the_live_fields_and_is_small(home):
    client = client_for(home, "viewer")
    resp = client.get("/api/status")
    body = resp.get_json()
    assert len(resp.data) < 10_000
    for key in (
        "state",
        "active_strategy",
        "windows",
        "counts",
        "positions",
        "realized_pnl",
        "broker",
        "api",
        "defense_mode",
        "kill_switch",
        "updated_at",
        "age_seconds",
        "stop_requested",
    ):
        assert key in body
    assert body["positions"][0]["unrealized_pnl"] == "1.20" and body["age_seconds"] == 0.0


def test_status_json_stays_under_10kb_with_many_positions(home):
    position = status_payload()["positions"][0]
    write_status(home, status_payload(positions=[dict(position, symbol=f"S{i:03d}") for i in range(500)]))
    resp = client_for(home, "viewer").get("/api/status")
    body = resp.get_json()
    assert len(resp.data) < 10_000
    assert body["positions_total"] == 500 and body["truncated"] is True


def test_status_without_daemon_says_so(home):
    home.status_json.unlink()
    client = client_for(home, "viewer")
    assert client.get("/api/status").get_json()["state"] == "unknown"
    assert "daemon has not started" in client.get("/status").get_data(as_text=True)
    home.status_json.write_text("{not json")
    assert "not valid JSON" in client.get("/api/status").get_json()["error"]


def test_status_page_renders_fields_and_charts(home):
    client = client_for(home, "viewer")
    html = client.get("/status").get_data(as_text=True)
    for text in ("12.34", "SPY", "127.50", "SIM healthy", "armed", PENDING_ID):
        assert text in html
    assert 'id="stop-button"' not in html and "Confirm</button>" not in html  # a viewer gets no controls
    svg = client.get("/charts/pnl.svg")
    assert svg.mimetype == "image/svg+xml"
    root = ET.fromstring(svg.data)
    bars = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) == 3 and bars[1].get("fill") == "#c62828"  # mid lost money
    # each bar's value in cents, as the status card shows it (the file holds exact amounts)
    write_status(
        home, {**status_payload("trading"), "realized_pnl_by_strategy": {"open": "-3.0003", "mid": "2.665"}}
    )
    root = ET.fromstring(client.get("/charts/pnl.svg").data)
    labels = [t.text for t in root.findall("{http://www.w3.org/2000/svg}text")]
    assert "-3.00" in labels and "2.66" in labels and "0.00" in labels and "-3.0003" not in labels
    assert client.get("/charts/other.svg").status_code == 404


def test_status_page_names_an_outage_and_a_stale_feed_with_both_times(home):
    broker = {"name": "SIM", "healthy": False, "last_error": "refused", "maintenance": False,
              "down_since": "2011-01-18T15:40:00+00:00", "resumed_at": None}  # fmt: skip
    feed = {"stale": True, "window": "mid", "since": "2011-01-18T15:42:00+00:00",
            "last_bar_at": "2011-01-18T15:39:00+00:00"}  # fmt: skip
    bot = {"entity": "RGL", "bot_id": "TB01", "mode": "paper", "exchange_tz": "America/New_York"}
    write_status(home, status_payload("trading", broker=broker, market_data=feed, bot=bot))
    client = client_for(home, "viewer")
    html = client.get("/status").get_data(as_text=True)
    outage = "broker outage since 2011-01-18 10:40 EST / 15:40Z: new entries wait, the broker is probed"
    stale = (
        "market data stale in the MID window at 2011-01-18 10:42 EST / 15:42Z (last bar 2011-01-18 10:39 EST / "
        "15:39Z): no new entries for the rest of that window"
    )
    assert outage in html and stale in html
    assert client.get("/api/status").get_json()["conditions"] == [
        outage,
        stale,
    ]  # what the page's script shows
    write_status(home, status_payload("idle"))  # nothing wrong: no list at all
    assert client.get("/api/status").get_json()["conditions"] == []


def test_operator_sees_controls_and_confirms_a_pending_order(home):
    client = client_for(home, "operator")
    html = client.get("/status").get_data(as_text=True)
    assert 'id="stop-button"' in html and "Confirm</button>" in html
    assert post(client, f"/control/confirm/{PENDING_ID}").status_code == 302
    content = home.path("control", "confirm", PENDING_ID).read_text()
    assert content == "2011-01-18T15:00:00+00:00 web:operator\n"
    assert any(e["event"] == "order_confirmed" for e in system_events(home))


def test_a_confirmation_the_supervisor_would_not_act_on_is_refused_not_reported_done(home):
    """After Pause (or Stop, or a tripped kill switch) the dashboard answered "Order ... confirmed." and the
    supervisor abandoned the entry; and an entry a stop abandoned stayed offered in status.json all day. The
    journal decides, and a confirmation that would not be acted on is refused with why (a dashboard review)."""
    import os
    import sqlite3
    import stat

    from tbot_bot.runtime.control import request_pause

    client = client_for(home, "operator")
    request_pause(home, "operator")
    post(client, f"/control/confirm/{PENDING_ID}")
    assert not home.path("control", "confirm").exists()
    page = client.get("/status").get_data(as_text=True)
    assert "would not be sent: entries are paused" in page and "a pending entry is abandoned" in page
    home.path("control", "control_pause.txt").unlink()
    # the journal says the entry was abandoned (a stop cancelled it): still listed in status.json, never confirmed
    journal = home.state_dir / "journal.db"
    assert not journal.exists()  # the fixture's home ran nothing: a table of the columns the check reads
    journal.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(journal) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS intents (client_order_id TEXT PRIMARY KEY, status TEXT, note TEXT)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO intents (client_order_id, status, note) VALUES (?, 'abandoned', 'manual stop')",
            (PENDING_ID,),
        )
    post(client, f"/control/confirm/{PENDING_ID}")
    assert not home.path("control", "confirm").exists()
    assert "status abandoned: manual stop" in client.get("/status").get_data(as_text=True)
    # what the dashboard does write is the bot user's alone, as the CLI writes it
    with sqlite3.connect(journal) as conn:
        conn.execute("DELETE FROM intents")
    assert post(client, f"/control/confirm/{PENDING_ID}").status_code == 302
    written = home.path("control", "confirm", PENDING_ID)
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600


def test_confirming_an_order_that_is_not_pending_writes_nothing(home):
    client = client_for(home, "operator")
    post(client, "/control/confirm/TB01-unknown")
    assert not home.path("control", "confirm").exists()
    assert post(client, "/control/confirm/..%2F..%2Fetc").status_code in (400, 404)


def test_stop_file_content_and_banner(home):
    client = client_for(home, "admin")
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-18")  # a supervisor runs in this home
    try:
        assert post(client, "/control/stop").status_code == 302
    finally:
        lock.release()
    assert home.control_stop.read_text() == "2011-01-18T15:00:00+00:00 web:admin\n"
    assert client.get("/api/status").get_json()["stop_requested"] is True


def test_stop_with_nothing_running_says_so_and_writes_nothing(home):
    client = client_for(home, "operator")
    post(client, "/control/stop")
    assert not home.control_stop.exists()
    assert "nothing to stop" in client.get("/status").get_data(as_text=True)


def test_confirming_an_expired_order_is_refused_as_the_cli_does(home):
    payload = status_payload()
    payload["pending_confirmations"][0]["expires_at"] = "2011-01-18T14:59:00+00:00"  # one minute before now
    write_status(home, payload)
    client = client_for(home, "operator")
    post(client, f"/control/confirm/{PENDING_ID}")
    assert not home.path("control", "confirm").exists()
    assert "expired" in client.get("/status").get_data(as_text=True)


def test_logs_filter_by_strategy_and_level(home):
    client = client_for(home, "viewer")
    entries = client.get("/api/logs?strategy=mid&level=warning").get_json()["entries"]
    assert [(e["strategy"], e["level"]) for e in entries] == [("mid", "warning"), ("mid", "error")]
    everything = client.get("/api/logs").get_json()["entries"]
    assert len(everything) == 12
    html = client.get("/logs?strategy=close&level=error").get_data(as_text=True)
    assert "close-error" in html and "close-warning" not in html and "open-error" not in html


def test_settings_page_masks_secrets(home, api):
    client = client_for(home, "admin", api)
    html = client.get("/settings").get_data(as_text=True)
    assert 'name="value__MAX_TRADES" value="4"' in html
    secret_line = next(line for line in template_text().splitlines() if line.startswith("MAX_PE_RATIO="))
    secret_value = secret_line.split("=", 1)[1].split("#")[0].strip()
    assert not re.search(rf'value="{re.escape(secret_value)}"', html.split("value__MAX_PE_RATIO", 1)[1][:200])
    assert "********" in html


def test_settings_valid_change_is_saved_and_audited(home, api):
    client = client_for(home, "admin", api)
    resp = client.post(
        "/settings", data=settings_form(client, value__MAX_TRADES="2", value__WEIGHTS="0.5,0.5")
    )
    assert resp.status_code == 302
    assert api.saved == [({"MAX_TRADES": "2", "WEIGHTS": "0.5,0.5"}, "web:admin")]
    assert any(e["event"] == "settings_changed" and "MAX_TRADES" in e["detail"] for e in system_events(home))
    assert 'name="value__MAX_TRADES" value="2"' in client.get("/settings").get_data(as_text=True)


def test_settings_invalid_change_shows_errors_and_saves_nothing(home, api):
    client = client_for(home, "admin", api)
    before = api.text
    resp = client.post(
        "/settings", data=settings_form(client, value__MAX_TRADES="3")
    )  # WEIGHTS still has 4 slots
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "Nothing was saved" in html and "WEIGHTS" in html
    assert 'name="value__MAX_TRADES" value="3"' in html  # the admin's input is kept for correction
    assert api.text == before and api.saved == []
    resp = client.post(
        "/settings", data=settings_form(client, value__MAX_TRADES="4\nDISABLE_ALL_TRADES=false")
    )
    assert resp.status_code == 400 and api.saved == []


def test_settings_blank_secret_keeps_value(home, api):
    client = client_for(home, "admin", api)
    resp = client.post("/settings", data=settings_form(client, value__MAX_PE_RATIO=""))
    assert resp.status_code == 302 and api.saved == []


def test_admin_user_management(home):
    client = client_for(home, "admin")
    html = client.get("/users").get_data(as_text=True)
    assert '<option value="viewer" selected>' in html  # DEFAULT_USER_ROLE preselected
    # sign-ins and activity as every time people read: the date and seconds, no raw ISO with microseconds
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(Z| E[SD]T / [^<]*Z)</td>", html)
    assert not re.search(r"<td>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+", html)
    resp = post(client, "/users/add", username="newbie", role="auditor", password="x", password_confirm="x")
    assert resp.status_code == 400 and "at least 10 characters" in resp.get_data(as_text=True)
    assert (
        post(
            client,
            "/users/add",
            username="newbie",
            role="auditor",
            password="new-user-pass",
            password_confirm="new-user-pass",
        ).status_code
        == 302
    )
    assert users_mod.get_user(home, "newbie").role == "auditor"
    post(client, "/users/newbie/role", role="operator")
    assert users_mod.get_user(home, "newbie").role == "operator"
    post(client, "/users/newbie/active", active="0")
    assert users_mod.get_user(home, "newbie").is_active is False
    events = {e["event"] for e in system_events(home)}
    assert {"user_added", "user_role_changed", "user_disabled"} <= events


def test_reset_token_flow_through_the_web(home):
    admin = client_for(home, "admin")
    html = post(admin, "/users/viewer/reset-token").get_data(as_text=True)
    token = re.search(r"<code>([^<]+)</code>", html).group(1)
    assert token not in admin.get("/users").get_data(as_text=True)  # shown once only
    anon = create_app(
        home.root, testing=True, settings_api=FakeSettingsApi(settings_text()), clock=Clock()
    ).test_client()
    data = {"token": token, "password": "fresh-password-1", "password_confirm": "fresh-password-1"}
    assert post(anon, "/reset", **data).status_code == 302
    assert login(anon, "viewer", "fresh-password-1").status_code == 302
    assert post(anon, "/reset", **data).status_code == 400  # single use
    other = create_app(home.root, testing=True, settings_api=FakeSettingsApi(settings_text()), clock=Clock())
    assert login(other.test_client(), "viewer", PASSWORDS["viewer"]).status_code == 401


def test_auditor_views(home):
    client = client_for(home, "auditor")
    trades = client.get("/trades").get_data(as_text=True)
    assert "QQQ" in trades and "2.70" in trades and "-1.00" in trades
    ledger = client.get("/ledger").get_data(as_text=True)
    assert "RGL_2011-01-18.ofx" in ledger
    ofx = client.get("/ledger/ofx/RGL_2011-01-18.ofx")
    assert ofx.data.startswith(b"OFXHEADER") and "attachment" in ofx.headers["Content-Disposition"]
    assert client.get("/ledger/ofx/..%2F..%2F.env").status_code == 404
    assert any(e["event"] == "ofx_download" for e in recent_user_activity(home))


def test_ledger_summary_reads_the_bound_ledger_read_only(home, monkeypatch):
    import sqlite3

    from tbot_web.py import readers_web

    ledger = home.root / "entities" / "RGL_USA" / "ledgers" / "bot" / "RGL_USA_main_SIM_TB01_BOT_ledger.db"
    ledger.parent.mkdir(parents=True)
    con = sqlite3.connect(ledger)
    con.execute("CREATE TABLE trades (id INTEGER)")
    con.executemany("INSERT INTO trades VALUES (?)", [(1,), (2,)])
    con.commit()
    con.close()
    monkeypatch.setattr(readers_web, "bot_files", lambda h: readers_web.BotFiles("RGL_USA_SIM_TB01", ledger))
    resp = client_for(home, "auditor").get("/ledger")
    html = resp.get_data(as_text=True)
    # a file that is not a bot ledger is named and said unreadable; the page still renders
    assert resp.status_code == 200 and "RGL_USA_main_SIM_TB01_BOT_ledger.db" in html
    assert "the ledger cannot be read" in html


def test_status_json_endpoint_is_compact_json(home):
    resp = client_for(home, "viewer").get("/api/status")
    assert resp.mimetype == "application/json"
    # no indentation and no padding after separators: what a poller fetches every few seconds
    assert resp.data.strip() == json.dumps(json.loads(resp.data), separators=(",", ":")).encode()


def test_confirm_refused_when_confirmation_is_off(home):
    client = client_for(home, "operator", FakeSettingsApi(settings_text(TRADE_CONFIRMATION_REQUIRED="false")))
    resp = post(client, f"/control/confirm/{PENDING_ID}")
    assert resp.status_code == 302
    assert not home.path("control", "confirm").exists()
    assert "TRADE_CONFIRMATION_REQUIRED=false" in client.get("/status").get_data(as_text=True)


def test_app_refuses_a_home_without_core_databases(tmp_path):
    from tbot_bot.errors import ConfigError

    with pytest.raises(ConfigError, match="tbot db init"):
        create_app(tmp_path, testing=True)


def test_status_page_marks_an_inverse_etf_position_long_and_bearish(home):
    position = dict(
        status_payload()["positions"][0], symbol="SH", side="long", direction="bearish", tag="InverseETF"
    )
    write_status(home, status_payload(positions=[position]))
    html = client_for(home, "viewer").get("/status").get_data(as_text=True)
    assert "<td>SH</td>" in html and "<td>long (bearish)</td>" in html
    assert client_for(home, "viewer").get("/api/status").get_json()["positions"][0]["direction"] == "bearish"


def test_the_trial_balance_lines_add_up_to_its_totals(home, monkeypatch, tmp_path):
    """Each line was rounded to the cent apart from the total, so the lines of a ledger holding 1/10,000 amounts
    (fractional shares, fees) did not add up to the total shown (an accountant's review): shown at the ledger's
    precision, they do, and debits equal credits."""
    from decimal import Decimal

    from test_ledger_fixtures import at, fill, new_ledger

    from tbot_bot.accounting.account_transaction import entries_for_fill
    from tbot_web.py import readers_web

    ledger, writer = new_ledger(tmp_path)
    fills = [
        fill("F1", qty=Decimal("13.1821"), price=Decimal("37.97"), fee=Decimal("0.0107"), posted_at=at(14, 45)),
        fill("F2", action="close", qty=Decimal("13.1821"), price=Decimal("38.6033"), entry_price=Decimal("37.97"),
             fee=Decimal("0.0214"), exit_reason="timeout", posted_at=at(15, 5)),
    ]  # fmt: skip
    writer.ingest([e for f in fills for e in entries_for_fill(f)])
    monkeypatch.setattr(readers_web, "bot_files", lambda h: readers_web.BotFiles("RGL_USA_SIM_TB01", ledger))
    summary = readers_web.ledger_summary(home)
    assert summary["error"] is None and summary["balanced"]
    for column in (2, 3):
        lines = sum((Decimal(row[column]) for row in summary["balance"]), Decimal(0))
        assert lines == Decimal(summary["totals"][column - 2])
    assert any(Decimal(row[2]) != Decimal(row[2]).quantize(Decimal("0.01")) for row in summary["balance"])
    assert summary["totals"][0] == summary["totals"][1]
