"""The change feed: tells a client's watchers (`changes()` streams, `on_change` callbacks)
what changed in the notebook, by cell id.

Edits arrive as CRDT transactions, many per cell operation or remote update. The feed only
notes that something changed, and compares a snapshot of cell ids and hashes with the last
one once per turn of the event loop, or when the client asks (before and after each of its
own edits, so that its edits are reported apart from others'). A watcher thus gets one
`Change` per burst instead of one per transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from jupyter_ydoc import YNotebook

from .changes import Change, Snapshot, diff, take_snapshot
from .errors import ClientClosedError

log = logging.getLogger("jupyter_collab.client")


@runtime_checkable
class ChangeQueue(Protocol):
    """A stream's queue (asyncio's, or a thread-safe one for the blocking client): it gets
    every `Change`, then `None` when the client closes or the error it failed with."""

    def put_nowait(self, item: Change | BaseException | None) -> None: ...


Watcher = ChangeQueue | Callable[[Change], Any]


class ChangeFeed:
    """The watchers of one client and what they have been told so far."""

    def __init__(
        self,
        *,
        ready: Callable[[], bool],
        notebook: Callable[[], YNotebook],
        closed: Callable[[], bool],
    ) -> None:
        self._ready = ready  # False while a fresh document is still empty (not synced yet)
        self._notebook = notebook  # the client's current notebook
        self._closed = closed  # the client is closing: no new watchers
        self._watchers: list[tuple[Watcher, bool]] = []  # (watcher, include local changes)
        self._snapshot: Snapshot | None = None
        self._dirty_local = False
        self._dirty_remote = False
        self._settle_scheduled = False

    def watch(self, watcher: Watcher, local: bool) -> None:
        """Report changes from now on to `watcher` (this client's own too if `local`)."""
        if self._closed():
            raise ClientClosedError("the client is closed")
        if self._snapshot is None and self._ready():
            self._snapshot = take_snapshot(self._notebook())
        self._watchers.append((watcher, local))

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers = [(w, local) for w, local in self._watchers if w is not watcher]
        if not self._watchers:
            self._snapshot = None

    def end(self, item: BaseException | None) -> None:
        """End every stream: with `None` (the client closed) or the error it failed with."""
        for watcher, _ in self._watchers:
            if isinstance(watcher, ChangeQueue):
                watcher.put_nowait(item)
        self._watchers = []

    def mark(self, *, local: bool) -> None:
        """The document changed (by this client if `local`): report it on the next turn."""
        if local:
            self._dirty_local = True
        else:
            self._dirty_remote = True
        if self._watchers and not self._settle_scheduled:
            self._settle_scheduled = True
            asyncio.get_running_loop().call_soon(self.settle)

    def settle(self) -> None:
        """Tell the watchers what changed since the last time."""
        self._settle_scheduled = False
        if not (self._dirty_local or self._dirty_remote) or not self._ready():
            return
        local = self._dirty_local and not self._dirty_remote
        self._dirty_local = self._dirty_remote = False
        if not self._watchers:
            return
        new = take_snapshot(self._notebook())
        old, self._snapshot = self._snapshot, new
        if old is None:
            return
        change = diff(old, new, local)
        if not change:
            return
        for watcher, include_local in list(self._watchers):
            if change.local and not include_local:
                continue
            if isinstance(watcher, ChangeQueue):
                watcher.put_nowait(change)
            else:
                try:
                    watcher(change)
                except Exception:
                    log.exception("jupyter_collab: a change callback failed")


def change_or_end(item: Change | BaseException | None, close: Callable[[], None]) -> Change | None:
    """What a stream makes of the next item of its queue: a change to yield, or the end,
    after which the stream closes: `None` if the client closed, or the error it failed with
    (raised)."""
    if isinstance(item, Change):
        return item
    close()
    if item is not None:
        raise item
    return None


class ChangeStream:
    """An async iterator of `Change`s, from `NotebookClient.changes()`."""

    def __init__(self, feed: ChangeFeed, local: bool) -> None:
        self._feed = feed
        self._queue: asyncio.Queue = asyncio.Queue()
        self._done = False
        feed.watch(self._queue, local)

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> Change:
        if self._done:
            raise StopAsyncIteration
        change = change_or_end(await self._queue.get(), self.close)
        if change is None:
            raise StopAsyncIteration
        return change

    async def next(self, timeout: float | None = None) -> Change:
        """The next change (TimeoutError if none comes within `timeout` seconds)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._feed.unwatch(self._queue)

    async def __aenter__(self) -> ChangeStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
