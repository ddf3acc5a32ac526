"""`NotebookClient`: a program joins a notebook as a named collaborator and edits it by
cell id, with reconnection, the server's refusals turned into exceptions, and change streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, TransactionEvent
from tornado.httpclient import HTTPClientError

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
from ..protocol import (
    EMPTY_UPDATE,
    VIEWERS_CANNOT_SAVE,
    CloseCode,
)
from .changes import (
    AccessDenied,
    CellLocked,
    Change,
    ChangeRefused,
    ClientClosedError,
    ReadOnlyError,
    _diff,
    _Snapshot,
    _snapshot,
)
from .room import RoomClient, RoomClosed, open_session, room_url

if TYPE_CHECKING:
    from .sync import SyncNotebookClient

AGENT = f"jupyter-collab-client/{__version__}"
_UNSET: Any = object()

# How a closed connection is handled (close codes: docs/wire-protocol.md); any other
# code (1012 restart, 4500 server error, none) reconnects with the usual backoff.
_RELOAD_CODES = {CloseCode.RELOAD}  # the server merged what it could, or refused a change: start afresh
_FATAL_CODES = {  # retrying would give the same answer
    CloseCode.TOO_BIG,
    CloseCode.BAD_REQUEST,
    CloseCode.FORBIDDEN,
    CloseCode.NOT_FOUND,
}
_SLOW_DOWN_CODES = {  # over a limit or too slow: reconnect, but not at once
    CloseCode.POLICY_VIOLATION,
    CloseCode.TRY_AGAIN_LATER,
}

log = logging.getLogger("jupyter_collab.client")


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
        self.reconnects = 0  # how many times the connection was re-established
        self.reloads = 0  # how many times the client started over from a fresh document
        self._room: RoomClient | None = None
        self._ynb: YNotebook | None = None
        self._subscription: Any = None
        self._fresh = False  # the current document is new and not synced yet
        self._online = asyncio.Event()
        self._supervisor: asyncio.Task | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._local_seq = 0  # local edits made
        self._acked_seq = 0  # local edits the server is known to have
        self._refusals: list[str] = []
        self._notices_seen = 0
        self._watchers: list[tuple[Any, bool]] = []  # (queue or callback, include local changes)
        self._snapshot: _Snapshot | None = None
        self._dirty_local = False
        self._dirty_remote = False
        self._settle_scheduled = False
        self._closers: set[asyncio.Task] = set()  # old connections being closed

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

    @classmethod
    def sync(cls, server_url: str, path: str, **options: Any) -> SyncNotebookClient:
        """The blocking variant, for scripts: `with NotebookClient.sync(url, path, token=...) as nb:`."""
        from .sync import SyncNotebookClient  # the sync client wraps this one

        return SyncNotebookClient(server_url, path, **options)

    async def open(self) -> NotebookClient:
        """Open the session, join the room and wait until synced."""
        if self._room is not None:
            raise RuntimeError("already open")
        self._attach(self._new_room())
        try:
            await self._connect(self.room)
        except BaseException as exc:
            await self.room.close()
            self._detach()
            self._room = None
            if isinstance(exc, RoomClosed) and exc.code in _FATAL_CODES:
                raise self._fatal_error(exc.code, exc.reason) from exc
            if isinstance(exc, HTTPClientError) and exc.code in (401, 403, 404):
                raise self._http_error(exc) from exc
            raise
        self._online.set()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        return self

    async def close(self) -> None:
        """Leave the room (without flushing: use `flush()` or the context manager)."""
        if self._closing:
            return
        self._closing = True
        self._online.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._room is not None:
            self._settle()
            await self._room.close()
            self._detach()
        self._end_watchers(None)

    @property
    def room(self) -> RoomClient:
        """The current low-level connection (replaced when the client starts afresh)."""
        if self._room is None:
            raise ClientClosedError("the client is not open")
        return self._room

    @property
    def doc(self) -> Doc:
        return self.room.doc

    def notebook(self) -> YNotebook:
        """The live shared notebook (jupyter-ydoc); prefer the cell methods for edits."""
        if self._ynb is None:
            self._ynb = YNotebook(self.room.doc)
        return self._ynb

    @property
    def role(self) -> str | None:
        """The role the server announced: owner, editor or viewer."""
        return self._room.role if self._room is not None else None

    @property
    def connected(self) -> bool:
        return self._room is not None and self._room.connected and self._room.synced.is_set()

    @property
    def failure(self) -> BaseException | None:
        """Why the client gave up reconnecting, if it did."""
        return self._failure

    def collaborators(self) -> list[dict[str, Any]]:
        """The `user` field of everyone else in the room (as the server stamped it)."""
        if self._room is None:
            return []
        own = self._room.doc.client_id
        return [dict(s["user"]) for cid, s in self._room.awareness.items() if cid != own and "user" in s]

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
            self._check_open()
            target = self._local_seq
            room = await self._wait_online(deadline)
            try:
                await room.save(timeout=max(0.1, min(deadline - loop.time(), 10.0)))
            except RoomClosed:
                continue  # reconnecting; the edits go out with the resync
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
                continue
            if room is self._room:
                self._acked_seq = max(self._acked_seq, target)
        self._collect_refusals()
        if self._refusals:
            reasons, self._refusals = self._refusals, []
            raise ChangeRefused(reasons)

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
        return ChangeStream(self, local)

    def on_change(self, callback: Callable[[Change], Any], *, local: bool = False) -> Callable[[], None]:
        """Call `callback(change)` on every change (in the event loop); returns an unsubscribe
        function."""
        self._watch(callback, local)
        return lambda: self._unwatch(callback)

    def _watch(self, target: Any, local: bool) -> None:
        if self._closing:
            raise ClientClosedError("the client is closed")
        if self._snapshot is None and self._doc_ready():
            self._snapshot = _snapshot(self.notebook())
        self._watchers.append((target, local))

    def _unwatch(self, target: Any) -> None:
        self._watchers = [(t, local) for t, local in self._watchers if t is not target]
        if not self._watchers:
            self._snapshot = None

    def _end_watchers(self, item: BaseException | None) -> None:
        for target, _ in self._watchers:
            if hasattr(target, "put_nowait"):
                target.put_nowait(item)
        self._watchers = []

    def _on_transaction(self, event: TransactionEvent) -> None:
        if event.update == EMPTY_UPDATE:
            return
        if self._room is not None and self._room._applying_remote:
            self._dirty_remote = True
        else:
            self._local_seq += 1
            self._dirty_local = True
        if self._watchers and not self._settle_scheduled:
            self._settle_scheduled = True
            asyncio.get_running_loop().call_soon(self._settle)

    def _settle(self) -> None:
        """Tell the watchers what changed since the last time."""
        self._settle_scheduled = False
        if not (self._dirty_local or self._dirty_remote) or not self._doc_ready():
            return
        local = self._dirty_local and not self._dirty_remote
        self._dirty_local = self._dirty_remote = False
        if not self._watchers:
            return
        new = _snapshot(self.notebook())
        old, self._snapshot = self._snapshot, new
        if old is None:
            return
        change = _diff(old, new, local)
        if not change:
            return
        for target, include_local in list(self._watchers):
            if change.local and not include_local:
                continue
            if hasattr(target, "put_nowait"):
                target.put_nowait(change)
            else:
                try:
                    target(change)
                except Exception:
                    log.exception("jupyter_collab: a change callback failed")

    # -- internals -------------------------------------------------------------------------

    def _new_room(self) -> RoomClient:
        return RoomClient(
            "",
            user=self.user,
            ping_interval=self.ping_interval,
            send_interval=self.send_interval,
            apply_unrelated=False,
            headers={"Authorization": f"token {self.token}"},
        )

    def _attach(self, room: RoomClient) -> None:
        self._room = room
        self._ynb = None
        self._notices_seen = 0
        self._subscription = room.doc.observe(self._on_transaction)

    def _detach(self) -> None:
        if self._room is not None and self._subscription is not None:
            self._room.doc.unobserve(self._subscription)
        self._subscription = None

    def _doc_ready(self) -> bool:
        """False while a fresh document is still empty (not synced yet)."""
        return not self._fresh or (self._room is not None and self._room.synced.is_set())

    async def _connect(self, room: RoomClient) -> None:
        session = await open_session(self.server_url, self.path, self.token)
        room.url = room_url(self.server_url, session)
        await room.connect(timeout=self.timeout)
        if self._fresh:
            self._fresh = False
            self._dirty_remote = True
            self._settle()

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing or self._room is None:
            raise ClientClosedError("the client is closed")

    async def _ready(self) -> None:
        """Wait, if the document was just replaced by a fresh copy, until it is synced."""
        self._check_open()
        if self._fresh:
            loop = asyncio.get_running_loop()
            await self._wait_online(loop.time() + self.timeout)
        self._settle()  # others' changes so far are reported before ours

    async def _writable(self) -> YNotebook:
        await self._ready()
        self._collect_refusals()
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
        self._settle()
        try:
            return operation()
        finally:
            self._settle()

    def _collect_refusals(self) -> None:
        room = self._room
        if room is None:
            return
        for notice in room.notices[self._notices_seen :]:
            if notice.get("type") == "denied" and notice.get("reason") != VIEWERS_CANNOT_SAVE:
                self._refusals.append(str(notice.get("reason") or "change refused"))
        self._notices_seen = len(room.notices)

    async def _wait_online(self, deadline: float) -> RoomClient:
        loop = asyncio.get_running_loop()
        while True:
            self._check_open()
            room = self._room
            if self._online.is_set() and room is not None and room.connected and room.synced.is_set():
                return room
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.path}: not connected to the server")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._online.wait(), min(remaining, 0.05))
            if self._online.is_set():
                await asyncio.sleep(0.01)  # set, but the connection is not usable yet

    async def _supervise(self) -> None:
        """Keep the connection up: reconnect with backoff, start afresh when told to."""
        try:
            while True:
                room = self.room
                await room.closed.wait()
                self._online.clear()
                await self._recover(room.close_code, room.close_reason)
                if self._failure is not None:
                    return
                self._online.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: do not leave callers waiting forever
            log.exception("jupyter_collab: the client's connection supervisor failed")
            self._fail(exc)

    async def _recover(self, code: int | None, reason: str | None) -> None:
        delay = self.min_backoff
        while True:
            if code in _FATAL_CODES:
                self._fail(self._fatal_error(code, reason))
                return
            if code in _RELOAD_CODES:
                self._start_afresh(reason)
                wait = 0.0 if delay == self.min_backoff else delay
            else:
                wait = max(delay, 1.0) if code in _SLOW_DOWN_CODES else delay
            await asyncio.sleep(wait * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.max_backoff)
            room = self.room
            try:
                await self._connect(room)
            except RoomClosed as exc:
                code, reason = exc.code, exc.reason
                continue
            except HTTPClientError as exc:
                if exc.code in (401, 403, 404):
                    self._fail(self._http_error(exc))
                    return
                code, reason = None, None
            except Exception as exc:  # the server is not back yet, the network is down...
                log.debug("jupyter_collab: reconnecting to %s failed: %r", self.path, exc)
                # An unrelated history that the server did not resolve: start afresh anyway.
                code, reason = (CloseCode.RELOAD, None) if room.unrelated else (None, None)
            else:
                self.reconnects += 1
                return
            if room.ws is not None:
                await room.disconnect()

    def _start_afresh(self, reason: str | None) -> None:
        """The server merged what it could of our document (or refused a change): continue
        from its copy, with a new document."""
        self._collect_refusals()
        try:
            details = json.loads(reason or "{}")
        except ValueError:
            details = {}
        if isinstance(details, dict) and details.get("reason") == "permission_denied" and not self._refusals:
            self._refusals.append(str(details.get("errorReason") or "change refused"))
        old = self.room
        self._settle()
        self._detach()
        self._track_close(old)
        self._fresh = True
        self._acked_seq = self._local_seq  # what we sent was merged or refused
        self.reloads += 1
        self._attach(self._new_room())

    def _track_close(self, room: RoomClient) -> None:
        task = asyncio.get_running_loop().create_task(room.close())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    def _http_error(self, error: HTTPClientError) -> BaseException:
        if error.code == 404:
            # The server answers a file you may not open exactly as a missing one.
            return FileNotFoundError(f"{self.path}: no such file on the server, or no access to it")
        return AccessDenied(f"{self.path}: no access ({error.code} {error.message})")

    def _fatal_error(self, code: int | None, reason: str | None) -> BaseException:
        if code == CloseCode.FORBIDDEN:
            return AccessDenied(f"{self.path}: access denied or revoked ({reason})")
        if code == CloseCode.NOT_FOUND:
            return FileNotFoundError(f"{self.path}: no such file on the server ({reason})")
        return RoomClosed(code, reason)

    def _fail(self, error: BaseException) -> None:
        log.warning("jupyter_collab: giving up on %s: %s", self.path, error)
        self._failure = error
        self._online.set()  # wake waiters: they raise the failure
        self._end_watchers(error)


class ChangeStream:
    """An async iterator of `Change`s, from `NotebookClient.changes()`."""

    def __init__(self, client: NotebookClient, local: bool) -> None:
        self._client = client
        self._queue: asyncio.Queue = asyncio.Queue()
        self._done = False
        client._watch(self._queue, local)

    def __aiter__(self) -> ChangeStream:
        return self

    async def __anext__(self) -> Change:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None or isinstance(item, BaseException):
            self.close()
            if item is None:
                raise StopAsyncIteration
            raise item
        return item

    async def next(self, timeout: float | None = None) -> Change:
        """The next change (TimeoutError if none comes within `timeout` seconds)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._client._unwatch(self._queue)

    async def __aenter__(self) -> ChangeStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
