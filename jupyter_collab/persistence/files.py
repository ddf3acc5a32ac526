"""Reading and writing a room's file: the file on disk is the source of truth.

Writes go through the contents manager's hooks (pre/post save, so `pre_save_hook` users
keep working) but, for files on the local disk, use a true atomic replace (temporary file
in the same folder, fsync, rename): jupyter_server's own "atomic" writing rewrites the
target in place, so a process killed mid-write leaves a truncated notebook behind.
Other contents managers (S3, databases) are called through their own `save`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import nbformat
from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

from ..documents.kinds import content_hash
from .notebook_read import file_hash, parse_notebook, reads_like_stock_manager


class FileUnavailable(Exception):
    """The file is gone, unreadable or not valid for its document type (message says why)."""


@dataclass(frozen=True)
class FileStat:
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class FileContent:
    content: Any  # a notebook dict, or a str
    disk_hash: str  # hash of the bytes on disk, as the contents manager computes it


def write_atomically(os_path: str, data: bytes) -> None:
    """Replace `os_path` with `data` so that a crash leaves either the old or the new file."""
    directory = os.path.dirname(os_path) or "."
    fd, tmp_path = tempfile.mkstemp(prefix=".~collab-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp_path, os.stat(os_path).st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, os_path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_bytes(os_path: str) -> bytes:
    with open(os_path, "rb") as handle:
        return handle.read()


class DocumentFile:
    """One file behind a room, addressed by its file id so that it follows renames."""

    def __init__(
        self, contents_manager: Any, file_id_manager: Any, file_id: str, file_format: str, file_type: str
    ):
        self.cm = contents_manager
        self.file_ids = file_id_manager
        self.file_id = file_id
        self.format = file_format
        self.type = file_type
        self._cached_os_path: str | None = None

    @property
    def path(self) -> str | None:
        return self.file_ids.get_path(self.file_id)

    def os_path(self, path: str | None = None) -> str | None:
        """Local path of the file (or of the API `path` already looked up for it) when the
        contents manager is file based, else None."""
        if path is None:
            path = self.path  # a file-id lookup (an SQLite query): pass the path if known
        get_os_path = getattr(self.cm, "_get_os_path", None)
        if path is None or get_os_path is None:
            return None
        try:
            return get_os_path(path)
        except HTTPError:
            return None

    def stat(self) -> FileStat | None:
        """The file's stat, for the watcher: called every poll for every open room, so the
        local path is cached (a file-id lookup is an SQLite query) and looked up again only
        when the cached path no longer answers (the file was moved or deleted)."""
        for os_path in (self._cached_os_path, None):
            if os_path is None:
                os_path = self._cached_os_path = self.os_path()
                if os_path is None:
                    return None
            try:
                st = os.stat(os_path)
            except OSError:
                self._cached_os_path = None
                continue
            return FileStat(st.st_mtime_ns, st.st_size)
        return None

    async def read(self) -> FileContent:
        """The file's content (a notebook dict, or a str) and the hash of its bytes."""
        path = self.path
        if path is None:
            raise FileUnavailable(f"no file has id {self.file_id}")
        if self.type == "notebook" and reads_like_stock_manager(self.cm):
            fast = await self._read_local_notebook(path)
            if fast is not None:
                return fast
        try:
            model = await ensure_async(
                self.cm.get(path, content=True, type=self.type, format=self.format, require_hash=True)
            )
        except HTTPError as exc:
            raise FileUnavailable(f"{path}: {exc.log_message or exc.reason}") from exc
        except Exception as exc:
            raise FileUnavailable(f"{path}: {exc}") from exc
        content = model["content"]
        if self.type == "notebook":
            content = json.loads(json.dumps(content))  # NotebookNode -> plain dicts
        return FileContent(content, model.get("hash") or content_hash(content))

    async def _read_local_notebook(self, path: str) -> FileContent | None:
        """A local notebook read without the contents manager's schema validation (see
        notebook_read.py); None when it must go through the contents manager after all."""
        os_path = self.os_path(path)
        if os_path is None:
            return None
        try:
            data = await asyncio.to_thread(_read_bytes, os_path)
        except OSError:
            return None  # the contents manager says what is wrong, in its words
        notebook = parse_notebook(data, self.cm)
        if notebook is None:
            return None
        return FileContent(notebook, file_hash(data, self.cm))

    async def write(self, content: Any) -> str:
        """Write the content; returns the hash of the bytes now on disk."""
        path = self.path
        if path is None:
            raise FileUnavailable(f"no file has id {self.file_id}")
        model: dict[str, Any] = {"type": self.type, "format": self.format, "content": content}
        os_path = self.os_path(path)
        if os_path is None or not getattr(self.cm, "use_atomic_writing", False):
            await ensure_async(self.cm.save(model, path))
            saved = await ensure_async(self.cm.get(path, content=False, require_hash=True))
            return saved.get("hash") or content_hash(content)
        self.cm.run_pre_save_hooks(model=model, path=path)
        if self.type == "notebook":
            notebook = nbformat.from_dict(model["content"])
            text = nbformat.writes(notebook, version=nbformat.NO_CONVERT)
            data = text.encode("utf-8")
        elif self.format == "base64":
            data = base64.b64decode(model["content"])
        else:
            data = model["content"].encode("utf-8")
        await asyncio.to_thread(write_atomically, os_path, data)
        saved = await ensure_async(self.cm.get(path, content=False))
        self.cm.run_post_save_hooks(model=saved, os_path=os_path)
        return hashlib.new(getattr(self.cm, "hash_algorithm", "sha256"), data).hexdigest()
