"""The pub/sub side of the Redis backplane: presence of every room open here, and control.

One subscription per process carries the control channel (`collab:control`: permission
re-checks asked on another process) and the awareness channel of each room open here.
Every message is checked before it is acted on; a malformed one is reported (rate-limited)
and skipped, so that one bad message cannot stop presence and control on this process.
Control messages run one at a time per operation: a burst of re-check requests costs one
re-check running and one more after it, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .complaints import Malformed
from .connection import ERRORS, MAX_BACKOFF, RedisConnection
from .link import RoomLink
from .local import ControlHandler
from .messages import parse_control

CONTROL_CHANNEL = "collab:control"


class Listener:
    """This process's pub/sub subscription and what arrives on it."""

    def __init__(self, conn: RedisConnection, links: Mapping[str, RoomLink]) -> None:
        self.conn = conn
        self.links = links  # the rooms open here (the backplane's, kept current by it)
        self.on_control: ControlHandler | None = None
        self.pubsub: Any = None
        self._running: set[str] = set()  # control operations running now
        self._again: dict[str, dict[str, Any]] = {}  # op -> the latest request while it ran

    async def run(self) -> None:
        """Listen until cancelled; reconnect (subscribing to everything again) when Redis
        goes away. Also the restart after a failure (`RedisBackplane._supervised`)."""
        await self.close()
        backoff = 0.1
        while True:
            try:
                if self.pubsub is None:
                    pubsub = self.conn.redis.pubsub()
                    channels = [link.keys.channel for link in self.links.values()]
                    await pubsub.subscribe(CONTROL_CHANNEL, *channels)
                    self.pubsub = pubsub
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                backoff = 0.1
            except ERRORS as exc:
                self.conn.lost(exc)
                await self.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if message is not None and message.get("type") == "message":
                self.dispatch(message.get("channel"), message.get("data"))

    def dispatch(self, channel: Any, data: Any) -> None:
        """One message: to the room its channel names, or to the control handler."""
        name = channel.decode(errors="replace") if isinstance(channel, bytes) else str(channel)
        try:
            if name == CONTROL_CHANNEL:
                self._control(parse_control(data))
                return
            link = next((link for link in self.links.values() if link.keys.channel == name), None)
            if link is not None:
                link.presence.receive(data)
        except Malformed as exc:
            kind = "control message" if name == CONTROL_CHANNEL else "awareness message"
            self.conn.complaints.skipped(kind, name, exc)

    def _control(self, body: dict[str, Any]) -> None:
        op = body["op"]
        if body["from"] == self.conn.process:
            return
        if op in self._running:
            self._again[op] = body  # run once more when the current one ends
            return
        self._running.add(op)
        self.conn.background(self._run_control(op, body))

    async def _run_control(self, op: str, body: dict[str, Any] | None) -> None:
        handler = self.on_control
        try:
            while body is not None and handler is not None:
                try:
                    await handler(body)
                except Exception:
                    self.conn.log.exception("jupyter_collab: control message %r failed", op)
                body = self._again.pop(op, None)
        finally:
            self._running.discard(op)

    async def subscribe(self, channel: str) -> None:
        if self.pubsub is not None:
            await self.pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        if self.pubsub is not None:
            await self.pubsub.unsubscribe(channel)

    async def close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except ERRORS:
                pass
