"""The pytest wrapper of tests/integration_test_runner.py: a full replay session from boot to shutdown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_integration_runner_passes(tmp_path: Path) -> None:
    runner = Path(__file__).with_name("integration_test_runner.py")
    r = subprocess.run(
        [sys.executable, str(runner), str(tmp_path / "home")], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 problems" in r.stdout
