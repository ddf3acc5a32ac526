"""The Redis backplane: several server processes serve the same live rooms.

Every process that has clients in a room holds the live document (`link.py` describes the
keys). Process-wide, three loops run:

- the reader: one blocking XREAD over the streams of every room open here (plus a private
  wake-up stream, so that a newly opened room joins the read at once);
- the listener: pub/sub for awareness and for the control channel (permission re-checks);
- the lease loop: renews the save leases held here, tries to take the others (so a dead
  holder's rooms are taken over once its lease runs out), writes the holder's snapshots and
  re-announces presence.

When Redis is unreachable, rooms keep serving their local clients; the reader retries with
backoff and, once Redis answers again (possibly empty after a restart), every room
republishes its full state and asks for what it lacks, so nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .link import AWARENESS_HELLO, AWARENESS_STATES, RoomLink
from .local import BackplaneUnavailable, ControlHandler, LocalBackplane

if TYPE_CHECKING:
    from ..rooms.document import DocumentRoom

CONTROL_CHANNEL = "collab:control"
LEASE_SECONDS = 3.0  # a dead holder's rooms are saved again at most this long after it died
PRESENCE_SECONDS = 10.0  # presence is re-announced this often; silent for 3x: gone
OPEN_TIMEOUT = 15.0  # how long opening a room waits for Redis or for another process loading it
MAX_BACKOFF = 2.0
# A Redis up for less than this may have restarted empty, and the processes holding rooms
# may not have republished them yet: a room without a snapshot is not loaded from its file
# until then (it would start a history unrelated to theirs).
RECOVERY_GRACE_SECONDS = 2 * MAX_BACKOFF + 1.0
READ_BLOCK_MS = 1000
STALL_SECONDS = 2.0  # a read that returns this much later than it could have: we were stalled
ERRORS = (RedisError, OSError)

# Compare-and-renew / compare-and-delete: only the holder may extend or free its lease.
IF_HOLDER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call"
RENEW = IF_HOLDER + "('pexpire', KEYS[1], ARGV[2]) end return 0"
RELEASE = IF_HOLDER + "('del', KEYS[1]) end return 0"


class RedisBackplane(LocalBackplane):
    """This process's side of the Redis backplane: the rooms linked here and the loops."""

    def __init__(self, url: str, *, log: logging.Logger, lease_seconds: float = LEASE_SECONDS) -> None:
        self.url = url
        self.log = log
        self.redis = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.process = uuid.uuid4().hex
        self.lease_ms = int(lease_seconds * 1000)
        self.lease_valid = lease_seconds * 0.8  # our own view ends before Redis's
        self.links: dict[str, RoomLink] = {}
        self.connected = True  # until a command fails
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self._wake_key = f"collab:process:{self.process}:wake"
        self._wake_id = "0-0"
        self._on_control: ControlHandler | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()

    async def start(self, on_control: ControlHandler) -> None:
        self._on_control = on_control
        try:
            await self.redis.ping()
            self.log.info("jupyter_collab: Redis backplane at %s (process %s)", self._safe_url, self.process)
        except ERRORS as exc:
            self.lost(exc)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_loop()),
            loop.create_task(self._listen_loop()),
            loop.create_task(self._lease_loop()),
        ]

    @property
    def _safe_url(self) -> str:
        return self.url.split("@")[-1]  # never log a password

    # -- connection state ------------------------------------------------------------------

    def lost(self, exc: BaseException) -> None:
        if self.connected:
            self.connected = False
            self.log.warning(
                "jupyter_collab: lost the Redis backplane (%s); rooms keep serving their local "
                "clients, reconnecting",
                exc,
            )

    async def guarded(self, command: Awaitable[Any]) -> None:
        """Run a fire-and-forget command; a failure marks Redis as lost (a resync follows)."""
        try:
            await command
        except ERRORS as exc:
            self.lost(exc)

    async def _recover(self) -> None:
        """Redis answers again: republish every room's full state, ask for what we lack."""
        await self.redis.ping()
        self.connected = True
        for link in list(self.links.values()):
            await link.resync()
        self.log.info("jupyter_collab: Redis backplane is back; re-synced %d room(s)", len(self.links))

    # -- rooms -----------------------------------------------------------------------------

    async def open(self, room: DocumentRoom) -> None:
        link = RoomLink(self, room)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_TIMEOUT
        while True:
            try:
                if await link.load():
                    break
                pause = 0.05  # another process is loading it from disk: wait for its snapshot
            except ERRORS as exc:
                self.lost(exc)
                pause = 0.5
            if loop.time() > deadline:
                self.log.warning("jupyter_collab: cannot open %s: Redis did not answer in time", room.room_id)
                raise BackplaneUnavailable(f"could not open {room.room_id} through Redis")
            await asyncio.sleep(pause)
        room.link = link
        room.awareness.track_local = True
        self.links[room.room_id] = link
        await self.guarded(self._attach(link))

    async def _attach(self, link: RoomLink) -> None:
        await self.redis.xadd(self._wake_key, {"w": "1"}, maxlen=8)
        await self.redis.expire(self._wake_key, 3600)
        if self._pubsub is not None:
            await self._pubsub.subscribe(link.channel)
        await link.publish_awareness(AWARENESS_HELLO)

    async def detach(self, link: RoomLink) -> None:
        """The room closed here: leave its final state and free its lease."""
        self.links.pop(link.room.room_id, None)
        if not self.connected:
            return
        try:
            if link.holds_lease():
                await link.write_snapshot()
                await link.release()
            if self._pubsub is not None:
                await self._pubsub.unsubscribe(link.channel)
        except ERRORS as exc:
            self.lost(exc)

    async def just_restarted(self) -> bool:
        info = await self.redis.info("server")
        return int(info.get("uptime_in_seconds", RECOVERY_GRACE_SECONDS)) < RECOVERY_GRACE_SECONDS

    async def renew(self, key: str) -> bool:
        return bool(await self._renew(keys=[key], args=[self.process, self.lease_ms]))

    async def release(self, key: str) -> None:
        await self._release(keys=[key], args=[self.process])

    async def publish_control(self, message: dict[str, Any]) -> None:
        try:
            await self.redis.publish(CONTROL_CHANNEL, json.dumps({**message, "from": self.process}))
        except ERRORS as exc:
            self.lost(exc)

    # -- loops -----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                if not self.connected:
                    await self._recover()
                streams = {self._wake_key: self._wake_id}
                streams.update({link.stream: link.last_id for link in self.links.values()})
                started = time.monotonic()
                replies = await self.redis.xread(streams, count=1000, block=READ_BLOCK_MS)
                backoff = 0.1
            except ERRORS as exc:
                self.lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            # Paused (SIGSTOP, a blocked event loop) or far behind: entries may have been
            # trimmed before we read them; look at each stream's trimmed ids.
            stalled = time.monotonic() - started > READ_BLOCK_MS / 1000 + STALL_SECONDS
            for link in self.links.values() if stalled else ():
                self._background_task(self.guarded(link.check_gap(streams[link.stream])))
            by_stream = {link.stream: link for link in self.links.values()}
            for key, entries in replies or []:
                name = key.decode()
                if name == self._wake_key:
                    self._wake_id = entries[-1][0].decode()
                    continue
                link = by_stream.get(name)
                if link is None:
                    continue
                since = link.last_id
                try:
                    link.receive(entries)
                except Exception:
                    self.log.exception("jupyter_collab: bad update on the stream of %s", link.room.room_id)
                if len(entries) == 1000 and not stalled:
                    self._background_task(self.guarded(link.check_gap(since)))

    async def _listen_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self._pubsub is None:
                    pubsub = self.redis.pubsub()
                    await pubsub.subscribe(CONTROL_CHANNEL, *(link.channel for link in self.links.values()))
                    self._pubsub = pubsub
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                backoff = 0.1
            except ERRORS as exc:
                self.lost(exc)
                await self._drop_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            if channel == CONTROL_CHANNEL:
                self._control(message["data"])
                continue
            for link in self.links.values():
                if link.channel == channel:
                    link.receive_awareness(message["data"])
                    break

    def _control(self, data: bytes) -> None:
        try:
            body = json.loads(data)
        except ValueError:
            return
        if body.get("from") != self.process and self._on_control is not None:
            self._background_task(self._on_control(body))

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except ERRORS:
                pass

    async def _lease_loop(self) -> None:
        """Renew held leases, take free ones, write holders' snapshots, re-announce presence."""
        tick = self.lease_ms / 3000
        last_presence = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            if not self.connected:
                continue
            presence = time.monotonic() - last_presence >= PRESENCE_SECONDS
            if presence:
                last_presence = time.monotonic()
            try:
                await self._lease_tick(presence)
            except ERRORS as exc:
                self.lost(exc)
            except Exception:
                self.log.exception("jupyter_collab: lease loop failed")

    async def _lease_tick(self, presence: bool) -> None:
        links = list(self.links.values())
        if not links:
            return
        started = time.monotonic()
        pipe = self.redis.pipeline(transaction=False)
        for link in links:
            if link.holds_lease():
                await self._renew(keys=[link.lease_key], args=[self.process, self.lease_ms], client=pipe)
            else:
                pipe.set(link.lease_key, self.process, nx=True, px=self.lease_ms)
        results = await pipe.execute()
        upkeep = self.redis.pipeline(transaction=False)  # the periodic, fire-and-forget part
        for link, result in zip(links, results, strict=True):
            held = link.holds_lease()
            if result:
                link.lease_until = started + self.lease_valid
                if not held:
                    self.log.info("jupyter_collab: this process now saves %s", link.room.room_id)
                    link.room.take_over()
            elif held:
                link.lease_until = 0.0
                self.log.info("jupyter_collab: another process now saves %s", link.room.room_id)
            if link.holds_lease() and (link.state_dirty or link.base_dirty):
                await link.write_snapshot()
            if presence:
                link.room.expire_remote_awareness(time.monotonic() - 3 * PRESENCE_SECONDS)
                if link.holds_lease():
                    link.refresh_ttl(upkeep)
                states = link.room.awareness.local_snapshot()
                if states is not None:
                    upkeep.publish(link.channel, link.awareness_message(AWARENESS_STATES, states))
        if len(upkeep):
            await upkeep.execute()

    def _background_task(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._drop_pubsub()
        try:
            await self.redis.delete(self._wake_key)
        except ERRORS:
            pass
        await self.redis.aclose()
