"""BUILD_MODE and DEBUG_LOG_LEVEL decide the engine's console (journal) verbosity; `tbot check` names the logging,
rebalance and failover settings it will run with."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from helpers import make_settings

from tbot_bot.runtime.bot_log import configure_console_logging, console_log_level


@pytest.mark.parametrize(
    ("build_mode", "level", "expected"),
    [
        ("release", "quiet", logging.WARNING),
        ("release", "info", logging.INFO),
        ("release", "verbose", logging.DEBUG),
        ("debug", "quiet", logging.DEBUG),
    ],
)
def test_console_level_follows_build_mode_and_debug_log_level(
    build_mode: str, level: str, expected: int
) -> None:
    assert console_log_level(make_settings(BUILD_MODE=build_mode, DEBUG_LOG_LEVEL=level)) == expected


def test_quiet_console_shows_warnings_only_in_utc(capsys: pytest.CaptureFixture[str]) -> None:
    engine = configure_console_logging(make_settings(BUILD_MODE="release", DEBUG_LOG_LEVEL="quiet"))
    configure_console_logging(make_settings(BUILD_MODE="release", DEBUG_LOG_LEVEL="quiet"))  # idempotent
    try:
        logging.getLogger("tbot_bot.runtime.test").info("routine detail")
        logging.getLogger("tbot_bot.runtime.test").warning("broker slow")
        err = capsys.readouterr().err
        assert "routine detail" not in err
        assert err.count("broker slow") == 1 and "Z WARNING tbot_bot.runtime.test: broker slow" in err
        configure_console_logging(make_settings(BUILD_MODE="release", DEBUG_LOG_LEVEL="verbose"))
        logging.getLogger("tbot_bot.runtime.test").debug("every detail")
        assert "every detail" in capsys.readouterr().err
    finally:
        engine.setLevel(logging.NOTSET)
        for handler in list(engine.handlers):
            engine.removeHandler(handler)


def test_check_names_logging_and_rebalance(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from rigd_tbot.commands.demo import DEMO_DAY
    from tbot_bot.config.settings_bot import update_env_values

    home = provision_demo_home(tmp_path / "home")
    update_env_values(home, {"DEBUG_LOG_LEVEL": "verbose"}, actor="test")
    assert main(["check", "--home", str(home.root), "--replay", DEMO_DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "console verbose (DEBUG_LOG_LEVEL=verbose, BUILD_MODE=release)" in out
    assert "rebalance  on: beyond 10% of the float" in out
    assert "failover" not in out  # one broker per bot: the FAILOVER_* keys are gone (tests/test_wiring.py)
    assert "session cap 500.00 per window" in out and "max 4 trades/window" in out and "defense " not in out


def test_check_shows_the_console_and_limits_the_run_will_use(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`tbot check` said "console quiet" for BUILD_MODE=debug (which shows every detail), and the normal session cap
    and MAX_TRADES while defense mode (configured, or carried over from the last session) would halve them (a
    config review)."""
    from integration_test_runner import provision_demo_home

    from rigd_tbot.cli import main
    from rigd_tbot.commands.demo import DEMO_DAY
    from tbot_bot.config.settings_bot import update_env_values
    from tbot_bot.runtime.defense import DefenseMonitor
    from tbot_bot.runtime.order_journal import OrderJournal

    home = provision_demo_home(tmp_path / "home")
    update_env_values(home, {"BUILD_MODE": "debug", "DEBUG_LOG_LEVEL": "quiet"}, actor="test")
    journal = OrderJournal(home.state_dir / "journal.db")
    try:  # a trigger fired in the session before the demo day
        DefenseMonitor(journal, "XNYS", date(2011, 1, 24)).record(
            "win rate 20% below DEFENSE_MODE_TRIGGER_WIN_RATE"
        )
    finally:
        journal.close()
    assert main(["check", "--home", str(home.root), "--replay", DEMO_DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "console verbose (DEBUG_LOG_LEVEL=quiet, BUILD_MODE=debug)" in out
    assert "session cap 250.00 per window" in out and "max 2 trades/window" in out
    assert f"defense    ON from the start of {DEMO_DAY} (carried over from 2011-01-24: win rate 20%" in out
    assert (
        main(["check", "--home", str(home.root), "--replay", "2011-01-26"]) == 0
    )  # not carried two sessions
    assert "defense " not in capsys.readouterr().out
    update_env_values(home, {"DEFENSE_MODE_ACTIVE": "true"}, actor="test")
    assert main(["check", "--home", str(home.root), "--replay", "2011-01-26"]) == 0
    out = capsys.readouterr().out
    assert "defense    ON from the start of 2011-01-26 (DEFENSE_MODE_ACTIVE=true)" in out
    assert "session cap 250.00 per window" in out and "max 2 trades/window" in out
