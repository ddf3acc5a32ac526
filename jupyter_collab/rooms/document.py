"""A document room: one shared document, its file, its history, and its clients.

The room applies clients' updates, broadcasts what changed, saves to disk (debounced,
with a bound on staleness), merges out-of-band file changes, and keeps clients with an
unrelated history (e.g. from before a restart without history) from doubling content.

With a shared backplane (several server processes, `backplane/`), the room is linked to
the same room on the other processes (`self.link`): local changes are published, theirs
are applied here (`apply_remote`), and only the process holding the room's save lease
writes the file or merges out-of-band changes; the others follow what it writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_ydoc import YNotebook
from pycrdt import TransactionEvent, get_state, merge_updates

from ..documents.kinds import RoomKey, SharedDocument, content_hash
from ..documents.merge import merge_notebook
from ..permissions import Access
from ..persistence.files import DocumentFile, FileContent, FileStat, FileUnavailable
from ..persistence.store import HistoryStore, StoredDocument
from ..protocol import (
    EMPTY_UPDATE,
    VIEWERS_CANNOT_SAVE,
    CloseCode,
    ProtocolError,
    SyncMessage,
    SyncType,
    decode_state_vector,
    denied_notice,
    reload_reason,
    save_reply,
    sync_frame,
    unrelated_histories,
)
from .guard import ChangeRefused, LockGuard, Verdict, untrust
from .room import Connection, Room, RoomEvents

if TYPE_CHECKING:
    from ..backplane.link import RoomLink

T = TypeVar("T")


@dataclass
class SaveSettings:
    save_delay: float = 0.5
    max_save_delay: float = 1.0


class DocumentRoom(Room):
    def __init__(
        self,
        key: RoomKey,
        file: DocumentFile,
        *,
        store: HistoryStore | None,
        save: SaveSettings,
        broadcast_window: float,
        events: RoomEvents,
        log: logging.Logger,
    ) -> None:
        super().__init__(key.room_id, broadcast_window=broadcast_window, events=events, log=log)
        self.key = key
        self.file = file
        self.store = store
        self.save_settings = save
        self.document = SharedDocument(key)
        self.base: Any = None  # the content on disk, in document form
        self.disk_hash: str | None = None  # hash of the bytes on disk
        self.disk_stat: FileStat | None = None
        self._updates: list[bytes] = []
        self._io_lock = asyncio.Lock()
        self._dirty_since: float | None = None
        self._save_timer: asyncio.TimerHandle | None = None
        self._save_task: asyncio.Task | None = None
        self._requested_save: asyncio.Task | None = None
        self._peer_states: dict[Connection, dict[int, int]] = {}
        self._subscription = None
        self._dedupe_scheduled = False
        self._guard: LockGuard | None = None
        self.link: RoomLink | None = None  # the same room on other processes (a backplane)
        self._applying_remote = False
        self._marking_saved = False  # our own "saved" mark is not a change to save

    # -- loading ---------------------------------------------------------------------------

    async def load(self, shared: StoredDocument | None = None, *, owner: bool = True) -> None:
        """Fill the document from the history store and the file (the file wins on conflict).

        `shared` is the state other processes hold (from a backplane): it comes first, and
        the local history adds to it only when it is of the same lineage. Only the `owner`
        of the save lease merges a file that changed behind the shared state; the others
        take the shared base and follow what the owner writes.
        """
        on_disk = await self.file.read()
        stored = await self.store.load(self.room_id) if self.store else None
        if shared is not None:
            stored = _with_local_history(shared, stored)
        if stored is not None:
            try:
                self.document.ydoc.apply_update(stored.state)
                stored_base = json.loads(stored.base) if stored.base else None
                current = self.document.content()  # must be readable as its kind
            except Exception as exc:
                self.log.warning(
                    "jupyter_collab: history of %s unusable (%s); using the file", self.room_id, exc
                )
                await self.store.forget(self.room_id)
                self.document = SharedDocument(self.key)
                stored = None
        self.loaded_from = "file" if stored is None else "history"
        # Reading a large notebook back is costly (cold joins): read it once per path.
        unsaved = False
        if stored is None:
            self.document.set(on_disk.content)
            self.base = self.document.content()
        elif on_disk.disk_hash == stored.base_hash and stored_base is not None:
            self.base = stored_base  # the file is what we last wrote: the history is newer or equal
            unsaved = content_hash(current) != content_hash(self.base)
        elif not owner and stored_base is not None:
            self.base = stored_base  # the lease holder merges the file; we follow its writes
        else:
            incoming = self.document.normalize(on_disk.content)
            self.document.merge(stored_base if stored_base is not None else incoming, incoming)
            self.base = incoming
            unsaved = True
            self.log.info(
                "jupyter_collab: %s changed on disk while the server was away; merged", self.file.path
            )
        followed = owner or stored is None or on_disk.disk_hash == stored.base_hash
        self.disk_hash = on_disk.disk_hash if followed else stored.base_hash
        self.disk_stat = self.file.stat() if followed else None
        if self.store:
            self.store.open(self.room_id, self.document.ydoc.get_update)
            if stored is None:
                self.store.replace(self.room_id, self.document.ydoc.get_update())
            self.store.set_base(self.room_id, json.dumps(self.base), self.disk_hash)
        self._subscription = self.document.ydoc.observe(self._on_transaction)
        self.document.observe_cell_inserts(self._schedule_dedupe)
        self._dedupe()
        if unsaved:
            self._touch()  # the history held edits the file did not: write them (if any remain)

    # -- changes ---------------------------------------------------------------------------

    def _on_transaction(self, event: TransactionEvent) -> None:
        update = event.update
        if update == EMPTY_UPDATE:
            return
        self._updates.append(update)
        if self.link is not None and not self._applying_remote:
            self.link.queue(update)
        if self._guard is not None:
            self._guard.follow(update)
        self._schedule_flush()
        if self.store:
            self.store.append(self.room_id, update)
        if not self._marking_saved:
            self._touch()

    def _schedule_dedupe(self) -> None:
        if not self._dedupe_scheduled:
            self._dedupe_scheduled = True
            asyncio.get_running_loop().call_soon(self._dedupe)

    def _dedupe(self) -> None:
        self._dedupe_scheduled = False
        duplicated = self.document.remove_duplicate_cells()
        if duplicated:
            self.log.info("jupyter_collab: removed duplicated cells %s in %s", duplicated, self.room_id)

    def apply_remote(self, update: bytes) -> None:
        """Apply an update that came from another process (it is not published again)."""
        self._applying_remote = True
        try:
            with self.document.ydoc.transaction(origin="backplane"):
                self.document.ydoc.apply_update(update)
        finally:
            self._applying_remote = False

    def apply_remote_awareness(self, process: str, payload: bytes, now: float) -> None:
        """Presence from another process: shown to local clients, not published again."""
        if self.awareness.apply_remote(process, payload, now):
            self._schedule_flush()

    def expire_remote_awareness(self, before: float) -> None:
        """Forget the presence of processes silent since `before` (killed ones)."""
        if self.awareness.expire_remotes(before):
            self._schedule_flush()

    def take_over(self) -> None:
        """The save lease came to this process (its holder left or died): save soon; the
        save merges what changed on disk first."""
        self._touch()

    def disk_announced(self) -> None:
        """The lease holder wrote or merged the file: follow it (see `_follow_disk`)."""
        task = asyncio.get_running_loop().create_task(self.check_disk())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def base_json(self) -> str:
        """The content last written to or read from disk, as stored in a shared snapshot."""
        return json.dumps(self.base)

    def pending_frames(self) -> list[bytes]:
        frames = []
        if self._updates:
            updates, self._updates = self._updates, []
            merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
            frames.append(sync_frame(SyncType.UPDATE, merged))
        frames += super().pending_frames()
        if self.link is not None:
            self.link.flush(self.awareness.take_local_changes())
        return frames

    def state_vector(self) -> bytes:
        return self.document.ydoc.get_state()

    def leave(self, conn: Connection) -> None:
        super().leave(conn)
        self._peer_states.pop(conn, None)

    def handle_sync(self, conn: Connection, message: SyncMessage) -> None:
        ydoc = self.document.ydoc
        if message.kind == SyncType.STEP1:
            peer_state = decode_state_vector(message.payload)
            self._peer_states[conn] = peer_state
            conn.send(sync_frame(SyncType.STEP2, ydoc.get_update(message.payload)))
            return
        if message.payload == EMPTY_UPDATE:
            return  # a handshake reply with nothing new: fine from anyone
        if not conn.access.role.can_edit:
            self.deny(conn, "you can only view this document")
            return
        if self._is_foreign(conn):
            self._adopt_foreign(conn, message.payload)
            return
        guard = self._guard_for(conn.access)
        if guard is None:
            try:
                with ydoc.transaction(origin=conn):
                    ydoc.apply_update(message.payload)
            except ValueError as exc:
                raise ProtocolError(f"invalid update: {exc}") from exc
            return
        try:
            verdict = guard.check(message.payload, conn.access)
        except ValueError as exc:
            raise ProtocolError(f"invalid update: {exc}") from exc
        if verdict.refusal is not None:
            self.deny(conn, verdict.refusal)
            return
        self._apply_checked(message.payload, verdict, origin=conn)

    def _guard_for(self, access: Access) -> LockGuard | None:
        """The lock guard that judges this user's changes: None for owners (they may change
        anything) and in text documents (no cells to lock); made on the first change a
        non-owner makes to a notebook."""
        if access.role.can_lock or not isinstance(self.document.model, YNotebook):
            return None
        if self._guard is None:
            self._guard = LockGuard(self.document.model)
        return self._guard

    def _apply_checked(self, update: bytes, verdict: Verdict, *, origin: Any) -> None:
        """Apply a change the guard allowed, withdrawing trust where it says, in one
        transaction: no client ever sees the change with the trust still in it."""
        ydoc = self.document.ydoc
        with ydoc.transaction(origin=origin):
            ydoc.apply_update(update)
            untrust(self.document.model, verdict.untrust)

    def change(self, access: Access, operation: Callable[[Any], T], *, origin: Any) -> T:
        """Make a change on someone's behalf (REST, merges): `operation(model)` runs on the
        live document for owners, and on the guard's shadow for everyone else, whose
        change is applied only if the lock rule allows it (ChangeRefused otherwise)."""
        guard = self._guard_for(access)
        if guard is None:
            with self.document.ydoc.transaction(origin=origin):
                return operation(self.document.model)
        result, update, verdict = guard.trial(operation, access)
        if verdict.refusal is not None:
            raise ChangeRefused(verdict.refusal)
        self._apply_checked(update, verdict, origin=origin)
        return result

    def dry_run_merge(self, access: Access, incoming: Any) -> str | None:
        """Why merging `incoming` (a whole notebook someone is writing to the file, e.g.
        through the contents API) would break the lock rule for `access`; None when it
        would not. Nothing is applied: the write itself reaches the room as an
        out-of-band change once it is on disk."""
        guard = self._guard_for(access)
        if guard is None:
            return None
        try:
            normalized = self.document.normalize(incoming)
        except Exception:
            return None  # not a notebook the server can read: the contents manager refuses it
        return guard.dry_run(lambda model: merge_notebook(model, self.base, normalized), access).refusal

    def deny(self, conn: Connection, reason: str) -> None:
        """Refuse a change: nothing was applied; tell the sender once and make it reload,
        which brings it back to the true state."""
        self.log.warning(
            "jupyter_collab: refused a change from %s to %s: %s", conn.label, self.room_id, reason
        )
        self.events.emit("denied", self, conn, reason=reason)
        conn.notify(denied_notice(conn.access.role.value, reason))
        conn.close_with(CloseCode.RELOAD, reload_reason("permission_denied", reason))

    def _is_foreign(self, conn: Connection) -> bool:
        """True when the client's history shares nothing with ours (e.g. we restarted
        without a history store): merging both CRDT histories would double every cell."""
        peer = self._peer_states.get(conn)
        if not peer:
            return False
        return unrelated_histories(decode_state_vector(self.document.ydoc.get_state()), peer)

    def _adopt_foreign(self, conn: Connection, update: bytes) -> None:
        """Merge a foreign client's content by cell id, then ask it to reload."""
        try:
            content = self.document.foreign_content(update)
        except Exception as exc:
            raise ProtocolError(f"invalid update: {exc}") from exc
        if content and isinstance(self.document.model, YNotebook):
            # Through the lock rule like any other change: adopting a foreign notebook by
            # cell id must not be a way to rewrite locked cells or their flags.
            try:
                self.change(
                    conn.access,
                    lambda model: merge_notebook(model, self.base, content, apply_deletions=False),
                    origin="merge",
                )
            except ChangeRefused as exc:
                self._peer_states.pop(conn, None)
                self.deny(conn, str(exc))
                return
        elif content:
            self.document.merge(self.base, content, apply_deletions=False)
        self.log.info(
            "jupyter_collab: %s has an unrelated history of %s; merged by cell id, asked to reload",
            conn.label,
            self.room_id,
        )
        self._peer_states.pop(conn, None)
        message = "Server restarted; your edits were merged. Please reload."
        conn.close_with(CloseCode.RELOAD, reload_reason("unknown_session", message))

    # -- saving ----------------------------------------------------------------------------

    def _touch(self) -> None:
        """A change happened: save after a quiet `save_delay`, but never later than
        `max_save_delay` after the first unsaved change."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._dirty_since is None:
            self._dirty_since = now
        deadline = min(
            now + self.save_settings.save_delay, self._dirty_since + self.save_settings.max_save_delay
        )
        if self._save_timer is not None:
            self._save_timer.cancel()
        self._save_timer = loop.call_at(deadline, self._start_save)

    def _start_save(self) -> None:
        self._save_timer = None
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(self.save())
        else:
            self._touch()  # a save is running; save again after it

    async def handle_save(self, conn: Connection, request_id: int) -> dict:
        if not conn.access.role.can_edit:
            self.log.warning("jupyter_collab: refused a save request from %s (viewer)", conn.label)
            self.events.emit("denied", self, conn, reason=VIEWERS_CANNOT_SAVE)
            conn.notify(denied_notice(conn.access.role.value, VIEWERS_CANNOT_SAVE))
            return save_reply(request_id, "failed")
        if self._requested_save is None:
            self._requested_save = asyncio.get_running_loop().create_task(self._save_on_request())
        status = await asyncio.shield(self._requested_save)
        return save_reply(request_id, status)

    async def _save_on_request(self) -> str:
        """One save for every request that arrives while it waits for the file: requests
        coalesce (a client asking a thousand times costs one save, not a thousand hashes of
        the document), and a request that arrives once it has started waits for the next."""
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
        if self.link is not None and not await self.link.confirm_lease():
            return "skipped"  # the lease holder (another process) saves
        await self._merge_disk_changes()
        content = self.document.content()
        digest = content_hash(content)
        if digest == content_hash(self.base):
            self._mark_saved()
            return "skipped"
        if self.link is not None:
            await self.link.announce_content(digest)  # before the write: see _follow_disk
        try:
            self.disk_hash = await self.file.write(self.document.file_content())
        except (FileUnavailable, Exception) as exc:
            self.log.error("jupyter_collab: saving %s failed: %s", self.file.path or self.room_id, exc)
            return "failed"
        self.disk_stat = self.file.stat()
        self.base = content
        if self.store:
            self.store.set_base(self.room_id, json.dumps(content), self.disk_hash)
        self._mark_saved()
        return "success"

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

    # -- out-of-band changes ---------------------------------------------------------------

    async def check_disk(self) -> None:
        """Called by the file watcher when the file's stat changed."""
        async with self._io_lock:
            if self.link is not None and not self.link.holds_lease():
                await self._follow_disk()
            else:
                await self._merge_disk_changes()

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
        if on_disk.disk_hash == self.disk_hash or self._adopt_written(on_disk):
            self.disk_stat = stat

    def _adopt_written(self, on_disk: FileContent) -> bool:
        """If a lease holder wrote (or merged) this content, it is already in the shared
        document: take it as the base instead of merging it again. Merging it would treat
        a holder's last write (one it had no time to announce as written, when killed) as
        an out-of-band change and could revert what was typed since."""
        if self.link is None:
            return False
        incoming = self.document.normalize(on_disk.content)
        if not self.link.was_written(content_hash(incoming)):
            return False
        self.base = incoming
        self.disk_hash = on_disk.disk_hash
        if self.store:
            self.store.set_base(self.room_id, json.dumps(incoming), self.disk_hash)
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
        if on_disk.disk_hash == self.disk_hash or self._adopt_written(on_disk):
            return  # touched, not changed; or written by the previous lease holder
        incoming = self.document.normalize(on_disk.content)
        self.document.merge(self.base, incoming)
        self.base = incoming
        self.disk_hash = on_disk.disk_hash
        if self.store:
            self.store.set_base(self.room_id, json.dumps(incoming), self.disk_hash)
        if self.link is not None:
            await self.link.announce_content(content_hash(incoming))
        self.log.info("jupyter_collab: merged out-of-band changes of %s", self.file.path)

    # -- shutdown --------------------------------------------------------------------------

    @property
    def has_unsaved_changes(self) -> bool:
        return self._dirty_since is not None or self._save_timer is not None

    async def stop(self) -> None:
        """Flush broadcasts, the pending save and the history; stop observing."""
        self.flush()
        if self._save_task is not None:
            await asyncio.shield(self._save_task)
        await self.save()
        if self.link is not None:
            await self.link.close()
        if self._subscription is not None:
            self.document.ydoc.unobserve(self._subscription)
            self._subscription = None
        if self.store:
            self.store.close(self.room_id)


def _with_local_history(shared: StoredDocument, local: StoredDocument | None) -> StoredDocument:
    """The shared state plus this process's own history when both share a lineage (it may
    hold edits made while the backplane was away); an unrelated local history (from before
    this process joined the cluster) is ignored: merging it would double every cell."""
    if local is None:
        return shared
    theirs = decode_state_vector(get_state(shared.state))
    ours = decode_state_vector(get_state(local.state))
    if theirs and not (theirs.keys() & ours.keys()):
        return shared
    return StoredDocument(merge_updates(shared.state, local.state), shared.base, shared.base_hash)
