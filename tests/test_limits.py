"""The server's bounds on what one user may make it hold, send or do, with real sockets
against a real server: awareness per connection (client ids, state size, ids a browser can
represent), connections per user across rooms, which awareness-only rooms exist, sync
requests, the send buffer, the permission re-check, document names in the presence room
(each person sees only those they may open), self-declared program keys, and the demo
policy's default. Each limit is tried just under and just over.

One server serves most tests (roles from `RulesPolicy`: alice a teacher and owner
everywhere, `solutions/*` closed to everyone else, bob an editor, carol a viewer, dave an
editor used only by the connection-count test).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jupyter_collab.client import open_session
from jupyter_collab.demo import DemoPolicy
from jupyter_collab.handlers.room import SendBuffer
from jupyter_collab.protocol import (
    SyncType,
    sync_frame,
)

from .helpers import RawPeer, append_text, eventually, http, join, write_notebook
from .server import ServerProcess

GLOBAL = "JupyterLab:globalAwareness"
LIMITS = {
    "max_awareness_clients_per_connection": 2,
    "max_awareness_state_bytes": 4096,
    "max_connections_per_user": 3,
    "max_total_connections_per_user": 4,
    "max_sync_requests_per_minute": 3,
    "max_recheck_requests_per_minute": 2,
    "permission_recheck_interval": 0,
}
RULES = [
    {"groups": ["teachers"], "role": "owner"},
    {"paths": ["solutions/*"], "role": "none"},
    {"users": ["carol"], "role": "viewer"},
    {"users": ["bob", "dave"], "role": "editor"},
]


def configured(base: Path, config: dict[str, Any]) -> ServerProcess:
    extra = "\n".join(
        [
            'c.ServerApp.identity_provider_class = "tests.identity.TokenPerUser"',
            'c.IdentityProvider.token = "unused-admin-token"',
            'c.CollabApp.permission_policy_class = "jupyter_collab.permissions.RulesPolicy"',
            'c.RulesPolicy.groups = {"teachers": ["alice"]}',
            f"c.RulesPolicy.rules = {RULES!r}",
        ]
    )
    return ServerProcess(base, config=config, extra_config=extra).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = configured(tmp_path_factory.mktemp("limits"), LIMITS)
    yield proc
    proc.stop()


async def document_room(server: ServerProcess, path: str, who: str = "alice") -> str:
    session = await open_session(server.url, path, f"{who}-token")
    return f"{session['format']}:{session['type']}:{session['fileId']}"


async def still_open(peer: RawPeer, wait: float = 0.3) -> bool:
    await asyncio.sleep(wait)
    return not peer.closed.is_set()


# -- awareness per connection ------------------------------------------------------------------


async def test_awareness_client_ids_per_connection(server):
    room = await document_room(server, write_notebook(server.root))
    watcher = await RawPeer.open(server, room, "alice-token")
    sender = await RawPeer.open(server, room, "bob-token")
    await sender.announce((11, {"cursor": 1}), (12, {"cursor": 1}))  # just under: two ids
    await eventually(lambda: {11, 12} <= watcher.states.keys())
    assert await still_open(sender)
    # Over: a third id. The message is refused whole: not even the change to id 11 applies.
    await sender.announce((11, {"cursor": 2}), (13, {"cursor": 1}))
    code, reason = await sender.wait_closed()
    assert code == 1008 and "more than 2 awareness client ids" in (reason or "")
    await eventually(lambda: not watcher.states)  # the sender's states left with it
    assert all(cid != 13 and (state or {}).get("cursor") != 2 for cid, state in watcher.history)
    # Releasing an id (a null state) makes room for another one.
    again = await RawPeer.open(server, room, "bob-token")
    await again.announce((21, {"cursor": 1}), (22, {"cursor": 1}))
    await again.announce((22, None), (23, {"cursor": 1}))
    await eventually(lambda: {21, 23} == watcher.states.keys())
    assert await still_open(again)
    for peer in (watcher, again):
        peer.close()


def padded(size: int, wide: str = "é") -> str:
    """A state of exactly `size` bytes of JSON, mostly of `wide` characters (é: 2 bytes in
    UTF-8, so that the limit is seen to count bytes, not characters)."""
    room = size - len(json.dumps({"pad": ""}))
    width = len(wide.encode())
    return json.dumps({"pad": wide * (room // width) + "x" * (room % width)}, ensure_ascii=False)


async def test_awareness_state_size(server):
    room = await document_room(server, write_notebook(server.root))
    watcher = await RawPeer.open(server, room, "alice-token")
    sender = await RawPeer.open(server, room, "bob-token")
    at_limit, over = padded(4096), padded(4097)
    assert (len(at_limit.encode()), len(over.encode())) == (4096, 4097)
    await sender.announce((31, at_limit))  # just under (at) the limit: relayed
    await eventually(lambda: 31 in watcher.states)
    assert watcher.states[31]["pad"] == json.loads(at_limit)["pad"]
    await sender.announce((31, {"cursor": 1}), (32, over))  # over: 1009, nothing applied
    code, reason = await sender.wait_closed()
    assert code == 1009 and "over 4096 bytes" in (reason or "")
    await eventually(lambda: not watcher.states)
    assert all(cid != 32 and "cursor" not in (state or {}) for cid, state in watcher.history)
    watcher.close()


async def test_awareness_client_ids_a_browser_can_represent(server):
    room = await document_room(server, write_notebook(server.root))
    watcher = await RawPeer.open(server, room, "alice-token")
    sender = await RawPeer.open(server, room, "bob-token")
    await sender.announce((2**53 - 1, {"cursor": 1}))  # the largest safe integer
    await eventually(lambda: 2**53 - 1 in watcher.states)
    await sender.announce((2**53, {"cursor": 1}))
    code, reason = await sender.wait_closed()
    assert code == 4400 and "2^53" in (reason or "")
    await eventually(lambda: not watcher.states)
    assert all(cid != 2**53 for cid, _ in watcher.history)
    watcher.close()


# -- rooms and connections ---------------------------------------------------------------------


async def test_connections_per_user_across_rooms(server):
    rooms = [await document_room(server, write_notebook(server.root), "dave") for _ in range(3)]
    # Four connections (the limit), in four rooms: three documents and the presence room.
    held = [await RawPeer.open(server, room, "dave-token") for room in [*rooms, GLOBAL]]
    await asyncio.sleep(0.3)
    assert not any(peer.closed.is_set() for peer in held)
    extra = await RawPeer.open(server, rooms[0], "dave-token")  # a fifth, to a room it holds one of
    code, reason = await extra.wait_closed()
    assert code == 1008 and reason == "too many connections to this server"
    other = await RawPeer.open(server, rooms[0], "bob-token")  # the limit is per user
    assert await still_open(other) and all(not peer.closed.is_set() for peer in held)
    held.pop().close()  # one closed: room for one more

    async def reopened() -> RawPeer | None:
        peer = await RawPeer.open(server, rooms[1], "dave-token")
        if await still_open(peer, 0.2):
            return peer
        return None

    replacement = None
    for _ in range(20):
        replacement = await reopened()
        if replacement is not None:
            break
    assert replacement is not None
    for peer in (*held, other, replacement):
        peer.close()


async def test_awareness_only_rooms_are_the_allowed_names(server):
    allowed = await RawPeer.open(server, GLOBAL, "carol-token")
    assert await still_open(allowed)
    unknown = await RawPeer.open(server, "room-0", "carol-token")
    code, reason = await unknown.wait_closed()
    assert code == 4404 and "no room" in (reason or "")
    near = await RawPeer.open(server, "JupyterLab:globalAwarenesss", "carol-token")
    assert (await near.wait_closed())[0] == 4404
    at_cap = await RawPeer.open(server, "x" * 256, "carol-token")  # at the length cap: only unknown
    assert (await at_cap.wait_closed())[0] == 4404
    long = await RawPeer.open(server, "x" * 257, "carol-token")  # over it
    code, reason = await long.wait_closed()
    assert code == 4400 and "longer than 256" in (reason or "")
    allowed.close()


async def test_sync_requests_per_minute(server):
    room = await document_room(server, write_notebook(server.root, sources=["x" * 1000]))
    peer = await RawPeer.open(server, room, "carol-token")
    for _ in range(4):  # the first, then three more (the limit): each gets the document
        await peer.send(sync_frame(SyncType.STEP1, b"\x00"))
    await eventually(lambda: sum(m.kind == SyncType.STEP2 for m in peer.sync) == 4)
    assert await still_open(peer)
    await peer.send(sync_frame(SyncType.STEP1, b"\x00"))
    code, reason = await peer.wait_closed()
    assert code == 1008 and reason == "too many sync requests per minute"
    assert sum(m.kind == SyncType.STEP2 for m in peer.sync) == 4


# -- the permission re-check endpoint ----------------------------------------------------------


async def recheck(server: ServerProcess, who: str) -> int:
    url = "/api/collaboration/permissions/recheck"
    return (await http(server, "POST", url, "{}", token=f"{who}-token")).code


async def test_recheck_is_for_owners_and_rate_limited(server):
    assert await recheck(server, "carol") == 403  # a viewer
    assert await recheck(server, "bob") == 403  # an editor, allowed to write contents
    assert await recheck(server, "alice") == 200  # owner of the root: two a minute
    assert await recheck(server, "alice") == 200
    assert await recheck(server, "alice") == 429


# -- document names in the presence room -------------------------------------------------------

NAMES = [
    "public.ipynb",
    "solutions/exam.ipynb",
    "RTC:solutions/exam.ipynb",  # a drive prefix
    "notebook:RTC:solutions/exam.ipynb",  # JupyterLab's `current` form
    "RTC:public.ipynb",
    "a:b:c:public.ipynb",  # more colons than any form JupyterLab writes
    "public/../solutions/exam.ipynb",  # an alias: never decided on
]


async def test_presence_shows_each_person_only_documents_they_may_open(server):
    alice = await RawPeer.open(server, GLOBAL, "alice-token")
    alice_other_tab = await RawPeer.open(server, GLOBAL, "alice-token")
    bob = await RawPeer.open(server, GLOBAL, "bob-token")
    await alice.announce((41, {"documents": NAMES, "current": "solutions/exam.ipynb"}))
    await eventually(lambda: 41 in bob.states and 41 in alice_other_tab.states)
    assert bob.states[41]["documents"] == ["public.ipynb", "RTC:public.ipynb"]
    assert bob.states[41]["current"] is None
    assert alice_other_tab.states[41]["documents"] == NAMES[:5]
    assert alice_other_tab.states[41]["current"] == "solutions/exam.ipynb"
    assert bob.states[41]["user"]["username"] == "alice"
    # A latecomer's snapshot is filtered the same way, and so are later changes.
    carol = await RawPeer.open(server, GLOBAL, "carol-token")
    await eventually(lambda: 41 in carol.states)
    assert carol.states[41]["documents"] == ["public.ipynb", "RTC:public.ipynb"]
    await alice.announce((41, {"documents": ["solutions/exam.ipynb"], "current": "solutions/exam.ipynb"}))
    await eventually(lambda: carol.states[41]["documents"] == [] and bob.states[41]["documents"] == [])
    assert all("solutions" not in json.dumps(state) for _, state in bob.history + carol.history)
    # What bob opens, alice (owner everywhere) sees.
    await bob.announce((42, {"documents": ["public.ipynb"], "current": "public.ipynb"}))
    await eventually(lambda: alice.states.get(42, {}).get("current") == "public.ipynb")
    for peer in (alice, alice_other_tab, bob, carol):
        peer.close()


async def test_presence_names_per_state_are_bounded(server):
    sender = await RawPeer.open(server, GLOBAL, "alice-token")
    bob = await RawPeer.open(server, GLOBAL, "bob-token")
    names = [f"doc{i}.ipynb" for i in range(51)]
    await sender.announce((51, {"documents": names[:50]}))  # just under: all 50 shown
    await eventually(lambda: len(bob.states.get(51, {}).get("documents", [])) == 50)
    await sender.announce((51, {"documents": names, "current": "doc0.ipynb"}))  # over: 51st left out
    await eventually(lambda: bob.states[51].get("current") == "doc0.ipynb")
    assert bob.states[51]["documents"] == names[:50]
    # New names beyond the connection's budget (64 at once) are left out too.
    fresh = [f"new{i}.ipynb" for i in range(50)]
    await sender.announce((51, {"documents": fresh}))
    await eventually(lambda: bob.states[51]["documents"] != names[:50])
    shown = bob.states[51]["documents"]
    assert 13 <= len(shown) <= 16 and shown == fresh[: len(shown)]
    for peer in (sender, bob):
        peer.close()


# -- self-declared keys in `user` --------------------------------------------------------------


def users(client: Any) -> list[dict[str, Any]]:
    """The `user` field of every state a RoomClient sees."""
    return [state["user"] for state in client.awareness.values() if "user" in state]


async def test_a_person_cannot_pose_as_a_program_the_server_shows(server):
    path = write_notebook(server.root, sources=["x = 1"])
    watcher = await join(server, path, token="alice-token")
    poser = await join(
        server, path, token="carol-token", user={"program": True, "program_name": "Alice", "name": "A"}
    )
    posed = await eventually(lambda: next((u for u in users(watcher) if u.get("program")), None))
    assert posed["username"] == "carol" and posed["name"] == "Carol Viewer"  # the server's identity
    assert posed["self_declared"] == ["program", "program_name"]  # marked as the client's word
    # A program the server itself shows (a REST edit) carries no such mark.
    cell = watcher.notebook().ycells[0]["id"]
    await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{server.url}/api/collab/v1/notebooks/{path}/cells/{cell}",
            method="PATCH",
            body=json.dumps({"source": "x = 2"}),
            headers={"Authorization": "token bob-token", "If-Match": "*"},
        )
    )
    shown = await eventually(lambda: next((u for u in users(watcher) if u["username"] == "bob"), None))
    assert shown["program"] is True and "self_declared" not in shown
    # Faking the mark away does not work either: the server owns `self_declared`.
    poser.set_awareness({"user": {"program": True, "self_declared": []}})
    await eventually(lambda: any(u.get("self_declared") == ["program"] for u in users(watcher)))
    for client in (watcher, poser):
        await client.close()


# -- the send buffer ---------------------------------------------------------------------------


async def test_send_buffer_counts_what_waits_and_the_frame_to_come():
    """The rule itself (the server's closing of a client that stops reading is in
    test_persistence.py): a frame is refused when it would take what waits over the limit."""
    buffer = SendBuffer(100)
    written = asyncio.get_running_loop().create_future()
    written.set_result(None)  # the kernel took it at once: nothing waits in the process
    buffer.track(written, 500)
    assert buffer.queued == 0 and buffer.fits(500)  # a frame alone may exceed the limit
    waiting = asyncio.get_running_loop().create_future()
    buffer.track(waiting, 60)
    assert buffer.fits(40) and not buffer.fits(41)  # just under, just over (with the frame)
    waiting.set_result(None)
    await asyncio.sleep(0)
    assert buffer.queued == 0


async def test_a_client_that_reads_gets_frames_larger_than_the_buffer(server_with_buffer):
    """Presence larger than the send buffer (100 kB) reaches a joining client that reads,
    and so does a broadcast of two frames that together exceed it: what the kernel takes
    at once never waits in the server."""
    server = server_with_buffer
    path = write_notebook(server.root, sources=[""])
    room = await document_room(server, path)
    big = await RawPeer.open(server, room, "alice-token")
    await big.announce((61, padded(60_000, "x")), (62, padded(60_000, "x")))
    reader = await RawPeer.open(server, room, "bob-token")
    await eventually(lambda: {61, 62} <= reader.states.keys())  # a 120 kB join snapshot
    writer = await join(server, path, token="alice-token")
    await big.announce((61, {}))
    await asyncio.sleep(0.05)  # that change opened a broadcast window (0.5 s)
    append_text(writer, 0, "y" * 60_000)
    await big.announce((61, padded(50_000, "x")))  # both go out at the window's end
    await eventually(
        lambda: len(reader.states[61].get("pad", "")) > 40_000
        and any(m.kind == SyncType.UPDATE and len(m.payload) > 60_000 for m in reader.sync)
    )
    assert await still_open(reader) and await still_open(big)
    for peer in (big, reader):
        peer.close()
    await writer.close()


@pytest.fixture
def server_with_buffer(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = configured(tmp_path, {"max_send_buffer_bytes": 100_000, "broadcast_window": 0.5})
    yield proc
    proc.stop()


# -- the demo policy ---------------------------------------------------------------------------


async def test_demo_policy_without_the_demo_extension_gives_viewers():
    """Configured without `jupyter_collab.demo` (no visitor identity), nobody becomes an editor."""
    access = await DemoPolicy().access(SimpleNamespace(username="someone"), "a.ipynb", None)
    assert access.role.value == "viewer"
    visitor = SimpleNamespace(username="demo-otter-1", demo_role="editor")
    assert (await DemoPolicy().access(visitor, "a.ipynb", None)).role.value == "editor"
