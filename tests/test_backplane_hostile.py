"""Redis as a trust boundary: the backplane through a secured Redis, and garbage in Redis.

Two real server processes share rooms through a real redis-server that requires a
password: A connects as the backplane's own ACL user over TLS (`rediss://`), B as the
default user (`redis://:password@`). The tests then write what a broken or hostile Redis
client could (non-UTF-8 bytes, awareness updates that do not decode, JSON that is not an
object, truncated Yjs updates, entries over the size bound, a snapshot that does not
decode) and check that presence, permission re-checks and document sync keep working
between the two processes, and that the log says what was skipped without flooding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from jupyter_ydoc import YNotebook
from pycrdt import Doc
from tornado.httpclient import HTTPClientError

from jupyter_collab.backplane.entries import ENTRY_MAX_BYTES
from jupyter_collab.backplane.messages import AWARENESS_MESSAGE_MAX_BYTES, parse_awareness, publishable
from jupyter_collab.backplane.redis import STREAM_MAX_BYTES, RedisBackplane, safe_url
from jupyter_collab.client import RoomClient, open_session
from jupyter_collab.protocol import AwarenessEntry, decode_awareness, encode_awareness

from .helpers import (
    append_text,
    disk_sources,
    eventually,
    log_lines,
    recheck_permissions,
    sources,
    write_notebook,
)
from .redis_cluster import (
    ACL_USER,
    OPENSSL,
    REDIS_SERVER,
    ROLES,
    TOKEN,
    ClusterServer,
    RedisServer,
    join_at,
    room_of,
    set_roles,
)
from .server import ServerProcess

pytestmark = pytest.mark.skipif(
    not Path(REDIS_SERVER).exists() or OPENSSL is None, reason="needs redis-server and openssl"
)

PASSWORD = "default-user-secret-3f9a"
ACL_PASSWORD = "acl-user-secret-7c21"
FAKE = "f" * 32  # a process id that no process has


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[tuple[RedisServer, ClusterServer, ClusterServer]]:
    base = tmp_path_factory.mktemp("hostile")
    server = RedisServer(base / "redis", password=PASSWORD, acl_password=ACL_PASSWORD, tls=True).start()
    root = base / "shared-root"
    root.mkdir()
    set_roles(root, ROLES)
    a = ClusterServer(
        base / "a", root, server, {"backplane_url": server.url_as(ACL_USER, ACL_PASSWORD, tls=True)}
    )
    b = ClusterServer(base / "b", root, server)  # the default user's password (requirepass)
    for process in (a, b):
        process.start()
    yield server, a, b
    for process in (a, b):
        process.stop()
    server.kill()


@pytest.fixture
def r(secured) -> Iterator[redis.Redis]:
    """Redis as the default user, who may write anything anywhere (an attacker, here)."""
    server, _, _ = secured
    set_roles(secured[1].root, ROLES)
    with server.client() as client:
        client.acl_log_reset()
        yield client


def keys(room: str) -> tuple[str, str, str]:
    """The room's stream, snapshot key and awareness channel."""
    return f"collab:{{{room}}}:updates", f"collab:{{{room}}}:snapshot", f"collab:{{{room}}}:awareness"


async def shared_room(
    first: ClusterServer, second: ClusterServer, *cells: str
) -> tuple[str, RoomClient, RoomClient]:
    """A new notebook opened on `first` (which then holds its save lease), then on `second`."""
    path = write_notebook(first.root, sources=list(cells))
    return path, await join_at(first, path), await join_at(second, path)


def forged_update(client: RoomClient, cell: int, text: str) -> bytes:
    """A valid Yjs update that appends `text` to a cell, made by no server process."""
    doc = Doc()
    doc.apply_update(client.doc.get_update())
    before = doc.get_state()
    source = YNotebook(doc).ycells[cell]["source"]
    source.insert(len(str(source).encode()), text)
    return doc.get_update(before)


async def presence_works(sender: RoomClient, receiver: RoomClient, value: str) -> None:
    sender.set_awareness({"cursor": value})
    await eventually(lambda: receiver.awareness.get(sender.doc.client_id, {}).get("cursor") == value)


async def sync_works(sender: RoomClient, receiver: RoomClient, cell: int, text: str) -> None:
    append_text(sender, cell, text)
    await eventually(lambda: sources(receiver)[cell].endswith(text))


async def recheck_reaches(via: ClusterServer, target: ClusterServer, path: str) -> None:
    """Bob, on `target`, loses access; a re-check asked on `via` disconnects him there."""
    bob = await join_at(target, path, token="bob-token")
    set_roles(via.root, {**ROLES, "bob": "none"})
    try:
        await recheck_permissions(via, TOKEN)
        assert (await bob.wait_closed())[0] == 4403
    finally:
        set_roles(via.root, ROLES)
        await bob.close()


def never_refused(server: RedisServer) -> None:
    """The ACL user was never refused a command: the README's ACL rule is enough."""
    with server.client() as client:
        refused = client.acl_log()
    # CLIENT SETINFO (Redis 7.2+) is redis-py's own, and it carries on when refused.
    assert [entry for entry in refused if entry.get("object") != "client|setinfo"] == []


async def close_all(*clients: RoomClient) -> None:
    for client in clients:
        await client.close()


async def test_two_processes_share_rooms_through_an_acl_user_over_tls_and_a_password(secured, r):
    server, a, b = secured
    path, on_a, on_b = await shared_room(a, b, "one")  # A (the ACL user) saves this one
    other, second_b, second_a = await shared_room(b, a, "two")  # B saves this one
    await sync_works(on_a, on_b, 0, "+a")
    await sync_works(second_a, second_b, 0, "+a")
    await sync_works(on_b, on_a, 0, "+b")
    await presence_works(on_a, on_b, "a's")
    await presence_works(second_b, second_a, "b's")
    await recheck_reaches(b, a, path)  # the control channel, both ways
    await recheck_reaches(a, b, path)
    await eventually(lambda: disk_sources(a, path) == ["one+a+b"] and disk_sources(a, other) == ["two+a"])
    never_refused(server)
    # The ACL user reaches nothing but the backplane's keys and channels.
    with redis.Redis.from_url(server.url_as(ACL_USER, ACL_PASSWORD)) as restricted:
        for command in (
            ("GET", "sessions:1"),
            ("FLUSHALL",),
            ("PUBLISH", "other", "x"),
            ("CONFIG", "GET", "*"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                restricted.execute_command(*command)
    assert log_lines(a, f"redis backplane at rediss://{ACL_USER}@127.0.0.1")
    for process in (a, b):
        assert PASSWORD not in process.log() and ACL_PASSWORD not in process.log()
    await close_all(on_a, on_b, second_a, second_b)


async def test_a_wrong_password_is_refused_at_once_with_503(secured, tmp_path):
    server, _, _ = secured
    wrong = "not-the-password-91d"
    process = ServerProcess(tmp_path, config={"backplane_url": server.url_as("", wrong)}).start()
    try:
        path = write_notebook(process.root, sources=["x"])
        started = time.monotonic()
        with pytest.raises(HTTPClientError) as raised:
            await open_session(process.url, path, "test-token")
        assert raised.value.code == 503
        assert time.monotonic() - started < 5  # not the 15 s an unreachable Redis gets
        assert "try again" in raised.value.response.body.decode()
        assert log_lines(process, "refused the backplane", "check the user, password and acl")
        assert wrong not in process.log()
    finally:
        process.stop()


async def test_garbage_on_the_pubsub_channels_leaves_presence_and_control_working(secured, r):
    server, a, b = secured
    path, on_a, on_b = await shared_room(a, b, "p")
    _, _, channel = keys(room_of(on_a))
    fake = FAKE.encode()
    for message in (
        b"\xff" * 40,  # no process id, not even UTF-8
        fake + b"a\xff\xff\xff\xff",  # an awareness update that does not decode
        fake + b"a" + encode_awareness([AwarenessEntry(7, 1, "[1, 2]")]),  # a state that is not an object
        fake + b"a" + encode_awareness([AwarenessEntry(7, 1, "{not json")]),
        fake + b"a" + encode_awareness([AwarenessEntry(7, 1, "[" * 50_000)]),  # too deep for json
        fake + b"a" + encode_awareness([AwarenessEntry(2**60, 1, "{}")]),  # a client id no browser can hold
        fake + b"x",  # an unknown kind
        fake + b"?junk",
        b"",
        fake + b"a" + b"\x00" * (AWARENESS_MESSAGE_MAX_BYTES + 1),
    ):
        r.publish(channel, message)
    for message in (
        b"\xff\xfe\xfd",
        b"not json",
        b"[1, 2]",
        b"null",
        b'"recheck"',
        b'{"op": "recheck"}',  # from nobody
        json.dumps({"op": 1, "from": FAKE}).encode(),
        b"[" * 100_000,
        json.dumps({"op": "recheck", "from": FAKE, "pad": "x" * 70_000}).encode(),
    ):
        r.publish("collab:control", message)
    await presence_works(on_a, on_b, "after garbage")
    await presence_works(on_b, on_a, "after garbage too")
    await sync_works(on_a, on_b, 0, "-synced")
    await recheck_reaches(a, b, path)
    await recheck_reaches(b, a, path)
    for process in (a, b):
        assert log_lines(process, "skipped a malformed awareness message from redis")
        assert log_lines(process, "skipped a malformed control message from redis")
    never_refused(server)
    await close_all(on_a, on_b)


async def test_a_flood_of_garbage_logs_a_line_not_a_flood(secured, r):
    _, a, b = secured
    path, on_a, on_b = await shared_room(a, b, "f")
    before = [len(log_lines(process, "malformed control message")) for process in (a, b)]
    for _ in range(500):
        r.publish("collab:control", b"\xff")
    await recheck_reaches(a, b, path)  # published after the flood: the flood was read by then
    after = [len(log_lines(process, "malformed control message")) for process in (a, b)]
    assert [later - earlier for earlier, later in zip(before, after, strict=True)] <= [1, 1]
    assert max(after) >= 1
    await close_all(on_a, on_b)


async def test_hellos_are_answered_at_most_once_a_second(secured, r):
    server, a, b = secured
    _, on_a, on_b = await shared_room(a, b, "h")
    await presence_works(on_a, on_b, "here")  # each process now has a state to answer with
    await presence_works(on_b, on_a, "here too")
    _, _, channel = keys(room_of(on_a))
    listener = redis.asyncio.Redis(port=server.port, password=PASSWORD).pubsub()
    await listener.subscribe(channel)
    answers = 0
    deadline = time.monotonic() + 3.0
    for _ in range(100):
        r.publish(channel, FAKE.encode() + b"?")
    while time.monotonic() < deadline:
        message = await listener.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None and message["data"][32:33] == b"a":
            answers += 1
    await listener.aclose()
    assert 2 <= answers <= 10  # both answer; 200 answers without the bound
    await close_all(on_a, on_b)


async def test_bad_stream_entries_are_skipped_and_the_updates_before_them_applied(secured, r):
    server, a, b = secured
    _, on_a, on_b = await shared_room(a, b, "x", "y")
    stream, _, _ = keys(room_of(on_a))
    good = forged_update(on_a, 0, "+forged")
    pipe = r.pipeline(transaction=True)  # one batch for the readers
    pipe.xadd(stream, {"o": FAKE, "n": 1, "t": "u", "u": good})
    for fields in (
        {"o": FAKE, "n": 2, "t": "u", "u": good[: len(good) // 2]},  # a truncated Yjs update
        {"o": b"\xff" * 32, "n": 3, "t": "u", "u": good},  # a process id that is not UTF-8
        {"o": FAKE, "n": 4, "t": "s", "v": b"\xff\xff\xff"},  # a state vector that does not decode
        {"o": FAKE, "n": 5, "t": "w", "c": b"\xff\xfe"},  # not a content hash
        {"o": FAKE, "n": "many", "t": "u", "u": good},
        {"o": FAKE, "n": 7, "t": "?", "u": good},
        {"junk": b"\x00"},
    ):
        pipe.xadd(stream, fields)
    pipe.execute()
    await eventually(lambda: sources(on_a)[0] == sources(on_b)[0] == "x+forged")
    await sync_works(on_b, on_a, 1, "-later")
    for process in (a, b):
        assert log_lines(process, "skipped a malformed stream entry from redis")
    never_refused(server)
    await close_all(on_a, on_b)


async def test_oversized_entries_are_refused_and_the_stream_is_trimmed_by_bytes(secured, r):
    server, a, b = secured
    _, on_a, on_b = await shared_room(a, b, "big", "small")  # A trims: it holds the lease
    stream, _, _ = keys(room_of(on_a))
    oversized = forged_update(on_a, 0, "OVERSIZED" + "x" * ENTRY_MAX_BYTES)
    for n in range(20):  # 20 MiB: more than the stream's byte bound
        r.xadd(stream, {"o": FAKE, "n": n + 1, "t": "u", "u": oversized})
    await sync_works(on_a, on_b, 1, "-after")  # the oversized entries were read by then
    assert sources(on_a)[0] == sources(on_b)[0] == "big"
    assert log_lines(a, "skipped a malformed stream entry", f"over the {ENTRY_MAX_BYTES}-byte bound")

    def stream_bytes() -> int:
        return sum(len(k) + len(v) for _, fields in r.xrange(stream) for k, v in fields.items())

    await eventually(lambda: stream_bytes() <= STREAM_MAX_BYTES, timeout=15)
    assert r.xlen(stream) > 0  # the latest entries stay
    await sync_works(on_b, on_a, 1, "-still")
    never_refused(server)
    await close_all(on_a, on_b)


async def test_a_change_larger_than_an_entry_travels_in_parts(secured, r):
    server, a, b = secured
    _, on_a, on_b = await shared_room(a, b, "paste here")
    stream, _, _ = keys(room_of(on_a))
    pasted = "L" * (3 * ENTRY_MAX_BYTES)
    append_text(on_a, 0, pasted)
    await eventually(lambda: sources(on_b)[0] == "paste here" + pasted, timeout=20)
    parts = [fields for _, fields in r.xrange(stream) if fields.get(b"t") == b"p"]
    assert len(parts) >= 3 and all(len(fields[b"u"]) < ENTRY_MAX_BYTES for fields in parts)
    await sync_works(on_b, on_a, 0, "-then")
    never_refused(server)
    await close_all(on_a, on_b)


async def test_a_snapshot_that_does_not_decode_is_replaced_and_the_room_opens(secured, r):
    server, a, b = secured
    path = write_notebook(b.root, sources=["snap"])
    on_b = await join_at(b, path)  # B holds the room alone, and writes its snapshot
    append_text(on_b, 0, "-1")
    _, snapshot, _ = keys(room_of(on_b))

    def snapshot_sources() -> list[str]:
        doc = Doc()
        doc.apply_update(r.hget(snapshot, "state") or b"\x00\x00")
        return [str(cell["source"]) for cell in YNotebook(doc).ycells]

    await eventually(lambda: snapshot_sources() == ["snap-1"])
    r.hset(snapshot, mapping={"state": b"\x01\x02garbage", "base": b"{not json", "id": b"1-0"})
    on_a = await join_at(a, path)  # A refuses it; B writes a new one; A opens from that
    assert sources(on_a) == ["snap-1"]
    assert [c.get("id") for c in on_a.notebook().ycells] == [c.get("id") for c in on_b.notebook().ycells]
    await sync_works(on_a, on_b, 0, "-2")
    assert log_lines(a, "skipped a malformed snapshot from redis")
    assert not log_lines(a, "unusable")
    never_refused(server)
    await close_all(on_a, on_b)


async def test_a_loop_that_fails_is_logged_and_restarted(secured, caplog):
    server, _, _ = secured
    backplane = RedisBackplane(server.url, log=logging.getLogger("test-backplane"))
    handled: list[str] = []

    async def on_control(body: dict) -> None:
        handled.append(body["op"])

    dispatch = backplane.listener.dispatch
    failed: list[bytes] = []

    def fails_once(channel: bytes, data: bytes) -> None:
        if not failed:
            failed.append(data)
            raise RuntimeError("a bug in handling a message")
        dispatch(channel, data)

    backplane.listener.dispatch = fails_once  # type: ignore[method-assign]
    await backplane.start(on_control)
    sender = redis.asyncio.Redis(port=server.port, password=PASSWORD)
    try:
        for _ in range(100):
            await sender.publish("collab:control", json.dumps({"op": "probe", "from": FAKE}))
            if handled:
                break
            await asyncio.sleep(0.1)
        assert failed and handled == ["probe"]
        assert "Redis backplane pub/sub loop failed; restarting it" in caplog.text
        assert "a bug in handling a message" in caplog.text  # with its traceback
    finally:
        await sender.aclose()
        await backplane.stop()


def test_published_awareness_is_bounded():
    """One client's huge state goes out as its user only; the rest in messages under the bound."""
    huge = AwarenessEntry(99, 3, json.dumps({"user": {"username": "alice"}, "blob": "x" * 2**20}))
    many = [
        AwarenessEntry(i, 1, json.dumps({"user": {"username": f"u{i}"}, "cursor": "y" * 30_000}))
        for i in range(20)
    ]
    over: list[int] = []
    messages = publishable(encode_awareness([huge, *many]), lambda client_id, size: over.append(client_id))
    assert len(messages) > 1 and over == [99]
    for message in messages:  # every process accepts what another publishes
        parse_awareness(FAKE.encode() + b"a" + message)
    entries = {entry.client_id: entry for message in messages for entry in decode_awareness(message)}
    assert set(entries) == {99, *range(20)}
    assert json.loads(entries[99].state_json) == {"user": {"username": "alice"}} and entries[99].clock == 3
    assert entries[5].state_json == many[5].state_json


def test_logged_urls_carry_no_password():
    assert safe_url("redis://:s3cret@host:6379/0") == "redis://host:6379/0"
    assert safe_url("rediss://user:s3cret@host:6380/1?ssl_ca_certs=/ca.pem") == (
        "rediss://user@host:6380/1?ssl_ca_certs=/ca.pem"
    )
    assert "s3cret" not in safe_url("redis://host/0?password=s3cret&db=1")
