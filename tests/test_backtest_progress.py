"""A backtest that runs longer than the progress delay shows a progress bar (on stderr); a quicker one does not.

The delay is narrowed or widened here so that the outcome does not depend on how loaded the machine is."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from helpers import make_settings

from tbot_bot.backtest import backtest_engine
from tbot_bot.support.path_resolver import package_file


def test_slow_backtest_shows_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load = backtest_engine.load_columns
    monkeypatch.setattr(backtest_engine, "PROGRESS_DELAY_SECONDS", 0.3)

    def slow_load(*a, **k):  # type: ignore[no-untyped-def]
        time.sleep(0.6)  # stands in for a large data set (twice the delay)
        return real_load(*a, **k)

    monkeypatch.setattr(backtest_engine, "load_columns", slow_load)
    backtest_engine.run_backtest(
        make_settings(),
        "open",
        package_file("data", "sample"),
        date(2011, 1, 3),
        date(2011, 1, 7),
        tmp_path / "slow",
    )
    assert "backtest open" in capsys.readouterr().err


def test_quick_backtest_stays_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a two-day backtest takes well under a second on an idle machine; 30 s leaves room for a loaded one
    monkeypatch.setattr(backtest_engine, "PROGRESS_DELAY_SECONDS", 30.0)
    backtest_engine.run_backtest(
        make_settings(),
        "open",
        package_file("data", "sample"),
        date(2011, 1, 3),
        date(2011, 1, 4),
        tmp_path / "quick",
    )
    assert "backtest open" not in capsys.readouterr().err
