"""`POST /api/collaboration/permissions/recheck`: apply changed rights to open connections now.

For admins and policies whose answers change (a share revoked, a role edited): instead of
waiting for the periodic re-check, ask for one. Needs write access to `contents`.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web


class RecheckHandler(APIHandler):
    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        result = await self.settings["jupyter_collab"].recheck_permissions()
        self.finish(result)
