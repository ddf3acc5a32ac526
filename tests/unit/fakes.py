"""In-process stand-ins for what a room talks to, so that rooms run without sockets.

`FakeConnection` implements the `Connection` Protocol of `jupyter_collab/rooms/room.py` the
way the WebSocket handler does where it matters to a room: a connection whose send buffer
overflows, or that is closed, leaves its room at once (synchronously, in the middle of a
fan-out), and a closed connection is sent nothing more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from jupyter_collab.permissions import Access, Role
from jupyter_collab.protocol import (
    AwarenessEntry,
    AwarenessMessage,
    CloseCode,
    MessageType,
    SyncMessage,
    decode_awareness,
    decode_message,
    encode_awareness,
)
from jupyter_collab.rooms.room import Connection, Room

LOG = logging.getLogger("tests.unit")


class Events:
    """RoomEvents that remember (action, connection label) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def emit(self, action: str, room: Room, conn: Connection, **details: Any) -> None:
        self.seen.append((action, conn.label))


class FakeConnection:
    """One client of a room: records every frame and notice the room sends it."""

    def __init__(
        self,
        room: Room,
        username: str,
        role: Role = Role.EDITOR,
        *,
        capacity: int | None = None,
        readable: Callable[[str], bool] = lambda path: True,
    ) -> None:
        self.room = room
        self.label = username
        self.access = Access(role)
        self.identity: dict[str, Any] = {"username": username, "name": username.title(), "role": role.value}
        self.capacity = capacity  # frames it holds before it is "too slow" (None: unbounded)
        self.readable = readable  # which paths its user may open (the permission policy)
        self.frames: list[bytes] = []
        self.notices: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.asked: list[str] = []  # paths the room asked about, in order

    def notify(self, body: dict[str, Any]) -> None:
        self.notices.append(body)

    def send(self, frame: bytes) -> None:
        if self.closed is not None:
            return
        if self.capacity is not None and len(self.frames) >= self.capacity:
            self.close_with(CloseCode.TRY_AGAIN_LATER, "too slow: reconnect to resync")
            return
        self.frames.append(frame)

    def close_with(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.room.leave(self)

    async def may_open(self, path: str) -> bool:
        self.asked.append(path)
        return self.readable(path)

    # -- what the tests read ---------------------------------------------------------------

    def sync_messages(self) -> list[SyncMessage]:
        return [m for m in self._messages() if isinstance(m, SyncMessage)]

    def awareness_entries(self) -> list[AwarenessEntry]:
        """Every awareness entry received, in order."""
        messages = [m for m in self._messages() if isinstance(m, AwarenessMessage)]
        return [entry for message in messages for entry in decode_awareness(message.payload)]

    def states(self) -> dict[int, dict[str, Any]]:
        """The presence this client sees: the latest state per client id, left ones gone."""
        seen: dict[int, dict[str, Any]] = {}
        for entry in self.awareness_entries():
            if entry.state_json in ("", "null"):
                seen.pop(entry.client_id, None)
            else:
                seen[entry.client_id] = json.loads(entry.state_json)
        return seen

    def _messages(self) -> list[Any]:
        return [decode_message(frame) for frame in self.frames if frame[0] != MessageType.CUSTOM]


def payload(*entries: tuple[int, int, Any]) -> bytes:
    """An awareness update of (client id, clock, state) entries: a state None says the client
    left, a str is sent as it is (malformed JSON included)."""
    return encode_awareness(
        [
            AwarenessEntry(
                cid, clock, state if isinstance(state, str) else json.dumps(state, ensure_ascii=False)
            )
            for cid, clock, state in entries
        ]
    )


def presence(client_id: int, state: dict[str, Any] | None, clock: int = 1) -> AwarenessMessage:
    """An awareness message announcing one state (None: the client left)."""
    return AwarenessMessage(payload((client_id, clock, state)))
