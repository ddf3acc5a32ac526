"""What a request names: the files it reads or writes, as canonical API paths.

Our authorizers decide on files, not on URLs. A request can name a file in its URL (the
contents API, `/files/`, `/view/`, nbconvert, our REST and session routes, a room socket
through its file id) and in its body (the target of a rename, the source of a copy), and
every one of those must pass. This module finds them all, in one place for both
authorizers, and refuses (`PathRefused`) any spelling that is not canonical instead of
resolving it: `./x`, `a/../x`, `%2E%2E` (which Tornado decodes to `..` before a handler
sees it), `%2F` (decoded to a `/` the router never saw), a trailing `/.`, `//`, backslashes.

Bodies can be read here: Tornado has read the whole body before the handler's method runs,
and `@authorized` calls the authorizer inside that method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jupyter_server.services.contents.handlers import (
    ContentsHandler,
    ModifyCheckpointsHandler,
    TrustNotebooksHandler,
)
from jupyter_server_fileid.handler import FileIDHandler, FilePathHandler
from tornado.web import StaticFileHandler

from .documents.kinds import BadRoomId
from .handlers.room import RoomHandler
from .handlers.session import SessionHandler
from .paths import PathRefused, canonical_path, contents_root
from .persistence.files import FileUnavailable

# Resources whose handlers' `path` is an API path in the contents root. (Others have a
# `path` of their own: /kernelspecs/{name}/{path} is a file of a kernel spec.)
FILE_RESOURCES = frozenset({"contents", "nbconvert"})


class Operation(StrEnum):
    """What the request does with the files it names (beyond plain read or write)."""

    ACCESS = "access"  # read or write the URL's file, as the action says
    SAVE = "save"  # contents PUT: the body is the file's new content
    DELETE = "delete"
    RENAME = "rename"  # contents PATCH with {"path": target}
    COPY = "copy"  # contents POST with {"copy_from": source}
    TRUST = "trust"  # sign a notebook with the server owner's key
    RESTORE = "restore"  # restore a checkpoint over the file


@dataclass(frozen=True)
class Named:
    """One file the request names, and what it needs on it."""

    path: str  # canonical API path, no leading "/"; "" is the root folder
    action: str  # "read" or "write"


@dataclass(frozen=True)
class Request:
    operation: Operation
    files: tuple[Named, ...] = ()  # empty: the request names no file
    body: dict[str, Any] | None = None
    checkpoint_id: str | None = None

    @property
    def url_file(self) -> str:
        """The file the URL names (requests naming none are never asked)."""
        return self.files[0].path


def json_body(handler: Any) -> dict[str, Any] | None:
    """The request's JSON object, parsed as the handler will parse it; None if it is not one
    (the handler then answers 400 itself and nothing is done)."""
    raw = handler.request.body
    if not raw:
        return None
    try:
        body = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _url_path(handler: Any, resource: str) -> str | None:
    """The API path in the request's URL (or query, or room or file id), as the handler will
    use it."""
    if isinstance(handler, RoomHandler):
        try:
            return handler.settings["jupyter_collab"].path_of(handler.path_args[0])
        except (FileUnavailable, BadRoomId, IndexError, KeyError) as exc:
            raise PathRefused(404, f"no such room: {exc}") from exc
    if resource not in FILE_RESOURCES:
        return None
    if isinstance(handler, FileIDHandler):
        return handler.get_argument("path", None)
    if isinstance(handler, FilePathHandler):  # the answer is the name of a file: decide on it
        file_id = handler.get_argument("id", None)
        return handler.settings["file_id_manager"].get_path(file_id) if file_id else None
    path = (getattr(handler, "path_kwargs", None) or {}).get("path")
    if path is None and isinstance(handler, StaticFileHandler | SessionHandler):
        args = handler.path_args
        path = args[0] if len(args) == 1 else None
    return path if isinstance(path, str) else None


def _canonical(handler: Any, path: Any) -> str:
    if not isinstance(path, str):
        raise PathRefused(400, f"a path must be a string, not {path!r}")
    return canonical_path(path, contents_root(handler.contents_manager))


def describe(handler: Any, action: str, resource: str) -> Request:
    """The files this request names and what it does with them.

    Raises PathRefused for any non-canonical spelling (the authorizer then refuses).
    """
    raw = _url_path(handler, resource)
    if raw is None:
        return Request(Operation.ACCESS)
    if not isinstance(handler, FileIDHandler | FilePathHandler | RoomHandler):  # a path in the URL
        encoded = handler.request.path.lower()
        if "%2f" in encoded or "%5c" in encoded:
            raise PathRefused(400, "an encoded '/' or '\\' in the URL is not a canonical path")
    url_path = _canonical(handler, raw)
    method = handler.request.method
    url_file = Named(url_path, action)
    if isinstance(handler, TrustNotebooksHandler):
        return Request(Operation.TRUST, (url_file,))
    if isinstance(handler, ModifyCheckpointsHandler) and method == "POST":
        checkpoint = (handler.path_kwargs or {}).get("checkpoint_id")
        return Request(Operation.RESTORE, (url_file,), checkpoint_id=checkpoint)
    if not isinstance(handler, ContentsHandler) or action != "write":
        return Request(Operation.ACCESS, (url_file,))
    if method == "DELETE":
        return Request(Operation.DELETE, (url_file,))
    if method == "PUT":
        return Request(Operation.SAVE, (url_file,))
    body = json_body(handler)
    if method == "PATCH" and body is not None and body.get("path"):
        target = _canonical(handler, body["path"])
        if target != url_path:
            return Request(Operation.RENAME, (url_file, Named(target, "write")), body)
    if method == "POST" and body is not None and body.get("copy_from"):
        source = _canonical(handler, body["copy_from"])
        return Request(Operation.COPY, (url_file, Named(source, "read")), body)
    return Request(Operation.ACCESS, (url_file,), body)
