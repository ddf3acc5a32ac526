"""`NotebookClient`: a program joins a notebook as a named collaborator and edits it by
cell id. The client is the cell API; it delegates keeping the connection up to
`supervisor.py`, telling watchers what changed to `feed.py`, and turning the server's
refusals into exceptions to `refusals.py`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, TransactionEvent

from .. import __version__
from ..documents.cells import (
    delete_cell,
    find,
    insert_cell,
    move_cell,
    patch_cell,
    read_cell,
    read_cells,
)
from ..documents.locks import cell_refusal, insert_refusal, lock_flags
from ..protocol import EMPTY_UPDATE
from .changes import Change
from .errors import CellLocked, ClientClosedError, ReadOnlyError
from .feed import ChangeFeed, ChangeStream
from .refusals import Refusals
from .room import RoomClient, RoomClosed
from .supervisor import Supervisor

AGENT = f"jupyter-collab-client/{__version__}"
_UNSET: Any = object()


class NotebookClient:
    """A program's seat in a notebook's room: cell operations by id on the live document.

    ```python
    async with NotebookClient("http://localhost:8888", "data.ipynb", token=token, name="bot") as nb:
        cells = await nb.cells()
        await nb.insert("print('hi')", after=cells[-1]["id"])
    ```

    The client joins like any collaborator (over the room's WebSocket), appears in presence
    as a program, and edits its own copy of the shared document, so edits travel as CRDT
    updates and merge with what people type at the same time. Cells are addressed by id,
    never by index; every edit can carry `expect=`, the cell's `hash` as last read, and is
    refused with `CellConflict` (changing nothing) if the cell changed since.

    Connections that drop (server restart, network) are re-established with backoff and
    resynced; edits made meanwhile are kept and sent then. If the server asks for a reload
    (it merged our history by cell id, or refused a change), the client starts from a fresh
    copy of the document. `flush()` waits until the server has every edit; leaving the
    `async with` block flushes, then closes.
    """

    def __init__(
        self,
        server_url: str,
        path: str,
        *,
        token: str,
        name: str = "jupyter-collab-client",
        timeout: float = 30.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        ping_interval: float | None = 20.0,
        send_interval: float = 0.05,
    ) -> None:
        self.server_url = server_url
        self.path = path
        self.token = token
        self.name = name
        self.timeout = timeout  # for connecting, syncing and flushing
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.ping_interval = ping_interval
        self.send_interval = send_interval
        self.user = {"agent": AGENT, "program": True, "program_name": name, "name": name}
        self._ynb: YNotebook | None = None
        self._local_seq = 0  # local edits made
        self._acked_seq = 0  # local edits the server is known to have
        self._refusals = Refusals()
        self._feed = ChangeFeed(  # the lambdas read the supervisor, made next, when called
            ready=lambda: self._supervisor.doc_ready,
            notebook=self.notebook,
            closed=lambda: self._supervisor.stopped,
        )
        self._supervisor = Supervisor(
            self, self._feed, on_transaction=self._on_transaction, before_afresh=self._before_afresh
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> NotebookClient:
        await self.open()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                await self.flush()
            finally:
                await self.close()
            return
        with contextlib.suppress(Exception):  # already failing: flush what we can
            await self.flush(timeout=min(self.timeout, 5.0))
        await self.close()

    async def open(self) -> NotebookClient:
        """Open the session, join the room and wait until synced."""
        await self._supervisor.open()
        return self

    async def close(self) -> None:
        """Leave the room (without flushing: use `flush()` or the context manager)."""
        if self._supervisor.stopped:
            return
        await self._supervisor.stop()
        if self._supervisor.room is not None:
            self._feed.settle()
            await self._supervisor.leave()
        self._feed.end(None)

    @property
    def room(self) -> RoomClient:
        """The current low-level connection (replaced when the client starts afresh)."""
        if self._supervisor.room is None:
            raise ClientClosedError("the client is not open")
        return self._supervisor.room

    @property
    def doc(self) -> Doc:
        return self.room.doc

    def notebook(self) -> YNotebook:
        """The live shared notebook (jupyter-ydoc); prefer the cell methods for edits."""
        doc = self.room.doc
        if self._ynb is None or self._ynb.ydoc is not doc:  # a new one after starting afresh
            self._ynb = YNotebook(doc)
        return self._ynb

    @property
    def role(self) -> str | None:
        """The role the server announced: owner, editor or viewer."""
        room = self._supervisor.room
        return room.role if room is not None else None

    @property
    def connected(self) -> bool:
        return self._supervisor.connected

    @property
    def failure(self) -> BaseException | None:
        """Why the client gave up reconnecting, if it did."""
        return self._supervisor.failure

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established."""
        return self._supervisor.reconnects

    @property
    def reloads(self) -> int:
        """How many times the client started over from a fresh document."""
        return self._supervisor.reloads

    def collaborators(self) -> list[dict[str, Any]]:
        """The `user` field of everyone else in the room (as the server stamped it)."""
        room = self._supervisor.room
        if room is None:
            return []
        own = room.doc.client_id
        return [dict(s["user"]) for cid, s in room.awareness.items() if cid != own and "user" in s]

    # -- reading ---------------------------------------------------------------------------

    async def cells(self) -> list[dict[str, Any]]:
        """Every cell: id, hash, cell_type, source, metadata (and outputs, execution_count)."""
        await self._ready()
        return read_cells(self.notebook())

    async def cell(self, cell_id: str) -> dict[str, Any]:
        """One cell by id (CellNotFound if there is none)."""
        await self._ready()
        return read_cell(self.notebook(), cell_id)

    # -- editing ---------------------------------------------------------------------------

    async def insert(
        self,
        source: str = "",
        *,
        cell_type: str = "code",
        before: str | None = None,
        after: str | None = None,
        index: int | None = None,
        metadata: dict[str, Any] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        """Insert a cell before or after the cell with a given id (or at `index`, or at the end)."""
        nb = await self._writable()
        fields: dict[str, Any] = {"cell_type": cell_type, "source": source}
        if metadata is not None:
            fields["metadata"] = metadata
            refusal = insert_refusal(lock_flags(metadata))
            if self.role not in ("owner", None) and refusal:
                raise CellLocked(refusal)
        if outputs is not None:
            fields["outputs"] = outputs
        if cell_id is not None:
            fields["id"] = cell_id
        return self._edit(lambda: insert_cell(nb, fields, before=before, after=after, index=index))

    async def patch(
        self,
        cell_id: str,
        *,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        execution_count: int | None = _UNSET,
        cell_type: str | None = None,
        expect: str | None = None,
    ) -> dict[str, Any]:
        """Change some fields of a cell (those given); `source` is applied as a minimal text
        edit, so concurrent typing elsewhere in the cell is kept. Returns the cell."""
        changes: dict[str, Any] = {}
        for key, value in (
            ("source", source),
            ("metadata", metadata),
            ("outputs", outputs),
            ("cell_type", cell_type),
        ):
            if value is not None:
                changes[key] = value
        if execution_count is not _UNSET:
            changes["execution_count"] = execution_count
        nb = await self._writable()
        self._check_lock(nb, cell_id, metadata=metadata)
        return self._edit(lambda: patch_cell(nb, cell_id, changes, expect=expect))

    async def replace_source(self, cell_id: str, source: str, *, expect: str | None = None) -> dict[str, Any]:
        return await self.patch(cell_id, source=source, expect=expect)

    async def set_metadata(
        self, cell_id: str, metadata: dict[str, Any], *, expect: str | None = None
    ) -> dict[str, Any]:
        return await self.patch(cell_id, metadata=metadata, expect=expect)

    async def set_outputs(
        self,
        cell_id: str,
        outputs: list[dict[str, Any]],
        *,
        execution_count: int | None = _UNSET,
        expect: str | None = None,
    ) -> dict[str, Any]:
        return await self.patch(cell_id, outputs=outputs, execution_count=execution_count, expect=expect)

    async def delete(self, cell_id: str, *, expect: str | None = None) -> None:
        nb = await self._writable()
        self._check_lock(nb, cell_id, structural=True)
        self._edit(lambda: delete_cell(nb, cell_id, expect=expect))

    async def move(
        self,
        cell_id: str,
        *,
        before: str | None = None,
        after: str | None = None,
        index: int | None = None,
        expect: str | None = None,
    ) -> dict[str, Any]:
        """Move a cell before or after another one (or to `index`); returns the cell."""
        nb = await self._writable()
        self._check_lock(nb, cell_id, structural=True)
        return self._edit(
            lambda: move_cell(nb, cell_id, before=before, after=after, index=index, expect=expect)
        )

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has applied every edit made so far (a save round trip:
        the server handles a connection's messages in order). Reconnects in between are
        waited for. Raises ChangeRefused if the server refused some of our changes since
        the last flush, TimeoutError if it could not be reached in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        while self._acked_seq < self._local_seq:
            self._supervisor.check_open()
            target = self._local_seq
            room = await self._supervisor.wait_online(deadline)
            try:
                await room.save(timeout=max(0.1, min(deadline - loop.time(), 10.0)))
            except RoomClosed:
                continue  # reconnecting; the edits go out with the resync
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
                continue
            if room is self._supervisor.room:
                self._acked_seq = max(self._acked_seq, target)
        self._refusals.collect(self._supervisor.room)
        self._refusals.raise_any()

    # -- watching --------------------------------------------------------------------------

    def changes(self, *, local: bool = False) -> ChangeStream:
        """Changes to the notebook from now on, as they happen, by cell id (others' only,
        unless `local=True`); the stream ends when the client closes.

        ```python
        async with nb.changes() as changes:
            async for change in changes:
                print(change.changed)
        ```
        """
        return ChangeStream(self._feed, local)

    def on_change(self, callback: Callable[[Change], Any], *, local: bool = False) -> Callable[[], None]:
        """Call `callback(change)` on every change (in the event loop); returns an unsubscribe
        function."""
        self._feed.watch(callback, local)
        return lambda: self._feed.unwatch(callback)

    # -- internals -------------------------------------------------------------------------

    def _on_transaction(self, event: TransactionEvent) -> None:
        """Count our own edits, which `flush()` waits for the server to have, and tell the feed."""
        if event.update == EMPTY_UPDATE:
            return
        room = self._supervisor.room
        local = room is None or not room.applying_remote
        if local:
            self._local_seq += 1
        self._feed.mark(local=local)

    def _before_afresh(self, reason: str | None) -> None:
        """The server closed us to start afresh: what we sent was merged or refused; keep
        its refusals (the notices so far, or the close reason) for the next `flush()`."""
        self._refusals.collect(self._supervisor.room)
        self._refusals.connection_replaced(reason)
        self._acked_seq = self._local_seq

    async def _ready(self) -> None:
        """Wait, if the document was just replaced by a fresh copy, until it is synced."""
        self._supervisor.check_open()
        if self._supervisor.fresh:
            loop = asyncio.get_running_loop()
            await self._supervisor.wait_online(loop.time() + self.timeout)
        self._feed.settle()  # others' changes so far are reported before ours

    async def _writable(self) -> YNotebook:
        await self._ready()
        self._refusals.collect(self._supervisor.room)
        role = self.role
        if role is not None and role not in ("owner", "editor"):
            raise ReadOnlyError(f"{self.path}: this client is a {role} and cannot edit it")
        return self.notebook()

    def _check_lock(
        self, nb: YNotebook, cell_id: str, *, structural: bool = False, metadata: dict | None = None
    ) -> None:
        """Refuse here what the server would refuse (and then drop with everything sent
        alongside): editing locked cells as a non-owner, locking or unlocking them."""
        if self.role in ("owner", None):  # None: a server that does not tell roles
            return
        ycell = nb.ycells[find(nb, cell_id)]
        current = ycell.get("metadata")
        flags = lock_flags(current.to_py() if hasattr(current, "to_py") else current)
        flags_after = flags if metadata is None else lock_flags(metadata)
        refusal = cell_refusal(cell_id, flags, flags_after, removed=structural)
        if refusal:
            raise CellLocked(refusal)

    def _edit(self, operation: Callable[[], Any]) -> Any:
        """Run one edit, so that the feed reports it alone, as a local change."""
        self._feed.settle()
        try:
            return operation()
        finally:
            self._feed.settle()
