"""A server with several real users (one token each, tests/identity.py) whose roles live in
a JSON file the tests change while people are connected; and crafted updates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc

from jupyter_collab.client import RoomClient

from .helpers import join, write_notebook
from .server import ServerProcess

ROLES = {"alice": "owner", "bob": "editor", "carol": "viewer"}


class Team:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.roles_file = server.base / "roles.json"
        self.events_file = server.base / "events.log"

    def set_roles(self, roles: dict[str, Any]) -> None:
        self.roles_file.write_text(json.dumps(roles))

    async def join(self, who: str, path: str) -> RoomClient:
        return await join(self.server, path, token=f"{who}-token")

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]


def team_server(base: Path, config: dict[str, Any] | None = None, policy: list[str] | None = None) -> Team:
    (base / "roles.json").parent.mkdir(parents=True, exist_ok=True)
    (base / "roles.json").write_text(json.dumps(ROLES))
    policy = policy or [
        'c.CollabApp.permission_policy_class = "tests.identity.RolesFilePolicy"',
        f"c.RolesFilePolicy.roles_file = {str(base / 'roles.json')!r}",
    ]
    extra = "\n".join(
        [
            'c.ServerApp.identity_provider_class = "tests.identity.TokenPerUser"',
            'c.IdentityProvider.token = "unused-admin-token"',
            *policy,
            "import logging",
            f"c.EventLogger.handlers = [logging.FileHandler({str(base / 'events.log')!r})]",
        ]
    )
    server = ServerProcess(base, config=config, extra_config=extra).start()
    return Team(server)


def crafted_update(client: RoomClient, change) -> bytes:
    """An update made on a private copy of the client's document (never sent by it)."""
    copy = Doc()
    copy.apply_update(client.doc.get_update())
    before = copy.get_state()
    change(copy)
    return copy.get_update(before)


def notebook_of(doc: Doc) -> YNotebook:
    return YNotebook(doc)



def locked_notebook(root: Path) -> str:
    path = write_notebook(root, sources=["free", "frozen", "undeletable"])
    nb = json.loads((root / path).read_text())
    nb["cells"][1]["metadata"]["editable"] = False
    nb["cells"][2]["metadata"]["deletable"] = False
    (root / path).write_text(json.dumps(nb))
    return path
