"""Fixtures only: real Jupyter servers in subprocesses, alone or with a team of users.

Helpers the tests call live in helpers.py (and team.py, sessions.py, redis_cluster.py): a
test module imports those, never this file nor another test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported in the fixtures: the unit tier, which uses none, starts faster
    from .server import ServerProcess
    from .team import Team


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    from .server import ServerProcess

    proc = ServerProcess(tmp_path).start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory for servers with custom CollabApp config."""
    from .server import ServerProcess

    started: list[ServerProcess] = []

    def make(config: dict[str, Any] | None = None, name: str = "srv") -> ServerProcess:
        proc = ServerProcess(tmp_path / name, config=config).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    """A server whose users alice, bob, carol, dave have roles from a file (tests/team.py)."""
    from .team import team_server

    team = team_server(tmp_path)
    yield team
    team.server.stop()


@pytest.fixture
def make_team(tmp_path: Path) -> Iterator[Any]:
    """Factory for team servers with custom CollabApp config or policy lines."""
    from .team import team_server

    teams: list[Team] = []

    def make(config: dict[str, Any] | None = None, policy: list[str] | None = None) -> Team:
        team = team_server(tmp_path / f"team{len(teams)}", config, policy)
        teams.append(team)
        return team

    yield make
    for team in teams:
        team.server.stop()
