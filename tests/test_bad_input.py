"""Bad input never corrupts a room: every malformed frame, bad room id or bad session request gets
a clear close code or HTTP error, nothing of it is applied, the other clients keep working, and the
server logs one line saying why."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Text
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.websocket import websocket_connect

from jupyter_collab.client import RoomClient, open_session, room_url
from jupyter_collab.protocol import (
    SyncType,
    awareness_frame,
    sync_frame,
    var_bytes,
    var_string,
    var_uint,
)

from .helpers import disk_sources, eventually, join, log_lines, sources, write_notebook
from .server import TOKEN, ServerProcess


async def assert_logged_once(server: ServerProcess, *needles: str, timeout: float = 10.0) -> None:
    """Exactly one log line mentions the problem (waits for the subprocess to write it)."""
    await eventually(lambda: log_lines(server, *needles), timeout=timeout)
    await asyncio.sleep(0.2)  # a duplicate line would show up by now
    lines = log_lines(server, *needles)
    assert len(lines) == 1, f"expected one log line with {needles!r}, got: {lines}"


async def assert_logged(server: ServerProcess, *needles: str) -> None:
    """The log says why an HTTP request failed. (jupyter_server itself logs an API error twice:
    tornado's "400 PUT ...: reason" and APIHandler's "wrote error: reason", so not "once".)"""
    await eventually(lambda: log_lines(server, *needles))


def edit_update(client: RoomClient, text: str) -> bytes:
    """A valid update that inserts `text` at the start of the first cell, made on a copy of the
    client's document (so the client itself does not change and does not send it)."""
    scratch = Doc()
    scratch.apply_update(client.doc.get_update())
    updates: list[bytes] = []
    subscription = scratch.observe(lambda event: updates.append(event.update))
    source: Text = YNotebook(scratch).ycells[0]["source"]
    source.insert(0, text)
    scratch.unobserve(subscription)
    assert len(updates) == 1
    return updates[0]


def ws_base(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://", 1)


async def close_of(url: str, timeout: float = 10.0) -> tuple[int | None, str | None]:
    """Open a raw WebSocket and wait for the server to close it; returns (code, reason)."""
    ws = await websocket_connect(url)
    try:
        while True:
            frame = await asyncio.wait_for(ws.read_message(), timeout)
            if frame is None:
                return ws.close_code, ws.close_reason
    finally:
        ws.close()


async def put_session(
    server: ServerProcess, path: str, body: bytes | str, *, token: str | None = TOKEN
) -> HTTPResponse:
    headers = {"Authorization": f"token {token}"} if token is not None else {}
    return await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{server.url}/api/collaboration/session/{path}",
            method="PUT",
            body=body,
            headers=headers,
        ),
        raise_error=False,
    )


def error_message(response: HTTPResponse) -> str:
    """The reason a Jupyter API error gives (JSON `message`)."""
    try:
        body = json.loads(response.body)
    except ValueError:
        return response.body.decode("utf-8", "replace")
    return str(body.get("message") or body.get("reason") or body)


class Pair:
    """Two well-behaved clients in one notebook room, used to show the room still works."""

    def __init__(self, server: ServerProcess, path: str, alice: RoomClient, bob: RoomClient) -> None:
        self.server = server
        self.path = path
        self.alice = alice
        self.bob = bob
        self.expected = sources(alice)
        self.snapshot = alice.notebook().get()

    @classmethod
    async def start(cls, server: ServerProcess, source: str = "a = 1") -> Pair:
        path = write_notebook(server.root, sources=[source])
        alice = await join(server, path)
        bob = await join(server, path)
        return cls(server, path, alice, bob)

    async def assert_unchanged_and_still_syncing(self, marker: str = "# still works\n") -> None:
        # Nothing of the bad input reached the document: a fresh client gets what we had.
        carol = await join(self.server, self.path)
        assert carol.notebook().get() == self.snapshot
        assert sources(self.alice) == self.expected
        # And an edit still reaches everyone, and the disk.
        source: Text = self.bob.notebook().ycells[0]["source"]
        source.insert(0, marker)
        expected = [marker + self.expected[0], *self.expected[1:]]
        await eventually(lambda: sources(self.alice) == sources(carol) == expected)
        assert sources(self.bob) == expected
        await eventually(lambda: disk_sources(self.server, self.path) == expected)
        await carol.close()

    async def close(self) -> None:
        await self.alice.close()
        await self.bob.close()


# -- bad frames ------------------------------------------------------------------------------

# (id, frame builder (gets the sender, returns the frame), words the log line and close reason hold)
BAD_FRAMES: list[tuple[str, Any, tuple[str, ...]]] = [
    (
        "truncated-frame",
        # a real edit, cut short: the declared payload length runs past the end of the frame
        lambda c: sync_frame(SyncType.UPDATE, edit_update(c, "EVIL"))[:-3],
        ("truncated",),
    ),
    ("truncated-header", lambda c: b"\x00", ("truncated",)),
    ("malformed-varint", lambda c: b"\x00\x02" + b"\xff" * 12, ("varint",)),
    (
        "trailing-garbage",
        # a valid edit followed by junk: must not be applied before the junk is noticed
        lambda c: sync_frame(SyncType.UPDATE, edit_update(c, "EVIL")) + b"\x00junk",
        ("trailing",),
    ),
    ("unknown-message-type", lambda c: b"\x07" + var_bytes(b"abc"), ("type 7",)),
    ("unknown-sync-subtype", lambda c: b"\x00\x05" + var_bytes(b""), ("sync", "5")),
    ("text-frame", lambda c: '{"type": "save"}', ("text",)),
    (
        "random-update",
        lambda c: sync_frame(SyncType.UPDATE, random.Random(1234).randbytes(64)),
        ("invalid update",),
    ),
    ("custom-not-save", lambda c: b"\x02" + var_string("load") + var_uint(1), ("custom", "load")),
    ("malformed-state-vector", lambda c: sync_frame(SyncType.STEP1, b"\x05\x01"), ("truncated",)),
    ("malformed-awareness", lambda c: awareness_frame(b"\x01\x05"), ("truncated",)),
]


@pytest.mark.parametrize(
    ("frame_of", "words"), [(f, w) for _, f, w in BAD_FRAMES], ids=[i for i, _, _ in BAD_FRAMES]
)
async def test_bad_frame_closes_sender_only(server, frame_of, words):
    pair = await Pair.start(server)
    mallory = await join(server, pair.path)
    frame = frame_of(mallory)
    await mallory.send_raw(frame)
    code, reason = await mallory.wait_closed()
    assert code == 4400, (code, reason)
    assert reason and all(word in reason.lower() for word in words), reason
    await assert_logged_once(server, "jupyter_collab", *words)
    # The good clients were not disconnected, and the room still works.
    assert pair.alice.connected and pair.bob.connected
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


async def test_bad_frame_before_sync_is_rejected(server):
    """A raw socket that sends garbage as its very first frame is closed the same way."""
    pair = await Pair.start(server)
    session = await open_session(server.url, pair.path, TOKEN)
    ws = await websocket_connect(room_url(server.url, session, TOKEN))
    await ws.write_message(b"\x00\x02\x0a" + b"abc", binary=True)
    while await asyncio.wait_for(ws.read_message(), 10) is not None:
        pass
    assert ws.close_code == 4400
    await assert_logged_once(server, "jupyter_collab", "truncated")
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


# -- frame size ------------------------------------------------------------------------------


async def oversized_setup(make_server) -> tuple[ServerProcess, Pair, RoomClient, bytes]:
    server = make_server({"max_message_bytes": 1000})
    pair = await Pair.start(server)
    mallory = await join(server, pair.path)
    frame = sync_frame(SyncType.UPDATE, edit_update(mallory, "EVIL" * 500))
    assert len(frame) > 2000
    return server, pair, mallory, frame


async def test_oversized_frame_closes_1009(make_server):
    server, pair, mallory, frame = await oversized_setup(make_server)
    await mallory.send_raw(frame)
    code, _ = await mallory.wait_closed()
    assert code == 1009
    assert pair.alice.connected and pair.bob.connected
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


async def test_oversized_frame_is_logged(make_server):
    server, pair, mallory, frame = await oversized_setup(make_server)
    await mallory.send_raw(frame)
    code, _ = await mallory.wait_closed()
    assert code == 1009

    # One line from jupyter_collab saying the frame was too big (whatever the exact wording).
    def size_lines() -> list[str]:
        words = ("1009", "too big", "too large", "max_message_bytes", "size")
        return [line for line in log_lines(server, "jupyter_collab") if any(w in line.lower() for w in words)]

    await eventually(size_lines, timeout=3.0)
    await asyncio.sleep(0.2)
    assert len(size_lines()) == 1, size_lines()
    await pair.close()


async def test_frame_just_under_limit_is_accepted(make_server):
    server = make_server({"max_message_bytes": 1000})
    pair = await Pair.start(server)
    mallory = await join(server, pair.path)
    # Find an insert whose frame is 990..1000 bytes (the length prefixes make it non-linear).
    count = 900
    frame = sync_frame(SyncType.UPDATE, edit_update(mallory, "x" * count))
    count += 995 - len(frame)
    text = "x" * count
    frame = sync_frame(SyncType.UPDATE, edit_update(mallory, text))
    assert 990 <= len(frame) <= 1000, len(frame)
    await mallory.send_raw(frame)
    expected = [text + pair.expected[0]]
    await eventually(lambda: sources(pair.alice) == sources(pair.bob) == expected)
    assert mallory.connected
    await eventually(lambda: disk_sources(server, pair.path) == expected)
    await mallory.close()
    await pair.close()


# -- bad room ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("room_id", "word"),
    [
        ("json:notebook:bad/id!", "room id"),
        ("foo:bar:baz", "room id"),
        ("json:file:abc", "room id"),
    ],
)
async def test_unparsable_room_id_closes_4400(server, room_id, word):
    pair = await Pair.start(server)
    code, reason = await close_of(f"{ws_base(server)}/api/collaboration/room/{room_id}?token={TOKEN}")
    assert code == 4400, (code, reason)
    assert reason
    await assert_logged_once(server, "jupyter_collab", word)
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


async def test_unknown_file_id_closes_4404(server):
    pair = await Pair.start(server)
    file_id = "0f0f0f0f-dead-beef-0000-000000000000"
    code, reason = await close_of(
        f"{ws_base(server)}/api/collaboration/room/json:notebook:{file_id}?token={TOKEN}"
    )
    assert code == 4404, (code, reason)
    await assert_logged_once(server, "jupyter_collab", file_id)
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


# -- session requests ------------------------------------------------------------------------

NOTEBOOK_BODY = json.dumps({"format": "json", "type": "notebook"})


@pytest.mark.parametrize(
    "path",
    ["../secret.ipynb", "..%2Fsecret.ipynb", "%2E%2E/secret.ipynb", "sub/../../secret.ipynb"],
)
async def test_session_outside_root_is_refused(server, path):
    # A real notebook just outside the root: a wrong answer would index (and serve) it.
    write_notebook(server.base, "secret.ipynb", sources=["SECRET"])
    (server.root / "sub").mkdir(exist_ok=True)
    pair = await Pair.start(server)
    response = await put_session(server, path, NOTEBOOK_BODY)
    assert response.code in (400, 404), (response.code, response.body)
    assert b"fileId" not in response.body
    await assert_logged(server, error_message(response))
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


async def test_session_missing_file_is_404(server):
    response = await put_session(server, "no-such-notebook.ipynb", NOTEBOOK_BODY)
    assert response.code == 404
    assert "no-such-notebook.ipynb" in error_message(response)
    await assert_logged(server, error_message(response))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", ("json",)),
        ("[1, 2]", ("object",)),
        ("{}", ("format",)),
        (json.dumps({"format": "json"}), ("type",)),
        (json.dumps({"type": "notebook"}), ("format",)),
        (json.dumps({"format": "xml", "type": "notebook"}), ("xml",)),
        (json.dumps({"format": "json", "type": "spreadsheet"}), ("spreadsheet",)),
    ],
    ids=["bad-json", "not-object", "empty", "no-type", "no-format", "bad-format", "bad-type"],
)
async def test_session_bad_body_is_400(server, body, words):
    path = write_notebook(server.root)
    response = await put_session(server, path, body)
    assert response.code == 400, (response.code, response.body)
    message = error_message(response)
    assert all(word in message.lower() for word in words), message
    await assert_logged(server, message)
    # The file was not indexed nor opened by the bad request: a good one afterwards gets 201.
    good = await put_session(server, path, NOTEBOOK_BODY)
    assert good.code == 201, (good.code, good.body)


async def test_session_unreadable_notebook_is_400(server):
    (server.root / "broken.ipynb").write_text("this is { not a notebook")
    pair = await Pair.start(server)
    response = await put_session(server, "broken.ipynb", NOTEBOOK_BODY)
    assert response.code == 400, (response.code, response.body)
    message = error_message(response)
    assert "broken.ipynb" in message and "notebook" in message.lower(), message
    await assert_logged(server, message)
    assert (server.root / "broken.ipynb").read_text() == "this is { not a notebook"
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
async def test_unauthenticated_requests_are_refused(server, token):
    pair = await Pair.start(server)
    response = await put_session(server, pair.path, NOTEBOOK_BODY, token=token)
    assert response.code in (401, 403), (response.code, response.body)
    assert b"fileId" not in response.body

    # The WebSocket upgrade is refused outright (no socket ever opens).
    session = await open_session(server.url, pair.path, TOKEN)
    room = f"{session['format']}:{session['type']}:{session['fileId']}"
    url = f"{ws_base(server)}/api/collaboration/room/{room}?sessionId={session['sessionId']}"
    if token is not None:
        url += f"&token={token}"
    with pytest.raises(HTTPClientError) as refused:
        ws = await websocket_connect(url)
        ws.close()
    assert refused.value.code in (401, 403)
    await eventually(lambda: log_lines(server, str(refused.value.code), "/api/collaboration/room/"))
    await eventually(lambda: log_lines(server, str(response.code), "/api/collaboration/session/"))
    await pair.assert_unchanged_and_still_syncing()
    await pair.close()
