"""One shared loop that notices files changed on disk behind open rooms.

A single task polls every watched file once per `interval` (a stat is microseconds; the
reference implementation runs one polling task per room). Whoever watches a file says how
to tell that it changed (`changed`: its stat differs from the one last taken in) and what
to do then (`on_change`), as jupyter-server-ydoc's `FileLoader.observe` takes a callback:
the watcher knows callbacks, not rooms. Watchers then compare content hashes, so a touched
file changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class FileWatcher:
    def __init__(self, interval: float, log: logging.Logger) -> None:
        self.interval = interval
        self.log = log
        self._watched: dict[str, tuple[Callable[[], bool], Callable[[], Awaitable[None]]]] = {}
        self._task: asyncio.Task | None = None
        self._checks: set[asyncio.Task] = set()

    def watch(self, key: str, changed: Callable[[], bool], on_change: Callable[[], Awaitable[None]]) -> None:
        """Poll `changed()` every interval; when it says so, run `on_change()`."""
        self._watched[key] = (changed, on_change)
        if self._task is None and self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unwatch(self, key: str) -> None:
        self._watched.pop(key, None)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for changed, on_change in list(self._watched.values()):
                if changed():
                    task = asyncio.create_task(on_change())
                    self._checks.add(task)
                    task.add_done_callback(self._checks.discard)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
