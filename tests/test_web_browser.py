"""The dashboard in a real headless browser (Debian chromium + chromedriver via Selenium), served by
waitress on 127.0.0.1: sign in, watch status change live, stop as operator, viewer has no stop control."""

from __future__ import annotations

import re
import shutil
import threading

import pytest
from fixtures_web import PASSWORDS, FakeSettingsApi, build_home, settings_text, status_payload, write_status

from tbot_bot.core import users as users_mod
from tbot_bot.runtime.control import SupervisorLock

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="browser tests need Debian's chromium and chromium-driver (`make browser` installs them as root)",
)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, home) of a dashboard served by waitress in a thread for this module."""
    import waitress

    from tbot_web.py.portal_web import create_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(users_mod, "BCRYPT_ROUNDS", 4)
        home = build_home(tmp_path_factory.mktemp("browser") / "home")
        app = create_app(
            home.root,
            settings_api=FakeSettingsApi(settings_text()),
            config_overrides={"STATUS_POLL_SECONDS": 1},
        )
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.effective_port}", home
        finally:
            server.close()
            thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=412,1400",  # a phone-sized viewport
        f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}",
    ):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"chromium could not start: {exc.msg}")
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def sign_in(driver, base: str, role: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(role)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[role])
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "who"))
    assert f"{role} ({role})" in driver.find_element(By.ID, "who").text


def test_operator_sees_live_status_and_stops_the_bot(served, browser, tmp_path):
    base, home = served
    write_status(home, status_payload("idle"))
    sign_in(browser, base, "operator")
    browser.get(f"{base}/status")
    assert browser.find_element(By.ID, "state").text == "idle"

    write_status(
        home, status_payload("trading", realized_pnl="20.50", updated_at="2011-01-18T15:05:00+00:00")
    )
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "state").text == "trading")
    WebDriverWait(browser, 5).until(lambda d: d.find_element(By.ID, "realized-pnl").text == "20.50")
    shot = tmp_path / "status.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
    print(f"status page screenshot: {shot}")

    lock = SupervisorLock.acquire(home, mode="replay 2011-01-18")  # a supervisor runs in this home
    try:
        browser.find_element(By.ID, "stop-button").click()
        WebDriverWait(browser, 10).until(lambda d: "Stop requested" in d.page_source)
    finally:
        lock.release()
    assert "web:operator" in home.control_stop.read_text()
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "stop-requested").is_displayed())
    home.control_stop.unlink()


def test_the_open_status_page_follows_money_pause_defense_and_a_killed_supervisor(served, browser):
    """An open Status page updated its state and PnL but not the Money card (equity, cash, exposure, net PnL, caps),
    and drew the pause, stop and "no supervisor" notices, the bot's message and defense mode's reason only at load:
    the page read cash 24502.35 and exposure 500.00 while `tbot status` said 25003.38 and 0.00 (a dashboard
    review). A supervisor gone (killed) is said as such, not asked about."""
    base, home = served
    money = {"equity": "25000.00", "cash": "24502.35", "open_exposure": "500.00", "net_pnl_today": "0.00",
             "float": "25000.00", "session_cap": "500.00",
             "windows": {"open": {"trades": 1, "max_trades": 4, "cap_used": "500.00", "cap_available": "0.00"}}}  # fmt: skip
    lock = SupervisorLock.acquire(home, mode="replay 2011-01-18")
    try:
        write_status(home, status_payload("monitoring", money=money))
        sign_in(browser, base, "operator")
        browser.get(f"{base}/status")
        assert browser.find_element(By.ID, "money-cash").text == "24502.35"
        later = {**money, "cash": "25003.38", "open_exposure": "0.00", "net_pnl_today": "1.03",
                 "windows": {**money["windows"], "mid": {"trades": 0, "max_trades": 4, "cap_used": "0.00",
                                                         "cap_available": "500.00"}}}  # fmt: skip
        write_status(home, status_payload("idle", money=later, defense_mode=True, defense_reason="win rate 20%",
                                          message="flattened by web:operator: no new entries",
                                          paused="2011-01-18T15:00:00+00:00 cli:ops"))  # fmt: skip
        wait = WebDriverWait(browser, 10)
        wait.until(lambda d: d.find_element(By.ID, "money-cash").text == "25003.38")
        assert browser.find_element(By.ID, "money-exposure").text == "0.00"
        assert browser.find_element(By.ID, "money-net").text == "1.03"
        assert "mid" in browser.find_element(By.ID, "money-windows").text
        wait.until(lambda d: d.find_element(By.ID, "entries-paused").is_displayed())
        assert "cli:ops" in browser.find_element(By.ID, "paused-text").text
        assert browser.find_element(By.ID, "bot-message").text == "flattened by web:operator: no new entries"
        assert browser.find_element(By.ID, "defense-mode").text == "on (win rate 20%)"
        assert browser.find_element(By.ID, "defense-clear").is_displayed()
        assert not browser.find_element(By.ID, "no-supervisor").is_displayed()
        write_status(home, status_payload("monitoring", money=later))
    finally:
        lock.release()
    wait.until(lambda d: d.find_element(By.ID, "ended-banner").is_displayed())
    assert "a kill, a crash, or a refusal its log names" in browser.find_element(By.ID, "ended-banner").text
    assert not browser.find_element(By.ID, "stale-banner").is_displayed()
    assert browser.find_element(By.ID, "no-supervisor").is_displayed()
    wait.until(lambda d: not d.find_element(By.ID, "entries-paused").is_displayed())


def test_viewer_has_no_stop_control_and_a_forged_stop_is_refused(served, browser):
    base, home = served
    sign_in(browser, base, "viewer")
    browser.get(f"{base}/status")
    assert browser.find_elements(By.ID, "stop-button") == []
    assert browser.find_elements(By.ID, "controls") == []
    # forge the request a viewer's browser could send: a valid CSRF token from the page, the operator's form
    browser.execute_script(
        """
        var f = document.createElement('form'); f.method = 'post'; f.action = '/control/stop';
        var t = document.createElement('input'); t.type = 'hidden'; t.name = 'csrf_token';
        t.value = document.querySelector('meta[name="csrf-token"]').content;
        f.appendChild(t); document.body.appendChild(f); f.submit();
        """
    )
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "error-message"))
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    assert not home.control_stop.exists()
    assert "forbidden user=viewer" in (home.web_logs_dir / "auth_failures.log").read_text()


def test_pages_load_their_local_assets_without_csp_errors(served, browser):
    base, _home = served
    sign_in(browser, base, "admin")
    for path in ("/", "/status", "/logs", "/settings", "/users"):
        browser.get(f"{base}{path}")
        sheets = browser.execute_script("return document.styleSheets.length")
        assert sheets == 2, path
    logs = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert logs == []


def _shot(driver, path):
    """The viewport as an RGB array (0..255), also saved to `path` for a person to look at."""
    import io

    import matplotlib.image as mpimg

    png = driver.get_screenshot_as_png()
    path.write_bytes(png)
    return (mpimg.imread(io.BytesIO(png), format="png")[:, :, :3] * 255).round()


def _element_pixels(driver, element_id, path):
    """Scroll an element into view, take a screenshot, and return the pixels inside the element."""
    driver.execute_script(
        "document.getElementById(arguments[0]).scrollIntoView({block: 'center'})", element_id
    )
    pixels = _shot(driver, path)
    box = driver.execute_script(
        "var r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return [r.left, r.top, r.right, r.bottom, window.devicePixelRatio];",
        element_id,
    )
    left, top, right, bottom = (max(0, int(v * box[4])) for v in box[:4])
    return pixels[top:bottom, left:right]


def _has_colour(region, hex_colour, tolerance=40):
    import numpy as np

    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(region - rgb).max(axis=-1) <= tolerance).any())


def test_desktop_status_history_and_logs_read_at_1280(served, browser, tmp_path):
    base, home = served
    bot = {"bot_id": "TB01", "entity": "RGL", "broker": "SIM", "mode": "replay", "replay_day": "2011-01-18",
           "exchange_tz": "America/New_York"}  # fmt: skip
    write_status(home, status_payload("monitoring", bot=bot))
    browser.set_window_size(1280, 1000)
    try:
        sign_in(browser, base, "auditor")
        browser.get(f"{base}/status")
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "replay-banner").is_displayed())
        assert "Replay of 2011-01-18" in browser.find_element(By.ID, "replay-banner").text
        fits = browser.execute_script(
            "var t = document.getElementById('windows-table'); return [t.scrollWidth, t.parentNode.clientWidth,"
            " document.documentElement.scrollWidth, window.innerWidth];"
        )
        assert fits[0] <= fits[1] and fits[2] <= fits[3], fits  # no sideways scrolling at 1280 px
        cells = browser.find_element(By.ID, "windows-body").text
        assert "09:30–09:45 EST" in cells and "14:30–14:45Z" in cells
        banner = _element_pixels(browser, "replay-banner", tmp_path / "status_1280.png")
        assert _has_colour(banner, "#e8f1fd", tolerance=6)

        browser.get(f"{base}/history")
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return document.getElementById('chart-daily').complete")
        )
        rows = browser.find_elements(By.CSS_SELECTOR, "#history-table tbody tr")
        assert [r.text.split()[0] for r in rows] == ["2011-01-19", "2011-01-18", "2011-01-14"]
        equity = _element_pixels(browser, "chart-equity", tmp_path / "history_1280.png")
        assert _has_colour(equity, "#0b5cad")  # the equity line
        daily = _element_pixels(browser, "chart-daily", tmp_path / "history_daily_1280.png")
        assert _has_colour(daily, "#1a7f37") and _has_colour(daily, "#cf222e")  # winning and losing sessions
        browser.find_element(By.LINK_TEXT, "chart SPY").click()
        WebDriverWait(browser, 10).until(
            lambda d: d.current_url.endswith("/history/chart/2011-01-18_SPY.png")
        )

        browser.get(f"{base}/logs?strategy=open")
        text = browser.find_element(By.ID, "log-table").text
        assert "open-error" in text and "None" not in text
        assert re.search(r"2011-01-18 \d\d:\d\d:\d\d", text)  # every line carries its date
        _shot(browser, tmp_path / "logs_1280.png")
        print(f"screenshots: {tmp_path}")
    finally:
        browser.set_window_size(412, 1400)
