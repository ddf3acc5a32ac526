"""One connection to a room, like a browser tab: the Yjs sync and awareness protocol over
the real WebSocket, with a pycrdt document. Tests and `NotebookClient` build on it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import quote

from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Doc, TransactionEvent, merge_updates
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from ..protocol import (
    EMPTY_UPDATE,
    AwarenessEntry,
    AwarenessMessage,
    ProtocolError,
    SyncMessage,
    SyncType,
    awareness_frame,
    decode_awareness,
    decode_message,
    decode_server_notice,
    decode_state_vector,
    encode_awareness,
    save_request_frame,
    sync_frame,
    unrelated_histories,
)

log = logging.getLogger(__name__)


class RoomClosed(Exception):
    """The server closed the connection; `code` and `reason` say why."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"room closed: {code} {reason}")
        self.code = code
        self.reason = reason


async def open_session(
    server_url: str, path: str, token: str, *, file_format: str = "json", file_type: str = "notebook"
) -> dict[str, Any]:
    """`PUT /api/collaboration/session/{path}`: the room of a file."""
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{server_url.rstrip('/')}/api/collaboration/session/{quote(path)}",
            method="PUT",
            body=json.dumps({"format": file_format, "type": file_type}),
            headers={"Authorization": f"token {token}"},
        )
    )
    return json.loads(response.body)


def room_url(server_url: str, session: dict[str, Any], token: str | None = None) -> str:
    """The room's WebSocket URL; with `token`, it is in the query (prefer an Authorization
    header: JupyterHub ignores a query token on WebSockets from non-browsers)."""
    ws_base = server_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    room = f"{session['format']}:{session['type']}:{session['fileId']}"
    url = f"{ws_base}/api/collaboration/room/{room}?sessionId={session['sessionId']}"
    return f"{url}&token={token}" if token is not None else url


class RoomClient:
    """One connection to a room, with its own pycrdt document.

    Local changes to `doc` are sent to the server; remote changes are applied to it.
    """

    def __init__(
        self,
        url: str,
        *,
        doc: Doc | None = None,
        user: dict[str, Any] | None = None,
        ping_interval: float | None = None,
        send_interval: float = 0.0,
        apply_unrelated: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.headers = headers or {}  # sent with the upgrade request, e.g. Authorization
        # False: when the server's history shares nothing with ours (it restarted without
        # its history store), do not take its document into ours (that would double every
        # cell); it merges ours by cell id and closes us with 1003, and we start afresh.
        self.apply_unrelated = apply_unrelated
        self.unrelated = False  # the server's history is unrelated to ours (see above)
        self.ping_interval = ping_interval  # WebSocket pings, to notice a dead connection
        # Local edits go out at most once per `send_interval` seconds (those made in between
        # are merged into one message), to stay under the server's message rate limit.
        self.send_interval = send_interval
        self._last_send = float("-inf")
        self.doc = doc if doc is not None else Doc()
        self.user = user
        self.ws: WebSocketClientConnection | None = None
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.awareness: dict[int, dict[str, Any]] = {}
        self.notices: list[dict[str, Any]] = []  # the server's JSON messages (role, refusals)
        self.role: str | None = None
        self._save_waiters: dict[int, asyncio.Future] = {}
        self._next_save = 0
        self._awareness_clock = 0
        self._reader: asyncio.Task | None = None
        self._subscription = None
        self._applying_remote = False
        self._pending_writes: set[asyncio.Task] = set()
        self._local_updates: list[bytes] = []

    async def connect(self, timeout: float = 10.0) -> RoomClient:
        """Join (or rejoin) the room and wait until synced.

        Raises RoomClosed if the server closes the connection first, TimeoutError if it
        does not sync in time, and the connection error if the server cannot be reached
        (the client is then `closed`, and edits made meanwhile go out on the next connect).
        """
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None and self.ws.close_code is None:
            self.ws.close(1000)
        self.ws = None  # offline while connecting: edits go out with the sync handshake
        self.synced.clear()
        self.closed.clear()
        self.close_code = self.close_reason = None
        self.unrelated = False
        try:
            ws = await websocket_connect(
                HTTPRequest(self.url, headers=self.headers),
                max_message_size=256 * 1024 * 1024,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
            )
        except BaseException:
            self.closed.set()
            raise
        self.ws = ws
        if self._subscription is None:
            self._subscription = self.doc.observe(self._on_local_change)
        if self.user is not None:
            self.set_awareness({"user": self.user})
        await self._write(sync_frame(SyncType.STEP1, self.doc.get_state()))
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(ws))
        synced = asyncio.ensure_future(self.synced.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait([synced, closed], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
            closed.cancel()
        if self.synced.is_set():
            return self
        if self.closed.is_set():
            raise RoomClosed(self.close_code, self.close_reason)
        raise TimeoutError("the room did not sync in time")

    @property
    def connected(self) -> bool:
        return self.ws is not None and not self.closed.is_set()

    @property
    def applying_remote(self) -> bool:
        """Whether the document's current transaction is the server's update, not a local edit."""
        return self._applying_remote

    async def _write(self, frame: bytes) -> None:
        if self.ws is None:
            return
        try:
            await self.ws.write_message(frame, binary=True)
        except WebSocketClosedError:
            pass  # unsent edits stay in the document and go out with the next sync

    def _track(self, coroutine: Any) -> None:
        """Run a send in the background; `disconnect` and `save` wait for pending ones."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def _on_local_change(self, event: TransactionEvent) -> None:
        update = event.update
        if update == EMPTY_UPDATE or self._applying_remote or not self.connected:
            return  # offline edits reach the server through sync step 2 on reconnect
        # Edits made in one turn of the event loop (or within `send_interval`) go out as one message.
        if not self._local_updates:
            self._track(self._send_local_updates())
        self._local_updates.append(update)

    async def _send_local_updates(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._last_send + self.send_interval - loop.time()))
        self._last_send = loop.time()
        updates, self._local_updates = self._local_updates, []
        if updates:
            merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
            await self._write(sync_frame(SyncType.UPDATE, merged))

    def _apply_remote(self, update: bytes) -> None:
        self._applying_remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying_remote = False

    async def _read_loop(self, ws: WebSocketClientConnection) -> None:
        try:
            await self._read_frames(ws)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Something we cannot apply: drop the connection (a reconnect resyncs), and say
            # what it was: a connection that ends for no visible reason cannot be diagnosed.
            room = self.url.split("?", 1)[0]  # no query: it may hold a token
            log.warning("jupyter_collab: dropped the connection to %s", room, exc_info=True)
            ws.close(1011)
        if self.ws is ws:
            self.close_code = ws.close_code
            self.close_reason = ws.close_reason
            self.closed.set()

    async def _read_frames(self, ws: WebSocketClientConnection) -> None:
        while True:
            frame = await ws.read_message()
            if frame is None:
                return
            if isinstance(frame, str):
                continue
            try:
                message = decode_message(frame)
            except ProtocolError:
                message = decode_server_notice(frame)
                if message is None:
                    continue
            if isinstance(message, dict):
                self._on_custom(message)
            elif isinstance(message, SyncMessage):
                if message.kind == SyncType.STEP1:
                    if not self.apply_unrelated and self._is_unrelated(message.payload):
                        self.unrelated = True
                    await self._write(sync_frame(SyncType.STEP2, self.doc.get_update(message.payload)))
                elif self.unrelated:
                    continue  # not ours to take in: the server merges ours and closes us
                else:
                    self._apply_remote(message.payload)
                    if message.kind == SyncType.STEP2:
                        self.synced.set()
            elif isinstance(message, AwarenessMessage):
                for entry in decode_awareness(message.payload):
                    state = json.loads(entry.state_json) if entry.state_json else None
                    if state is None:
                        self.awareness.pop(entry.client_id, None)
                    else:
                        self.awareness[entry.client_id] = state

    def _is_unrelated(self, server_state: bytes) -> bool:
        """Whether both documents have history and none of it is shared."""
        try:
            theirs = decode_state_vector(server_state)
            ours = decode_state_vector(self.doc.get_state())
        except ProtocolError:
            return False
        return unrelated_histories(ours, theirs)

    def _on_custom(self, body: dict[str, Any]) -> None:
        self.notices.append(body)
        if body.get("type") == "role":
            self.role = body.get("role")
        if body.get("type") == "save":
            request_id = body.get("responseTo")
            waiter = self._save_waiters.pop(request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(body)

    def set_awareness(self, state: dict[str, Any] | None) -> None:
        self._awareness_clock += 1
        entry = AwarenessEntry(self.doc.client_id, self._awareness_clock, json.dumps(state))
        self._track(self._write(awareness_frame(encode_awareness([entry]))))

    async def save(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the server to save now; returns its reply (`status`: success/skipped/failed).

        Edits made before the call are sent first. Raises RoomClosed if the server closes
        the connection instead of answering.
        """
        if self._pending_writes:
            await asyncio.wait(list(self._pending_writes), timeout=timeout)
        self._next_save += 1
        waiter = asyncio.get_running_loop().create_future()
        self._save_waiters[self._next_save] = waiter
        await self._write(save_request_frame(self._next_save))
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait([waiter, closed], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if waiter.done():
            return waiter.result()
        waiter.cancel()
        if self.closed.is_set():
            raise RoomClosed(self.close_code, self.close_reason)
        raise TimeoutError("no reply to the save request")

    async def send_raw(self, frame: bytes | str) -> None:
        """Send any frame, valid or not (for tests of the server's defences)."""
        assert self.ws is not None
        await self.ws.write_message(frame, binary=isinstance(frame, bytes))

    async def wait_closed(self, timeout: float = 10.0) -> tuple[int | None, str | None]:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason

    async def disconnect(self) -> None:
        """Go offline (after sending what is queued); later edits go out on `connect()`."""
        if self._pending_writes:
            await asyncio.wait(list(self._pending_writes), timeout=5)
        if self.ws is not None:
            self.ws.close(1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closed.wait(), 5)
        if self._reader is not None:
            self._reader.cancel()
        self.closed.set()
        self.ws = None

    async def close(self) -> None:
        await self.disconnect()
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None

    def notebook(self) -> YNotebook:
        return YNotebook(self.doc)

    def text(self) -> YUnicode:
        return YUnicode(self.doc)
