"""A demo identity for public demos (Binder): INSECURE, for demonstrations only.

Binder has no real login: everyone who opens a running Binder's link is the same user (the
server's token, or one temporary JupyterHub user). To show several collaborators and the
roles, this module gives each browser its own visitor identity ("Demo Otter") and lets a
link choose the role: `?role=viewer` (or `editor`, `owner`) on any page of the server,
e.g. `/lab/tree/demo/welcome.ipynb?role=viewer`, is remembered in a cookie for that
browser. Anyone who can reach the server picks their own role, so this is never a security
boundary. It is off unless a config enables both parts (binder/jupyter_server_config.py):

    c.ServerApp.jpserver_extensions = {"jupyter_collab": True, "jupyter_collab.demo": True}
    c.CollabApp.permission_policy_class = "jupyter_collab.demo.DemoPolicy"

It is a server extension rather than an `identity_provider_class` because Binder runs
`jupyterhub-singleuser`, which replaces the configured identity provider with JupyterHub's:
the extension wraps whichever provider authenticated the request (the token, or the Hub),
so only people who could open the server at all become visitors.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.identity import IdentityProvider, User
from tornado.websocket import WebSocketHandler
from traitlets import Unicode

from .permissions import Access, PermissionPolicy, Role

VISITOR_COOKIE = "jupyter-collab-demo-visitor"
ROLE_COOKIE = "jupyter-collab-demo-role"
ROLE_ARGUMENT = "role"
DEMO_ROLES = {Role.OWNER.value, Role.EDITOR.value, Role.VIEWER.value}
ANIMALS = [
    "Otter", "Heron", "Lynx", "Puffin", "Badger", "Gecko", "Marten", "Ibex",
    "Okapi", "Quokka", "Tapir", "Walrus", "Narwhal", "Pangolin", "Axolotl", "Kestrel",
]  # fmt: skip
COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#469990"]


def visitor(visitor_id: str, role: str, authenticated: User) -> User:
    """The identity of one browser: a stable animal name and colour from its visitor id.

    A copy of the authenticated user, so that what the server's authorizer reads (e.g.
    JupyterHub's `hub_user` scopes) is unchanged; `demo_role` is what the link asked for.
    """
    digest = hashlib.sha256(visitor_id.encode()).digest()
    animal = ANIMALS[digest[0] % len(ANIMALS)]
    user = copy.copy(authenticated)
    user.username = f"demo-{animal.lower()}-{visitor_id[:6]}"
    user.name = f"Demo {animal}"
    user.display_name = f"Demo {animal} ({role})"
    user.initials = "D" + animal[0]
    user.color = COLORS[digest[1] % len(COLORS)]
    user.avatar_url = None
    user.demo_role = role  # type: ignore[attr-defined]
    return user


class DemoIdentityProvider:
    """Wraps the server's identity provider: whoever it authenticates becomes a visitor.

    Everything but `get_user` is the wrapped provider's (login, tokens, cookies, origin
    checks), so the demo never lets in anyone the server itself would refuse.
    """

    def __init__(self, inner: IdentityProvider) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_user(self, handler: Any) -> User | None:
        user = await ensure_async(self.inner.get_user(handler))
        if user is None:
            return None
        asked = handler.get_argument(ROLE_ARGUMENT, None)
        remembered = handler.get_cookie(ROLE_COOKIE)
        role = next((r for r in (asked, remembered) if r in DEMO_ROLES), Role.EDITOR.value)
        visitor_id = handler.get_cookie(VISITOR_COOKIE) or secrets.token_hex(8)
        # Cookies go out with pages and API replies; a WebSocket handshake cannot set them.
        if not isinstance(handler, WebSocketHandler):
            path = handler.settings.get("base_url", "/")
            handler.set_cookie(VISITOR_COOKIE, visitor_id, path=path)
            if asked in DEMO_ROLES:
                handler.set_cookie(ROLE_COOKIE, asked, path=path)
        return visitor(visitor_id, role, user)


class DemoPolicy(PermissionPolicy):
    """The role is the one the visitor's link asked for (see the module docstring)."""

    default_role = Unicode(
        Role.VIEWER.value,
        config=True,
        help="Role of a user without a demo identity, i.e. when the policy is configured "
        "without the jupyter_collab.demo extension: a viewer, so that a half-enabled demo "
        "never makes every authenticated user an editor.",
    )

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        return Access(Role(getattr(user, "demo_role", self.default_role)))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jupyter_collab.demo"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Put the visitor wrapper around the provider every handler and the authorizer use."""
    wrapped = DemoIdentityProvider(serverapp.identity_provider)
    serverapp.web_app.settings["identity_provider"] = wrapped
    serverapp.log.warning(
        "jupyter_collab.demo is enabled: every visitor picks their own role with ?role=. "
        "This is for public demos only, never for real data."
    )
