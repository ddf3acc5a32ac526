"""Whether the server's authorizer enforces the collaboration policy, checked at startup.

A policy whose authorizer the server does not run governs the rooms only, and the server's
own routes (/api/contents, /files/, kernels, terminals) ignore it (security review H4). This
sits apart from both authorizer modules because it knows every policy-authorizer pair.
"""

from __future__ import annotations

import logging
from typing import Any

from .authorizers import RulesAuthorizer
from .hub import HubAuthorizer, HubPolicy
from .permissions import PermissionPolicy, RulesPolicy


def warn_if_policy_unenforced(serverapp: Any, policy: PermissionPolicy, log: logging.Logger) -> str | None:
    """At startup: a policy whose authorizer the server does not run governs the rooms
    only, and the server's own routes ignore it (security review H4). Logs and returns the
    warning, None when the pair matches."""
    pairs = ((RulesPolicy, RulesAuthorizer, "jupyter_collab.authorizers.RulesAuthorizer"),
             (HubPolicy, HubAuthorizer, "jupyter_collab.hub.HubAuthorizer"))  # fmt: skip
    authorizer = getattr(serverapp, "authorizer", None)
    for policy_class, authorizer_class, name in pairs:
        if isinstance(policy, policy_class) != isinstance(authorizer, authorizer_class):
            message = (
                f"jupyter_collab: the permission policy is {type(policy).__name__} but the "
                f"server's authorizer is {type(authorizer).__name__}: /api/contents, /files/, "
                f"kernels and terminals do not follow the policy's roles. Pair "
                f"{policy_class.__name__} with c.ServerApp.authorizer_class = {name!r}."
            )
            log.warning(message)
            return message
    return None
