"""The seam between a document room and replication, offline (milliseconds): a real room
with a fake replica, and a real Redis room link with a fake connection."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_ydoc import YUnicode
from pycrdt import Doc

from jupyter_collab.backplane.complaints import Complaints
from jupyter_collab.backplane.entries import REQUEST, UPDATE, WRITTEN
from jupyter_collab.backplane.lease import Change, LeaseTerms, SaveLease
from jupyter_collab.backplane.link import RoomKeys, RoomLink
from jupyter_collab.backplane.local import LocalBackplane
from jupyter_collab.documents.kinds import RoomKey, content_hash
from jupyter_collab.persistence.files import FileContent, FileStat
from jupyter_collab.rooms.disk import SaveSettings
from jupyter_collab.rooms.document import DocumentRoom
from jupyter_collab.rooms.loading import load_document
from jupyter_collab.rooms.replica import UNREPLICATED, Start, Unreplicated

from .fakes import LOG, Events

KEY = RoomKey("text", "file", "file-1")
OTHER = "b" * 32  # another process's id


class UnchangingFile:
    path = "notes.txt"

    def __init__(self, text: str) -> None:
        self.text = text

    def stat(self) -> FileStat:
        return FileStat(1, len(self.text))

    async def read(self) -> FileContent:
        return FileContent(self.text, "disk-hash")


class FakeReplica(Unreplicated):
    """Records what the room hands to replication (and, like one process alone, writes)."""

    def __init__(self) -> None:
        self.published: list[bytes] = []
        self.flushed: list[bytes | None] = []
        self.closed = False

    def publish(self, update: bytes) -> None:
        self.published.append(update)

    def flush(self, awareness: bytes | None) -> None:
        self.flushed.append(awareness)

    async def close(self) -> None:
        self.closed = True


async def room_for(text: str) -> DocumentRoom:
    file = UnchangingFile(text)
    loaded = await load_document(KEY, file, None, Start(), LOG)
    return DocumentRoom(
        KEY, file, loaded, store=None, save=SaveSettings(), broadcast_window=0.0, events=Events(), log=LOG
    )


def edit_elsewhere(room: DocumentRoom, text: str) -> bytes:
    """The update another process sends after typing `text` at the start of its copy."""
    doc = Doc()
    doc.apply_update(room.update_since())
    YUnicode(doc)._ysource.insert(0, text)
    return doc.get_update(room.state_vector())


async def test_a_room_alone_stays_unreplicated():
    room = await room_for("hello")
    claim = await LocalBackplane().claim(room.room_id)
    assert claim.start == Start()
    await claim.attach(room)
    assert room.replica is UNREPLICATED and room.disk.lease is UNREPLICATED
    assert not room.awareness.track_local


async def test_local_changes_are_published_and_remote_ones_are_not():
    room = await room_for("hello")
    replica = FakeReplica()
    room.attach(replica)
    with room.document.ydoc.transaction():
        room.document.model._ysource.insert(5, "!")
    assert len(replica.published) == 1
    room.apply_remote(edit_elsewhere(room, "> "))
    assert room.document.content() == "> hello!"
    assert len(replica.published) == 1


async def test_local_presence_goes_to_the_replica_with_each_flush():
    room = await room_for("hello")
    replica = FakeReplica()
    room.attach(replica)
    room.awareness.set_server_state(7, {"user": {"username": "bot"}})
    room.flush()
    assert replica.flushed[-1] is not None and b"bot" in replica.flushed[-1]
    assert room.local_awareness() is not None
    room.flush()
    assert replica.flushed[-1] is None  # nothing new


async def test_the_replica_sees_the_base_and_is_closed_with_the_room():
    room = await room_for("hello")
    replica = FakeReplica()
    room.attach(replica)
    assert room.base_snapshot() == ('"hello"', "disk-hash")
    await room.stop()
    assert replica.closed


class FakeRedis:
    def __init__(self) -> None:
        self.added: list[dict[str, Any]] = []

    def register_script(self, script: str) -> Any:
        async def run(**kwargs: Any) -> int:
            return 1

        return run

    async def xadd(self, key: str, fields: dict[str, Any], **options: Any) -> None:
        self.added.append(fields)


class FakeRedisConnection:
    """What a room link needs of the Redis connection."""

    process = "a" * 32
    connected = True
    log = LOG

    def __init__(self) -> None:
        self.redis = FakeRedis()
        self.complaints = Complaints(LOG)

    async def guarded(self, command: Any) -> None:
        await command


def linked(room: DocumentRoom) -> tuple[RoomLink, FakeRedisConnection]:
    conn = FakeRedisConnection()
    keys = RoomKeys.of(room.room_id)
    lease = SaveLease(LeaseTerms(conn), keys.lease)
    link = RoomLink(conn, keys, lease, room, stream_max_bytes=2**24, closed=_nothing)
    room.attach(link)
    return link, conn


async def _nothing(link: RoomLink) -> None:
    pass


def entry(sequence: int, kind: bytes, **fields: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    body = {b"o": OTHER.encode(), b"n": str(sequence).encode(), b"t": kind}
    body.update({name.encode(): value for name, value in fields.items()})
    return f"1-{sequence}".encode(), body


async def test_a_link_applies_the_others_updates_and_answers_their_requests():
    room = await room_for("hello")
    link, conn = linked(room)
    update = edit_elsewhere(room, "> ")
    link.receive([entry(1, UPDATE, u=update), entry(2, REQUEST, v=Doc().get_state())])
    assert room.document.content() == "> hello"
    assert link.last_id == "1-2"
    room.flush()  # what was applied from the others is not published again
    await asyncio.gather(*link._sends)
    assert [fields["t"] for fields in conn.redis.added] == [UPDATE]  # the answer: what they lack


async def test_a_link_remembers_announced_writes_and_tells_the_room():
    room = await room_for("hello")
    link, _ = linked(room)
    digest = content_hash("written")
    announced: list[bool] = []
    room.disk_announced = lambda: announced.append(True)
    link.receive([entry(1, WRITTEN, c=digest.encode())])
    assert link.was_written(digest) and announced == [True]


def test_the_lease_says_when_its_holder_changes():
    lease = SaveLease(LeaseTerms(FakeRedisConnection()), "lease")
    now = 1e12  # far in the future of the monotonic clock: held
    assert lease.settle(1, now) is Change.TAKEN and lease.holds()
    assert lease.settle(1, now) is None
    assert lease.settle(None, now) is Change.LOST and not lease.holds()
    assert lease.settle(None, now) is None
