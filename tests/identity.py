"""Test users for the server subprocesses: one token per user (a real IdentityProvider),
and a permission policy whose roles live in a JSON file the tests edit while connected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Unicode

from jupyter_collab.permissions import Access, PermissionPolicy, Role

USERS = {
    "alice-token": {
        "username": "alice",
        "name": "Alice Owner",
        "display_name": "Alice",
        "initials": "AL",
        "color": "#e6194b",
    },
    "bob-token": {
        "username": "bob",
        "name": "Bob Editor",
        "display_name": "Bob",
        "initials": "BO",
        "color": "#4363d8",
    },
    "carol-token": {
        "username": "carol",
        "name": "Carol Viewer",
        "display_name": "Carol",
        "initials": "CA",
        "color": "#3cb44b",
    },
    "dave-token": {
        "username": "dave",
        "name": "Dave Nobody",
        "display_name": "Dave",
        "initials": "DA",
        "color": "#911eb4",
    },
}


class TokenPerUser(IdentityProvider):
    """Each test token is a different user."""

    async def get_user_token(self, handler: Any) -> User | None:  # type: ignore[override]
        token = self.get_token(handler)
        return User(**USERS[token]) if token in USERS else None


class RolesFilePolicy(PermissionPolicy):
    """Roles from a JSON file: {"alice": "owner", "bob": "editor", ...; "locked": {user: [ids]};
    "run": {user: true|false}} (a user not under "run" gets their role's default run right)."""

    roles_file = Unicode(config=True)

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        data = json.loads(Path(self.roles_file).read_text())
        role = Role(data.get(user.username, "none"))
        locked = frozenset(data.get("locked", {}).get(user.username, []))
        return Access(role, locked, run=data.get("run", {}).get(user.username))


class CarolReadsOnly(Authorizer):
    """The server's own authorization: carol may only read, dave nothing."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        if user.username == "dave":
            return False
        return user.username != "carol" or action == "read"
