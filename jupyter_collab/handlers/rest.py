"""REST for programs: read a live notebook and edit it by cell id, with conflict detection.

Edits apply to the live shared document (people in the room see them at once) and are
saved like any other change; with no one in the room the room is opened for the edit and
closes later as usual. Same authentication and permission policy as the WebSocket.
Optimistic concurrency: a cell's `hash` is its ETag; writes to a cell require `If-Match`
(428 without it; `If-Match: *` writes blindly), and a stale hash gets 409 with the cell
as it is now. Errors are JSON `{"message": ...}` naming the problem; bad input is never a 500.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from tornado import web

from .. import cells
from ..documents import RoomKey
from ..permissions import Role, identity
from ..persistence.filesync import FileUnavailable
from ..rooms.document import DocumentRoom
from ..rooms.guard import lock_flags

API_PREFIX = "/api/collab/v1"
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


class RestHandler(APIHandler):
    """Common parts: JSON errors, the room of a path, the caller's access."""

    auth_resource = "contents"

    @property
    def collab(self) -> Any:
        return self.settings["jupyter_collab"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        body: dict[str, Any] = {"message": message}
        if isinstance(exc, ConflictError):
            body["current"] = exc.current
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPError(400, f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        return body

    async def room_for(self, path: str, *, write: bool) -> DocumentRoom:
        """The live room of a notebook, after checking the caller's access."""
        cm = self.contents_manager
        try:
            exists = await ensure_async(cm.file_exists(path))
        except web.HTTPError:
            exists = False
        if not exists or not path.endswith(".ipynb"):
            raise web.HTTPError(404, f"no notebook at {path!r}")
        access = await self.collab.access(self.current_user, path, self)
        self.access = access
        if access.role is Role.NONE:
            raise web.HTTPError(403, f"no access to {path}")
        if write and not access.role.can_edit:
            raise web.HTTPError(403, f"{access.role.value}s cannot change {path}")
        file_ids = self.settings["file_id_manager"]
        file_id = file_ids.get_id(path) or file_ids.index(path)
        try:
            room = await self.collab.rooms.get(RoomKey("json", "notebook", file_id).room_id)
        except FileUnavailable as exc:
            raise web.HTTPError(400, f"cannot open {path} as a notebook: {exc}") from exc
        assert isinstance(room, DocumentRoom)
        return room

    def collaborators(self, room: DocumentRoom) -> list[dict[str, Any]]:
        """Everyone connected, plus programs currently shown at work (one entry per user)."""
        people: dict[str, dict[str, Any]] = {}
        for conn in room.connections:
            user = conn.identity
            people.setdefault(
                user.get("username"),
                {
                    "username": user.get("username"),
                    "name": user.get("name"),
                    "role": user.get("role"),
                    "program": False,
                },
            )
        for state in room.awareness.server_states():
            user = state.get("user", {})
            people.setdefault(
                user.get("username"),
                {
                    "username": user.get("username"),
                    "name": user.get("name"),
                    "role": user.get("role"),
                    "program": True,
                },
            )
        return [person for person in people.values() if person["username"]]

    def if_match(self) -> str | None:
        """The expected cell hash from If-Match (None for `*`); 428 when it is missing."""
        header = self.request.headers.get("If-Match")
        if header is None:
            raise web.HTTPError(428, "If-Match is required: send the cell's hash (or * to overwrite)")
        header = header.strip()
        if header == "*":
            return None
        return header.strip('"').removeprefix("W/").strip('"')

    def check_lock(self, room: DocumentRoom, cell_id: str, *, deleting: bool) -> None:
        if self.access.role.can_lock:
            return
        cell = cells.read_cell(room.document.model, cell_id)
        editable, deletable = lock_flags(cell.get("metadata"))
        if not editable or cell_id in self.access.locked_cells or (deleting and not deletable):
            raise web.HTTPError(403, f"cell {cell_id} is locked")

    def attribute(self, room: DocumentRoom, operation: str, cell_id: str) -> None:
        """Who changed what: shown as presence in the room, and in the audit trail."""
        user = identity(self.current_user, self.access.role)
        room.show_program(user, {"operation": operation, "cell": cell_id}, self.collab.api_presence_seconds)
        self.collab.rooms.events.record(
            "api_edit", room, user["username"], self.access.role.value, operation=operation, cell=cell_id
        )

    def run(self, operation: Any) -> Any:
        """Run a cell operation, turning its errors into HTTP answers."""
        try:
            return operation()
        except cells.CellNotFound as exc:
            raise web.HTTPError(404, f"no cell with id {exc.args[0]!r}") from exc
        except cells.CellConflict as exc:
            raise ConflictError(exc.current) from exc
        except cells.CellError as exc:
            raise web.HTTPError(400, str(exc)) from exc


class ConflictError(web.HTTPError):
    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(409, f"cell {current['id']} changed since it was read (now {current['hash']})")
        self.current = current


class NotebookHandler(RestHandler):
    @web.authenticated
    async def get(self, path: str) -> None:
        room = await self.room_for(path, write=False)
        model = room.document.model
        content = room.document.content()
        self.finish(
            {
                "path": path,
                "fileId": room.key.file_id,
                "metadata": content.get("metadata", {}),
                "nbformat": content.get("nbformat"),
                "nbformat_minor": content.get("nbformat_minor"),
                "cells": cells.read_cells(model),
                "collaborators": self.collaborators(room),
            }
        )


def _position(body: dict[str, Any]) -> dict[str, Any]:
    where = {k: body.pop(k) for k in ("before", "after", "index") if k in body}
    for key in ("before", "after"):
        if key in where and not isinstance(where[key], str):
            raise web.HTTPError(400, f"'{key}' must be a cell id (string)")
    return where


class CellsHandler(RestHandler):
    @web.authenticated
    async def post(self, path: str) -> None:
        body = self.json_body()
        room = await self.room_for(path, write=True)
        where = _position(body)
        cell = self.run(lambda: cells.insert_cell(room.document.model, body, **where))
        self.attribute(room, "insert", cell["id"])
        self.set_status(201)
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)


class CellHandler(RestHandler):
    @web.authenticated
    async def get(self, path: str, cell_id: str) -> None:
        room = await self.room_for(path, write=False)
        cell = self.run(lambda: cells.read_cell(room.document.model, cell_id))
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)

    @web.authenticated
    async def patch(self, path: str, cell_id: str) -> None:
        body = self.json_body()
        room = await self.room_for(path, write=True)
        self.run(lambda: cells.find(room.document.model, cell_id))
        expect = self.if_match()
        self.check_lock(room, cell_id, deleting=False)
        cell = self.run(lambda: cells.patch_cell(room.document.model, cell_id, body, expect=expect))
        self.attribute(room, "patch", cell_id)
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)

    @web.authenticated
    async def delete(self, path: str, cell_id: str) -> None:
        room = await self.room_for(path, write=True)
        self.run(lambda: cells.find(room.document.model, cell_id))
        expect = self.if_match()
        self.check_lock(room, cell_id, deleting=True)
        self.run(lambda: cells.delete_cell(room.document.model, cell_id, expect=expect))
        self.attribute(room, "delete", cell_id)
        self.set_status(204)
        self.finish()


class MoveHandler(RestHandler):
    @web.authenticated
    async def post(self, path: str, cell_id: str) -> None:
        body = self.json_body()
        room = await self.room_for(path, write=True)
        self.run(lambda: cells.find(room.document.model, cell_id))
        expect = self.if_match()
        where = _position(body)
        if body:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(sorted(body))}")
        self.check_lock(room, cell_id, deleting=True)
        cell = self.run(lambda: cells.move_cell(room.document.model, cell_id, expect=expect, **where))
        self.attribute(room, "move", cell_id)
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)


class RoomsHandler(RestHandler):
    @web.authenticated
    async def get(self) -> None:
        rooms = []
        for room in list(self.collab.rooms.rooms.values()):
            if not isinstance(room, DocumentRoom) or room.file.path is None:
                continue
            access = await self.collab.access(self.current_user, room.file.path, self)
            if access.role is Role.NONE:
                continue  # rooms you cannot see are not listed
            rooms.append(
                {
                    "room": room.room_id,
                    "path": room.file.path,
                    "type": room.key.type,
                    "collaborators": self.collaborators(room),
                }
            )
        self.finish({"rooms": rooms})


class OpenAPIHandler(APIHandler):
    """The OpenAPI document of these endpoints (kept in the repository)."""

    @web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "application/yaml")
        self.finish(OPENAPI_PATH.read_text())


_PATH = r"(?P<path>(?:[^/]+/)*[^/]+\.ipynb)"
_CELL = r"(?P<cell_id>[^/]+)"
REST_HANDLERS = [
    (rf"{API_PREFIX}/rooms", RoomsHandler),
    (rf"{API_PREFIX}/openapi.yaml", OpenAPIHandler),
    (rf"{API_PREFIX}/notebooks/{_PATH}", NotebookHandler),
    (rf"{API_PREFIX}/notebooks/{_PATH}/cells", CellsHandler),
    (rf"{API_PREFIX}/notebooks/{_PATH}/cells/{_CELL}", CellHandler),
    (rf"{API_PREFIX}/notebooks/{_PATH}/cells/{_CELL}/move", MoveHandler),
]
