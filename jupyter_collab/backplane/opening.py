"""Opening a room through Redis: where it starts from, before the room manager loads it.

From the room's shared snapshot when there is one (taking the save lease if it is free).
Else, after Redis came back empty, from the full states the processes holding the room
republished to its stream: that state is the room, and the file only its base (loading the
file afresh would start an unrelated history). Else from the file, by the process that
wins the lease; the others wait for its snapshot. An `Opening` is the `Claim` the room
manager holds while it loads the room (`rooms/replica.py`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ..persistence.store import StoredDocument
from ..rooms.replica import ReplicatedRoom, Start
from .complaints import Malformed
from .connection import RedisConnection
from .entries import FULL, UPDATE, merge_valid, whole_entries
from .lease import SaveLease
from .link import RoomKeys
from .snapshot import Snapshot, parse_snapshot

OPEN_PATIENCE_SECONDS = 5.0  # how long opening waits for processes still republishing


class Opening:
    """A room about to be loaded on this process: where it starts, and the lease taken."""

    def __init__(
        self,
        conn: RedisConnection,
        keys: RoomKeys,
        lease: SaveLease,
        link: Callable[[Opening, ReplicatedRoom], Awaitable[None]],
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.lease = lease
        self.start = Start()
        self.last_id = "0-0"  # the stream entry the start state includes
        self.written: str | None = None  # the last write the snapshot announced
        self.snapshot_state: bytes | None = None  # the shared snapshot's state, if started from it
        self._link = link
        self._created = time.monotonic()

    async def find(self) -> bool:
        """Find where the room starts. False: another process is loading it first (ask
        again). Redis errors propagate (the caller asks again)."""
        snapshot = await self._snapshot()
        if snapshot is not None:
            owner = await self.lease.try_acquire()
            shared = StoredDocument(snapshot.state, snapshot.base, snapshot.base_hash)
            self.start = Start(shared, owner, source="the shared state")
            self.last_id = snapshot.id
            self.written = snapshot.written
            self.snapshot_state = snapshot.state
            return True
        if await self.conn.just_restarted():
            return False
        # No snapshot, but maybe a stream: Redis came back empty and the processes holding
        # the room republished their full state. A process that has added updates but not
        # its full state yet is waited for (a while); a stream without any full state is
        # left over from processes that are gone, and the file is loaded.
        raw = await self.conn.redis.xrange(self.keys.stream)
        entries = whole_entries(raw, self._skipped)
        full = {entry.origin for entry in entries if entry.kind == FULL}
        if full and not {entry.origin for entry in entries} <= full and self._patient():
            return False
        updates = [entry.payload for entry in entries if entry.kind in (UPDATE, FULL)]
        state = merge_valid(updates, self._skipped) if full else None
        if not await self.lease.try_acquire():
            return False
        self.last_id = raw[-1][0].decode() if raw else "0-0"
        self.start = Start(StoredDocument(state, None, None) if state else None, owner=True)
        return True

    async def _snapshot(self) -> Snapshot | None:
        """The room's snapshot if it is usable. One that is not is removed: the lease
        holder writes a new one within a second (see the lease loop); until then, or if
        nobody holds the room, opening goes on as if there were none."""
        fields = await self.conn.redis.hgetall(self.keys.snapshot)
        try:
            return parse_snapshot(fields, self.conn.complaints, self.keys.room_id)
        except Malformed as exc:
            self.conn.complaints.skipped("snapshot", self.keys.room_id, exc)
            await self.conn.redis.hdel(self.keys.snapshot, "state")
            return None

    def _patient(self) -> bool:
        return time.monotonic() - self._created < OPEN_PATIENCE_SECONDS

    def _skipped(self, exc: Exception) -> None:
        self.conn.complaints.skipped("stream entry", self.keys.room_id, exc)

    # -- the Claim the room manager holds ---------------------------------------------------

    async def attach(self, room: ReplicatedRoom) -> None:
        await self._link(self, room)

    async def abandon(self) -> None:
        if self.start.owner:
            await self.conn.guarded(self.lease.release())
