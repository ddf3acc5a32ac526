"""The Redis backplane: several server processes serve the same live rooms.

Every process that has clients in a room holds the live document (`link.py` describes the
keys). Process-wide, three loops run:

- the reader: one blocking XREAD over the streams of every room open here (plus a private
  wake-up stream, so that a newly opened room joins the read at once);
- the listener: pub/sub for awareness and for the control channel (`listener.py`);
- the lease loop: renews the save leases held here, tries to take the others (so a dead
  holder's rooms are taken over once its lease runs out), writes the holder's snapshots and
  re-announces presence.

The parts: `connection.py` (the client and whether Redis answers), `opening.py` (where a
room starts from), `link.py` (one open room's replica), `lease.py` (who saves a room),
`listener.py` and `presence.py` (pub/sub). Rooms are seen only through `rooms/replica.py`.

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
from collections.abc import Awaitable, Callable
from typing import Any

from ..rooms.replica import Claim, ReplicatedRoom
from .connection import ERRORS, MAX_BACKOFF, RedisConnection, safe_url
from .entries import ENTRY_MAX_BYTES
from .lease import LEASE_SECONDS, Change, LeaseTerms, SaveLease
from .link import RoomKeys, RoomLink
from .listener import CONTROL_CHANNEL, Listener
from .local import BackplaneUnavailable, ControlHandler
from .messages import AWARENESS_HELLO
from .opening import Opening

__all__ = ["STREAM_MAX_BYTES", "RedisBackplane", "safe_url"]

PRESENCE_SECONDS = 10.0  # presence is re-announced this often; silent for 3x: gone
OPEN_TIMEOUT = 15.0  # how long opening a room waits for Redis or for another process loading it
RESTART_SECONDS = 1.0  # pause before a loop that failed is started again
READ_BLOCK_MS = 1000
STALL_SECONDS = 2.0  # a read that returns this much later than it could have: we were stalled
STREAM_MAX_BYTES = 16 * 1024 * 1024  # per room stream, besides the entry count


class RedisBackplane:
    """This process's side of the Redis backplane: the rooms linked here and the loops."""

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
        self.conn = RedisConnection(url, log)
        self.redis = self.conn.redis
        self.log = log
        self.leases = LeaseTerms(self.conn, lease_seconds)
        self.stream_max_bytes = stream_max_bytes
        self.links: dict[str, RoomLink] = {}
        self.listener = Listener(self.conn, self.links)
        self._wake_key = f"collab:process:{self.conn.process}:wake"
        self._wake_id = "0-0"
        self._tasks: list[asyncio.Task] = []

    async def start(self, on_control: ControlHandler) -> None:
        self.listener.on_control = on_control
        try:
            await self.redis.ping()
            self.log.info(
                "jupyter_collab: Redis backplane at %s (process %s)", self.conn.safe_url, self.conn.process
            )
        except ERRORS as exc:
            self.conn.lost(exc)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._supervised("reader", self._read_loop)),
            loop.create_task(self._supervised("pub/sub", self.listener.run)),
            loop.create_task(self._supervised("lease", self._lease_loop)),
        ]

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

    async def _recover(self) -> None:
        """Redis answers again: republish every room's full state, ask for what we lack."""
        await self.redis.ping()
        self.conn.answered()
        for link in list(self.links.values()):
            await link.resync()
        self.log.info("jupyter_collab: Redis backplane is back; re-synced %d room(s)", len(self.links))

    # -- rooms -----------------------------------------------------------------------------

    async def claim(self, room_id: str) -> Claim:
        """Find where `room_id` starts (`opening.py`), waiting for Redis, or for another
        process loading it from disk, up to `OPEN_TIMEOUT`."""
        keys = RoomKeys.of(room_id)
        opening = Opening(self.conn, keys, SaveLease(self.leases, keys.lease), self._link)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_TIMEOUT
        while True:
            try:
                if await opening.find():
                    return opening
                pause = 0.05  # another process is loading it from disk: wait for its snapshot
            except ERRORS as exc:
                self.conn.lost(exc)
                if self.conn.refused:
                    raise BackplaneUnavailable(f"Redis refused this server ({room_id})") from exc
                pause = 0.5
            if loop.time() > deadline:
                self.log.warning("jupyter_collab: cannot open %s: Redis did not answer in time", room_id)
                raise BackplaneUnavailable(f"could not open {room_id} through Redis")
            await asyncio.sleep(pause)

    async def _link(self, opening: Opening, room: ReplicatedRoom) -> None:
        """The room `opening` claimed is loaded: link it, and read its stream from now on."""
        link = RoomLink(
            self.conn,
            opening.keys,
            opening.lease,
            room,
            stream_max_bytes=self.stream_max_bytes,
            closed=self._detach,
            last_id=opening.last_id,
            written=opening.written,
        )
        room.attach(link)
        await link.joined(opening.snapshot_state)
        self.links[room.room_id] = link
        await self.conn.guarded(self._attach(link))

    async def _attach(self, link: RoomLink) -> None:
        await self.redis.xadd(self._wake_key, {"w": "1"}, maxlen=8)
        await self.redis.expire(self._wake_key, 3600)
        await self.listener.subscribe(link.keys.channel)
        await link.presence.publish(AWARENESS_HELLO)

    async def _detach(self, link: RoomLink) -> None:
        """The room closed here: leave its final state and free its lease."""
        self.links.pop(link.room.room_id, None)
        if not self.conn.connected:
            return
        try:
            if link.lease.holds():
                await link.write_snapshot()
                await link.lease.release()
            await self.listener.unsubscribe(link.keys.channel)
        except ERRORS as exc:
            self.conn.lost(exc)

    async def publish_control(self, message: dict[str, Any]) -> None:
        try:
            await self.redis.publish(CONTROL_CHANNEL, json.dumps({**message, "from": self.conn.process}))
        except ERRORS as exc:
            self.conn.lost(exc)

    # -- loops -----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                if not self.conn.connected:
                    await self._recover()
                streams = {self._wake_key: self._wake_id}
                streams.update({link.keys.stream: link.last_id for link in self.links.values()})
                started = time.monotonic()
                replies = await self.redis.xread(streams, count=1000, block=READ_BLOCK_MS)
                backoff = 0.1
            except ERRORS as exc:
                self.conn.lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            # Paused (SIGSTOP, a blocked event loop) or far behind: entries may have been
            # trimmed before we read them; look at each stream's trimmed ids.
            stalled = time.monotonic() - started > READ_BLOCK_MS / 1000 + STALL_SECONDS
            for link in self.links.values() if stalled else ():
                self.conn.background(self.conn.guarded(link.check_gap(streams[link.keys.stream])))
            by_stream = {link.keys.stream: link for link in self.links.values()}
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
                    self.conn.background(self.conn.guarded(link.check_gap(since)))

    async def _lease_loop(self) -> None:
        """Renew held leases, take free ones, write holders' snapshots, re-announce presence."""
        tick = self.leases.ms / 3000
        last_presence = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            if not self.conn.connected:
                continue
            presence = time.monotonic() - last_presence >= PRESENCE_SECONDS
            if presence:
                last_presence = time.monotonic()
            try:
                await self._lease_tick(presence)
            except ERRORS as exc:
                self.conn.lost(exc)
            except Exception:
                self.log.exception("jupyter_collab: lease loop failed")

    async def _lease_tick(self, presence: bool) -> None:
        links = list(self.links.values())
        if not links:
            return
        started = time.monotonic()
        pipe = self.redis.pipeline(transaction=False)
        for link in links:
            await link.lease.queue_claim(pipe)
            pipe.hexists(link.keys.snapshot, "state")
        results = await pipe.execute()
        upkeep = self.redis.pipeline(transaction=False)  # the periodic, fire-and-forget part
        for link, granted, has_snapshot in zip(links, results[::2], results[1::2], strict=True):
            change = link.lease.settle(granted, started)
            if change is Change.TAKEN:
                self.log.info("jupyter_collab: this process now saves %s", link.room.room_id)
                link.room.take_over()
            elif change is Change.LOST:
                self.log.info("jupyter_collab: another process now saves %s", link.room.room_id)
            if link.lease.holds():
                # A snapshot gone (deleted, or refused as malformed by a process opening the
                # room) is written again, base included, so that the room can be opened.
                link.base_dirty = link.base_dirty or not has_snapshot
                if link.state_dirty or link.base_dirty:
                    await link.write_snapshot()
                link.trim()
            if presence:
                link.room.expire_remote_awareness(time.monotonic() - 3 * PRESENCE_SECONDS)
                if link.lease.holds():
                    link.refresh_ttl(upkeep)
                link.presence.republish(upkeep)
        if len(upkeep):
            await upkeep.execute()

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
