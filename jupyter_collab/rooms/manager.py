"""Room lifecycle: create on first join (once, under a per-room lock), close after a delay
once empty and saved, and stop everything promptly at server shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..backplane import LocalBackplane
from ..documents import RoomKey, parse_room_id
from ..persistence.filesync import DocumentFile
from ..persistence.store import HistoryStore
from ..persistence.watcher import FileWatcher
from .document import DocumentRoom, SaveSettings
from .room import Room, RoomEvents

# Close code for server shutdown: "service restart", clients reconnect.
CLOSE_RESTART = 1012


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
        backplane: LocalBackplane | None = None,
    ) -> None:
        self.events = events
        self.backplane = backplane or LocalBackplane()
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

    async def get(self, room_id: str) -> Room:
        """The room for `room_id`, created and loaded if needed.

        Raises BadRoomId for a malformed id and FileUnavailable when the file cannot be
        loaded; concurrent callers for the same new room wait for one load.
        """
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
            return Room(room_id, broadcast_window=self.broadcast_window, events=self.events, log=self.log)
        room = DocumentRoom(
            key,
            self.make_file(key),
            store=self.store,
            save=self.save,
            broadcast_window=self.broadcast_window,
            events=self.events,
            log=self.log,
        )
        await self.backplane.open(room)
        self.watcher.watch(room)
        self.log.info(
            "jupyter_collab: opened room %s (%s) from %s", room_id, room.file.path, room.loaded_from
        )
        return room

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
            if isinstance(room, DocumentRoom):
                self.watcher.unwatch(room)
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
                conn.close_with(CLOSE_RESTART, "server is restarting")
        results = await asyncio.gather(
            *(self._close(room) for room in list(self.rooms.values())), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self.log.error("jupyter_collab: error while closing a room: %s", result)
