"""One room's link to the same room on other processes, through Redis.

Per room, Redis holds:

- `collab:{room}:updates`, a stream of entries (`entries.py` has their form): Yjs updates,
  state-vector requests ("send me what I lack") and the content hashes the lease holder
  writes. Every process reads it from the last id it applied; Yjs updates are idempotent,
  so reading one twice is harmless. It is trimmed to about `STREAM_MAXLEN` entries and
  `stream_max_bytes` bytes (the retention window for catch-up); a process that lags behind
  the trim point sees a gap in some process's sequence numbers (or, when it opens the
  room, in the stream's trimmed ids) and repairs itself with a state-vector request, which
  every other process answers with what it lacks.
- `collab:{room}:snapshot`, a hash `{state, id, base, base_hash, written}` written by the
  lease holder: the full document as of stream id `id`, the content last written to (or
  read from) disk, and the content hash of the last write announced (set together with its
  stream entry). A process opening the room starts from it and reads the stream from `id`.
- `collab:{room}:lease`, the save lease: the id of the one process that writes the file
  (SET NX PX, renewed by compare-and-expire, so a dead holder's lease runs out).
- `collab:{room}:awareness`, a pub/sub channel for presence (`presence.py`).

Everything read back is checked first: a malformed entry or snapshot is reported (once in
a while: `complaints.py`) and skipped, and the updates around it are still applied.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import get_state, merge_updates

from ..protocol import EMPTY_UPDATE
from ..rooms.replica import ReplicatedRoom
from .budget import StreamBudget
from .complaints import Malformed
from .connection import RedisConnection
from .entries import (
    FULL,
    REQUEST,
    UPDATE,
    WRITTEN,
    Entry,
    MissingParts,
    Reassembly,
    entry_size,
    merge_valid,
    parse_entry,
    stream_id,
    update_entries,
)
from .lease import SaveLease
from .messages import AWARENESS_HELLO, AWARENESS_STATES
from .presence import RoomPresence

STREAM_MAXLEN = 2000  # entries kept per room stream (approximately): the catch-up window
TRIM_MIN_AGE_SECONDS = 5.0  # entries this recent are kept whatever their size (budget.py)
KEY_TTL_SECONDS = 86_400  # a room's keys outlive its last process by a day
MAX_PROCESSES = 256  # sequence numbers remembered per room (one per process seen)


@dataclass(frozen=True)
class RoomKeys:
    """A room's keys in Redis (one hash slot: the room id is their hash tag)."""

    room_id: str
    stream: str
    snapshot: str
    lease: str
    channel: str

    @classmethod
    def of(cls, room_id: str) -> RoomKeys:
        prefix = f"collab:{{{room_id}}}"
        keys = (f"{prefix}:{name}" for name in ("updates", "snapshot", "lease", "awareness"))
        return cls(room_id, *keys)


class RoomLink:
    """The room's stream position and outgoing queue on this process: its `Replica`."""

    def __init__(
        self,
        conn: RedisConnection,
        keys: RoomKeys,
        lease: SaveLease,
        room: ReplicatedRoom,
        *,
        stream_max_bytes: int,
        closed: Callable[[RoomLink], Awaitable[None]],
        last_id: str = "0-0",
        written: str | None = None,
    ) -> None:
        self.conn = conn
        self.redis = conn.redis
        self.process = conn.process
        self.complaints = conn.complaints
        self.keys = keys
        self.lease = lease
        self.room = room
        self.presence = RoomPresence(conn, room, keys.channel, self.send)
        self.budget = StreamBudget(stream_max_bytes, STREAM_MAXLEN, TRIM_MIN_AGE_SECONDS)
        self.last_id = last_id  # the last stream entry applied here
        self.state_dirty = False  # changed since the last snapshot (lease holder only)
        self.base_dirty = False
        self._closed = closed
        self._pending: list[bytes] = []
        self._parts = Reassembly()
        self._written: deque[str] = deque([written] if written else [], maxlen=16)  # hashes announced
        self._sends: set[asyncio.Task] = set()
        self._tail: asyncio.Future | None = None  # the last send: sends go out in order
        self._sequence = 0  # entries this process added to the stream
        self._seen: dict[str, int] = {}  # the last sequence number read from each process

    async def joined(self, shared_state: bytes | None) -> None:
        """The room was just loaded here. From the shared snapshot (`shared_state`): what
        loading added (the local history, a merged file) is news to the others, and entries
        trimmed since the snapshot are repaired. From the file (or the streamed states):
        this process holds the lease, and writes the first snapshot (else when Redis is back)."""
        if shared_state is None:
            self.base_dirty = True
            await self.conn.guarded(self.write_snapshot())
            return
        added = self.room.update_since(get_state(shared_state))
        if added != EMPTY_UPDATE:
            await self.conn.guarded(self.publish_update(added))
        await self.conn.guarded(self.check_gap(self.last_id))

    async def check_gap(self, since: str) -> None:
        """Entries after `since` were trimmed away: repair with a full state exchange."""
        stream = self.keys.stream
        info = await self.redis.xinfo_stream(stream) if await self.redis.exists(stream) else {}
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
        if deleted and stream_id(deleted) > stream_id(since):
            self.conn.log.info(
                "jupyter_collab: fell behind the stream of %s; repairing by state exchange", self.room.room_id
            )
            await self.request_sync()

    # -- the save lease (replica.WriteLease) -----------------------------------------------

    def writes_file(self) -> bool:
        return self.lease.holds()

    async def may_write(self) -> bool:
        return await self.lease.confirm()

    async def announce(self, digest: str) -> None:
        """The lease holder is about to write content with this hash (or has merged the
        file's): whoever finds it on disk takes it as its base instead of merging it. Sent
        before the write, so that no process can see the file before the announcement (a
        holder killed in between leaves an announced hash and the old file: harmless)."""
        self.base_dirty = True
        self._written.append(digest)
        if self.conn.connected:
            await self.send(self._xadd([{"t": WRITTEN, "c": digest}], snapshot={"written": digest}))

    def was_written(self, digest: str) -> bool:
        """Did a lease holder announce content with this hash (see `announce`)?"""
        return digest in self._written

    # -- outgoing --------------------------------------------------------------------------

    def publish(self, update: bytes) -> None:
        """A local change, published at the room's next flush (coalesced like broadcasts)."""
        self._pending.append(update)
        self.state_dirty = True

    def flush(self, awareness: bytes | None) -> None:
        """Publish what changed locally since the last flush: one XADD (or one transaction
        of parts, for a change over `ENTRY_MAX_BYTES`), one PUBLISH. While Redis is away
        nothing is queued: the full state is republished when it is back."""
        if self._pending:
            updates, self._pending = self._pending, []
            if self.conn.connected:
                merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
                self.send(self.publish_update(merged))
        if awareness is not None and self.conn.connected:
            self.send(self.presence.publish(AWARENESS_STATES, awareness))

    def send(self, command: Awaitable[Any]) -> asyncio.Future:
        """Send in the background, after the previous send (so sequence numbers arrive in
        order); a failure marks Redis as lost, and the resync that follows covers it."""
        task = asyncio.ensure_future(self._after(self._tail, command))
        self._tail = task
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return task

    async def _after(self, previous: asyncio.Future | None, command: Awaitable[Any]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self.conn.guarded(command)

    async def publish_update(self, update: bytes, *, full: bool = False) -> None:
        await self._xadd(update_entries(FULL if full else UPDATE, update))

    async def request_sync(self) -> None:
        await self._xadd([{"t": REQUEST, "v": self.room.state_vector()}])

    async def _xadd(self, entries: list[dict[str, Any]], snapshot: dict[str, Any] | None = None) -> None:
        """Add entries; several (the parts of an update), or one with `snapshot` fields to
        set, go in one transaction (a process reading the stream sees all or none)."""
        fields = []
        for entry in entries:
            self._sequence += 1
            fields.append({"o": self.process, "n": self._sequence, **entry})
        if len(fields) == 1 and snapshot is None:
            await self.redis.xadd(self.keys.stream, fields[0], maxlen=STREAM_MAXLEN, approximate=True)
            return
        pipe = self.redis.pipeline(transaction=True)
        for entry in fields:
            pipe.xadd(self.keys.stream, entry, maxlen=STREAM_MAXLEN, approximate=True)
        if snapshot is not None:
            pipe.hset(self.keys.snapshot, mapping=snapshot)
        await pipe.execute()

    def trim(self) -> None:
        """Lease holder: drop the stream's oldest entries while it is over its byte bound."""
        keep = self.budget.trim()
        if keep is not None:
            self.send(self.redis.xtrim(self.keys.stream, maxlen=keep, approximate=False))

    async def write_snapshot(self, *, only_if_missing: bool = False) -> None:
        """Store the full document as of `last_id` (and the disk base when it changed)."""
        if only_if_missing and await self.redis.hexists(self.keys.snapshot, "state"):
            return
        fields: dict[str, Any] = {"state": self.room.update_since(), "id": self.last_id}
        if self.base_dirty or only_if_missing:
            fields["base"], fields["base_hash"] = self.room.base_snapshot()
        self.state_dirty = self.base_dirty = False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.snapshot, mapping=fields)
        self.refresh_ttl(pipe)
        await pipe.execute()

    def refresh_ttl(self, pipe: Any) -> None:
        """Keep an open room's keys alive (the holder does, however idle the room is)."""
        pipe.expire(self.keys.snapshot, KEY_TTL_SECONDS)
        pipe.expire(self.keys.stream, KEY_TTL_SECONDS)

    async def resync(self) -> None:
        """Redis is back (maybe empty): republish everything we hold, and ask for the rest."""
        self._pending.clear()
        await self.publish_update(self.room.update_since(), full=True)
        await self.request_sync()
        await self.write_snapshot(only_if_missing=True)
        await self.presence.publish(AWARENESS_HELLO)
        states = self.room.local_awareness()
        if states is not None:
            await self.presence.publish(AWARENESS_STATES, states)

    # -- incoming --------------------------------------------------------------------------

    def receive(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Stream entries, in order: apply the others' updates as one, answer their requests.
        A malformed entry is reported and skipped; the updates around it still apply."""
        updates: list[bytes] = []
        missing: list[bytes] = []  # what the others asked for: answered once per batch
        gap = announced = False
        for entry_id, fields in entries:
            self.last_id = entry_id.decode()
            self.budget.note(entry_size(fields))
            try:
                entry = parse_entry(fields)
                if entry.origin == self.process:
                    continue
                gap = self._gap(entry) or gap
                whole = self._parts.add(entry)
            except Malformed as exc:
                self._skipped(exc)
                continue
            except MissingParts:
                gap = True
                continue
            if whole is not None:
                announced = self._take(whole, updates, missing) or announced
        if updates:
            self.state_dirty = True
            self._apply(updates)
        if announced:  # once per batch, however many announcements came
            self.room.disk_announced()
        if missing:
            self.send(self.publish_update(merge_updates(*missing) if len(missing) > 1 else missing[0]))
        if gap:
            self.conn.log.info(
                "jupyter_collab: missed entries of the stream of %s; repairing by state exchange",
                self.room.room_id,
            )
            self.send(self.request_sync())
        if self.budget.over() and self.lease.holds():
            self.trim()

    def _gap(self, entry: Entry) -> bool:
        """Does `entry` skip some of its process's sequence numbers (entries trimmed away)?"""
        previous = self._seen.pop(entry.origin, None)
        self._seen[entry.origin] = max(entry.sequence, previous or 0)
        if len(self._seen) > MAX_PROCESSES:  # more processes than can be real: forget one
            del self._seen[next(iter(self._seen))]
        return previous is not None and entry.sequence > previous + 1

    def _take(self, entry: Entry, updates: list[bytes], missing: list[bytes]) -> bool:
        """Collect an update or answer a request; True: the holder announced a write."""
        if entry.kind in (UPDATE, FULL):
            updates.append(entry.payload)
        elif entry.kind == REQUEST:
            try:
                lacking = self.room.update_since(entry.payload)
            except ValueError as exc:
                self._skipped(Malformed(f"a state vector that does not decode ({exc})"))
                return False
            if lacking != EMPTY_UPDATE:
                missing.append(lacking)
        elif entry.kind == WRITTEN:
            self._written.append(entry.payload.decode())
            return True
        return False

    def _apply(self, updates: list[bytes]) -> None:
        """Apply the batch as one update, leaving out any that does not decode."""
        merged = updates[0] if len(updates) == 1 else merge_valid(updates, self._skipped)
        try:
            if merged is not None:
                self.room.apply_remote(merged)
        except ValueError as exc:
            self._skipped(Malformed(f"an update that does not apply ({exc})"))

    def _skipped(self, exc: Exception) -> None:
        self.complaints.skipped("stream entry", self.room.room_id, exc)

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """The room closes here: finish sending, leave a final snapshot, free the lease."""
        self.presence.close()
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        await self._closed(self)
