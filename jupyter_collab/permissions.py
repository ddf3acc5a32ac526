"""Who may do what in a room: the permission policy seam, and identity stamping.

A policy answers one question, `access(user, path, handler)`: the user's role on that
document (owner / editor / viewer / none), which cells are locked for them and whether they
may run its code (the run right, separate from editing: see `Access.can_run`). The room
enforces the answer on the server, for every message. Configure the policy with
`c.CollabApp.permission_policy_class`; the two built-in ones:

- `AuthorizerPolicy` (default) asks the server's Authorizer: allowed to write `contents`
  -> editor (owner if listed in `owners`, or when `owners` is empty: a single-user server's
  user owns it), allowed to read -> viewer, else no access. Owners and editors run code if
  the Authorizer lets them `execute` on `kernels`.
- `RulesPolicy` takes rules from config: users or groups -> role (and run right) per path glob.

Paths are canonical API paths (`paths.canonical_path`): the callers refuse aliases such as
`a/../x` before asking, so a glob compares against the one spelling of a file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jupyter_core.utils import ensure_async
from traitlets import Dict, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from .protocol import role_notice


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    NONE = "none"

    @property
    def rank(self) -> int:
        """Order of power: none < viewer < editor < owner."""
        return _RANK[self]

    @staticmethod
    def lowest(*roles: Role) -> Role:
        """The weakest of `roles`: a grant narrowed by another never exceeds either."""
        return min(roles, key=_RANK.__getitem__)

    @property
    def can_edit(self) -> bool:
        return self in (Role.OWNER, Role.EDITOR)

    @property
    def can_lock(self) -> bool:
        """Only owners lock and unlock cells, and edit locked ones."""
        return self is Role.OWNER


_RANK = {Role.NONE: 0, Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}
ROLE_NAMES = frozenset(role.value for role in Role)


def matches(path: str, pattern: str) -> bool:
    """Whether a canonical API path matches a rule's glob.

    `fnmatch` semantics: `*` also matches `/`, so `solutions/*` covers every file below
    `solutions/` (a `none` rule must not stop at the first sub-folder). A pattern ending in
    `/` names a folder: the folder itself and everything below it.
    """
    if pattern.endswith("/"):
        return path == pattern[:-1] or fnmatch.fnmatchcase(path, pattern + "*")
    return fnmatch.fnmatchcase(path, pattern)


def leads_to(folder: str, patterns: Iterable[str]) -> bool:
    """Whether `folder` is above (or is) the literal start of one of `patterns`: listing
    it is how a file browser reaches what they grant (names are seen, not contents)."""
    prefix = f"{folder}/" if folder else ""
    return any(pattern.startswith(prefix) for pattern in patterns)


@dataclass(frozen=True)
class Access:
    role: Role
    locked_cells: frozenset[str] = field(default_factory=frozenset)  # ids locked by the policy
    # The run right when the policy decides it: None follows the role (`can_run`). A field of
    # its own, compared with the rest, so that a re-check changing only it is a change.
    run: bool | None = None

    @property
    def can_run(self) -> bool:
        """Whether the user may run this document's code (in its kernel, which runs as the
        server's user: granting it grants that power). Kept apart from editing so that a
        policy can let a viewer watch and run, or keep an editor from running. Owners and
        editors by default, viewers only if granted; without access, never, whatever `run`
        says (a kernel check judging every notebook of a kernel must not let them in)."""
        if self.role is Role.NONE:
            return False
        return self.role.can_edit if self.run is None else self.run

    def notice(self) -> dict:
        """What a client is told of its rights (on join and on every change), so that a
        front end can make the document or some cells read-only, or disable running,
        instead of being refused."""
        return role_notice(
            self.role.value,
            can_edit=self.role.can_edit,
            can_lock=self.role.can_lock,
            can_run=self.can_run,
            locked_cells=sorted(self.locked_cells),
        )


class PermissionPolicy(LoggingConfigurable):
    """Base class: subclass and override `access`."""

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        raise NotImplementedError


class AuthorizerPolicy(PermissionPolicy):
    owners = List(
        Unicode(),
        config=True,
        help="Usernames that own every document (may lock cells). Empty: every user allowed "
        "to write is an owner, as on a single-user server.",
    )

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        authorizer = handler.authorizer
        if await ensure_async(authorizer.is_authorized(handler, user, "write", "contents")):
            owner = not self.owners or getattr(user, "username", None) in self.owners
            # Running is asked apart: an Authorizer may let someone write files but not
            # use kernels (jupyter_server's own `execute` on `kernels`, as its kernel routes ask).
            runs = await ensure_async(authorizer.is_authorized(handler, user, "execute", "kernels"))
            return Access(Role.OWNER if owner else Role.EDITOR, run=bool(runs))
        if await ensure_async(authorizer.is_authorized(handler, user, "read", "contents")):
            return Access(Role.VIEWER)
        return Access(Role.NONE)


class RulesPolicy(PermissionPolicy):
    """Roles from config rules; also applied to the rest of the server (files, kernels...)
    by `jupyter_collab.authorizers.RulesAuthorizer`."""

    rules = List(
        Dict(),
        config=True,
        help="""Rules, first match wins: {"paths": ["glob", ...], "users": [...], "groups": [...],
        "role": "owner|editor|viewer|none", "locked_cells": [ids], "run": true|false}. A rule
        without users and groups matches everyone; without paths, every path. Globs match
        canonical API paths; `*` also matches `/` (`solutions/*` covers sub-folders) and a glob
        ending in `/` is a folder and everything below it. `run` grants running the
        notebook's code to a viewer or withholds it from an editor or owner; without it,
        owners and editors run. Running code runs it as the server's user.""",
    )
    groups = Dict(
        config=True,
        help='Group name -> usernames, e.g. {"teachers": ["alice"]}.',
    )
    default_role = Unicode("none", config=True, help="Role when no rule matches.")

    @validate("rules")
    def _check_run(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        """Refuse a bad `run` when the config is loaded, not at someone's first run: a
        string "false" would otherwise be taken as true, and a grant to `none` is a mistake
        (no access never runs)."""
        for rule in proposal["value"]:
            run = rule.get("run")
            if run is not None and not isinstance(run, bool):
                raise TraitError(f'RulesPolicy rule {rule!r}: "run" must be true or false, not {run!r}')
            if run and rule.get("role") == Role.NONE.value:
                raise TraitError(f'RulesPolicy rule {rule!r}: role "none" cannot be granted "run"')
        return proposal["value"]

    def _in_groups(self, username: str, groups: list[str]) -> bool:
        return any(username in self.groups.get(group, []) for group in groups)

    def _applies_to(self, rule: dict[str, Any], username: str) -> bool:
        users, groups = rule.get("users"), rule.get("groups")
        if not (users or groups):
            return True
        return username in (users or []) or self._in_groups(username, groups or [])

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        username = getattr(user, "username", "")
        for rule in self.rules:
            paths = rule.get("paths") or ["*"]
            if not any(matches(path, pattern) for pattern in paths):
                continue
            if not self._applies_to(rule, username):
                continue
            role = Role(rule.get("role", "viewer"))
            return Access(role, frozenset(rule.get("locked_cells", [])), run=rule.get("run"))
        return Access(Role(self.default_role))

    def granted_patterns(self, user: Any) -> list[str]:
        """The globs of the rules that give this user some access (for folder listings)."""
        username = getattr(user, "username", "")
        return [
            pattern
            for rule in self.rules
            if rule.get("role", "viewer") != Role.NONE.value and self._applies_to(rule, username)
            for pattern in rule.get("paths") or ["*"]
        ]


def identity(user: Any, role: Role) -> dict[str, Any]:
    """The awareness `user` field the server stamps on a connection's states."""
    return {
        "username": user.username,
        "name": user.name,
        "display_name": user.display_name,
        "initials": user.initials,
        "color": user.color,
        "avatar_url": user.avatar_url,
        "role": role.value,
    }
