"""The entry gate: which file a request names, and what the caller may do with it.

Every way into a document (the session endpoint, REST, a room socket, the permission
re-check) passes here, so that all of them decide on the same thing:

- the **canonical path** (`paths.canonical_path`): aliases such as `./x`, `a/../x` or
  `%2E%2E` are refused, never resolved into a second file id and a second live room;
- the **policy's answer first**: a path the caller may not see answers exactly as a
  missing file does (404, same message), before anything is looked up or indexed, so that
  nobody learns which files exist and nobody adds rows to the file-id database;
- **one file id per file**: the id the file-id manager gives the canonical path, checked
  to lead back to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from jupyter_core.utils import ensure_async
from tornado import web

from ..documents.kinds import RoomKey, parse_room_id
from ..paths import PathRefused, canonical_path, contents_root
from ..permissions import Access, Role, identity
from ..persistence.files import FileUnavailable
from ..persistence.notebook_read import parse_notebook

_RECHECK_BATCH = 200  # connections re-checked between two turns of the event loop


class FileIds(Protocol):
    """What the gate needs of jupyter-server-fileid's manager."""

    def get_id(self, path: str) -> str | None: ...
    def index(self, path: str) -> str | None: ...
    def get_path(self, id: str) -> str | None: ...


class AccessPolicy(Protocol):
    async def access(self, user: Any, path: str, handler: Any) -> Access: ...


class RoomOpener(Protocol):
    async def get(self, room_id: str) -> Any: ...


class GateRefused(Exception):
    """The request does not get in; `status` and `message` are what the caller is told."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def http_error(self) -> web.HTTPError:
        return web.HTTPError(self.status, self.message)


@dataclass(frozen=True)
class Entry:
    """A request let in: the file's canonical path and id, and the caller's access."""

    path: str
    file_id: str
    access: Access
    indexed_now: bool = False  # the file got its id with this request (the session answers 201)


class Gate:
    def __init__(
        self, contents_manager: Any, file_ids: FileIds, policy: AccessPolicy, rooms: RoomOpener
    ) -> None:
        self.contents_manager = contents_manager
        self.file_ids = file_ids
        self.policy = policy
        self.rooms = rooms

    def canonical(self, path: str) -> str:
        """The canonical form of an API path; GateRefused (400/404) for aliases."""
        try:
            return canonical_path(path, contents_root(self.contents_manager))
        except PathRefused as exc:
            raise GateRefused(exc.status, exc.message) from exc

    async def enter(self, user: Any, path: str, handler: Any, *, suffix: str = "") -> Entry:
        """Let `user` in to the file at `path` (a file, not a folder), indexing it if new.

        `suffix` (e.g. ".ipynb") restricts the kinds of file this route serves. Raises
        GateRefused: 400 for a non-canonical spelling, 404 for a missing file and equally
        for a file the policy gives the caller no access to.
        """
        path = self.canonical(path)
        missing = GateRefused(404, f"no file at {path!r}" if not suffix else f"no notebook at {path!r}")
        if not path or not path.endswith(suffix):
            raise missing
        access = await self.policy.access(user, path, handler)
        if access.role is Role.NONE:
            raise missing
        try:
            exists = await ensure_async(self.contents_manager.file_exists(path))
        except web.HTTPError:
            exists = False
        if not exists:
            raise missing
        file_id, indexed_now = self._file_id(path)
        if file_id is None:
            raise missing
        return Entry(path, file_id, access, indexed_now)

    def _file_id(self, path: str) -> tuple[str | None, bool]:
        """The one file id of a canonical path, indexing it if it has none yet (the second
        value says so); None when the id does not lead back to the path."""
        file_id = self.file_ids.get_id(path)
        indexed_now = file_id is None
        if indexed_now:
            file_id = self.file_ids.index(path)
        if file_id is None or self.file_ids.get_path(file_id) != path:
            return None, indexed_now
        return file_id, indexed_now

    def path_of(self, room_id: str) -> str:
        """The canonical path behind a room ("" for awareness-only rooms).

        Raises FileUnavailable when the id names no file, or names it only through an
        alias (an id indexed under another spelling before aliases were refused).
        """
        key = parse_room_id(room_id)
        if key is None:
            return ""
        path = self.file_ids.get_path(key.file_id)
        if path is None:
            raise FileUnavailable(f"no file has id {key.file_id}")
        try:
            canonical = canonical_path(path, contents_root(self.contents_manager))
        except PathRefused:
            canonical = None
        if canonical != path or self.file_ids.get_id(path) != key.file_id:
            raise FileUnavailable(f"no file has id {key.file_id} (an alias of {canonical or path!r})")
        return path

    async def recheck(self, rooms: Iterable[Any]) -> dict[str, int]:
        """Re-ask the policy for every connection of these rooms and apply what changed
        (`Room.update_access`); returns how many were checked, changed and revoked."""
        checked = changed = revoked = 0
        for room in rooms:
            try:
                path = self.path_of(room.room_id)  # a file-id lookup: once per room
            except FileUnavailable:
                continue
            for conn in list(room.connections):
                checked += 1
                if checked % _RECHECK_BATCH == 0:
                    await asyncio.sleep(0)  # thousands of connections: let the room traffic through
                access = await self.policy.access(conn.current_user, path, conn)
                if access == conn.access:
                    continue
                if access.role is Role.NONE:
                    revoked += 1
                else:
                    changed += 1
                room.update_access(conn, access, identity(conn.current_user, access.role))
        return {"checked": checked, "changed": changed, "revoked": revoked}

    async def contents_write_refusal(
        self, user: Any, path: str, incoming: dict[str, Any] | None, handler: Any
    ) -> str | None:
        """Why `user` may not write the notebook `incoming` over the existing notebook at
        `path` through the contents API (None: they may). For our authorizers, which see
        the request body: the same lock rule as in rooms, judged by a dry run of the merge
        that the write would cause in the live room. `incoming` None (a delete) is judged
        as a notebook whose every cell is gone."""
        path = self.canonical(path)
        access = await self.policy.access(user, path, handler)
        if access.role.can_lock:
            return None
        if not access.role.can_edit:
            return f"{access.role.value}s cannot change {path}"
        if incoming is not None and (
            not isinstance(incoming, dict) or not isinstance(incoming.get("cells"), list)
        ):
            return None  # not a notebook: the contents manager refuses it itself
        incoming = incoming or {"cells": []}
        trusted = [
            cell.get("id")
            for cell in incoming["cells"]
            if isinstance(cell, dict) and isinstance(cell.get("metadata"), dict)
            and cell["metadata"].get("trusted")
        ]
        if trusted:
            return f"only owners may mark cells trusted (cell {trusted[0]})"
        file_id, _ = self._file_id(path)
        if file_id is None:
            return None  # a new file: nothing in it is locked yet
        try:
            room = await self.rooms.get(RoomKey("json", "notebook", file_id).room_id)
        except FileUnavailable:
            return None  # not readable as a notebook: nothing to protect in it
        await room.check_disk()  # judge against the file as it is now (a write just before)
        if not isinstance(room.base, dict):
            return None
        # What the room will read back once the write is on disk (lines joined: the form the
        # out-of-band merge compares). Trust is not the writer's to change (claims were
        # refused above; the server's own signing on save follows the outputs), so the
        # cells keep the trust they have for the judgement.
        written = {**room.base, **incoming}
        read_back = parse_notebook(json.dumps(written).encode(), self.contents_manager) or written
        return room.dry_run_merge(access, _with_trust_of(read_back, room.base))


def _with_trust_of(notebook: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """`notebook` whose cells carry the `trusted` flag of the same cells in `base`."""
    trust = {
        cell.get("id"): cell.get("metadata", {}).get("trusted")
        for cell in base.get("cells", [])
        if isinstance(cell, dict)
    }
    cells = []
    for cell in notebook.get("cells", []):
        if isinstance(cell, dict) and isinstance(cell.get("metadata"), dict):
            metadata = {k: v for k, v in cell["metadata"].items() if k != "trusted"}
            if trust.get(cell.get("id")) is not None:
                metadata["trusted"] = trust[cell.get("id")]
            cell = {**cell, "metadata": metadata}
        cells.append(cell)
    return {**notebook, "cells": cells}
