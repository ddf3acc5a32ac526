"""The Redis backplane: several server processes serve the same live rooms.

Every process that has clients in a room holds the live document (`link.py` describes the
keys). Process-wide, three loops run:

- the reader: one blocking XREAD over the streams of every room open here (plus a private
  wake-up stream, so that a newly opened room joins the read at once);
- the listener: pub/sub for awareness and for the control channel (`listener.py`);
- the lease loop: renews the save leases held here, tries to take the others (so a dead
  holder's rooms are taken over once its lease runs out), writes the holder's snapshots and
  re-announces presence.

When Redis is unreachable, rooms keep serving their local clients; the reader retries with
backoff and, once Redis answers again (possibly empty after a restart), every room
republishes its full state and asks for what it lacks, so nothing is lost either way.

Redis is trusted with the documents but not with the form of what it returns: every
message read from it is checked, a malformed one is skipped, and each loop runs under a
supervisor that logs a failure with its traceback and restarts the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, RedisError

from .complaints import Complaints
from .entries import ENTRY_MAX_BYTES
from .link import RoomLink
from .listener import CONTROL_CHANNEL, Listener
from .local import BackplaneUnavailable, ControlHandler, LocalBackplane
from .messages import AWARENESS_HELLO

if TYPE_CHECKING:
    from ..rooms.document import DocumentRoom

LEASE_SECONDS = 3.0  # a dead holder's rooms are saved again at most this long after it died
PRESENCE_SECONDS = 10.0  # presence is re-announced this often; silent for 3x: gone
OPEN_TIMEOUT = 15.0  # how long opening a room waits for Redis or for another process loading it
MAX_BACKOFF = 2.0
RESTART_SECONDS = 1.0  # pause before a loop that failed is started again
# A Redis up for less than this may have restarted empty, and the processes holding rooms
# may not have republished them yet: a room without a snapshot is not loaded from its file
# until then (it would start a history unrelated to theirs).
RECOVERY_GRACE_SECONDS = 2 * MAX_BACKOFF + 1.0
READ_BLOCK_MS = 1000
STALL_SECONDS = 2.0  # a read that returns this much later than it could have: we were stalled
STREAM_MAX_BYTES = 16 * 1024 * 1024  # per room stream, besides the entry count
ERRORS = (RedisError, OSError)
# Redis answers, but refuses these credentials (or this command, under an ACL): waiting
# for it will not help, so opening a room fails at once and the log says why.
REFUSED = (AuthenticationError, AuthorizationError, NoPermissionError)

# Compare-and-renew / compare-and-delete: only the holder may extend or free its lease.
IF_HOLDER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call"
RENEW = IF_HOLDER + "('pexpire', KEYS[1], ARGV[2]) end return 0"
RELEASE = IF_HOLDER + "('del', KEYS[1]) end return 0"


def safe_url(url: str) -> str:
    """`url` as it may be logged: without a password (in the user part or the query)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, user + parts.netloc.rpartition("@")[2], parts.path, query, ""))


class RedisBackplane(LocalBackplane):
    """This process's side of the Redis backplane: the rooms linked here and the loops."""

    errors = ERRORS
    max_backoff = MAX_BACKOFF

    def __init__(
        self,
        url: str,
        *,
        log: logging.Logger,
        lease_seconds: float = LEASE_SECONDS,
        stream_max_bytes: int = STREAM_MAX_BYTES,
    ) -> None:
        if stream_max_bytes < ENTRY_MAX_BYTES:
            raise ValueError(f"backplane stream_max_bytes must be at least {ENTRY_MAX_BYTES} (one entry)")
        self.url = url
        self.log = log
        self.redis = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.process = uuid.uuid4().hex
        self.lease_ms = int(lease_seconds * 1000)
        self.lease_valid = lease_seconds * 0.8  # our own view ends before Redis's
        self.stream_max_bytes = stream_max_bytes
        self.complaints = Complaints(log)
        self.links: dict[str, RoomLink] = {}
        self.connected = True  # until a command fails
        self.refused = False  # the last failure was Redis refusing our credentials
        self.on_control: ControlHandler | None = None
        self.listener = Listener(self)
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self._wake_key = f"collab:process:{self.process}:wake"
        self._wake_id = "0-0"
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()

    async def start(self, on_control: ControlHandler) -> None:
        self.on_control = on_control
        try:
            await self.redis.ping()
            self.log.info("jupyter_collab: Redis backplane at %s (process %s)", self._safe_url, self.process)
        except ERRORS as exc:
            self.lost(exc)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervised("reader", self._read_loop)),
            loop.create_task(self._supervised("pub/sub", self.listener.run)),
            loop.create_task(self._supervised("lease", self._lease_loop)),
        ]

    @property
    def _safe_url(self) -> str:
        return safe_url(self.url)

    async def _supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a loop for as long as the backplane runs. Each loop handles Redis errors
        and bad messages itself, so what reaches here is a bug: rather than leave this
        process without presence, control or sync until a restart, log it and start over."""
        while True:
            try:
                await run()
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # also a panic in a native extension (pycrdt): no Exception
                self.log.exception("jupyter_collab: Redis backplane %s loop failed; restarting it", name)
            await asyncio.sleep(RESTART_SECONDS)

    # -- connection state ------------------------------------------------------------------

    def lost(self, exc: BaseException) -> None:
        """A command failed: rooms go on locally and resync when Redis answers again. Redis
        refusing our credentials (or, under an ACL, a command) gets an error line of its
        own: unlike an outage, it needs someone to fix the configuration."""
        refused = isinstance(exc, REFUSED)
        if refused and not self.refused:
            self.log.error(
                "jupyter_collab: Redis at %s refused the backplane (%s); check the user, password "
                "and ACL in backplane_url: rooms cannot be opened until Redis accepts them",
                self._safe_url,
                exc,
            )
        elif self.connected and not refused:
            self.log.warning(
                "jupyter_collab: lost the Redis backplane (%s); rooms keep serving their local "
                "clients, reconnecting",
                exc,
            )
        self.refused = refused
        self.connected = False

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
        self.refused = False
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
                if self.refused:
                    raise BackplaneUnavailable(f"Redis refused this server ({room.room_id})") from exc
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
        await self.listener.subscribe(link.channel)
        await link.presence.publish(AWARENESS_HELLO)

    async def detach(self, link: RoomLink) -> None:
        """The room closed here: leave its final state and free its lease."""
        self.links.pop(link.room.room_id, None)
        if not self.connected:
            return
        try:
            if link.holds_lease():
                await link.write_snapshot()
                await link.release()
            await self.listener.unsubscribe(link.channel)
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
                self.background(self.guarded(link.check_gap(streams[link.stream])))
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
                    link.receive(entries)  # skips bad entries itself: this is for bugs
                except Exception:
                    self.log.exception("jupyter_collab: reading the stream of %s failed", link.room.room_id)
                if len(entries) == 1000 and not stalled:
                    self.background(self.guarded(link.check_gap(since)))

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
            pipe.hexists(link.snapshot_key, "state")
        results = await pipe.execute()
        upkeep = self.redis.pipeline(transaction=False)  # the periodic, fire-and-forget part
        for link, result, has_snapshot in zip(links, results[::2], results[1::2], strict=True):
            held = link.holds_lease()
            if result:
                link.lease_until = started + self.lease_valid
                if not held:
                    self.log.info("jupyter_collab: this process now saves %s", link.room.room_id)
                    link.room.take_over()
            elif held:
                link.lease_until = 0.0
                self.log.info("jupyter_collab: another process now saves %s", link.room.room_id)
            if link.holds_lease():
                # A snapshot gone (deleted, or refused as malformed by a process opening the
                # room) is written again, base included, so that the room can be opened.
                link.base_dirty = link.base_dirty or not has_snapshot
                if link.state_dirty or link.base_dirty:
                    await link.write_snapshot()
                link.trim()
            if presence:
                link.room.expire_remote_awareness(time.monotonic() - 3 * PRESENCE_SECONDS)
                if link.holds_lease():
                    link.refresh_ttl(upkeep)
                link.presence.republish(upkeep)
        if len(upkeep):
            await upkeep.execute()

    def background(self, coro: Awaitable[Any]) -> None:
        """Run `coro` without waiting for it (kept referenced until it is done)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.listener.close()
        try:
            await self.redis.delete(self._wake_key)
        except ERRORS:
            pass
        await self.redis.aclose()
