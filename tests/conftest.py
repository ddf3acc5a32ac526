"""Fixtures: real Jupyter servers in subprocesses, and notebooks on their disks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_collab.client import RoomClient, open_session, room_url

from .server import TOKEN, ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path).start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory for servers with custom CollabApp config."""
    started: list[ServerProcess] = []

    def make(config: dict[str, Any] | None = None, name: str = "srv") -> ServerProcess:
        proc = ServerProcess(tmp_path / name, config=config).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


def write_notebook(root: Path, name: str | None = None, sources: list[str] | None = None) -> str:
    """Write a notebook with one code cell per source; returns its API path."""
    name = name or f"nb-{uuid.uuid4().hex[:8]}.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for source in sources if sources is not None else ["print('hello')"]:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, root / name)
    return name


def read_notebook(root: Path, path: str) -> dict[str, Any]:
    return json.loads((root / path).read_text())


async def join(
    server: ServerProcess,
    path: str,
    *,
    file_format: str = "json",
    file_type: str = "notebook",
    user: dict[str, Any] | None = None,
    token: str = TOKEN,
) -> RoomClient:
    session = await open_session(server.url, path, token, file_format=file_format, file_type=file_type)
    return await RoomClient(room_url(server.url, session, token), user=user).connect()


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Any]:
    """A server whose users alice, bob, carol, dave have roles from a file (tests/team.py)."""
    from .team import team_server  # the team module uses this module's helpers

    team = team_server(tmp_path)
    yield team
    team.server.stop()


@pytest.fixture
def make_team(tmp_path: Path) -> Iterator[Any]:
    """Factory for team servers with custom CollabApp config or policy lines."""
    from .team import team_server

    teams: list[Any] = []

    def make(config: dict[str, Any] | None = None, policy: list[str] | None = None) -> Any:
        team = team_server(tmp_path / f"team{len(teams)}", config, policy)
        teams.append(team)
        return team

    yield make
    for team in teams:
        team.server.stop()
