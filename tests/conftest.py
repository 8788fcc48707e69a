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
