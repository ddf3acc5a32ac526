"""The rest of the server under our roles: authorizers for jupyter_server's own routes.

A permission policy governs the collaboration routes (rooms, sessions, our REST API). The
server's other routes (`/api/contents`, `/files/`, checkpoints, trust, kernels, sessions,
terminals, nbconvert, ...) ask the server's Authorizer (`c.ServerApp.authorizer_class`),
and without one of ours a user the policy keeps out of `solutions/*` still reads it there.
Two authorizers close that, with the same rules as the rooms:

- `jupyter_collab.hub.HubAuthorizer` for `HubPolicy` on JupyterHub;
- `RulesAuthorizer` (here) for `RulesPolicy`.

Both share `PathAuthorizer`: a request's files (URL and body, `authorizers_request`) are
decided on their canonical paths, each by the caller's role there; a request that names no
file by the caller's role on the server. A role maps to what it may do through one table
(`permissions`); owners may do everything. For non-owners, writes whose effect reaches
beyond one path (folders, signing, locked cells: `authorizers_writes`) are looked into.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from traitlets import Dict, Instance, Int, default

from .authorizers_request import Named, Operation, Request, describe, json_body
from .authorizers_writes import (
    checkpoint_notebook,
    claims_trust,
    file_exists,
    folder_tree,
    incoming_notebook,
    is_folder,
    lock_refusal,
)
from .paths import PathRefused, contents_root
from .permissions import Role, RulesPolicy, leads_to

# What a non-owner may do on the server, by role. JupyterLab needs these reads to show a
# notebook; writing files where the role is editor is the editor's; running code (kernels
# execute, sessions write, terminals) and the rest are the owner's unless configured:
# code runs as the server's user and reaches every file, whatever the roles say.
GUEST_PERMISSIONS = {
    Role.VIEWER.value: {
        "api": ["read"],
        "config": ["read"],
        "contents": ["read"],
        "kernelspecs": ["read"],
        "kernels": ["read"],
        "sessions": ["read"],
    },
    Role.EDITOR.value: {
        "api": ["read"],
        "config": ["read"],
        "contents": ["read", "write"],
        "kernelspecs": ["read"],
        "kernels": ["read"],
        "sessions": ["read"],
    },
}


class PathAuthorizer(Authorizer):
    """Roles on the server's own routes, decided per canonical file path.

    Subclasses say what a user's role is on a path, or on the server (`role_on`), and
    whether a folder leads to something granted to them (`leads_to_grant`: such folders may
    be listed, names and not contents, so that a file browser reaches what was shared).
    """

    permissions = Dict(
        config=True,
        help="""Role -> {resource: [actions]} allowed to non-owners, e.g. to let editors run
        code: {"editor": {..., "kernels": ["read", "write", "execute"], "sessions": ["read",
        "write"]}}. Resources and actions are Jupyter Server's (contents, kernels, sessions,
        terminals, nbconvert, ...; read, write, execute). A role not listed may do nothing;
        owners may do everything. On requests that name a file (contents, /files/,
        nbconvert) the role is the one on that file.""",
    )
    max_folder_entries = Int(
        10_000,
        config=True,
        help="Largest folder (files and folders below it) a non-owner may move, copy or "
        "delete: each entry is checked against the caller's role, so bigger ones are refused.",
    )

    @default("permissions")
    def _default_permissions(self) -> dict[str, dict[str, list[str]]]:
        return GUEST_PERMISSIONS

    async def role_on(self, handler: Any, user: Any, path: str | None) -> Role:
        """The user's role on a canonical path, or on the server when `path` is None."""
        raise NotImplementedError

    async def leads_to_grant(self, handler: Any, user: Any, folder: str) -> bool:
        """Whether `folder` is above a path where the user has a role ("": anywhere)."""
        raise NotImplementedError

    def allows(self, role: Role, resource: str, action: str) -> bool:
        """The one place a role becomes permissions."""
        if role is Role.OWNER:
            return True
        return action in self.permissions.get(role.value, {}).get(resource, [])

    async def file_role(self, handler: Any, user: Any, named: Named, resource: str) -> Role:
        """The role on a file; a folder on the way to a grant may be listed as a viewer."""
        role = await self.role_on(handler, user, named.path)
        if (
            role is Role.NONE
            and named.action == "read"
            and resource == "contents"
            and await self.leads_to_grant(handler, user, named.path)
            and (named.path == "" or await is_folder(handler, named.path))
        ):
            return Role.VIEWER
        return role

    async def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:  # type: ignore[override]
        try:
            request = describe(handler, action, resource)
            if not request.files:
                role = await self.role_on(handler, user, None)
                if role is Role.NONE and await self.leads_to_grant(handler, user, ""):
                    role = Role.VIEWER  # admitted somewhere: JupyterLab's reads of the server
                return self.allows(role, resource, action)
            roles = [await self.file_role(handler, user, named, resource) for named in request.files]
            if not all(
                self.allows(role, resource, named.action)
                for role, named in zip(roles, request.files, strict=True)
            ):
                return False
            if all(role is Role.OWNER for role in roles):
                return True
            reason = await self.guest_refusal(handler, user, request, resource)
        except PathRefused as exc:
            reason = exc.message
        if reason is None:
            return True
        name, request_line = (
            getattr(user, "username", "?"),
            f"{handler.request.method} {handler.request.path}",
        )
        self.log.info("jupyter_collab: refused %s to %s: %s", request_line, name, reason)
        return False

    async def guest_refusal(self, handler: Any, user: Any, request: Request, resource: str) -> str | None:
        """Why a non-owner may not do what their role on each named file otherwise allows."""
        operation, path = request.operation, request.url_file
        if operation is Operation.TRUST:
            return "only the owner signs notebooks: trusted outputs run scripts in the owner's browser"
        if operation in (Operation.RENAME, Operation.DELETE, Operation.COPY):
            source = request.files[1].path if operation is Operation.COPY else path
            if await is_folder(handler, source):
                reason = await self.folder_refusal(handler, user, request, source, resource)
                if reason is not None:
                    return reason
        notebook = path.endswith(".ipynb")
        if operation is Operation.SAVE:
            model = json_body(handler)
            incoming = incoming_notebook(model)
            if incoming is not None and (model or {}).get("type") == "notebook" and claims_trust(incoming):
                return "a notebook saved by a non-owner may not claim trusted outputs"
            if notebook and await file_exists(handler, path):
                return await lock_refusal(handler, user, path, incoming)
        if operation is Operation.DELETE and notebook and await file_exists(handler, path):
            return await lock_refusal(handler, user, path, None)
        if operation is Operation.RESTORE and notebook:
            restored = checkpoint_notebook(handler, path, request.checkpoint_id)
            if restored is None:
                return "no readable checkpoint to restore"
            return await lock_refusal(handler, user, path, restored)
        return None

    async def folder_refusal(
        self, handler: Any, user: Any, request: Request, folder: str, resource: str
    ) -> str | None:
        """A folder moved, copied or deleted takes everything below it: each entry must
        allow it (and, for a move, its new place), and deleted notebooks keep their locks."""
        root = contents_root(handler.contents_manager)
        if root is None:
            return "only the owner moves, copies or deletes folders on this server"
        operation = request.operation
        action = "read" if operation is Operation.COPY else "write"
        for relative, target in folder_tree(root, folder, self.max_folder_entries):
            places = [f"{folder}/{relative}" if folder else relative]
            if target is not None:
                places.append(target)
            if operation is Operation.RENAME:
                places.append(f"{request.files[1].path}/{relative}")
            roles = [await self.file_role(handler, user, Named(place, action), resource) for place in places]
            for place, role in zip(places, roles, strict=True):
                if not self.allows(role, resource, action):
                    return f"no {action} access to {place}, inside {folder}"
            if operation is Operation.DELETE and relative.endswith(".ipynb") and roles[0] is not Role.OWNER:
                reason = await lock_refusal(handler, user, places[0], None)
                if reason is not None:
                    return reason
        return None


class RulesAuthorizer(PathAuthorizer):
    """`RulesPolicy` (`c.RulesPolicy.rules`, `groups`, `default_role`) on the server's own
    routes, as the rooms apply it: set `c.ServerApp.authorizer_class =
    "jupyter_collab.authorizers.RulesAuthorizer"`. A request that names a file is decided by
    the rules' role on that file; one that names none (kernels, terminals, kernel specs,
    config, ...) by the role on the root folder "" (a rule without `paths` matches it)."""

    policy = Instance(RulesPolicy)

    @default("policy")
    def _default_policy(self) -> RulesPolicy:
        return RulesPolicy(parent=self, log=self.log)

    async def role_on(self, handler: Any, user: Any, path: str | None) -> Role:
        if user is None:
            return Role.NONE
        return (await self.policy.access(user, path or "", handler)).role

    async def leads_to_grant(self, handler: Any, user: Any, folder: str) -> bool:
        return user is not None and leads_to(folder, self.policy.granted_patterns(user))
