"""Dashboard pages that tell the story of the days: history across sessions, research results, readable logs
with filters and paging, status in exchange time and UTC with replay and stale banners."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from fixtures_web import (
    BACKTEST_RUN,
    PROPOSAL_RUN,
    SCOPE,
    FakeSettingsApi,
    build_home,
    login,
    settings_text,
    status_payload,
    write_status,
)

from tbot_bot.core import users as users_mod
from tbot_web.py.portal_web import create_app


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setattr(users_mod, "BCRYPT_ROUNDS", 4)
    return build_home(tmp_path / "home")


def client_for(home, role):
    client = create_app(home.root, testing=True, settings_api=FakeSettingsApi(settings_text())).test_client()
    assert login(client, role).status_code == 302
    return client


def test_history_lists_sessions_newest_first_with_links(home):
    html = client_for(home, "auditor").get("/history").get_data(as_text=True)
    days = re.findall(r"<tr><td>(2011-01-\d\d)</td>", html)
    assert days == ["2011-01-19", "2011-01-18", "2011-01-14"]
    # net = PnL - fees; cumulative oldest to newest: 5.20, 6.70, 3.05
    assert re.search(r"2011-01-19</td>.*?>-3\.65</td><td class=\"num\">3\.05</td>", html, re.S)
    assert 'id="history-net">3.05<' in html
    assert "/trades?day=2011-01-18" in html and "/logs?day=2011-01-18" in html
    assert "/history/chart/2011-01-18_SPY.png" in html  # the chart tbot plot day wrote
    assert "tbot plot day --date 2011-01-19 --symbol SYMBOL" in html  # how to make the missing ones
    assert "daily_summary_2011-01-20.json: unreadable" in html  # a damaged file is named, not fatal


def test_viewer_history_has_no_trade_links(home):
    html = client_for(home, "viewer").get("/history").get_data(as_text=True)
    assert "/trades?day=" not in html and "/logs?day=2011-01-14" in html


def test_history_charts_are_svg_with_one_mark_per_session(home):
    client = client_for(home, "viewer")
    equity = client.get("/history/equity.svg").get_data(as_text=True)
    assert equity.startswith("<svg") and equity.count('class="point"') == 3
    assert "2011-01-18: 6.70" in equity
    daily = client.get("/history/daily.svg").get_data(as_text=True)
    assert daily.count('class="bar"') == 3 and daily.count("#cf222e") == 1  # one losing session
    assert client.get("/history/other.svg").status_code == 404
    png = client.get("/history/chart/2011-01-18_SPY.png")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"
    for bad in ("..%2F..%2F.env", "2011-01-18_SPY.txt", "nope.png"):
        assert client.get(f"/history/chart/{bad}").status_code == 404


def test_trades_of_one_day(home):
    bot = {"bot_id": "TB01", "exchange_tz": "America/New_York"}
    write_status(home, status_payload("closed", bot=bot))
    html = client_for(home, "auditor").get("/trades?day=2011-01-18").get_data(as_text=True)
    assert "Trade history of 2011-01-18" in html and "SPY" in html
    assert "2011-01-18 09:40 EST / 14:40Z" in html  # exchange time and UTC
    # each trade's gross PnL, fees and net result (2.70 - 0.035 = 2.665: cents half-to-even 2.66)
    assert "<th>Gross PnL</th><th>Fees</th><th>Net PnL</th>" in html
    assert '<td class="num">2.70</td><td class="num">0.04</td><td class="num">2.66</td>' in html
    html = client_for(home, "auditor").get("/trades?day=2011-01-19").get_data(as_text=True)
    assert "SPY" not in html and "no trades recorded" in html


def test_research_lists_backtests_and_proposals_read_only(home):
    client = client_for(home, "admin")
    html = client.get("/research").get_data(as_text=True)
    assert BACKTEST_RUN in html and "47.00%" in html and "-12.50" in html
    assert PROPOSAL_RUN in html and "pending" in html and "<form" not in html.split("Optimizer proposals")[1]
    assert (
        'href="/proposals"' in html and f'href="/proposals/{PROPOSAL_RUN}"' in html
    )  # approval is that page's
    run = client.get(f"/research/backtest/{BACKTEST_RUN}").get_data(as_text=True)
    assert "profit factor" in run and f"/research/backtest/{BACKTEST_RUN}/equity_drawdown.png" in run
    shown = dict(re.findall(r"<tr><th>([^<]+)</th><td class=\"num\">([^<]*)</td></tr>", run))
    # money in cents as the report rounds it (half-to-even), counts whole, minutes as the report shows them
    assert (shown["net PnL (after fees)"], shown["max drawdown"], shown["profit factor"]) == (
        "-12.50",
        "30.10",
        "0.80",
    )
    assert (shown["losses"], shown["max consecutive losses"], shown["trades"]) == ("9", "3", "17")
    # its PnL sums are after fees: never labelled "gross" (which reads as before fees)
    assert not any("gross" in label for label in shown)
    assert (shown["net PnL of winning trades"], shown["net PnL of losing trades (as a loss)"]) == (
        "10.00",
        "22.50",
    )
    assert (shown["avg trade duration minutes"], shown["win rate"]) == ("26.6", "47.00%")
    report = client.get(f"/research/backtest/{BACKTEST_RUN}/report.html")
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    assert client.get(f"/research/backtest/{BACKTEST_RUN}/metrics.json").status_code == 404
    assert client.get("/research/backtest/..%2F..%2Fstorage/report.html").status_code == 404


def _write_log(home, name, lines):
    path = home.logs_dir(SCOPE) / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def test_logs_show_only_set_fields_and_filter_by_day(home):
    line = {"timestamp": "2011-01-19T15:30:00Z", "strategy_name": "mid", "event": "screen_reject", "ticker": "SPY",
            "side": None, "size": None, "PnL": None, "broker": None, "level": "info",
            "detail": json.dumps({"filter": "fundamentals", "reason": "no fundamentals for SPY", "x": None})}  # fmt: skip
    _write_log(home, "mid.log", [line])
    _write_log(
        home, "mid.2011-01-18.log", [{**line, "timestamp": "2011-01-18T15:31:00Z", "event": "rotated"}]
    )
    client = client_for(home, "viewer")
    html = client.get("/logs?strategy=mid").get_data(as_text=True)
    assert "screen_reject" in html and "<b>ticker</b> SPY" in html and "<b>filter</b> fundamentals" in html
    assert "None" not in html and "null" not in html and "=None" not in html and "<b>side</b>" not in html
    day = client.get("/logs?strategy=mid&day=2011-01-18").get_data(as_text=True)
    assert "rotated" in day and "screen_reject" not in day and "Strategy logs of 2011-01-18" in day


def test_a_filter_that_cannot_apply_is_said_not_dropped(home):
    """`/logs?day=2011-1-26`, `?limit=abc` and `/trades?day=2011-13-45` showed every day without a word, as if
    they were the filter asked for (a dashboard review)."""
    viewer, auditor = client_for(home, "viewer"), client_for(home, "auditor")
    html = viewer.get("/logs?day=2011-1-26&limit=abc&level=loud").get_data(as_text=True)
    assert (
        "day &#39;2011-1-26&#39; is not a date: use YYYY-MM-DD (e.g. 2011-01-26); showing every day" in html
    )
    assert "limit &#39;abc&#39; is not a whole number (10 to 500); showing 100" in html
    assert "level &#39;loud&#39; is not one of" in html
    # the JSON route refuses them by name, and leaves no message for the next page (a diff review)
    api = viewer.get("/api/logs?day=2011-1-26&limit=abc")
    assert api.status_code == 400 and "is not a date" in api.get_json()["error"]
    assert "is not a date" not in viewer.get("/status").get_data(as_text=True)
    html = auditor.get("/trades?day=2011-13-45").get_data(as_text=True)
    assert "day &#39;2011-13-45&#39; is not a date" in html
    assert "is not a date" not in auditor.get("/trades?day=2011-01-18").get_data(as_text=True)


def test_logs_page_newest_first_with_paging(home):
    lines = [{"timestamp": f"2011-01-19T15:{i // 60:02d}:{i % 60:02d}Z", "event": f"e{i:03d}", "level": "info"}
             for i in range(250)]  # fmt: skip
    _write_log(home, "open.log", lines)
    client = client_for(home, "viewer")
    first = client.get("/logs?strategy=open&day=2011-01-19").get_data(as_text=True)
    events = re.findall(r"<td>(e\d{3})</td>", first)
    assert events[:2] == ["e249", "e248"] and len(events) == 100
    assert "250 line(s)" in first and "page 1 of 3" in first and "page=1" in first
    last = client.get("/logs?strategy=open&day=2011-01-19&page=2").get_data(as_text=True)
    assert re.findall(r"<td>(e\d{3})</td>", last)[-1] == "e000" and "newer" in last


def test_status_shows_exchange_time_and_a_replay_label(home):
    bot = {"bot_id": "TB01", "entity": "RGL", "broker": "SIM", "mode": "replay", "replay_day": "2011-01-18",
           "exchange_tz": "America/New_York"}  # fmt: skip
    write_status(home, status_payload("closed", bot=bot))
    client = client_for(home, "viewer")
    html = client.get("/status").get_data(as_text=True)
    assert re.search(r'id="replay-banner"[^>]*>Replay of <span id="replay-day">2011-01-18', html)
    assert "banner replay hidden" not in html
    assert "09:30–09:45 EST" in html and "14:30–14:45Z" in html
    api = client.get("/api/status").get_json()
    assert api["replay_day"] == "2011-01-18" and api["windows"][0]["sched_utc"] == "14:30–14:45Z"
    assert api["stale"] is False


def test_stale_banner_when_running_but_not_written(home):
    write_status(home, status_payload("trading"))
    old = time.time() - 3600
    os.utime(home.status_json, (old, old))
    client = client_for(home, "viewer")
    html = client.get("/status").get_data(as_text=True)
    assert 'class="banner stale"' in html and "Status is stale" in html
    assert client.get("/api/status").get_json()["stale"] is True
    write_status(home, status_payload("closed"))
    os.utime(home.status_json, (old, old))
    assert client.get("/api/status").get_json()["stale"] is False  # a closed bot is not expected to write
    assert "banner stale hidden" in client.get("/").get_data(as_text=True)


def test_a_running_state_with_no_supervisor_is_stale_at_once(home):
    """Killed a minute ago: status.json is fresh and says 'trading', but no supervisor holds the run lock."""
    from tbot_bot.runtime.control import SupervisorLock

    write_status(home, status_payload("trading"))
    client = client_for(home, "viewer")
    assert client.get("/api/status").get_json()["stale"] is True
    lock = SupervisorLock.acquire(home, mode="live")
    try:
        write_status(home, status_payload("trading"))  # a new write: the cached compact status is not reused
        assert client.get("/api/status").get_json()["stale"] is False
    finally:
        lock.release()


def test_research_counts_the_keys_a_proposal_changes_as_optimize_list_does(home):
    """A candidate's record lists its unchanged keys too (`optimize show` marks them): Research counted 3 changes
    where `tbot optimize list` and the Proposals page named 2 (all three read proposals.changed now)."""
    path = home.versioned_env_dir / "proposals" / f"{PROPOSAL_RUN}.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["changes"].append({"key": "MID_Y", "old": "5", "new": "5"})
    doc["evidence"].update(oos_objective=1.0, oos_current_objective=0.5)
    path.write_text(json.dumps(doc), encoding="utf-8")
    html = client_for(home, "admin").get("/research").get_data(as_text=True)
    row = next(r for r in html.split("<tr>") if PROPOSAL_RUN in r)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["1"], row
    proposals = client_for(home, "admin").get("/proposals").get_data(as_text=True)
    assert "MID_X 1&rarr;2" in proposals and "MID_Y" not in proposals


def test_trades_page_names_corrections_and_hand_opened_trades(home):
    """`tbot trades` names each correction applied and each position taken over from the broker; the dashboard's
    Trades page showed their figures with no word of either (a closed day's History row then disagreed with its
    trades with no explanation)."""
    trades = home.trades_dir(SCOPE) / f"{SCOPE}_BOT_trade_history.json"
    rows = [
        {"timestamp": "2011-01-25T20:01:00Z", "strategy_name": "close", "ticker": "SYN3", "side": "long", "size": "59.6658",
         "entry_price": "8.39", "exit_price": "8.2123", "PnL": "-10.6000", "fees": "0.03", "net_PnL": "-10.6300",
         "correction": "TB01-20110125-close-SYN3-2 -> TB01-20110125-close-SYN3-2-COR", "adopted": False},
        {"timestamp": "2011-01-25T15:46:00Z", "strategy_name": "close", "ticker": "SYN2", "side": "long", "size": "100",
         "entry_price": "60.00", "exit_price": "41.05", "PnL": "-1895.00", "fees": "0.39", "net_PnL": "-1895.39",
         "correction": None, "adopted": True},
    ]  # fmt: skip
    trades.write_text(json.dumps(rows), encoding="utf-8")
    html = client_for(home, "auditor").get("/trades").get_data(as_text=True)
    corrected = html.split('id="corrected"')[1].split("</ul>")[0]
    assert "SYN3: TB01-20110125-close-SYN3-2 -&gt; TB01-20110125-close-SYN3-2-COR" in corrected
    assert "SYN2" not in corrected and "prior-period adjustment" in corrected
    adopted = html.split('id="adopted"')[1].split("</ul>")[0]
    assert "SYN2: net -1895.39" in adopted and "SYN3" not in adopted


def test_a_trade_carried_over_night_is_listed_under_its_entry_day(home):
    """A row's timestamp is its exit: a position entered on the 18th and sold on the 19th was listed under the
    19th, whose summary (by entry day, as `tbot trades --date`) does not hold it."""
    import json as json_mod

    path = next(home.root.rglob("*_BOT_trade_history.json"))
    rows = json_mod.loads(path.read_text())
    rows.append({"timestamp": "2011-01-19T14:40:00+00:00", "entry_time": "2011-01-18T19:50:00+00:00",
                 "exit_time": "2011-01-19T14:40:00+00:00", "strategy_name": "close", "ticker": "IWM", "side": "long",
                 "size": "2", "entry_price": "80.00", "exit_price": "81.00", "PnL": "2.00", "fees": "0"})  # fmt: skip
    path.write_text(json_mod.dumps(rows))
    client = client_for(home, "auditor")
    assert "IWM" in client.get("/trades?day=2011-01-18").get_data(as_text=True)
    assert "IWM" not in client.get("/trades?day=2011-01-19").get_data(as_text=True)


def test_a_backtest_run_page_shows_what_its_report_warns_of(home):
    """The CLI, report.md and metrics.json warned of two sessions' annualised figures and of fills paying no spread;
    the run page showed a Sharpe of 12.88 without a word (a dashboard review)."""
    path = home.backtest_results_dir / BACKTEST_RUN / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics.update(
        notes=["2 session(s): the annualised figures (Sharpe, ...) extrapolate too few days to be evidence"],
        fee_warnings=["fees exceed 0.5% of the smallest order"],
    )
    path.write_text(json.dumps(metrics))
    run = client_for(home, "viewer").get(f"/research/backtest/{BACKTEST_RUN}").get_data(as_text=True)
    assert 'id="backtest-warnings"' in run
    assert "too few days to be evidence" in run and "fees exceed 0.5% of the smallest order" in run
    path.write_text(
        json.dumps({**metrics, "notes": "not a list"})
    )  # a damaged field: no warning spelled out of it
    run = client_for(home, "viewer").get(f"/research/backtest/{BACKTEST_RUN}").get_data(as_text=True)
    warned = run.split('id="backtest-warnings"')[1].split("</ul>")[0]
    assert warned.count("<li>") == 1 and "fees exceed" in warned
