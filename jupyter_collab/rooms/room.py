"""A room: connections plus a coalescing broadcast loop (a base for document rooms).

Fan-out is built for many clients: changes are merged, encoded once, and the same bytes
are queued to every connection, at most once per short window (`broadcast_window`). The
first change after a quiet window goes out on the next event-loop turn; changes that follow
it within the window wait for the window's end and go out together. So an isolated
keystroke is not delayed, and a busy room still sends one message per window. Each
connection has a bounded send buffer; a client that cannot keep up is closed with 1013
(try again later) and resyncs on reconnect, so it never silently misses an update.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import Counter
from typing import Any, Protocol

from ..permissions import Access, Role
from ..protocol import (
    EMPTY_STATE_VECTOR,
    EMPTY_UPDATE,
    AwarenessMessage,
    CloseCode,
    Message,
    SaveRequest,
    SyncMessage,
    SyncType,
    awareness_frame,
    custom_reply_frame,
    save_reply,
    sync_frame,
)
from .awareness import AwarenessTable


class Connection(Protocol):
    """What a room needs from a client connection (the WebSocket handler implements it)."""

    label: str
    access: Access  # the user's role and policy-locked cells, kept current by re-checks
    identity: dict[str, Any]  # stamped into the `user` field of its awareness states

    def notify(self, body: dict[str, Any]) -> None:
        """Send a JSON message on the custom channel: a role notice every time, each
        distinct refusal once."""

    def send(self, frame: bytes) -> None:
        """Queue a frame; the connection closes itself if its buffer overflows."""

    def close_with(self, code: int, reason: str) -> None:
        """Close the socket with a close code the client understands."""

    async def may_open(self, path: str) -> bool:
        """Whether this connection's user may open the document at `path` (any spelling a
        client wrote; refused spellings are False)."""


class RoomEvents(Protocol):
    """Where rooms report activity (the audit trail)."""

    def emit(self, action: str, room: Room, conn: Connection, **details: Any) -> None: ...


class Room:
    """Connections and awareness; subclasses add a shared document."""

    def __init__(
        self, room_id: str, *, broadcast_window: float, events: RoomEvents, log: logging.Logger
    ) -> None:
        self.room_id = room_id
        self.events = events
        self.broadcast_window = broadcast_window
        self.log = log
        self.connections: set[Connection] = set()
        self._per_user: Counter[str] = Counter()
        self.awareness = AwarenessTable()
        self._outgoing: list[bytes] = []
        self._flush_handle: asyncio.Handle | asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")  # event-loop time of the last flush
        self._tasks: set[asyncio.Task] = set()
        self._program_timers: dict[int, asyncio.TimerHandle] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def connections_of(self, username: str) -> int:
        """How many connections `username` holds here (for the per-user limit)."""
        return self._per_user[username]

    def join(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._per_user[conn.identity.get("username")] += 1
        self.events.emit("join", self, conn)
        # The rights first: a front end must know it is a viewer before it answers step 1.
        conn.notify(conn.access.notice())
        conn.send(sync_frame(SyncType.STEP1, self.state_vector()))
        self.send_states(conn)

    def send_states(self, conn: Connection) -> None:
        """Everyone's current awareness state, for a client that just joined."""
        states = self.awareness.snapshot()
        if states is not None:
            conn.send(awareness_frame(states))

    def state_vector(self) -> bytes:
        """What the server's document holds (nothing, in an awareness-only room)."""
        return EMPTY_STATE_VECTOR

    def leave(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self._per_user[conn.identity.get("username")] -= 1
        self.events.emit("leave", self, conn)
        if self.awareness.remove_owner(conn):
            self._schedule_flush()

    async def stop(self) -> None:
        """Release resources; subclasses flush their document first."""
        self.flush()

    # -- incoming --------------------------------------------------------------------------

    def handle(self, conn: Connection, message: Message) -> None:
        """Handle one decoded message; ProtocolError means the sender is misbehaving."""
        if isinstance(message, AwarenessMessage):
            if self.awareness.apply(conn, message.payload, conn.identity):
                self._schedule_flush()
        elif isinstance(message, SyncMessage):
            self.handle_sync(conn, message)
        elif isinstance(message, SaveRequest):
            task = asyncio.get_running_loop().create_task(self._reply_save(conn, message.request_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reply_save(self, conn: Connection, request_id: int) -> None:
        conn.send(custom_reply_frame(await self.handle_save(conn, request_id)))

    def handle_sync(self, conn: Connection, message: SyncMessage) -> None:
        """An awareness-only room has no shared document, but JupyterLab's provider still
        runs the sync handshake on it (and reconnects in a loop if refused): answer its
        step 1 with an empty step 2; document updates here have nowhere to go and are
        dropped, as nothing may be stored or relayed in such a room."""
        if message.kind == SyncType.STEP1:
            conn.send(sync_frame(SyncType.STEP2, EMPTY_UPDATE))

    async def handle_save(self, conn: Connection, request_id: int) -> dict:
        return save_reply(request_id, "skipped")

    # -- outgoing --------------------------------------------------------------------------

    def broadcast(self, frame: bytes) -> None:
        """Queue a frame for every connection in the next flush."""
        self._outgoing.append(frame)
        self._schedule_flush()

    def show_program(self, user: dict[str, Any], activity: dict[str, Any], seconds: float) -> None:
        """Show a program (a REST caller) in presence while it works, for `seconds`."""
        client_id = zlib.crc32(f"api:{user.get('username')}".encode()) | (1 << 32)
        self.awareness.set_server_state(client_id, {"user": {**user, "program": True}, "activity": activity})
        self._schedule_flush()
        previous = self._program_timers.pop(client_id, None)
        if previous is not None:
            previous.cancel()
        self._program_timers[client_id] = asyncio.get_running_loop().call_later(
            seconds, self._hide_program, client_id
        )

    def _hide_program(self, client_id: int) -> None:
        self._program_timers.pop(client_id, None)
        self.awareness.set_server_state(client_id, None)
        self._schedule_flush()

    def restamp(self, conn: Connection) -> None:
        """The connection's identity or role changed: correct its awareness states."""
        if self.awareness.restamp(conn, conn.identity):
            self._schedule_flush()

    def update_access(self, conn: Connection, access: Access, identity: dict[str, Any]) -> None:
        """Rights re-checked while connected: no access closes the socket (4403, do not
        retry blindly); other changes re-stamp its presence, tell the client and are audited."""
        if access.role is Role.NONE:
            self.events.emit("revoked", self, conn, reason="access removed")  # as it was
            conn.access = access
            conn.close_with(CloseCode.FORBIDDEN, "access revoked")
            return
        conn.access = access
        conn.identity = identity
        self.restamp(conn)
        conn.notify(access.notice())
        self.events.emit("role_change", self, conn)

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            wait = self._last_flush + self.broadcast_window - loop.time()
            if wait > 0:
                self._flush_handle = loop.call_later(wait, self.flush)
            else:
                self._flush_handle = loop.call_soon(self.flush)

    def pending_frames(self) -> list[bytes]:
        """Frames to send in this flush; subclasses add their merged document update."""
        frames, self._outgoing = self._outgoing, []
        changes = self.awareness.take_changes()
        if changes is not None:
            frames.append(awareness_frame(changes))
        return frames

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        frames = self.pending_frames()
        if not frames:
            return
        self._last_flush = asyncio.get_running_loop().time()
        for conn in list(self.connections):
            for frame in frames:
                conn.send(frame)
