"""Permissions and identity, enforced on the server, with real users (one token each).

alice is an owner, bob an editor, carol a viewer, dave has no access; roles live in a JSON
file the tests change while people are connected.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from pycrdt import Doc, Map
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClosedError, websocket_connect

from jupyter_collab.client import RoomClient, open_session, room_url
from jupyter_collab.protocol import (
    SyncMessage,
    SyncType,
    decode_message,
    decode_server_notice,
    save_request_frame,
    sync_frame,
)

from .helpers import cell_ids, disk_sources, eventually, recheck_permissions, sources, write_notebook
from .team import ROLES, crafted_update, locked_notebook, notebook_of

# -- viewers ---------------------------------------------------------------------------------


async def test_viewer_joins_watches_and_is_in_presence_as_viewer(team):
    path = write_notebook(team.server.root, sources=["shared"])
    carol = await team.join("carol", path)
    alice = await team.join("alice", path)
    assert carol.role == "viewer" and alice.role == "owner"
    carol.set_awareness({"user": {"username": "alice", "name": "Not Carol"}, "cursor": 1})
    alice.notebook().ycells[0]["source"].insert(0, "live ")
    await eventually(lambda: sources(carol) == ["live shared"])
    await eventually(lambda: any(s.get("cursor") == 1 for s in alice.awareness.values()))
    stamped = next(s for s in alice.awareness.values() if s.get("cursor") == 1)["user"]
    assert stamped["username"] == "carol" and stamped["role"] == "viewer"
    assert stamped["name"] == "Carol Viewer"  # the claimed name is gone
    await carol.close()
    await alice.close()


async def test_role_notice_comes_before_the_first_sync_message(team):
    """A front end must know it is a viewer before it answers the server's sync step 1 (it
    then answers with nothing of its own, so that nothing of it is ever refused)."""
    path = write_notebook(team.server.root, sources=["x"])
    session = await open_session(team.server.url, path, "carol-token")
    ws = await websocket_connect(room_url(team.server.url, session, "carol-token"))
    first, second = await ws.read_message(), await ws.read_message()
    assert decode_server_notice(first) == {
        "type": "role",
        "role": "viewer",
        "can_edit": False,
        "can_lock": False,
        "can_run": False,
        "locked_cells": [],
    }
    message = decode_message(second)
    assert isinstance(message, SyncMessage) and message.kind is SyncType.STEP1
    ws.close()


@pytest.mark.parametrize("change", ["insert_text", "delete_cell", "set_metadata", "add_cell"])
async def test_viewer_crafted_updates_change_nothing(team, change):
    path = write_notebook(team.server.root, sources=["one", "two"])
    alice = await team.join("alice", path)
    carol = await team.join("carol", path)
    before = sources(alice)
    disk_before = (team.server.root / path).read_text()

    def edit(doc: Doc) -> None:
        nb = notebook_of(doc)
        if change == "insert_text":
            nb.ycells[0]["source"].insert(0, "hacked ")
        elif change == "delete_cell":
            del nb.ycells[1]
        elif change == "set_metadata":
            nb.ycells[0]["metadata"] = Map({"editable": False})
        else:
            nb.ycells.append(nb.create_ycell({"cell_type": "code", "source": "evil", "metadata": {}}))

    await carol.send_raw(sync_frame(SyncType.UPDATE, crafted_update(carol, edit)))
    code, reason = await carol.wait_closed()
    assert code == 1003 and json.loads(reason)["reason"] == "permission_denied"
    assert any(n.get("type") == "denied" and n.get("role") == "viewer" for n in carol.notices)
    await asyncio.sleep(0.5)
    assert sources(alice) == before
    assert (team.server.root / path).read_text() == disk_before
    fresh = await team.join("bob", path)
    assert sources(fresh) == before
    # The viewer "reloads" and is back on the true state.
    reloaded = await team.join("carol", path)
    assert sources(reloaded) == before and cell_ids(reloaded) == cell_ids(alice)
    assert any(e["action"] == "denied" and e["username"] == "carol" for e in team.events())
    for client in (alice, carol, fresh, reloaded):
        await client.close()


async def test_viewer_save_request_fails(team):
    path = write_notebook(team.server.root, sources=["x"])
    carol = await team.join("carol", path)
    reply = await carol.save()
    assert reply["status"] == "failed"
    assert carol.connected
    await carol.close()


async def test_no_access_is_refused(team):
    path = write_notebook(team.server.root, sources=["x"])
    with pytest.raises(HTTPClientError) as error:
        await open_session(team.server.url, path, "dave-token")
    assert error.value.code == 404  # as if there were no such file: no existence oracle
    session = await open_session(team.server.url, path, "alice-token")
    dave = RoomClient(room_url(team.server.url, session, "dave-token"))
    with pytest.raises(Exception):  # noqa: B017 - closed before syncing, code below
        await dave.connect(timeout=3)
    assert dave.close_code == 4403


async def test_default_policy_asks_the_servers_authorizer(make_team):
    team = make_team(policy=['c.ServerApp.authorizer_class = "tests.identity.CarolReadsOnly"'])
    path = write_notebook(team.server.root, sources=["x"])
    alice = await team.join("alice", path)
    carol = await team.join("carol", path)  # the reference answers her 403: she could not watch
    assert (alice.role, carol.role) == ("owner", "viewer")
    carol.notebook().ycells[0]["source"].insert(0, "no")
    code, _ = await carol.wait_closed()
    assert code == 1003 and sources(alice) == ["x"]
    with pytest.raises(HTTPClientError) as error:
        await open_session(team.server.url, path, "dave-token")
    assert error.value.code == 404
    await alice.close()


async def test_rules_policy_from_config(make_team):
    rules = [
        {"paths": ["private/*"], "users": ["alice"], "role": "owner"},
        {"paths": ["private/*"], "role": "none"},
        {"groups": ["staff"], "role": "editor"},
        {"role": "viewer"},
    ]
    team = make_team(
        policy=[
            'c.CollabApp.permission_policy_class = "jupyter_collab.permissions.RulesPolicy"',
            f"c.RulesPolicy.rules = {rules!r}",
            'c.RulesPolicy.groups = {"staff": ["bob"]}',
        ]
    )
    (team.server.root / "private").mkdir()
    shared = write_notebook(team.server.root, sources=["x"])
    private = "private/" + write_notebook(team.server.root / "private", sources=["secret"])
    assert (await team.join("bob", shared)).role == "editor"
    assert (await team.join("carol", shared)).role == "viewer"
    assert (await team.join("alice", private)).role == "owner"
    with pytest.raises(HTTPClientError):
        await open_session(team.server.url, private, "bob-token")


# -- locked cells ----------------------------------------------------------------------------


async def test_editor_update_touching_a_locked_cell_is_refused_whole(team):
    path = locked_notebook(team.server.root)
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)

    def both(doc: Doc) -> None:  # one message: an allowed edit and a locked one
        nb = notebook_of(doc)
        nb.ycells[0]["source"].insert(0, "ok ")
        nb.ycells[1]["source"].insert(0, "no ")

    await bob.send_raw(sync_frame(SyncType.UPDATE, crafted_update(bob, both)))
    code, _ = await bob.wait_closed()
    assert code == 1003
    await asyncio.sleep(0.3)
    assert sources(alice) == ["free", "frozen", "undeletable"]
    # The same editor's edits to unlocked cells, in other messages, go through.
    bob = await team.join("bob", path)
    bob.notebook().ycells[0]["source"].insert(0, "ok ")
    bob.notebook().ycells[2]["source"].insert(0, "editable ")
    await eventually(lambda: sources(alice) == ["ok free", "frozen", "editable undeletable"])
    await eventually(lambda: disk_sources(team.server, path) == sources(alice))
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("change", ["delete_undeletable", "delete_frozen", "move_frozen", "unlock", "lock"])
async def test_editor_cannot_delete_move_lock_or_unlock(team, change):
    path = locked_notebook(team.server.root)
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)

    def edit(doc: Doc) -> None:
        nb = notebook_of(doc)
        if change == "delete_undeletable":
            del nb.ycells[2]
        elif change == "delete_frozen":
            del nb.ycells[1]
        elif change == "move_frozen":
            cell = nb.get_cell(1)
            cell["id"] = nb.ycells[1].get("id")
            del nb.ycells[1]
            nb.ycells.insert(0, nb.create_ycell(cell))
        elif change == "unlock":
            nb.ycells[1]["metadata"]["editable"] = True
        else:
            nb.ycells[0]["metadata"]["editable"] = False

    before = [(c.get("id"), str(c["source"]), c["metadata"].to_py()) for c in alice.notebook().ycells]
    await bob.send_raw(sync_frame(SyncType.UPDATE, crafted_update(bob, edit)))
    code, _ = await bob.wait_closed()
    assert code == 1003
    await asyncio.sleep(0.3)
    after = [(c.get("id"), str(c["source"]), c["metadata"].to_py()) for c in alice.notebook().ycells]
    assert after == before
    await alice.close()


async def test_owner_may_edit_lock_and_unlock(team):
    path = locked_notebook(team.server.root)
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    nb = alice.notebook()
    nb.ycells[1]["source"].insert(0, "owner ")
    nb.ycells[1]["metadata"]["editable"] = True
    nb.ycells[0]["metadata"]["editable"] = False
    await eventually(lambda: sources(bob) == ["free", "owner frozen", "undeletable"])
    await eventually(lambda: bob.notebook().ycells[0]["metadata"].to_py().get("editable") is False)
    assert alice.connected
    await alice.close()
    await bob.close()


async def test_policy_locked_cells(team):
    path = write_notebook(team.server.root, sources=["a", "b"])
    alice = await team.join("alice", path)
    team.set_roles({**ROLES, "locked": {"bob": [cell_ids(alice)[1]]}})
    bob = await team.join("bob", path)
    # Bob is told which cells are locked for him, so that a front end can make them read-only.
    await eventually(lambda: any(n.get("type") == "role" for n in bob.notices))
    role = next(n for n in bob.notices if n.get("type") == "role")
    assert role == {
        "type": "role",
        "role": "editor",
        "can_edit": True,
        "can_lock": False,
        "can_run": True,
        "locked_cells": [cell_ids(alice)[1]],
    }
    bob.notebook().ycells[1]["source"].insert(0, "x")
    code, _ = await bob.wait_closed()
    assert code == 1003
    bob = await team.join("bob", path)
    bob.notebook().ycells[0]["source"].insert(0, "y")
    await eventually(lambda: sources(alice) == ["ya", "b"])
    await alice.close()
    await bob.close()


# -- identity --------------------------------------------------------------------------------


async def test_nobody_poses_as_someone_else(team):
    path = write_notebook(team.server.root, sources=["x"])
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    alice.set_awareness({"cursor": "alice's"})
    await eventually(lambda: any(s.get("cursor") == "alice's" for s in bob.awareness.values()))
    # bob claims alice's identity, and then writes a state for alice's client id.
    bob.set_awareness({"user": {"username": "alice", "name": "Alice Owner", "color": "#e6194b"}})
    from jupyter_collab.protocol import AwarenessEntry, awareness_frame, encode_awareness

    forged = AwarenessEntry(alice.doc.client_id, 999, json.dumps({"cursor": "forged"}))
    await bob.send_raw(awareness_frame(encode_awareness([forged])))
    await asyncio.sleep(0.5)
    states = {cid: s for cid, s in alice.awareness.items()}
    assert states[bob.doc.client_id]["user"]["username"] == "bob"
    assert states[bob.doc.client_id]["user"]["name"] == "Bob Editor"
    assert states[alice.doc.client_id]["cursor"] == "alice's"
    await alice.close()
    await bob.close()


# -- live changes of rights --------------------------------------------------------------------


async def test_rights_that_change_back_reach_the_client(team):
    """editor -> viewer -> editor: each change is told (a notice equal to an earlier one too)."""
    path = write_notebook(team.server.root, sources=["x"])
    bob = await team.join("bob", path)
    for role in ("viewer", "editor", "viewer", "editor"):
        team.set_roles({**ROLES, "bob": role})
        await recheck_permissions(team.server, "alice-token")
        await eventually(lambda role=role: bob.role == role, timeout=3)
    bob.notebook().ycells[0]["source"].insert(0, "back ")
    await eventually(lambda: disk_sources(team.server, path) == ["back x"])
    assert bob.connected
    await bob.close()


async def test_role_change_by_api_and_revocation(team):
    path = write_notebook(team.server.root, sources=["x"])
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    team.set_roles({**ROLES, "bob": "viewer", "carol": "none"})
    result = await recheck_permissions(team.server, "alice-token")
    assert result["changed"] >= 1
    await eventually(lambda: bob.role == "viewer")
    await eventually(
        lambda: (
            any(s["user"]["role"] == "viewer" for s in alice.awareness.values() if "user" in s)
            or not bob.awareness
        )
    )
    bob.notebook().ycells[0]["source"].insert(0, "late")
    code, _ = await bob.wait_closed()
    assert code == 1003 and sources(alice) == ["x"]
    # Revocation disconnects, with a code that says not to retry blindly.
    bob = await team.join("bob", path)
    team.set_roles({**ROLES, "bob": "none"})
    await recheck_permissions(team.server, "alice-token")
    code, _ = await bob.wait_closed()
    assert code == 4403
    assert {"role_change", "revoked"} <= {e["action"] for e in team.events()}
    await alice.close()


async def test_periodic_recheck_takes_effect_within_the_interval(make_team):
    team = make_team({"permission_recheck_interval": 0.5})
    path = write_notebook(team.server.root, sources=["x"])
    bob = await team.join("bob", path)
    assert bob.role == "editor"
    team.set_roles({**ROLES, "bob": "viewer"})
    await eventually(lambda: bob.role == "viewer", timeout=3)
    team.set_roles({**ROLES, "bob": "none"})
    code, _ = await bob.wait_closed(timeout=3)
    assert code == 4403


# -- abuse limits -----------------------------------------------------------------------------


async def test_document_message_rate_limit(make_team):
    # Sync requests have a stricter limit of their own (tests/test_limits.py): off here.
    team = make_team(
        {"max_document_messages_per_second": 20.0, "message_burst": 30.0, "max_sync_requests_per_minute": 0}
    )
    path = write_notebook(team.server.root, sources=[""])
    alice = await team.join("alice", path)
    # Just under: 25 messages at once (within the burst) are fine.
    for _ in range(25):
        await alice.send_raw(sync_frame(SyncType.STEP1, b"\x00"))
    await asyncio.sleep(0.5)
    assert alice.connected
    # Over: a flood closes the connection with 1008 and a log line.
    for _ in range(100):
        try:
            await alice.send_raw(sync_frame(SyncType.STEP1, b"\x00"))
        except WebSocketClosedError:
            break  # closed by the server mid-flood

    code, _ = await alice.wait_closed()
    assert code == 1008
    assert "too many document messages" in team.server.log()


async def test_awareness_rate_limit(make_team):
    team = make_team({"max_awareness_messages_per_second": 10.0, "message_burst": 15.0})
    path = write_notebook(team.server.root, sources=[""])
    alice = await team.join("alice", path)
    for index in range(10):
        alice.set_awareness({"cursor": index})
    await asyncio.sleep(0.5)
    assert alice.connected
    for index in range(50):
        alice.set_awareness({"cursor": index})
    code, _ = await alice.wait_closed()
    assert code == 1008
    assert "too many awareness messages" in team.server.log()


async def test_connections_per_user_limit(make_team):
    team = make_team({"max_connections_per_user": 2})
    path = write_notebook(team.server.root, sources=[""])
    first = await team.join("alice", path)
    second = await team.join("alice", path)  # just under the limit
    with pytest.raises(Exception):  # noqa: B017
        await team.join("alice", path)
    other_user = await team.join("bob", path)  # the limit is per user
    assert first.connected and second.connected and other_user.connected
    assert "too many connections" in team.server.log()
    for client in (first, second, other_user):
        await client.close()


# -- origin, authentication of every route ------------------------------------------------------


async def test_websocket_origin_check_follows_server_settings(team):
    """Cookie-authenticated sockets (browsers) must come from an allowed origin; token
    requests skip the check, as everywhere in jupyter_server (a token cannot be forged)."""
    path = write_notebook(team.server.root, sources=[""])
    session = await open_session(team.server.url, path, "alice-token")
    login = await AsyncHTTPClient().fetch(f"{team.server.url}/api/me?token=alice-token")
    cookie = "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie"))
    url = room_url(team.server.url, session, "x").replace("&token=x", "")
    with pytest.raises(HTTPClientError) as error:
        await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie, "Origin": "http://evil.example"}))
    assert error.value.code == 403
    same_origin = await websocket_connect(
        HTTPRequest(url, headers={"Cookie": cookie, "Origin": team.server.url})
    )
    same_origin.close()


async def test_every_route_requires_authentication(team):
    from jupyter_collab.app import CollabApp

    app = CollabApp()
    app.initialize_handlers()
    patterns = [pattern for pattern, *_ in app.handlers]
    assert len(patterns) >= 3
    path = write_notebook(team.server.root, sources=[""])
    session = await open_session(team.server.url, path, "alice-token")
    cell = "some-cell"
    samples = {
        r"/api/collaboration/session/(.*)": f"/api/collaboration/session/{path}",
        r"/api/collaboration/room/(.*)": f"/api/collaboration/room/json:notebook:{session['fileId']}",
        r"/api/collaboration/permissions/recheck": "/api/collaboration/permissions/recheck",
        **{
            pattern: sample
            for pattern, sample in zip(
                [p for p in patterns if p.startswith("/api/collab/v1")],
                [
                    "/api/collab/v1/rooms",
                    "/api/collab/v1/openapi.yaml",
                    f"/api/collab/v1/notebooks/{path}",
                    f"/api/collab/v1/notebooks/{path}/cells",
                    f"/api/collab/v1/notebooks/{path}/cells/{cell}",
                    f"/api/collab/v1/notebooks/{path}/cells/{cell}/move",
                ],
                strict=True,
            )
        },
    }
    assert set(patterns) == set(samples), "a new route needs a sample here"
    client = AsyncHTTPClient()
    for pattern in patterns:
        url = team.server.url + samples[pattern]
        for method, body in (("GET", None), ("PUT", "{}"), ("POST", "{}"), ("PATCH", "{}"), ("DELETE", None)):
            for token in (None, "wrong-token"):
                headers = {"Authorization": f"token {token}"} if token else {}
                response = await client.fetch(
                    HTTPRequest(
                        url, method=method, body=body, headers=headers, allow_nonstandard_methods=True
                    ),
                    raise_error=False,
                )
                assert response.code in (401, 403, 405), (pattern, method, token, response.code)
        ws_url = url.replace("http://", "ws://")
        if "/room/" in pattern:
            with pytest.raises(HTTPClientError):
                await websocket_connect(ws_url)


# -- fuzzing -------------------------------------------------------------------------------------


async def test_fuzzed_frames_never_crash_or_change_the_room(team):
    path = write_notebook(team.server.root, sources=["stable", "cells"])
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    before = sources(alice)
    valid = [
        sync_frame(
            SyncType.UPDATE,
            crafted_update(alice, lambda d: notebook_of(d).ycells[0]["source"].insert(0, "z")),
        ),
        sync_frame(SyncType.STEP1, alice.doc.get_state()),
        save_request_frame(1),
    ]
    rng = random.Random(1234)
    session = await open_session(team.server.url, path, "carol-token")
    url = room_url(team.server.url, session, "carol-token")
    fuzzer = await websocket_connect(url)
    sent = 0
    for index in range(2000):
        if index % 2:
            frame = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        else:
            frame = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
            frame = bytes(frame)
        try:
            await fuzzer.write_message(frame, binary=True)
            sent += 1
        except Exception:
            fuzzer = await websocket_connect(url)  # closed for a bad frame: come back
        if index % 100 == 0:
            await asyncio.sleep(0)
    assert sent > 1000
    await asyncio.sleep(0.5)
    assert sources(alice) == before
    # The room still works for everybody else.
    bob.notebook().ycells[1]["source"].insert(0, "still ")
    await eventually(lambda: sources(alice) == ["stable", "still cells"])
    await eventually(lambda: disk_sources(team.server, path) == ["stable", "still cells"])
    assert "Traceback" not in team.server.log()
    await alice.close()
    await bob.close()
