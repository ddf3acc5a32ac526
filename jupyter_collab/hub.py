"""JupyterHub: roles from the Hub's permissions, per server and per notebook or folder.

On a JupyterHub single-user server, `jupyterhub-singleuser` authenticates every request
with the Hub and gives us a `JupyterHubUser`: its name, the `user_info` the Hub's
authenticator provided where the Hub keeps it (name, display name, avatar: JupyterHub 6
does) and the scopes of the token. The identity fields are stamped on presence by the server core as
for any user; this module maps the scopes to our roles.

JupyterHub's sharing (5.0+) grants scopes on one server (`POST /hub/api/shares/{owner}/`
with `{"user": ..., "scopes": [...]}`, every scope filtered to `!server=owner/`): there is
no path in a Hub scope (custom scope names cannot hold `/` or `.`). So the role comes
in two layers:

1. **The Hub decides who may come in and the most they may do** on this server: the
   server's owner is `owner`; a user whose token holds `custom:jupyter-collab:edit` for
   this server is at most `editor`, `custom:jupyter-collab:view` at most `viewer`, and one
   with only `access:servers` (a share without our scopes, or an admin) gets
   `access_role` (default `none`).
2. **The owner narrows it per notebook or folder** in a shares file on their server
   (`shares_file`, default `.jupyter-collab-shares.json` in the server's root, hidden from
   the file browser and from everyone but the owner), e.g.
   `{"bob": {"reports/*": "viewer", "reports/draft.ipynb": "editor"}, "group:staff": {...},
   "*": {...}}`. The most specific statement wins (`HubPolicy.path_role`): the user's
   own entry over their groups' over `*`'s, and within those the most specific pattern,
   so that `{"*": {"*": "viewer"}, "bob": {"secret/": "none"}}` keeps bob out of
   `secret/` only. A user the file names (or `*` does) reaches only the paths a pattern
   matches, and never above the Hub's grant: the file cannot give what the Hub did not.
   A user without entries keeps the Hub's grant on the whole server. Paths are canonical
   (`paths.canonical_path`): `reports/*` never matches `reports/../secret/x`, which is
   refused before any pattern is tried.

Running a notebook's code (its kernel runs as the server's owner) is a right of its own:
the owner runs; a non-owner runs where they have access if their token holds
`custom:jupyter-collab:run` for this server (`run_scope`: a viewer who watches and runs),
or if their role lets them edit and `editors_run` (default True) allows it. The shares file
narrows it as it narrows roles: a path it grants `viewer` (or `none`) is not run there,
whatever the Hub granted; `editor` lets the Hub's grant stand.

A Hub share also opens the whole Jupyter server (files, kernels, terminals) to the user,
and `jupyterhub-singleuser` allows an admitted user everything: "let her watch this
notebook" would be "let her run code as me". `HubAuthorizer` closes that: non-owners may
do on the server only what their role allows (`HubAuthorizer.permissions`), on files the
role the shares file gives them there.

See docs/deployment.md for the Hub configuration an admin writes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from traitlets import Bool, Instance, Unicode, default

from .authorizers import PathAuthorizer
from .permissions import ROLE_NAMES, Access, PermissionPolicy, Role, leads_to, matches

Grants = dict[str, dict[str, str]]  # the shares file: {who: {path glob: role}}


def specificity(pattern: str) -> tuple[bool, int]:
    """How specific a shares-file pattern is: an exact path beats any glob, then the
    longer literal start (before the first `*`, `?` or `[`) wins. A folder (`x/`) is a glob."""
    literal = re.split(r"[*?[]", pattern, maxsplit=1)[0]
    return (literal == pattern and not pattern.endswith("/"), len(literal))


def best_match(entries: list[dict[str, str]], path: str) -> Role | None:
    """The role of the most specific pattern matching `path` in these entries (the weakest
    on a tie: `none` wins); None when no pattern matches."""
    found = [
        (specificity(pattern), Role(role))
        for entry in entries
        for pattern, role in entry.items()
        if role in ROLE_NAMES and matches(path, pattern)
    ]
    if not found:
        return None
    top = max(rank for rank, _ in found)
    return Role.lowest(*(role for rank, role in found if rank == top))


class HubPolicy(PermissionPolicy):
    """Roles from JupyterHub scopes, narrowed per path by the server owner's shares file."""

    owner_role = Unicode(
        Role.OWNER.value,
        config=True,
        help="Role of the server's owner ($JUPYTERHUB_USER) on every document.",
    )
    edit_scope = Unicode(
        "custom:jupyter-collab:edit",
        config=True,
        help="Hub scope (declared in c.JupyterHub.custom_scopes) that makes a user an editor "
        "on a server it is granted for (e.g. custom:jupyter-collab:edit!server=alice/).",
    )
    view_scope = Unicode(
        "custom:jupyter-collab:view",
        config=True,
        help="Hub scope that makes a user a viewer on a server it is granted for.",
    )
    run_scope = Unicode(
        "custom:jupyter-collab:run",
        config=True,
        help="Hub scope that lets a non-owner run notebooks' code on a server it is granted for "
        "(e.g. custom:jupyter-collab:run!server=alice/), whatever their role: with view_scope, "
        "someone who watches and runs. Running code runs it as the server's owner. The "
        "shares file narrows it per path (a path it grants viewer or none is not run).",
    )
    editors_run = Bool(
        True,
        config=True,
        help="Whether non-owners whose role lets them edit (editors) also run code without "
        "holding run_scope. False: only the owner and run_scope holders run.",
    )
    access_role = Unicode(
        Role.NONE.value,
        config=True,
        help="Role of a user who may access the server (access:servers) but holds neither "
        "edit_scope nor view_scope for it: a plain JupyterHub share, or a Hub admin.",
    )
    shares_file = Unicode(
        ".jupyter-collab-shares.json",
        config=True,
        help="The owner's per-path grants, relative to the server's root directory (or "
        'absolute): {"user" | "group:name" | "*": {"path glob": "editor|viewer|none"}}. '
        "Empty string: no per-path grants, the Hub's grant covers the whole server.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials: WeakKeyDictionary[Any, tuple[str, str]] = WeakKeyDictionary()
        self._shares: tuple[tuple[int, int], Grants | None] | None = None

    @property
    def server_owner(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    @property
    def server_filter(self) -> str:
        return f"server={self.server_owner}/{os.environ.get('JUPYTERHUB_SERVER_NAME', '')}"

    def is_owner(self, hub_user: dict[str, Any]) -> bool:
        return hub_user.get("kind", "user") == "user" and hub_user.get("name") == self.server_owner

    def holds(self, hub_user: dict[str, Any], scope: str) -> bool:
        """Whether the Hub user's token holds `scope` for this server."""
        # Imported here: the policy module stays importable without JupyterHub installed.
        from jupyterhub.services.auth import check_scopes

        return bool(check_scopes(f"{scope}!{self.server_filter}", set(hub_user.get("scopes", []))))

    def hub_role(self, hub_user: dict[str, Any]) -> Role:
        """The most this (non-owner) Hub user may do on this server, from their token's scopes."""
        if self.holds(hub_user, self.edit_scope):
            return Role.EDITOR
        if self.holds(hub_user, self.view_scope):
            return Role.VIEWER
        return Role(self.access_role)

    def runs(self, hub_user: dict[str, Any], role: Role, granted: Role | None) -> bool:
        """Whether a non-owner whose role on a path is `role` (after narrowing) may run code
        there; `granted` is what the shares file says of the path (None: nothing). A share
        below editor withholds running even from a run_scope holder: the owner narrowed it."""
        if role is Role.NONE or (granted is not None and not granted.can_edit):
            return False
        return self.holds(hub_user, self.run_scope) or (role.can_edit and self.editors_run)

    def shares_path(self, root: Path) -> Path | None:
        return root / Path(self.shares_file).expanduser() if self.shares_file else None

    def shares(self, path: Path) -> Grants | None:
        """The shares file, re-read when it changes: {} when there is none, None when it
        cannot be read (then non-owners get no access until the owner fixes it: a broken
        file must not widen what the owner had narrowed)."""
        try:
            stat = path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self.log.error("jupyter_collab: cannot read shares file %s: %s", path, exc)
            return None
        if self._shares is None or self._shares[0] != version:
            try:
                data = json.loads(path.read_text())
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                self.log.error("jupyter_collab: unreadable shares file %s: %s", path, exc)
                data = None
            self._shares = (version, data)
        return self._shares[1]

    def tiers(self, grants: Grants, hub_user: dict[str, Any]) -> list[list[dict[str, str]]]:
        """The shares file's {glob: role} maps that name this user, by precedence: their own
        entry, then their groups' entries, then `*`'s."""

        def entry(key: str) -> list[dict[str, str]]:
            return [grants[key]] if isinstance(grants.get(key), dict) else []

        groups = [found for group in hub_user.get("groups") or [] for found in entry(f"group:{group}")]
        return [entry(hub_user.get("name", "")), groups, entry("*")]

    def path_role(self, grants: Grants, hub_user: dict[str, Any], path: str) -> Role | None:
        """The owner's grant for this user on this path; None if the file does not list them.

        The most specific statement wins, so that an owner can carve exceptions out of a
        broad grant: the user's own entry over their groups' over `*`'s (a tier with no
        pattern matching the path says nothing about it), and within a tier the most
        specific pattern (`specificity`; `none` on a tie). A user the file lists reaches
        only the paths some pattern matches.
        """
        tiers = self.tiers(grants, hub_user)
        if not any(tiers):
            return None
        for tier in tiers:
            role = best_match(tier, path)
            if role is not None:
                return role
        return Role.NONE

    def credentials(self, handler: Any, hub_auth: Any) -> tuple[str, str] | None:
        """The request's Hub token and session id, remembered per handler: a room socket
        drops its handshake headers once open, and the re-check asks again later."""
        token = hub_auth.get_token(handler)
        if token:
            self._credentials[handler] = (token, hub_auth.get_session_id(handler))
        return self._credentials.get(handler)

    async def hub_user_now(self, user: Any, handler: Any) -> dict[str, Any] | None:
        """What the Hub says of the request's token now, not when the connection opened, so
        that a share revoked on the Hub reaches open connections at the next permission
        re-check (the server's HubAuth caches answers for `c.HubAuth.cache_max_age`).
        None: the token no longer admits its user to this server."""
        hub_auth = getattr(handler.identity_provider, "hub_auth", None)
        credentials = self.credentials(handler, hub_auth) if hub_auth is not None else None
        if credentials is None:
            return getattr(user, "hub_user", None)
        token, session_id = credentials
        model = await hub_auth.user_for_token(token, session_id=session_id, sync=False)
        if model is None or not hub_auth.check_scopes(hub_auth.access_scopes, model):
            return None
        return model

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        hub_user = await self.hub_user_now(user, handler)
        if not isinstance(hub_user, dict):
            return Access(Role.NONE)  # not (or no longer) admitted by JupyterHub
        if self.is_owner(hub_user):
            return Access(Role(self.owner_role), run=True)  # their kernels run as them anyway
        granted = self.path_grant(hub_user, path, server_root(handler))
        role = narrowed(self.hub_role(hub_user), granted)
        return Access(role, run=self.runs(hub_user, role, granted))

    def on_path(self, role: Role, hub_user: dict[str, Any], path: str, root: Path) -> Role:
        """A non-owner's Hub role narrowed to one canonical path by the owner's shares file."""
        return narrowed(role, self.path_grant(hub_user, path, root))

    def path_grant(self, hub_user: dict[str, Any], path: str, root: Path) -> Role | None:
        """What the owner's shares file grants a non-owner on one canonical path; None when
        it says nothing of them (no file, or they are not listed in it)."""
        shares_path = self.shares_path(root)
        if shares_path is None:
            return None
        if (root / path).resolve() == shares_path.resolve():
            return Role.NONE  # only the owner edits who may see what
        grants = self.shares(shares_path)
        if grants is None:
            return Role.NONE
        return self.path_role(grants, hub_user, path)

    def leads_to_grant(self, hub_user: dict[str, Any], folder: str, root: Path) -> bool:
        """Whether `folder` is above a path the shares file grants this user: listing it is
        how a file browser reaches what was shared (names are seen, not contents)."""
        shares_path = self.shares_path(root)
        grants = self.shares(shares_path) if shares_path is not None else None
        if not grants:
            return False
        granted = [
            pattern
            for tier in self.tiers(grants, hub_user)
            for entry in tier
            for pattern, role in entry.items()
            if role in ROLE_NAMES and role != Role.NONE.value
        ]
        return leads_to(folder, granted)


def narrowed(role: Role, granted: Role | None) -> Role:
    """A Hub grant narrowed by the shares file's grant (None: the file says nothing): the
    file cannot give what the Hub did not."""
    return role if granted is None else Role.lowest(role, granted)


def server_root(handler: Any) -> Path:
    return Path(handler.settings.get("server_root_dir", ".")).expanduser()


class HubAuthorizer(PathAuthorizer):
    """The server's own authorization (`c.ServerApp.authorizer_class`) on a Hub server:
    the owner may do everything; anyone else what `permissions` lists for their role: the
    Hub role (`HubPolicy`: scopes, `access_role`), narrowed by the shares file on requests
    that name a file (see `jupyter_collab.authorizers`). Folders above a shared path may be
    listed."""

    policy = Instance(HubPolicy)

    @default("policy")
    def _default_policy(self) -> HubPolicy:
        return HubPolicy(parent=self, log=self.log)

    async def role_on(self, handler: Any, user: Any, path: str | None) -> Role:
        hub_user = getattr(user, "hub_user", None)
        if not isinstance(hub_user, dict):
            return Role.NONE
        if self.policy.is_owner(hub_user):
            return Role.OWNER
        role = self.policy.hub_role(hub_user)
        if path is None:
            return role
        return self.policy.on_path(role, hub_user, path, server_root(handler))

    async def leads_to_grant(self, handler: Any, user: Any, folder: str) -> bool:
        hub_user = getattr(user, "hub_user", None)
        if not isinstance(hub_user, dict) or self.policy.hub_role(hub_user) is Role.NONE:
            return False
        return self.policy.leads_to_grant(hub_user, folder, server_root(handler))
