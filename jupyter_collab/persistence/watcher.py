"""One shared loop that notices files changed on disk behind open rooms.

A single task stats every open room's file once per `interval` (a stat is microseconds;
the reference implementation runs one polling task per room). Rooms are told only when
the stat changed; they then compare content hashes, so a touched file changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..rooms.document import DocumentRoom


class FileWatcher:
    def __init__(self, interval: float, log: logging.Logger) -> None:
        self.interval = interval
        self.log = log
        self.rooms: set[DocumentRoom] = set()
        self._task: asyncio.Task | None = None
        self._checks: set[asyncio.Task] = set()

    def watch(self, room: DocumentRoom) -> None:
        self.rooms.add(room)
        if self._task is None and self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, room: DocumentRoom) -> None:
        self.rooms.discard(room)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for room in list(self.rooms):
                if room.file.stat() != room.disk_stat:
                    task = asyncio.create_task(room.check_disk())
                    self._checks.add(task)
                    task.add_done_callback(self._checks.discard)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
