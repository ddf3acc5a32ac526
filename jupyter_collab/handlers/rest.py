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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from jupyter_ydoc import YNotebook
from tornado import web

from ..backplane import BackplaneUnavailable
from ..documents import cells
from ..documents.kinds import RoomKey
from ..permissions import Access, Role, identity
from ..persistence.files import FileUnavailable
from ..rooms.document import DocumentRoom
from ..rooms.gate import GateRefused
from ..rooms.guard import ChangeRefused
from .service import CollabService, collab_of

T = TypeVar("T")

API_PREFIX = "/api/collab/v1"
MAX_BODY_BYTES = 16 * 1024 * 1024  # as a WebSocket message (CollabApp.max_message_bytes' default)
MAX_BODY_DEPTH = 64  # outputs and metadata nest a few levels; JSON bombs nest thousands
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"


class RestHandler(APIHandler):
    """Common parts: JSON errors, the room of a path, the caller's access."""

    auth_resource = "contents"

    @property
    def collab(self) -> CollabService:
        return collab_of(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        body: dict[str, Any] = {"message": message}
        if isinstance(exc, ConflictError):
            body["current"] = exc.current
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def json_body(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_BODY_BYTES:
            raise web.HTTPError(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPError(400, f"request body is not JSON: {exc}") from exc
        except RecursionError as exc:
            raise web.HTTPError(400, "request body is nested too deeply") from exc
        if not isinstance(body, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        if _depth(body) > MAX_BODY_DEPTH:
            raise web.HTTPError(400, f"request body is nested more than {MAX_BODY_DEPTH} levels deep")
        return body

    async def room_for(self, path: str, *, write: bool) -> tuple[DocumentRoom, Access]:
        """The live room of a notebook and the caller's access, through the entry gate."""
        try:
            entry = await self.collab.gate.enter(self.current_user, path, self, suffix=".ipynb")
        except GateRefused as exc:
            raise exc.http_error() from exc
        access = entry.access
        if write and not access.role.can_edit:
            raise web.HTTPError(403, f"{access.role.value}s cannot change {entry.path}")
        try:
            room = await self.collab.rooms.get(RoomKey("json", "notebook", entry.file_id).room_id)
        except FileUnavailable as exc:
            raise web.HTTPError(400, f"cannot open {entry.path} as a notebook: {exc}") from exc
        except BackplaneUnavailable as exc:
            raise web.HTTPError(503, f"cannot open {entry.path} now, try again: {exc}") from exc
        assert isinstance(room, DocumentRoom)
        return room, access

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

    def attribute(self, room: DocumentRoom, access: Access, operation: str, cell_id: str) -> None:
        """Who changed what: shown as presence in the room, and in the audit trail."""
        user = identity(self.current_user, access.role)
        room.show_program(user, {"operation": operation, "cell": cell_id}, self.collab.api_presence_seconds)
        self.collab.rooms.events.record(
            "api_edit", room, user["username"], access.role.value, operation=operation, cell=cell_id
        )

    def read(self, operation: Callable[[], T]) -> T:
        with _as_http_errors():
            return operation()

    def change(self, room: DocumentRoom, access: Access, operation: Callable[[YNotebook], T]) -> T:
        """Make a cell operation through the room's lock rule (the same rule as the socket)."""
        with _as_http_errors():
            return room.change(access, operation, origin="api")


@contextmanager
def _as_http_errors() -> Iterator[None]:
    """Cell operations' errors as HTTP answers."""
    try:
        yield
    except ChangeRefused as exc:
        raise web.HTTPError(403, str(exc)) from exc
    except cells.CellNotFound as exc:
        raise web.HTTPError(404, f"no cell with id {exc.args[0]!r}") from exc
    except cells.CellConflict as exc:
        raise ConflictError(exc.current) from exc
    except cells.CellError as exc:
        raise web.HTTPError(400, str(exc)) from exc


def _depth(value: Any, limit: int = 0) -> int:
    """How deeply `value` nests lists and objects (stops counting past MAX_BODY_DEPTH)."""
    if limit > MAX_BODY_DEPTH or not isinstance(value, dict | list):
        return limit
    children = value.values() if isinstance(value, dict) else value
    return max((_depth(child, limit + 1) for child in children), default=limit + 1)


class ConflictError(web.HTTPError):
    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(409, f"cell {current['id']} changed since it was read (now {current['hash']})")
        self.current = current


class NotebookHandler(RestHandler):
    @web.authenticated
    async def get(self, path: str) -> None:
        room, _ = await self.room_for(path, write=False)
        model = room.document.model
        content = room.document.content()
        self.finish(
            {
                "path": room.file.path,
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
        room, access = await self.room_for(path, write=True)
        where = _position(body)
        inserted = self.change(room, access, lambda model: cells.insert_cell(model, body, **where))
        cell = cells.read_cell(room.document.model, inserted["id"])  # as the server kept it
        self.attribute(room, access, "insert", cell["id"])
        self.set_status(201)
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)


class CellHandler(RestHandler):
    @web.authenticated
    async def get(self, path: str, cell_id: str) -> None:
        room, _ = await self.room_for(path, write=False)
        cell = self.read(lambda: cells.read_cell(room.document.model, cell_id))
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)

    @web.authenticated
    async def patch(self, path: str, cell_id: str) -> None:
        body = self.json_body()
        room, access = await self.room_for(path, write=True)
        self.read(lambda: cells.find(room.document.model, cell_id))
        expect = self.if_match()
        self.change(room, access, lambda model: cells.patch_cell(model, cell_id, body, expect=expect))
        cell = cells.read_cell(room.document.model, cell_id)
        self.attribute(room, access, "patch", cell_id)
        self.set_header("ETag", f'"{cell["hash"]}"')
        self.finish(cell)

    @web.authenticated
    async def delete(self, path: str, cell_id: str) -> None:
        room, access = await self.room_for(path, write=True)
        self.read(lambda: cells.find(room.document.model, cell_id))
        expect = self.if_match()
        self.change(room, access, lambda model: cells.delete_cell(model, cell_id, expect=expect))
        self.attribute(room, access, "delete", cell_id)
        self.set_status(204)
        self.finish()


class MoveHandler(RestHandler):
    @web.authenticated
    async def post(self, path: str, cell_id: str) -> None:
        body = self.json_body()
        room, access = await self.room_for(path, write=True)
        self.read(lambda: cells.find(room.document.model, cell_id))
        expect = self.if_match()
        where = _position(body)
        if body:
            raise web.HTTPError(400, f"unknown field(s): {', '.join(sorted(body))}")
        moved = self.change(
            room, access, lambda model: cells.move_cell(model, cell_id, expect=expect, **where)
        )
        cell = cells.read_cell(room.document.model, moved["id"])
        self.attribute(room, access, "move", cell_id)
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
