"""`PUT /api/collaboration/session/{path}`: find (and open) the room of a file."""

from __future__ import annotations

import json

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..backplane import BackplaneUnavailable
from ..documents.kinds import DOCUMENT_KINDS, BadRoomId, RoomKey
from ..persistence.files import FileUnavailable
from ..rooms.gate import GateRefused
from .service import collab_of


class SessionHandler(APIHandler):
    auth_resource = "contents"

    @web.authenticated
    async def put(self, path: str) -> None:
        # Not `@authorized`: it would demand "write" for a PUT, and viewers must be able to
        # open a session to watch. The permission policy decides.
        collab = collab_of(self)
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
        try:
            entry = await collab.gate.enter(self.current_user, path, self)
        except GateRefused as exc:
            raise exc.http_error() from exc
        path, file_id = entry.path, entry.file_id
        try:
            # Opening here reports an unreadable file as an HTTP error the user sees.
            await collab.rooms.get(RoomKey(file_format, file_type, file_id).room_id)
        except (FileUnavailable, BadRoomId) as exc:
            raise web.HTTPError(400, f"cannot open {path} as {file_type}: {exc}") from exc
        except BackplaneUnavailable as exc:
            raise web.HTTPError(503, f"cannot open {path} now, try again: {exc}") from exc
        self.set_status(201 if entry.indexed_now else 200)
        self.finish(
            {
                "format": file_format,
                "type": file_type,
                "fileId": file_id,
                "sessionId": collab.session_id,
            }
        )
