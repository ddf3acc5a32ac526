"""A room's presence across processes, through its pub/sub channel `collab:{room}:awareness`.

Local awareness changes go out with each flush, and every local state again every 10 s (so
a process that died drops out of the others' presence after 30 s of silence). States from
other processes are checked (`messages.parse_awareness`) and shown to local clients.
Pub/sub is ephemeral, hence the hello: a process that opens the room asks the others for
their states, and gets them at most once a second however often it (or anyone) asks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..rooms.replica import ReplicatedRoom
from .connection import RedisConnection
from .messages import (
    AWARENESS_HELLO,
    AWARENESS_STATE_MAX_BYTES,
    AWARENESS_STATES,
    parse_awareness,
    publishable,
)

HELLO_ANSWER_SECONDS = 1.0


class RoomPresence:
    """Publishes this process's awareness states for one room, applies the others'."""

    def __init__(
        self,
        conn: RedisConnection,
        room: ReplicatedRoom,
        channel: str,
        send: Callable[[Awaitable[Any]], Any],
    ) -> None:
        self.conn = conn
        self.room = room
        self.channel = channel
        self._send = send  # the link's ordered, guarded send
        self._answer: asyncio.TimerHandle | None = None
        self._answered = float("-inf")  # event-loop time of the last answer to a hello

    def messages(self, kind: bytes, payload: bytes = b"") -> list[bytes]:
        prefix = self.conn.process.encode() + kind
        if kind == AWARENESS_HELLO:
            return [prefix]
        return [prefix + part for part in publishable(payload, self._over)]

    def _over(self, client_id: int, size: int) -> None:
        self.conn.complaints.warn(
            f"awareness state over the bound {self.room.room_id}",
            "an awareness state of %d bytes (client %d in %s) is over %d bytes: other "
            "processes see only its user",
            size,
            client_id,
            self.room.room_id,
            AWARENESS_STATE_MAX_BYTES,
        )

    async def publish(self, kind: bytes, payload: bytes = b"") -> None:
        for message in self.messages(kind, payload):
            await self.conn.redis.publish(self.channel, message)

    def republish(self, pipe: Any) -> None:
        """Every local state again, into `pipe` (the periodic presence announcement)."""
        states = self.room.local_awareness()
        if states is not None:
            for message in self.messages(AWARENESS_STATES, states):
                pipe.publish(self.channel, message)

    def receive(self, data: Any) -> None:
        """A message on the room's channel. Malformed: refused, nothing applied."""
        message = parse_awareness(data)
        if message.process == self.conn.process:
            return
        if message.kind == AWARENESS_HELLO:
            self._schedule_answer()
        else:
            self.room.apply_remote_awareness(message.process, message.payload, time.monotonic())

    def _schedule_answer(self) -> None:
        if self._answer is not None:
            return  # already coming: it answers every hello received until then
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._answered + HELLO_ANSWER_SECONDS - loop.time())
        self._answer = loop.call_later(wait, self._answer_hello)

    def _answer_hello(self) -> None:
        self._answer = None
        self._answered = asyncio.get_running_loop().time()
        states = self.room.local_awareness()
        if states is not None:
            self._send(self.publish(AWARENESS_STATES, states))

    def close(self) -> None:
        if self._answer is not None:
            self._answer.cancel()
            self._answer = None
