"""A room's fan-out with fake connections (no sockets, no server): who receives what, when,
and what happens to a client that is revoked, too slow, or gone."""

from __future__ import annotations

import asyncio
import json

from jupyter_collab.permissions import Access, Role
from jupyter_collab.protocol import (
    EMPTY_STATE_VECTOR,
    EMPTY_UPDATE,
    CloseCode,
    SaveRequest,
    SyncMessage,
    SyncType,
    decode_server_notice,
    sync_frame,
)
from jupyter_collab.rooms.room import Room

from .fakes import LOG, Events, FakeConnection, presence


def make_room(window: float = 0.0) -> Room:
    return Room("awareness:test", broadcast_window=window, events=Events(), log=LOG)


def joined(room: Room, *names: str, **options) -> list[FakeConnection]:
    conns = [FakeConnection(room, name, **options) for name in names]
    for conn in conns:
        room.join(conn)
    return conns


async def turn() -> None:
    """Let the event loop run what the room scheduled with call_soon."""
    await asyncio.sleep(0)


async def test_join_tells_rights_then_asks_for_the_document_then_shows_presence():
    room = make_room()
    (alice,) = joined(room, "alice")
    room.handle(alice, presence(1, {"cursor": 3}))
    room.flush()
    bob = FakeConnection(room, "bob", Role.VIEWER)
    room.join(bob)
    assert bob.notices == [Access(Role.VIEWER).notice()]
    assert bob.sync_messages() == [SyncMessage(SyncType.STEP1, EMPTY_STATE_VECTOR)]
    assert bob.states() == {1: {"cursor": 3, "user": alice.identity}}
    assert room.events.seen == [("join", "alice"), ("join", "bob")]


async def test_presence_of_one_reaches_every_other_connection_stamped_with_its_identity():
    room = make_room()
    alice, bob, carol = joined(room, "alice", "bob", "carol")
    room.handle(alice, presence(7, {"cursor": 1, "user": {"name": "Mallory"}}))
    await turn()
    expected = {"cursor": 1, "user": alice.identity}
    assert bob.states() == {7: expected}
    assert carol.states() == {7: expected}


async def test_broadcast_reaches_every_connection_once():
    room = make_room()
    conns = joined(room, "alice", "bob", "carol")
    before = [len(conn.frames) for conn in conns]
    room.broadcast(b"frame-1")
    room.broadcast(b"frame-2")
    await turn()
    await turn()
    assert [conn.frames[n:] for conn, n in zip(conns, before, strict=True)] == [[b"frame-1", b"frame-2"]] * 3


async def test_a_quiet_room_sends_at_once_and_a_busy_one_once_per_window():
    room = make_room(window=0.2)  # long enough for a loaded machine
    alice, bob = joined(room, "alice", "bob")
    room.handle(alice, presence(1, {"n": 1}))
    await turn()
    assert len(bob.frames) == 2  # step 1, then the change on the next loop turn
    room.handle(alice, presence(1, {"n": 2}, clock=2))
    room.handle(alice, presence(1, {"n": 3}, clock=3))
    await turn()
    assert len(bob.frames) == 2  # within the window: held back
    await asyncio.sleep(0.3)
    assert len(bob.frames) == 3  # both changes in one frame, the latest state only
    assert [json.loads(e.state_json)["n"] for e in bob.awareness_entries()] == [1, 3]


async def test_an_awareness_only_room_answers_the_handshake_and_relays_no_document_update():
    room = make_room()
    alice, bob = joined(room, "alice", "bob")
    room.handle(alice, SyncMessage(SyncType.STEP1, EMPTY_STATE_VECTOR))
    room.handle(alice, SyncMessage(SyncType.UPDATE, b"\x01\x02"))
    await turn()
    assert alice.sync_messages()[1:] == [SyncMessage(SyncType.STEP2, EMPTY_UPDATE)]
    assert bob.sync_messages()[1:] == []


async def test_a_save_request_in_a_room_without_a_document_is_skipped():
    room = make_room()
    (alice,) = joined(room, "alice")
    room.handle(alice, SaveRequest(42))
    for _ in range(3):
        await turn()
    replies = [decode_server_notice(frame) for frame in alice.frames]
    assert {"type": "save", "responseTo": 42, "status": "skipped"} in replies


async def test_who_leaves_is_removed_from_everyones_presence_and_sent_nothing_more():
    room = make_room()
    alice, bob = joined(room, "alice", "bob")
    room.handle(alice, presence(1, {"cursor": 0}))
    room.handle(bob, presence(2, {"cursor": 5}))
    await turn()
    assert set(alice.states()) == {1, 2}
    room.leave(bob)
    room.leave(bob)  # a second close changes nothing
    received = len(bob.frames)
    room.broadcast(sync_frame(SyncType.UPDATE, EMPTY_UPDATE))
    await turn()
    assert alice.states() == {1: {"cursor": 0, "user": alice.identity}}
    assert len(bob.frames) == received
    assert room.connections_of("bob") == 0 and room.connections_of("alice") == 1
    assert room.events.seen.count(("leave", "bob")) == 1


async def test_a_client_too_slow_to_read_is_closed_and_the_others_still_get_everything():
    room = make_room()
    alice, carol = joined(room, "alice", "carol")
    (slow,) = joined(room, "slow", capacity=3)
    room.handle(alice, presence(1, {"a": 1}))
    room.handle(slow, presence(2, {"s": 1}))
    await turn()  # frame 2 of 3 for everyone
    updates = [sync_frame(SyncType.UPDATE, f"update-{index}".encode()) for index in range(2)]
    for update in updates:
        room.broadcast(update)
    room.flush()  # the slow client overflows on the second and leaves in the middle of the fan-out
    assert slow.closed == (CloseCode.TRY_AGAIN_LATER, "too slow: reconnect to resync")
    assert slow not in room.connections
    assert alice.frames[-2:] == carol.frames[-2:] == updates
    await turn()
    assert set(carol.states()) == {1}  # the slow client's presence is gone for the others


async def test_access_revoked_while_connected_closes_with_4403():
    room = make_room()
    alice, bob = joined(room, "alice", "bob")
    room.update_access(bob, Access(Role.NONE), bob.identity)
    assert bob.closed == (CloseCode.FORBIDDEN, "access revoked")
    assert ("revoked", "bob") in room.events.seen
    assert room.connections == {alice}


async def test_a_role_change_restamps_presence_and_tells_the_client():
    room = make_room()
    alice, bob = joined(room, "alice", "bob")
    room.handle(bob, presence(2, {"cursor": 5}))
    await turn()
    viewer = {**bob.identity, "role": "viewer"}
    room.update_access(bob, Access(Role.VIEWER), viewer)
    await turn()
    assert alice.states()[2]["user"] == viewer
    assert bob.notices[-1] == Access(Role.VIEWER).notice()
    assert bob.closed is None


async def test_a_program_at_work_is_shown_for_a_while_then_hidden():
    room = make_room()
    (alice,) = joined(room, "alice")
    room.show_program({"username": "bot", "name": "Bot"}, {"action": "edit"}, seconds=0.2)
    await turn()
    (state,) = alice.states().values()
    assert state == {
        "user": {"username": "bot", "name": "Bot", "program": True},
        "activity": {"action": "edit"},
    }
    await asyncio.sleep(0.3)
    assert alice.states() == {}
