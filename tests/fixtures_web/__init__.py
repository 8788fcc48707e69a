"""A dashboard test home: core DBs with one user per role, .env limits, status.json, strategy logs, trade
history and an OFX export; plus a stand-in for the config API and a settable clock."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers import template_text, with_values

from tbot_bot.config.env_bot import BotSettings, parse_env_text, settings_from_text
from tbot_bot.config.settings_bot import StaleConfigError, config_version
from tbot_bot.core import init_all_core_databases
from tbot_bot.core.databases import connect
from tbot_bot.core.users import add_user
from tbot_bot.errors import ConfigError
from tbot_bot.support.path_resolver import BotHome

SCOPE = "RGL_USA_SIM_TB01"
ROLES = ("viewer", "auditor", "operator", "admin")
PASSWORDS = {role: f"correct-horse-{role}" for role in ROLES}
T0 = datetime(2011, 1, 18, 15, 0, tzinfo=UTC)


class Clock:
    """A settable UTC clock for lockout and session-expiry tests."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeSettingsApi:
    """Same names as tbot_bot.config.settings_bot: validates the whole text, saves nothing when invalid."""

    text: str
    secret_keys: frozenset[str] = frozenset({"MAX_PE_RATIO"})
    saved: list[tuple[dict[str, str], str]] = field(default_factory=list)
    fail_load: bool = False

    def read_env_text(self, home: BotHome) -> str:
        return self.text

    def load_settings(self, home: BotHome) -> BotSettings:
        if self.fail_load:
            raise ConfigError("cannot decrypt .env_bot.enc (test)")
        return settings_from_text(self.text, source="test")

    def masked_items(self, text: Any) -> list[tuple[str, str, bool]]:
        values, _ = parse_env_text(str(text))
        return [
            (k, "********" if k in self.secret_keys else v, k in self.secret_keys) for k, v in values.items()
        ]

    def config_version(self, text: str) -> str:
        return config_version(text)

    def update_env_values(
        self, home: BotHome, updates: dict[str, str], *, actor: str, expected_version: str | None = None
    ) -> BotSettings:
        if expected_version is not None and expected_version != config_version(self.text):
            raise StaleConfigError(f"changed by someone else (now version {config_version(self.text)})")
        new_text = with_values(self.text, **updates)
        settings = settings_from_text(new_text, source="test")
        self.text = new_text
        self.saved.append((dict(updates), actor))
        return settings


def settings_text(**overrides: Any) -> str:
    """The test template with orders waiting for confirmation (so the confirm route has work to do)."""
    return with_values(template_text(), **{"TRADE_CONFIRMATION_REQUIRED": "true", **overrides})


def status_payload(state: str = "idle", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "state": state,
        "session_date": "2011-01-18",
        "active_strategy": "open",
        "windows": [
            {
                "strategy": "open",
                "scheduled_start": "2011-01-18T14:30:00+00:00",
                "scheduled_end": "2011-01-18T14:45:00+00:00",
                "actual_start": "2011-01-18T14:30:01+00:00",
                "actual_end": None,
                "status": "running",
                "note": "",
            },
            {
                "strategy": "mid",
                "scheduled_start": "2011-01-18T17:00:00+00:00",
                "scheduled_end": "2011-01-18T17:15:00+00:00",
                "actual_start": None,
                "actual_end": None,
                "status": "pending",
                "note": "",
            },
        ],
        "counts": {
            "open": {"signaled": 3, "entered": 2, "exited": 1},
            "mid": {"signaled": 0, "entered": 0, "exited": 0},
            "close": {"signaled": 0, "entered": 0, "exited": 0},
        },
        "positions": [
            {
                "symbol": "SPY",
                "strategy": "open",
                "side": "long",
                "qty": "3",
                "entry_price": "127.10",
                "last_price": "127.50",
                "unrealized_pnl": "1.20",
            }
        ],
        "realized_pnl": "12.34",
        "realized_pnl_by_strategy": {"open": "14.00", "mid": "-1.66"},
        "trades_by_strategy": {"open": 2, "mid": 1},
        "broker": {"name": "SIM", "healthy": True, "last_error": None},
        "api": {"retries": 0, "errors": 0},
        "defense_mode": False,
        "kill_switch": {"tripped": False, "reason": None},
        "pending_confirmations": [
            {
                "client_order_id": "TB01-20110118-open-SPY-1",
                "symbol": "SPY",
                "strategy": "open",
                "expires_at": "2011-01-18T15:45:00+00:00",
            }
        ],
        "version": "v1.0.0",
        "bot": {"bot_id": "TB01", "entity": "RGL", "broker": "SIM"},
        "updated_at": T0.isoformat(),
    }
    payload.update(overrides)
    return payload


def write_status(home: BotHome, payload: dict[str, Any]) -> None:
    home.status_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = home.status_json.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    tmp.replace(home.status_json)


def build_home(root: Path, *, env: str | None = None) -> BotHome:
    """A home with everything the dashboard reads. Users: one per role, named after the role."""
    home = BotHome(root.resolve())
    home.root.mkdir(parents=True, exist_ok=True)
    home.dotenv.write_text(
        env or "LOGIN_ATTEMPT_LIMIT=3\nLOGIN_LOCKOUT_MINUTES=15\nSESSION_TIMEOUT_MINUTES=120\n",
        encoding="utf-8",
    )
    init_all_core_databases(home)
    for role in ROLES:
        add_user(home, role, PASSWORDS[role], role, created_by="test")
    write_status(home, status_payload())
    logs = home.logs_dir(SCOPE)
    logs.mkdir(parents=True, exist_ok=True)
    for strategy in ("open", "mid", "close"):
        lines = [
            {
                "timestamp": f"2011-01-18T14:3{i}:00+00:00",
                "strategy": strategy,
                "level": level,
                "event": f"{strategy}-{level}",
            }
            for i, level in enumerate(("debug", "info", "warning", "error"))
        ]
        (logs / f"{strategy}.log").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    trades = home.trades_dir(SCOPE)
    trades.mkdir(parents=True, exist_ok=True)
    (trades / f"{SCOPE}_BOT_trade_history.json").write_text(
        json.dumps(
            [
                {
                    "timestamp": "2011-01-18T14:40:00+00:00",
                    "strategy_name": "open",
                    "ticker": "SPY",
                    "side": "long",
                    "size": "3",
                    "entry_price": "127.10",
                    "exit_price": "128.00",
                    "PnL": "2.70",
                    "fees": "0.0350",  # a file written before the net_PnL column: the page derives it
                },
                {
                    "timestamp": "2011-01-18T17:10:00+00:00",
                    "strategy_name": "mid",
                    "ticker": "QQQ",
                    "side": "long",
                    "size": "1",
                    "entry_price": "50.00",
                    "exit_price": "49.00",
                    "PnL": "-1.00",
                },
            ]
        ),
        encoding="utf-8",
    )
    ofx_dir = home.bot_output_dir(SCOPE) / "ofx"
    ofx_dir.mkdir(parents=True, exist_ok=True)
    (ofx_dir / "RGL_2011-01-18.ofx").write_text("OFXHEADER:100\n", encoding="utf-8")
    write_research(home)
    return home


# (session, trades, wins, losses, realised PnL, fees): the History page's sessions
SESSIONS = (
    ("2011-01-14", 3, 2, 1, "5.5000", "0.3000"),
    ("2011-01-18", 2, 1, 1, "1.7000", "0.2000"),
    ("2011-01-19", 4, 1, 3, "-3.2500", "0.4000"),
)
BACKTEST_RUN = "mid_20110103_20110131_20261125T100000Z"
PROPOSAL_RUN = "opt-mid-20261125T1100Z"


def write_research(home: BotHome) -> None:
    """Per-session summaries (the per-session file format) with one unreadable file, a `tbot plot day` chart, one
    backtest run with its report files, and one optimizer proposal."""
    from decimal import Decimal

    summaries = home.summaries_dir(SCOPE)
    summaries.mkdir(parents=True, exist_ok=True)
    for day, trades, wins, losses, pnl, fees in SESSIONS:
        net = Decimal(pnl) - Decimal(fees)
        doc = {
            "format": "tbot.daily_summary/1",
            "scope": SCOPE,
            "session_date": day,
            "strategies": {},
            "totals": {"total_trades": trades, "wins": wins, "losses": losses, "total_pnl": pnl,
                       "total_fees": fees, "net_pnl": str(net)},
        }  # fmt: skip
        (summaries / f"daily_summary_{day}.json").write_text(json.dumps(doc), encoding="utf-8")
    (summaries / "daily_summary_2011-01-20.json").write_text("{not json", encoding="utf-8")
    charts = home.bot_output_dir(SCOPE) / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    (charts / "2011-01-18_SPY.png").write_bytes(_png())
    run = home.backtest_results_dir / BACKTEST_RUN
    run.mkdir(parents=True, exist_ok=True)
    # as the backtest writes it: money as exact decimal strings, counts whole, ratios as floats
    metrics = {"strategy": "mid", "start": "2011-01-03", "end": "2011-01-31", "trades": 17, "wins": 8, "losses": 9,
               "max_consecutive_losses": 3, "total_pnl": "-12.5050", "gross_profit": "10.0000",
               "gross_loss": "22.5050", "win_rate": 0.47, "profit_factor": 0.8,
               "sharpe": -0.4, "max_drawdown": "30.1000", "avg_trade_duration_minutes": 26.583, "skips": []}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run / "report.html").write_text("<!doctype html><title>r</title><h1>Backtest MID</h1>", encoding="utf-8")
    (run / "equity_drawdown.png").write_bytes(_png())
    proposals = home.versioned_env_dir / "proposals"
    proposals.mkdir(parents=True, exist_ok=True)
    proposal = {"run_id": PROPOSAL_RUN, "strategy": "mid", "algorithm": "tpe", "status": "pending",
                "created_at": "2026-11-25T11:00:00+00:00", "changes": [{"key": "MID_X", "old": "1", "new": "2"}],
                "evidence": {"beats_current_oos": True}}  # fmt: skip
    (proposals / f"{PROPOSAL_RUN}.json").write_text(json.dumps(proposal), encoding="utf-8")


def _png() -> bytes:
    """A valid 1x1 PNG."""
    import base64

    return base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    if not match:
        raise AssertionError("no csrf_token in page")
    return match.group(1)


def login(client: Any, username: str, password: str | None = None) -> Any:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login",
        data={"username": username, "password": password or PASSWORDS[username], "csrf_token": token},
    )


_VERSION = re.compile(r'name="config_version" value="([^"]*)"')


def settings_form(client: Any, **values: str) -> dict[str, str]:
    """The settings form as the browser would post it: CSRF token, the config version it shows, `values`."""
    html = client.get("/settings").get_data(as_text=True)
    match = _VERSION.search(html)
    if not match:
        raise AssertionError("no config_version in the settings page")
    return {"csrf_token": csrf_from(html), "config_version": match.group(1), **values}


def fresh_token(client: Any) -> str:
    """A valid CSRF token for the client's current session (signed in or not)."""
    resp = client.get("/login")
    if resp.status_code == 302:
        resp = client.get("/")
    return csrf_from(resp.get_data(as_text=True))


__all__ = [
    "BACKTEST_RUN",
    "PROPOSAL_RUN",
    "SESSIONS",
    "Clock",
    "FakeSettingsApi",
    "build_home",
    "csrf_from",
    "fresh_token",
    "login",
    "settings_form",
    "settings_text",
    "status_payload",
    "with_values",
    "write_status",
]


def system_events(home: BotHome) -> list[dict[str, Any]]:
    """Every SYSTEM_LOGS.db row the dashboard wrote, newest first."""
    with connect(home, "SYSTEM_LOGS", readonly=True) as con:
        return [dict(r) for r in con.execute("SELECT * FROM system_logs ORDER BY id DESC")]
