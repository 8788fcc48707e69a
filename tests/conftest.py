"""Shared fixtures: a provisioned sim-broker bot home in a temp directory."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tbot_bot.support.path_resolver import BotHome

_TEMPLATE_HOME: dict[str, Path] = {}


def _provision(root: Path) -> None:
    from tbot_bot.support.provision import ProvisionRequest, provision

    provision(
        BotHome(root),
        ProvisionRequest(
            broker="sim", entity="RGL", jurisdiction="USA", account="main", bot_id="TB01", float_amount="2500"
        ),
        now=datetime(2011, 1, 3, 12, 0, tzinfo=UTC),
    )


@pytest.fixture
def provisioned_home(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A freshly provisioned sim home (RGL/USA/main/TB01, float 2500). Copied from one template per session."""
    if "home" not in _TEMPLATE_HOME:
        base = tmp_path_factory.mktemp("template_home") / "home"
        _provision(base)
        _TEMPLATE_HOME["home"] = base
    home = tmp_path / "home"
    shutil.copytree(_TEMPLATE_HOME["home"], home, symlinks=True)
    return home


# `make test` runs the suite on two pytest-xdist workers, one test file per worker at a time (--dist loadfile),
# in collection order: the files that take minutes (month replays, kill -9 restarts, whole-bot restores) go first
# so that no long file starts last and leaves the other worker idle. Listed slowest first; the rest keep their order.
SLOW_FIRST = (
    "test_replay_live_evaluation.py",
    "test_replay_march.py",
    "test_books_month.py",
    "test_replay_january.py",
    "test_crash_recovery.py",
    "test_replay_rules.py",
    "test_control_restart.py",
    "test_positions_reconcile.py",
    "test_optimizer.py",
    "test_restore_whole_bot.py",
    "test_replay_results.py",
    "test_broker_fees.py",
    "test_service.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(
        key=lambda item: rank.get(item.path.name, len(SLOW_FIRST))
    )  # stable: order within a file is kept
