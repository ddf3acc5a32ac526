"""`POST /api/collaboration/permissions/recheck`: apply changed rights to open connections now.

For admins and policies whose answers change (a share revoked, a role edited): instead of
waiting for the periodic re-check, ask for one. Each request re-checks every connection of
every process (one policy call each; a Hub API call each under HubPolicy), so it is only
for owners, and rate-limited (`c.CollabApp.max_recheck_requests_per_minute`, then 429).

An owner is whoever the permission policy makes owner of the server's root folder (path
""): under the default AuthorizerPolicy the users in `c.AuthorizerPolicy.owners`, or every
user allowed to write when that list is empty (a single-user server's user); under
RulesPolicy the first rule matching "" (rules without `paths`); under HubPolicy the
server's owner. Others get 403, as do requests without `contents: write`.
"""

from __future__ import annotations

import math

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..permissions import Role
from .service import collab_of


class RecheckHandler(APIHandler):
    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        collab = collab_of(self)
        access = await collab.access(self.current_user, "", self)
        if access.role is not Role.OWNER:
            raise web.HTTPError(403, "only owners may ask for a permission re-check")
        if not collab.recheck_rate.allow():
            # Set here rather than raised: an HTTPError's reply drops the headers set before it.
            self.set_status(429)
            self.set_header("Retry-After", str(math.ceil(60 / collab.max_recheck_requests_per_minute)))
            self.finish({"message": "too many permission re-checks; try again later"})
            return
        self.finish(await collab.recheck_permissions())
