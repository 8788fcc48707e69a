"""The dashboard's operator controls mean what they say (issue 22 points 3, 6, 7): a Start with no supervisor
says so and names the command that starts the service, writing nothing; Pause/Resume write and lift the pause
file (audited); every page carries the paper/live/replay badge; the status page shows the money figures."""

from __future__ import annotations

import re

import pytest
from fixtures_web import (
    Clock,
    FakeSettingsApi,
    build_home,
    fresh_token,
    login,
    settings_text,
    status_payload,
    system_events,
    write_status,
)

from tbot_bot.core import users as users_mod
from tbot_bot.runtime.control import SupervisorLock, mark_trading_stopped, pause_file
from tbot_web.py.portal_web import create_app


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)


@pytest.fixture
def home(tmp_path):
    return build_home(tmp_path / "home")


def client_for(home, role):
    app = create_app(home.root, testing=True, settings_api=FakeSettingsApi(settings_text()), clock=Clock())
    client = app.test_client()
    login(client, role)
    return client


def post(client, path):
    return client.post(path, data={"csrf_token": fresh_token(client)}, follow_redirects=True)


def test_start_with_no_supervisor_says_so_and_writes_nothing(home):
    client = client_for(home, "operator")
    page = client.get("/status").get_data(as_text=True)
    assert 'id="no-supervisor"' in page and "systemctl start tbot" in page
    html = post(client, "/control/start").get_data(as_text=True)
    assert "No supervisor is running" in html and "systemctl start tbot" in html
    assert "Start requested" not in html
    assert not home.control_start.exists()


def test_start_reaches_a_stopped_supervisor_and_not_a_trading_one(home):
    client = client_for(home, "operator")
    write_status(
        home, status_payload(bot={"bot_id": "TB01", "broker": "SIM", "exchange_tz": "America/New_York"})
    )
    lock = SupervisorLock.acquire(home, mode="live")
    try:
        html = post(client, "/control/start").get_data(as_text=True)
        assert "already trading" in html and not home.control_start.exists()
        mark_trading_stopped(home, "web:operator")
        html = post(client, "/control/start").get_data(as_text=True)
        assert "Start requested" in html and home.control_start.exists()
        assert "resumes trading within one polling interval" in html
        # since when, in exchange time and UTC as every time people read (it was UTC only: a dashboard review)
        assert re.search(r"live since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T / ", html)
        assert "web:operator" in home.control_start.read_text()
    finally:
        lock.release()
    assert any(e["event"] == "control_start" for e in system_events(home))
    home.control_start.unlink()
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-18")
    try:  # a replay resumes at its next window, not within a poll
        assert "resumes entries in the next window of its replay day" in post(
            client, "/control/start"
        ).get_data(as_text=True)
    finally:
        lock.release()


def test_pause_and_resume_from_the_dashboard(home):
    client = client_for(home, "operator")
    html = post(client, "/control/pause").get_data(as_text=True)
    assert "New entries paused from the next start" in html
    first = pause_file(home).read_text()
    assert "web:operator" in first
    # a second pause leaves the first one's stamp (who paused, when), as `tbot pause` does (a dashboard review)
    html = post(client_for(home, "admin"), "/control/pause").get_data(as_text=True)
    assert "New entries are already paused (" in html and "web:operator" in html
    assert pause_file(home).read_text() == first
    html = post(client, "/control/resume").get_data(as_text=True)
    assert "New entries resumed" in html and not pause_file(home).exists()
    html = post(client, "/control/resume").get_data(as_text=True)
    assert "not paused" in html
    events = [e["event"] for e in system_events(home)]
    assert events.count("control_pause") == 1 and events.count("control_resume") == 1
    # a viewer cannot pause
    viewer = client_for(home, "viewer")
    assert viewer.post("/control/pause", data={"csrf_token": fresh_token(viewer)}).status_code == 403
    assert not pause_file(home).exists()


def test_defense_clear_from_the_dashboard(home):
    """`tbot defense clear` had no dashboard control: an operator with only the dashboard could not end an
    automatic defense mode (a dashboard review)."""
    from tbot_bot.runtime.control import SupervisorLock, defense_clear_file

    client = client_for(home, "operator")
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-18")
    try:
        write_status(home, status_payload(defense_mode=False))
        assert "Defense mode is off: nothing to clear." in post(client, "/control/defense-clear").get_data(
            as_text=True
        )
        assert not defense_clear_file(home).exists()
        write_status(
            home, status_payload(defense_mode=True, defense_reason="carried over from 2011-01-14: ...")
        )
        page = client.get("/status").get_data(as_text=True)
        assert (
            "on (carried over from 2011-01-14: ...)" in page and "End defense mode for this session" in page
        )
        html = post(client, "/control/defense-clear").get_data(as_text=True)
    finally:
        lock.release()
    assert "Defense clear requested: the supervisor ends an automatic defense mode at its next poll" in html
    assert "web:operator" in defense_clear_file(home).read_text()
    assert "control_defense_clear" in [e["event"] for e in system_events(home)]
    viewer = client_for(home, "viewer")
    assert viewer.post("/control/defense-clear", data={"csrf_token": fresh_token(viewer)}).status_code == 403


@pytest.mark.parametrize("mode", ["paper", "live", "replay"])
def test_every_page_carries_the_mode_badge_from_the_status(home, mode):
    write_status(home, status_payload(bot={"bot_id": "TB01", "broker": "SIM", "mode": mode}))
    client = client_for(home, "admin")
    for path in ("/status", "/trades", "/logs", "/settings"):
        html = client.get(path).get_data(as_text=True)
        assert f'class="mode-badge mode-{mode}" id="trading-mode"' in html, path
        assert f">{mode.upper()}</span>" in html, path


def test_badge_without_a_status_is_derived_from_the_broker_settings(home):
    home.status_json.unlink(missing_ok=True)
    html = client_for(home, "viewer").get("/status").get_data(as_text=True)
    # BROKER_NAME=SIM outside a run: the simulated exchange only replays recorded days
    assert 'class="mode-badge mode-replay"' in html


def test_status_page_and_api_show_the_money(home):
    money = {
        "equity": "2512.40", "cash": "1803.10", "open_exposure": "709.30", "net_pnl_today": "12.40",
        "float": "2500.00", "session_cap": "2000.00", "account_read_at": "2011-01-18T15:00:00+00:00",
        "windows": {"open": {"trades": 2, "max_trades": 4, "cap_used": "709.30", "cap_available": "1290.70"}},
    }  # fmt: skip
    write_status(home, status_payload(money=money, paused="2011-01-18T14:50:00+00:00 cli:ops"))
    # no supervisor runs here: the pause shown is the pause file's (a running one publishes its own)
    pause_file(home).parent.mkdir(parents=True, exist_ok=True)
    pause_file(home).write_text("2011-01-18T14:50:00+00:00 cli:ops\n", encoding="utf-8")
    client = client_for(home, "operator")
    api = client.get("/api/status").get_json()
    assert (
        api["money"]["equity"] == "2512.40" and api["money"]["windows"]["open"]["cap_available"] == "1290.70"
    )
    assert api["paused"] == "2011-01-18T14:50:00+00:00 cli:ops"
    html = client.get("/status").get_data(as_text=True)
    for text in ('id="money-equity">2512.40', 'id="money-cash">1803.10', 'id="money-exposure">709.30',
                 'id="money-net">12.40', 'id="money-float">2500.00', "1290.70", 'id="entries-paused"'):  # fmt: skip
        assert text in html, text
    assert re.search(r'id="money-read-at">[^<]*15:00Z<', html)  # when the broker's figures were read
    # the pause stamp as `tbot status` shows it, not the raw ISO text (this status names no exchange zone: UTC)
    assert 'id="paused-text">2011-01-18 14:50:00Z cli:ops<' in html and "14:50:00+00:00 cli:ops" not in html


def test_a_sim_home_is_told_to_replay_not_to_start_the_service(tmp_path):
    """A simulated-exchange home only replays recorded days: the Start advice named `systemctl start tbot` and a
    plain `tbot start`, both of which refuse such a home."""
    from integration_test_runner import provision_demo_home

    from tbot_bot.runtime.control import start_answer, start_command

    sim = provision_demo_home(tmp_path / "sim")
    users_mod.add_user(sim, "operator", "an-operator-password", "operator", created_by="test")
    write_status(sim, status_payload())
    assert "--replay YYYY-MM-DD" in start_command(sim) and "systemctl" not in start_command(sim)
    assert "--replay YYYY-MM-DD" in start_answer(sim)[1]
    app = create_app(sim.root, testing=True, clock=Clock())
    client = app.test_client()
    login(client, "operator", "an-operator-password")
    page = client.get("/status").get_data(as_text=True)
    assert 'id="no-supervisor"' in page and "--replay YYYY-MM-DD" in page and "systemctl start" not in page


def test_a_position_reads_the_same_on_the_status_and_positions_pages(home):
    """The Positions page showed status.json's raw numbers (40.4500) and no "(bearish)" where Status showed 40.45
    and the signal's direction: one row format for both (status_values_web.position_row)."""
    write_status(
        home,
        status_payload(
            positions=[
                {
                    "symbol": "SH",
                    "strategy": "mid",
                    "side": "long",
                    "direction": "bearish",
                    "qty": "7.40190000",
                    "entry_price": "40.4500",
                    "last_price": "40.4800",
                    "unrealized_pnl": "0.2221",
                }
            ]
        ),  # fmt: skip
    )
    client = client_for(home, "operator")

    def row(page: str, table: str) -> str:
        body = page.split(f'id="{table}"')[1].split("</table>")[0]
        return re.sub(r"<[^>]+>", " ", body.split("SH", 1)[1].split("</tr>")[0]).split()

    status = row(client.get("/status").get_data(as_text=True), "positions-body")
    positions = row(client.get("/positions").get_data(as_text=True), "held-table")
    assert positions == status and "(bearish)" in positions and "40.45" in positions, (status, positions)


def test_a_change_stands_and_is_said_when_the_system_log_cannot_record_it(home):
    """A pause (or a user added, a setting saved) made from the dashboard with SYSTEM_LOGS.db locked or damaged
    raised after the change was made (only a missing log was tolerated): the change stands and the page says the
    log did not record it (a diff review)."""
    home.core_db("SYSTEM_LOGS").write_bytes(b"not a database" * 100)
    client = client_for(home, "operator")
    html = post(client, "/control/pause").get_data(as_text=True)
    assert "New entries paused" in html and pause_file(home).exists()
    assert "Warning: done, but the system log (SYSTEM_LOGS.db) did not record it (control_pause)" in html
