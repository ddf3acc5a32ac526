"""A document room: one shared document, its clients, and the rules for changing it.

The room applies clients' updates (through the lock guard for non-owners), broadcasts what
changed, and keeps clients with an unrelated history (e.g. from before a restart without
history) from doubling content. Its file binding (`disk.py`) saves it and takes in changes
made on disk. With several server processes, the room is attached to a replica
(`replica.py`): local changes are published through it and the others' applied here; the
room itself holds no scale-out code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_ydoc import YNotebook
from pycrdt import TransactionEvent, merge_updates

from ..documents.kinds import RoomKey
from ..documents.merge import merge_notebook
from ..permissions import Access
from ..persistence.files import DocumentFile
from ..persistence.store import HistoryStore
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
from .disk import FileBinding, SaveSettings
from .guard import ChangeRefused, LockGuard, Verdict, untrust
from .loading import Loaded
from .replica import UNREPLICATED, Replica
from .room import Connection, Room, RoomEvents

T = TypeVar("T")


class DocumentRoom(Room):
    def __init__(
        self,
        key: RoomKey,
        file: DocumentFile,
        loaded: Loaded,
        *,
        store: HistoryStore | None,
        save: SaveSettings,
        broadcast_window: float,
        events: RoomEvents,
        log: logging.Logger,
    ) -> None:
        """A room for a loaded document (`loading.load_document`): it starts observing it."""
        super().__init__(key.room_id, broadcast_window=broadcast_window, events=events, log=log)
        self.key = key
        self.file = file
        self.store = store
        self.document = loaded.document
        self.disk = FileBinding(key.room_id, file, loaded, store=store, settings=save, log=log)
        self.replica: Replica = UNREPLICATED  # the same room on other processes (a backplane)
        self._updates: list[bytes] = []
        self._peer_states: dict[Connection, dict[int, int]] = {}
        self._dedupe_scheduled = False
        self._guard: LockGuard | None = None
        self._applying_remote = False
        self._subscription = self.document.ydoc.observe(self._on_transaction)
        self.document.observe_cell_inserts(self._schedule_dedupe)
        self._dedupe()
        if loaded.unsaved:
            self.disk.touch()  # the history held edits the file did not: write them (if any remain)

    @property
    def base(self) -> Any:
        """The content last written to or read from disk, in document form."""
        return self.disk.base

    async def check_disk(self) -> None:
        """The file may have changed on disk (the watcher saw its stat change)."""
        await self.disk.check()

    # -- changes ---------------------------------------------------------------------------

    def _on_transaction(self, event: TransactionEvent) -> None:
        update = event.update
        if update == EMPTY_UPDATE:
            return
        self._updates.append(update)
        if not self._applying_remote:
            self.replica.publish(update)
        if self._guard is not None:
            self._guard.follow(update)
        self._schedule_flush()
        if self.store:
            self.store.append(self.room_id, update)
        self.disk.document_changed()

    def _schedule_dedupe(self) -> None:
        if not self._dedupe_scheduled:
            self._dedupe_scheduled = True
            asyncio.get_running_loop().call_soon(self._dedupe)

    def _dedupe(self) -> None:
        self._dedupe_scheduled = False
        duplicated = self.document.remove_duplicate_cells()
        if duplicated:
            self.log.info("jupyter_collab: removed duplicated cells %s in %s", duplicated, self.room_id)

    def pending_frames(self) -> list[bytes]:
        frames = []
        if self._updates:
            updates, self._updates = self._updates, []
            merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
            frames.append(sync_frame(SyncType.UPDATE, merged))
        frames += super().pending_frames()
        self.replica.flush(self.awareness.take_local_changes())
        return frames

    # -- what the replica calls (replica.ReplicatedRoom) -----------------------------------

    def attach(self, replica: Replica) -> None:
        """Publish through `replica` from now on; local presence changes are kept apart for it."""
        self.replica = replica
        self.disk.lease = replica
        self.awareness.track_local = True

    def state_vector(self) -> bytes:
        return self.document.ydoc.get_state()

    def update_since(self, state_vector: bytes | None = None) -> bytes:
        return self.document.ydoc.get_update(state_vector)

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

    def local_awareness(self) -> bytes | None:
        return self.awareness.local_snapshot()

    def take_over(self) -> None:
        """The save lease came to this process (its holder left or died): save soon; the
        save merges what changed on disk first."""
        self.disk.touch()

    def disk_announced(self) -> None:
        """The lease holder wrote or merged the file: follow it (see `FileBinding.check`)."""
        task = asyncio.get_running_loop().create_task(self.check_disk())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def base_snapshot(self) -> tuple[str, str]:
        """The content last written to or read from disk, as stored in a shared snapshot."""
        return json.dumps(self.disk.base), self.disk.disk_hash or ""

    # -- sync and enforcement --------------------------------------------------------------

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

    # -- saving and closing ----------------------------------------------------------------

    async def handle_save(self, conn: Connection, request_id: int) -> dict:
        if not conn.access.role.can_edit:
            self.log.warning("jupyter_collab: refused a save request from %s (viewer)", conn.label)
            self.events.emit("denied", self, conn, reason=VIEWERS_CANNOT_SAVE)
            conn.notify(denied_notice(conn.access.role.value, VIEWERS_CANNOT_SAVE))
            return save_reply(request_id, "failed")
        return save_reply(request_id, await self.disk.save_requested())

    async def stop(self) -> None:
        """Flush broadcasts, the pending save and the history; stop observing."""
        self.flush()
        await self.disk.finish()
        await self.replica.close()
        if self._subscription is not None:
            self.document.ydoc.unobserve(self._subscription)
            self._subscription = None
        if self.store:
            self.store.close(self.room_id)
