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
import time
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pycrdt import get_state, merge_updates

from ..persistence.store import StoredDocument
from ..protocol import EMPTY_UPDATE
from .budget import StreamBudget
from .complaints import Malformed
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
    whole_entries,
)
from .messages import AWARENESS_HELLO, AWARENESS_STATES
from .presence import RoomPresence
from .snapshot import Snapshot, parse_snapshot

if TYPE_CHECKING:
    from ..rooms.document import DocumentRoom
    from .redis import RedisBackplane

STREAM_MAXLEN = 2000  # entries kept per room stream (approximately): the catch-up window
TRIM_MIN_AGE_SECONDS = 5.0  # entries this recent are kept whatever their size (budget.py)
KEY_TTL_SECONDS = 86_400  # a room's keys outlive its last process by a day
OPEN_PATIENCE_SECONDS = 5.0  # how long opening waits for processes still republishing
MAX_PROCESSES = 256  # sequence numbers remembered per room (one per process seen)


class RoomLink:
    """The room's stream position, lease state and outgoing queue on this process."""

    def __init__(self, backplane: RedisBackplane, room: DocumentRoom) -> None:
        self.backplane = backplane
        self.redis = backplane.redis
        self.process = backplane.process
        self.complaints = backplane.complaints
        self.room = room
        prefix = f"collab:{{{room.room_id}}}"
        self.stream = f"{prefix}:updates"
        self.snapshot_key = f"{prefix}:snapshot"
        self.lease_key = f"{prefix}:lease"
        self.channel = f"{prefix}:awareness"
        self.presence = RoomPresence(self, self.channel)
        self.budget = StreamBudget(backplane.stream_max_bytes, STREAM_MAXLEN, TRIM_MIN_AGE_SECONDS)
        self.last_id = "0-0"  # the last stream entry applied here
        self.lease_until = 0.0  # monotonic time until which this process holds the lease
        self.state_dirty = False  # changed since the last snapshot (lease holder only)
        self.base_dirty = False
        self._pending: list[bytes] = []
        self._parts = Reassembly()
        self._written: deque[str] = deque(maxlen=16)  # content hashes holders announced
        self._sends: set[asyncio.Task] = set()
        self._tail: asyncio.Future | None = None  # the last send: sends go out in order
        self._sequence = 0  # entries this process added to the stream
        self._seen: dict[str, int] = {}  # the last sequence number read from each process
        self._created = time.monotonic()

    # -- opening ---------------------------------------------------------------------------

    async def load(self) -> bool:
        """Load the room: from the shared snapshot if there is one, else from disk when this
        process wins the lease. False: another process is loading it first (ask again).
        Redis errors before the room is loaded propagate (the caller asks again); after,
        they only mark Redis as lost (the room is loaded once, and resynced later)."""
        snapshot = await self._snapshot()
        if snapshot is not None:
            owner = await self.try_acquire()
            shared = StoredDocument(snapshot.state, snapshot.base, snapshot.base_hash)
            self.last_id = snapshot.id
            if snapshot.written:
                self._written.append(snapshot.written)
            await self._load_room(shared, owner)
            self.room.loaded_from = "the shared state"
            # What loading added (the local history, a merged file) is news to the others.
            added = self.room.document.ydoc.get_update(get_state(shared.state))
            if added != EMPTY_UPDATE:
                await self.backplane.guarded(self.publish_update(added))
            await self.backplane.guarded(self.check_gap(self.last_id))
            return True
        if await self.backplane.just_restarted():
            return False
        # No snapshot, but maybe a stream: Redis came back empty and the processes holding
        # the room republished their full state. That state is the room; the file is only
        # its base then (loading the file afresh would start an unrelated history). A
        # process that has added updates but not its full state yet is waited for (a
        # while); a stream without any full state is left over from processes that are
        # gone, and the file is loaded.
        raw = await self.redis.xrange(self.stream)
        entries = whole_entries(raw, self._skipped)
        full = {entry.origin for entry in entries if entry.kind == FULL}
        if full and not {entry.origin for entry in entries} <= full and self._patient():
            return False
        updates = [entry.payload for entry in entries if entry.kind in (UPDATE, FULL)]
        state = merge_valid(updates, self._skipped) if full else None
        if not await self.try_acquire():
            return False
        self.last_id = raw[-1][0].decode() if raw else "0-0"
        await self._load_room(StoredDocument(state, None, None) if state else None, True)
        self.base_dirty = True
        await self.backplane.guarded(self.write_snapshot())  # else written when Redis is back
        return True

    async def _snapshot(self) -> Snapshot | None:
        """The room's snapshot if it is usable. One that is not is removed: the lease
        holder writes a new one within a second (see the lease loop); until then, or if
        nobody holds the room, opening goes on as if there were none."""
        fields = await self.redis.hgetall(self.snapshot_key)
        try:
            return parse_snapshot(fields, self.complaints, self.room.room_id)
        except Malformed as exc:
            self.complaints.skipped("snapshot", self.room.room_id, exc)
            await self.redis.hdel(self.snapshot_key, "state")
            return None

    def _patient(self) -> bool:
        return time.monotonic() - self._created < OPEN_PATIENCE_SECONDS

    async def _load_room(self, shared: StoredDocument | None, owner: bool) -> None:
        try:
            await self.room.load(shared, owner=owner)
        except BaseException:
            if owner:
                await self.release()
            raise

    async def check_gap(self, since: str) -> None:
        """Entries after `since` were trimmed away: repair with a full state exchange."""
        info = await self.redis.xinfo_stream(self.stream) if await self.redis.exists(self.stream) else {}
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
        if deleted and stream_id(deleted) > stream_id(since):
            self.room.log.info(
                "jupyter_collab: fell behind the stream of %s; repairing by state exchange", self.room.room_id
            )
            await self.request_sync()

    # -- the save lease --------------------------------------------------------------------

    def holds_lease(self) -> bool:
        return time.monotonic() < self.lease_until

    async def try_acquire(self) -> bool:
        started = time.monotonic()
        if await self.redis.set(self.lease_key, self.process, nx=True, px=self.backplane.lease_ms):
            self.lease_until = started + self.backplane.lease_valid
            return True
        return False

    async def confirm_lease(self) -> bool:
        """Right before a write: do we still hold the lease (renewing it)? Without Redis,
        our own clock says (nobody can take it over while Redis is unreachable)."""
        if not self.holds_lease():
            return False
        started = time.monotonic()
        try:
            renewed = await self.backplane.renew(self.lease_key)
        except Exception:
            return self.holds_lease()
        self.lease_until = started + self.backplane.lease_valid if renewed else 0.0
        return bool(renewed)

    async def release(self) -> None:
        self.lease_until = 0.0
        await self.backplane.release(self.lease_key)

    # -- outgoing --------------------------------------------------------------------------

    def queue(self, update: bytes) -> None:
        """A local change, published at the room's next flush (coalesced like broadcasts)."""
        self._pending.append(update)
        self.state_dirty = True

    def flush(self, awareness: bytes | None) -> None:
        """Publish what changed locally since the last flush: one XADD (or one transaction
        of parts, for a change over `ENTRY_MAX_BYTES`), one PUBLISH. While Redis is away
        nothing is queued: the full state is republished when it is back."""
        if self._pending:
            updates, self._pending = self._pending, []
            if self.backplane.connected:
                merged = updates[0] if len(updates) == 1 else merge_updates(*updates)
                self.send(self.publish_update(merged))
        if awareness is not None and self.backplane.connected:
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
        await self.backplane.guarded(command)

    async def publish_update(self, update: bytes, *, full: bool = False) -> None:
        await self._xadd(update_entries(FULL if full else UPDATE, update))

    async def request_sync(self) -> None:
        await self._xadd([{"t": REQUEST, "v": self.room.document.ydoc.get_state()}])

    async def announce_content(self, digest: str) -> None:
        """The lease holder is about to write content with this hash (or has merged the
        file's): whoever finds it on disk takes it as its base instead of merging it. Sent
        before the write, so that no process can see the file before the announcement (a
        holder killed in between leaves an announced hash and the old file: harmless)."""
        self.base_dirty = True
        self._written.append(digest)
        if self.backplane.connected:
            await self.send(self._xadd([{"t": WRITTEN, "c": digest}], snapshot={"written": digest}))

    async def _xadd(self, entries: list[dict[str, Any]], snapshot: dict[str, Any] | None = None) -> None:
        """Add entries; several (the parts of an update), or one with `snapshot` fields to
        set, go in one transaction (a process reading the stream sees all or none)."""
        fields = []
        for entry in entries:
            self._sequence += 1
            fields.append({"o": self.process, "n": self._sequence, **entry})
        if len(fields) == 1 and snapshot is None:
            await self.redis.xadd(self.stream, fields[0], maxlen=STREAM_MAXLEN, approximate=True)
            return
        pipe = self.redis.pipeline(transaction=True)
        for entry in fields:
            pipe.xadd(self.stream, entry, maxlen=STREAM_MAXLEN, approximate=True)
        if snapshot is not None:
            pipe.hset(self.snapshot_key, mapping=snapshot)
        await pipe.execute()

    def trim(self) -> None:
        """Lease holder: drop the stream's oldest entries while it is over its byte bound."""
        keep = self.budget.trim()
        if keep is not None:
            self.send(self.redis.xtrim(self.stream, maxlen=keep, approximate=False))

    async def write_snapshot(self, *, only_if_missing: bool = False) -> None:
        """Store the full document as of `last_id` (and the disk base when it changed)."""
        if only_if_missing and await self.redis.hexists(self.snapshot_key, "state"):
            return
        room = self.room
        fields: dict[str, Any] = {"state": room.document.ydoc.get_update(), "id": self.last_id}
        if self.base_dirty or only_if_missing:
            fields["base"] = room.base_json()
            fields["base_hash"] = room.disk_hash or ""
        self.state_dirty = self.base_dirty = False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.snapshot_key, mapping=fields)
        self.refresh_ttl(pipe)
        await pipe.execute()

    def refresh_ttl(self, pipe: Any) -> None:
        """Keep an open room's keys alive (the holder does, however idle the room is)."""
        pipe.expire(self.snapshot_key, KEY_TTL_SECONDS)
        pipe.expire(self.stream, KEY_TTL_SECONDS)

    async def resync(self) -> None:
        """Redis is back (maybe empty): republish everything we hold, and ask for the rest."""
        self._pending.clear()
        await self.publish_update(self.room.document.ydoc.get_update(), full=True)
        await self.request_sync()
        await self.write_snapshot(only_if_missing=True)
        await self.presence.publish(AWARENESS_HELLO)
        states = self.room.awareness.local_snapshot()
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
            self.room.log.info(
                "jupyter_collab: missed entries of the stream of %s; repairing by state exchange",
                self.room.room_id,
            )
            self.send(self.request_sync())
        if self.budget.over() and self.holds_lease():
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
                lacking = self.room.document.ydoc.get_update(entry.payload)
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

    def was_written(self, digest: str) -> bool:
        """Did a lease holder announce content with this hash (see `announce_content`)?"""
        return digest in self._written

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """The room closes here: finish sending, leave a final snapshot, free the lease."""
        self.presence.close()
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        await self.backplane.detach(self)
