"""Room lifecycle: create on first join (once, under a per-room lock), close after a delay
once empty and saved, and stop everything promptly at server shutdown; and who may be in
rooms at all: which awareness-only rooms exist, and how many sockets one user holds."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..documents.kinds import BadRoomId, RoomKey, parse_room_id
from ..persistence.files import DocumentFile
from ..persistence.store import HistoryStore
from ..persistence.watcher import FileWatcher
from ..protocol import CloseCode
from .awareness import AwarenessLimits
from .disk import SaveSettings
from .document import DocumentRoom
from .loading import load_document
from .presence import PresenceRoom
from .replica import Replication
from .room import Connection, Room, RoomEvents

# Longer than any document room id ("base64:file:" and a file id of at most 200 characters).
MAX_ROOM_ID_CHARS = 256


class UnknownRoom(Exception):
    """An awareness-only room name that `Limits.awareness_rooms` does not allow."""


@dataclass(frozen=True)
class Limits:
    """Who may be in rooms, and how much (`c.CollabApp.*` options)."""

    per_room: int = 20  # connections of one user to one room
    per_user: int = 100  # connections of one user to all rooms of this process
    awareness: AwarenessLimits = field(default_factory=AwarenessLimits)
    awareness_rooms: str = "JupyterLab:globalAwareness"  # names of awareness-only rooms (full match)


class RoomManager:
    def __init__(
        self,
        *,
        make_file: Callable[[RoomKey], DocumentFile],
        store: HistoryStore | None,
        watcher: FileWatcher,
        save: SaveSettings,
        broadcast_window: float,
        close_delay: float,
        events: RoomEvents,
        log: logging.Logger,
        backplane: Replication,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._awareness_rooms = re.compile(self.limits.awareness_rooms)
        self._sockets: Counter[str] = Counter()  # connections per username, all rooms
        self.events = events
        self.backplane = backplane
        self.make_file = make_file
        self.store = store
        self.watcher = watcher
        self.save = save
        self.broadcast_window = broadcast_window
        self.close_delay = close_delay
        self.log = log
        self.rooms: dict[str, Room] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closers: dict[str, asyncio.TimerHandle] = {}
        self._stopping = False

    def check_room_id(self, room_id: str) -> None:
        """Refuse room ids nobody may open: BadRoomId for a malformed or overlong one,
        UnknownRoom for an awareness-only room that is not allowed (each would otherwise
        be a new room, held in memory, for anyone who names one)."""
        if len(room_id) > MAX_ROOM_ID_CHARS:
            raise BadRoomId(f"longer than {MAX_ROOM_ID_CHARS} characters")
        if parse_room_id(room_id) is None and not self._awareness_rooms.fullmatch(room_id):
            raise UnknownRoom(f"no room {room_id!r}")

    async def get(self, room_id: str) -> Room:
        """The room for `room_id`, created and loaded if needed.

        Raises BadRoomId for a malformed id, UnknownRoom for an awareness-only room that
        is not allowed, and FileUnavailable when the file cannot be loaded; concurrent
        callers for the same new room wait for one load.
        """
        self.check_room_id(room_id)
        self._cancel_close(room_id)
        room = self.rooms.get(room_id)
        if room is not None:
            return room
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            room = self.rooms.get(room_id)
            if room is None:
                room = await self._create(room_id)
                self.rooms[room_id] = room
                self.release(room)  # closes it later if nobody joins
        return room

    async def _create(self, room_id: str) -> Room:
        key = parse_room_id(room_id)
        if key is None:
            presence = PresenceRoom(
                room_id, broadcast_window=self.broadcast_window, events=self.events, log=self.log
            )
            presence.awareness.limits = self.limits.awareness
            return presence
        return await self._open_document(key)

    async def _open_document(self, key: RoomKey) -> DocumentRoom:
        """Load a document room: the backplane says where it starts from (the state other
        processes hold, and whether this process saves it), the room is loaded from that,
        its history and its file, then attached to the same room on other processes."""
        file = self.make_file(key)
        claim = await self.backplane.claim(key.room_id)
        try:
            loaded = await load_document(key, file, self.store, claim.start, self.log)
            room = DocumentRoom(
                key,
                file,
                loaded,
                store=self.store,
                save=self.save,
                broadcast_window=self.broadcast_window,
                events=self.events,
                log=self.log,
            )
            room.awareness.limits = self.limits.awareness
            await claim.attach(room)
        except BaseException:
            # Nothing of a room that failed to open stays behind: not the save lease (others
            # would wait for it to expire), not the store's hold on its history.
            if self.store:
                self.store.close(key.room_id)
            await claim.abandon()
            raise
        self.watcher.watch(room.room_id, room.disk.changed_on_disk, room.check_disk)
        self.log.info("jupyter_collab: opened room %s (%s) from %s", key.room_id, file.path, loaded.source)
        return room

    def admit(self, room: Room, conn: Connection, username: str) -> str | None:
        """Join `conn` to `room` unless its user is at a connection limit (then the reason)."""
        if room.connections_of(username) >= self.limits.per_room:
            return "too many connections to this room"
        if self._sockets[username] >= self.limits.per_user:
            return "too many connections to this server"
        self._sockets[username] += 1
        room.join(conn)
        return None

    def leave(self, room: Room, conn: Connection, username: str) -> None:
        """`conn` (admitted to `room`) is gone."""
        if conn in room.connections:
            self._sockets[username] -= 1
            if self._sockets[username] <= 0:
                del self._sockets[username]
        room.leave(conn)
        self.release(room)

    def forget_decisions(self) -> None:
        """Rights may have changed: presence rooms ask the policy again for names."""
        for room in self.rooms.values():
            if isinstance(room, PresenceRoom):
                room.forget_decisions()

    def _cancel_close(self, room_id: str) -> None:
        handle = self._closers.pop(room_id, None)
        if handle is not None:
            handle.cancel()

    def release(self, room: Room) -> None:
        """Schedule closing `room` after `close_delay` if it has no connections."""
        if room.connections or self._stopping:
            return
        self._cancel_close(room.room_id)
        loop = asyncio.get_running_loop()
        self._closers[room.room_id] = loop.call_later(
            self.close_delay, lambda: loop.create_task(self._close_if_empty(room))
        )

    async def _close_if_empty(self, room: Room) -> None:
        self._closers.pop(room.room_id, None)
        lock = self._locks.setdefault(room.room_id, asyncio.Lock())
        async with lock:
            if room.connections or self.rooms.get(room.room_id) is not room:
                return
            await self._close(room)

    async def _close(self, room: Room) -> None:
        try:
            await room.stop()
        finally:
            self.watcher.unwatch(room.room_id)
            self.rooms.pop(room.room_id, None)
            self._locks.pop(room.room_id, None)
            self.log.info("jupyter_collab: closed room %s", room.room_id)

    async def stop(self) -> None:
        """Shutdown: tell clients to reconnect later, then save every room."""
        self._stopping = True
        for handle in self._closers.values():
            handle.cancel()
        self._closers.clear()
        await self.watcher.stop()
        for room in list(self.rooms.values()):
            for conn in list(room.connections):
                conn.close_with(CloseCode.RESTART, "server is restarting")
        results = await asyncio.gather(
            *(self._close(room) for room in list(self.rooms.values())), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self.log.error("jupyter_collab: error while closing a room: %s", result)
