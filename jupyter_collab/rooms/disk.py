"""A room's file binding: when to save, how to take in changes made to the file behind the
room's back, and (with several processes) how to follow the one that writes it.

Saves are debounced (`save_delay` after the last change) with a bound on staleness
(`max_save_delay` after the first unsaved one). A file that changed on disk is merged into
the document against the base it was last read or written as, so that neither side's
edits are lost. Only the holder of the save lease (`WriteLease`, one process per room)
writes or merges; the others take what it wrote as their new base, so that a takeover
merges against the right one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from ..documents.kinds import SharedDocument, content_hash
from ..persistence.files import DocumentFile, FileUnavailable
from ..persistence.store import HistoryStore
from .loading import Loaded
from .replica import UNREPLICATED, WriteLease


@dataclass
class SaveSettings:
    save_delay: float = 0.5
    max_save_delay: float = 1.0


class FileBinding:
    """The document's file: its base, hash and stat as last seen, the I/O lock, the save timers."""

    def __init__(
        self,
        room_id: str,
        file: DocumentFile,
        loaded: Loaded,
        *,
        store: HistoryStore | None,
        settings: SaveSettings,
        log: logging.Logger,
    ) -> None:
        self.room_id = room_id
        self.file = file
        self.document: SharedDocument = loaded.document
        self.store = store
        self.settings = settings
        self.log = log
        self.lease: WriteLease = UNREPLICATED
        self.base: Any = loaded.base  # the content on disk, in document form
        self.disk_hash = loaded.disk_hash  # hash of the bytes on disk
        self.disk_stat = loaded.disk_stat
        self._io_lock = asyncio.Lock()
        self._dirty_since: float | None = None
        self._save_timer: asyncio.TimerHandle | None = None
        self._save_task: asyncio.Task | None = None
        self._requested_save: asyncio.Task | None = None
        self._marking_saved = False  # our own "saved" mark is not a change to save

    # -- saving ----------------------------------------------------------------------------

    def document_changed(self) -> None:
        """The document changed: save it (unless the change is our own "saved" mark)."""
        if not self._marking_saved:
            self.touch()

    def touch(self) -> None:
        """Save after a quiet `save_delay`, but never later than `max_save_delay` after the
        first unsaved change."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._dirty_since is None:
            self._dirty_since = now
        deadline = min(now + self.settings.save_delay, self._dirty_since + self.settings.max_save_delay)
        if self._save_timer is not None:
            self._save_timer.cancel()
        self._save_timer = loop.call_at(deadline, self._start_save)

    def _start_save(self) -> None:
        self._save_timer = None
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self.save())
        else:
            self.touch()  # a save is running; save again after it

    async def save_requested(self) -> str:
        """A client asked to save: one save for every request that arrives while it waits
        for the file (a client asking a thousand times costs one save, not a thousand hashes
        of the document); a request that arrives once it has started waits for the next."""
        if self._requested_save is None:
            self._requested_save = asyncio.get_running_loop().create_task(self._save_on_request())
        return await asyncio.shield(self._requested_save)

    async def _save_on_request(self) -> str:
        async with self._io_lock:
            self._requested_save = None
            return await self._save_locked()

    async def save(self) -> str:
        """Write the document if it changed; returns success / skipped / failed."""
        async with self._io_lock:
            return await self._save_locked()

    async def _save_locked(self) -> str:
        """The save itself; the caller holds the I/O lock."""
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        self._dirty_since = None
        if not await self.lease.may_write():
            return "skipped"  # the lease holder (another process) saves
        await self._merge_disk_changes()
        content = self.document.content()
        digest = content_hash(content)
        if digest == content_hash(self.base):
            self._mark_saved()
            return "skipped"
        await self.lease.announce(digest)  # before the write: see _follow_disk
        try:
            disk_hash = await self.file.write(self.document.file_content())
        except (FileUnavailable, Exception) as exc:
            self.log.error("jupyter_collab: saving %s failed: %s", self.file.path or self.room_id, exc)
            return "failed"
        self.disk_stat = self.file.stat()
        self._set_base(content, disk_hash)
        self._mark_saved()
        return "success"

    def _set_base(self, content: Any, disk_hash: str | None) -> None:
        """`content` is what the file holds now (written, merged or adopted)."""
        self.base = content
        self.disk_hash = disk_hash
        if self.store:
            self.store.set_base(self.room_id, json.dumps(content), disk_hash)

    def _mark_saved(self) -> None:
        """Clear the document's `dirty` flag (JupyterLab sets it on every edit and shows an
        unsaved-changes mark while it is set), as the reference server does after a save."""
        if not self.document.model.dirty:
            return
        self._marking_saved = True
        try:
            with self.document.ydoc.transaction(origin="saved"):
                self.document.model.dirty = False
        finally:
            self._marking_saved = False

    async def finish(self) -> None:
        """The room closes: let a running save end, then save what is left."""
        if self._save_task is not None:
            await asyncio.shield(self._save_task)
        await self.save()

    # -- out-of-band changes ---------------------------------------------------------------

    def changed_on_disk(self) -> bool:
        """Does the file's stat differ from the one last taken in (for the file watcher)?"""
        return self.file.stat() != self.disk_stat

    async def check(self) -> None:
        """The file's stat changed (or the writer announced a write): take it in."""
        async with self._io_lock:
            if self.lease.writes_file():
                await self._merge_disk_changes()
            else:
                await self._follow_disk()

    async def _follow_disk(self) -> None:
        """Not the lease holder: take what the holder wrote (or merged) as the new base,
        without merging anything, so that a takeover merges against the right base. A
        change nobody announced is left alone: it is the holder's to merge."""
        stat = self.file.stat()
        if stat is None or stat == self.disk_stat:
            return
        try:
            on_disk = await self.file.read()
        except FileUnavailable:
            return
        if on_disk.disk_hash == self.disk_hash or self._adopt_written(
            self.document.normalize(on_disk.content), on_disk.disk_hash
        ):
            self.disk_stat = stat

    def _adopt_written(self, incoming: Any, disk_hash: str) -> bool:
        """If a lease holder wrote (or merged) this content, it is already in the shared
        document: take it as the base instead of merging it again. Merging it would treat
        a holder's last write (one it had no time to announce as written, when killed) as
        an out-of-band change and could revert what was typed since."""
        if not self.lease.was_written(content_hash(incoming)):
            return False
        self._set_base(incoming, disk_hash)
        return True

    async def _merge_disk_changes(self) -> None:
        stat = self.file.stat()
        if stat is None or stat == self.disk_stat:
            return
        self.disk_stat = stat
        try:
            on_disk = await self.file.read()
        except FileUnavailable as exc:
            self.log.warning("jupyter_collab: cannot merge the changed file: %s", exc)
            return
        if on_disk.disk_hash == self.disk_hash:
            return  # touched, not changed
        incoming = self.document.normalize(on_disk.content)
        if self._adopt_written(incoming, on_disk.disk_hash):
            return  # written by the previous lease holder
        self.document.merge(self.base, incoming)
        self._set_base(incoming, on_disk.disk_hash)
        await self.lease.announce(content_hash(incoming))
        self.log.info("jupyter_collab: merged out-of-band changes of %s", self.file.path)
