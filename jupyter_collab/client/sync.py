"""The blocking variant for scripts: `SyncNotebookClient` runs a `NotebookClient` on its own
event loop in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .changes import Change
from .errors import ClientClosedError
from .feed import ChangeFeed, change_or_end
from .notebook import NotebookClient


class SyncNotebookClient:
    """`NotebookClient` for scripts: the same operations, blocking. The asyncio client runs
    in an event loop on a background thread.

    ```python
    with SyncNotebookClient("http://localhost:8888", "data.ipynb", token=token) as nb:
        nb.insert("print('hi')", after=nb.cells()[-1]["id"])
    ```
    """

    def __init__(self, server_url: str, path: str, **options: Any) -> None:
        self._args = (server_url, path)
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: NotebookClient | None = None

    def __enter__(self) -> SyncNotebookClient:
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.flush()
            finally:
                self.close()
            return
        with contextlib.suppress(Exception):
            self.flush(timeout=5.0)
        self.close()

    def open(self) -> SyncNotebookClient:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jupyter-collab-client", daemon=True
        )
        self._thread.start()

        async def start() -> NotebookClient:
            return await NotebookClient(*self._args, **self._options).open()

        try:
            self._client = self._run(start())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._client is not None:
                self._run(self._client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        if self._loop is None:
            coroutine.close()
            raise ClientClosedError("the client is not open")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    @property
    def client(self) -> NotebookClient:
        """The asyncio client (use it only from its loop's thread)."""
        if self._client is None:
            raise ClientClosedError("the client is not open")
        return self._client

    @property
    def role(self) -> str | None:
        return self.client.role

    @property
    def connected(self) -> bool:
        return self.client.connected

    def collaborators(self) -> list[dict[str, Any]]:
        return self._run(_call(self.client.collaborators))

    def cells(self) -> list[dict[str, Any]]:
        return self._run(self.client.cells())

    def cell(self, cell_id: str) -> dict[str, Any]:
        return self._run(self.client.cell(cell_id))

    def insert(self, source: str = "", **options: Any) -> dict[str, Any]:
        return self._run(self.client.insert(source, **options))

    def patch(self, cell_id: str, **changes: Any) -> dict[str, Any]:
        return self._run(self.client.patch(cell_id, **changes))

    def replace_source(self, cell_id: str, source: str, *, expect: str | None = None) -> dict[str, Any]:
        return self._run(self.client.replace_source(cell_id, source, expect=expect))

    def set_metadata(self, cell_id: str, metadata: dict[str, Any], *, expect: str | None = None) -> dict:
        return self._run(self.client.set_metadata(cell_id, metadata, expect=expect))

    def set_outputs(self, cell_id: str, outputs: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        return self._run(self.client.set_outputs(cell_id, outputs, **options))

    def delete(self, cell_id: str, *, expect: str | None = None) -> None:
        return self._run(self.client.delete(cell_id, expect=expect))

    def move(self, cell_id: str, **options: Any) -> dict[str, Any]:
        return self._run(self.client.move(cell_id, **options))

    def flush(self, timeout: float | None = None) -> None:
        return self._run(self.client.flush(timeout))

    def on_change(self, callback: Callable[[Change], Any], *, local: bool = False) -> Callable[[], None]:
        """`callback(change)` runs on the client's thread; returns an unsubscribe function."""
        unsubscribe = self._run(_call(self.client.on_change, callback, local=local))
        return lambda: self._run(_call(unsubscribe))

    def changes(self, *, local: bool = False, timeout: float | None = None) -> SyncChangeStream:
        """Changes from now on, as they happen; iteration stops after `timeout` seconds
        without one (if given) or when the client closes. `with nb.changes() as changes:`
        (or `changes.close()`) ends the subscription."""
        feed = self.client._feed  # its streams take any queue: this one is thread-safe
        stream = SyncChangeStream(self, feed, timeout)
        self._run(_call(feed.watch, stream._queue, local))
        return stream


class SyncChangeStream:
    """An iterator of `Change`s, from `SyncNotebookClient.changes()`."""

    def __init__(self, owner: SyncNotebookClient, feed: ChangeFeed, timeout: float | None) -> None:
        self._owner = owner
        self._feed = feed
        self._timeout = timeout
        self._queue: queue.Queue = queue.Queue()
        self._done = False

    def __iter__(self) -> Iterator[Change]:
        return self

    def __next__(self) -> Change:
        if self._done:
            raise StopIteration
        try:
            item = self._queue.get(timeout=self._timeout)
        except queue.Empty:
            item = None
        change = change_or_end(item, self.close)
        if change is None:
            raise StopIteration
        return change

    def close(self) -> None:
        if not self._done:
            self._done = True
            loop = self._owner._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._feed.unwatch, self._queue)

    def __enter__(self) -> SyncChangeStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a plain function on the client's loop."""
    return function(*args, **kwargs)
