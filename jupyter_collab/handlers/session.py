"""`PUT /api/collaboration/session/{path}`: find (and open) the room of a file."""

from __future__ import annotations

import json

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..backplane import BackplaneUnavailable
from ..documents import DOCUMENT_KINDS, BadRoomId, RoomKey
from ..permissions import Role
from ..persistence.filesync import FileUnavailable


class SessionHandler(APIHandler):
    auth_resource = "contents"

    @web.authenticated
    async def put(self, path: str) -> None:
        # Not `@authorized`: it would demand "write" for a PUT, and viewers must be able to
        # open a session to watch. The permission policy decides.
        collab = self.settings["jupyter_collab"]
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise web.HTTPError(400, f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'request body must be a JSON object: {"format": ..., "type": ...}')
        file_format, file_type = body.get("format"), body.get("type")
        if (file_format, file_type) not in DOCUMENT_KINDS:
            kinds = ", ".join(f"{f}/{t}" for f, t in DOCUMENT_KINDS)
            raise web.HTTPError(
                400, f"unsupported format/type {file_format!r}/{file_type!r}; expected one of {kinds}"
            )
        cm = self.contents_manager
        exists = await ensure_async(cm.file_exists(path))
        if not exists:
            raise web.HTTPError(404, f"file not found: {path}")
        file_ids = self.settings["file_id_manager"]
        file_id = file_ids.get_id(path)
        status = 200
        if file_id is None:
            file_id = file_ids.index(path)
            status = 201
        if file_id is None:
            raise web.HTTPError(404, f"file not found: {path}")
        access = await collab.access(self.current_user, path, self)
        if access.role is Role.NONE:
            raise web.HTTPError(403, f"no access to {path}")
        try:
            # Opening here reports an unreadable file as an HTTP error the user sees.
            await collab.rooms.get(RoomKey(file_format, file_type, file_id).room_id)
        except (FileUnavailable, BadRoomId) as exc:
            raise web.HTTPError(400, f"cannot open {path} as {file_type}: {exc}") from exc
        except BackplaneUnavailable as exc:
            raise web.HTTPError(503, f"cannot open {path} now, try again: {exc}") from exc
        self.set_status(status)
        self.finish(
            {
                "format": file_format,
                "type": file_type,
                "fileId": file_id,
                "sessionId": collab.session_id,
            }
        )
