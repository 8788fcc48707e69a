"""The daemon under a service manager: a real SIGTERM in the middle of a window is a graceful stop; sd_notify
READY/WATCHDOG/STOPPING reach NOTIFY_SOCKET; the unit files carry the directives the deployment relies on."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from integration_test_runner import provision_demo_home

from rigd_tbot.commands.demo import DEMO_DAY

ROOT = Path(__file__).resolve().parents[1]


def _state(home: Path) -> str | None:
    try:
        return str(json.loads((home / "output" / "status.json").read_text())["state"])
    except (OSError, ValueError, KeyError):
        return None


def test_sigterm_mid_window_closes_positions_books_and_exits_0(tmp_path: Path) -> None:
    home = tmp_path / "home"
    provision_demo_home(home)
    sock_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": sock_path}
    # 1500x real time: the day's windows take ~15 s, slow enough to signal while a position is open
    proc = subprocess.Popen(
        [sys.executable, "-m", "rigd_tbot", "start", "--home", str(home), "--replay", DEMO_DAY.isoformat(), "--speed", "1500"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    messages: list[str] = []
    deadline = time.monotonic() + 120
    seen = None
    try:
        # the state as last read (a position may close right after it was seen: reading again could miss it)
        while time.monotonic() < deadline and (seen := _state(home)) != "monitoring":
            try:
                messages.append(notify.recv(4096).decode())
            except TimeoutError:
                pass
            assert proc.poll() is None, proc.communicate()
        assert seen == "monitoring", "never saw an open position"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except (TimeoutError, OSError):
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    assert proc.returncode == 0, err[-2000:]
    status = json.loads((home / "output" / "status.json").read_text())
    assert status["state"] == "closed" and status["positions"] == []
    with sqlite3.connect(home / "storage" / "state" / "sim_exchange.db") as conn:
        held = conn.execute("SELECT COUNT(*) FROM positions WHERE CAST(qty AS REAL) != 0").fetchone()[0]
        filled = conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    assert held == 0 and filled >= 2  # something was bought, and it was all sold back
    verify = subprocess.run(
        [sys.executable, "-m", "rigd_tbot", "ledger", "verify", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    joined = "\n".join(messages)
    assert "READY=1" in joined and "WATCHDOG=1" in joined and "STOPPING=1" in joined


@pytest.mark.parametrize(
    ("unit", "directives"),
    [
        (
            "tbot.service",
            [
                "Type=notify",
                "WatchdogSec=",
                "Restart=on-failure",
                "User=tbot",
                "NoNewPrivileges=true",
                "ProtectSystem=strict",
                "ReadWritePaths=",
                "RestartPreventExitStatus=2",
                "RestartSteps=",
                "RestartMaxDelaySec=",
                "TimeoutStartSec=",
            ],
        ),
        ("tbot-web.service", ["ExecStart=", "tbot web", "User=tbot", "NoNewPrivileges=true"]),
        ("tbot-backup.service", ["Type=oneshot", "tbot backup create"]),
        ("tbot-backup.timer", ["OnCalendar=", "Persistent=true"]),
        ("tbot.target", ["Wants=tbot.service tbot-web.service tbot-backup.timer"]),
    ],
)
def test_systemd_units_carry_the_required_directives(unit: str, directives: list[str]) -> None:
    text = (ROOT / "deploy" / "systemd" / unit).read_text()
    for d in directives:
        assert d in text, f"{unit} lacks {d}"
