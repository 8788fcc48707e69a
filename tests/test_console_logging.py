"""BUILD_MODE and DEBUG_LOG_LEVEL decide the engine's console (journal) verbosity; `tbot check` names the logging,
rebalance and failover settings it will run with."""

from __future__ import annotations

import logging

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
    assert "console verbose (BUILD_MODE=release)" in out
    assert "rebalance  on: beyond 10% of the float" in out
    assert "failover" not in out  # one broker per bot: the FAILOVER_* keys are gone (tests/test_wiring.py)
