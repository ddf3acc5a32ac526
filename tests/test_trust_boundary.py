"""The security review's probes on our own routes, as an attacker sends them (real server,
real sockets): each is refused and changes nothing (shared/docs/security-review.md).

alice owns, bob edits, carol views, dave has no access (tests/team.py); `solutions/*` is
no-access for everyone but alice through a rules file in the roles policy.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pycrdt import Doc, Map
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from jupyter_collab.client import RoomClient, RoomClosed, open_session, room_url
from jupyter_collab.protocol import SyncType, sync_frame

from .helpers import disk_sources, eventually, http, read_notebook, sources, write_notebook
from .team import crafted_update, locked_notebook, notebook_of

SECRET = "the answer is 42"
ALIASES = [
    "./solutions/answer.ipynb",
    "public/../solutions/answer.ipynb",
    "public/%2E%2E/solutions/answer.ipynb",
    "solutions%2Fanswer.ipynb",
    "solutions/./answer.ipynb",
    "solutions//answer.ipynb",
    "solutions/answer.ipynb/.",
]


SCHOOL_RULES = [
    {"users": ["alice"], "role": "owner"},
    {"paths": ["solutions/*"], "role": "none"},
    {"users": ["carol"], "role": "viewer"},
    {"users": ["bob"], "role": "editor"},
]


@pytest.fixture
def school(make_team):
    """RulesPolicy as in the README: solutions/* is no-access for all but the owner."""
    team = make_team(
        policy=[
            'c.CollabApp.permission_policy_class = "jupyter_collab.permissions.RulesPolicy"',
            f"c.RulesPolicy.rules = {SCHOOL_RULES!r}",
        ]
    )
    (team.server.root / "solutions").mkdir()
    (team.server.root / "public").mkdir()
    write_notebook(team.server.root, "solutions/answer.ipynb", [SECRET])
    write_notebook(team.server.root, "public/hw.ipynb", ["homework"])
    return team


NESTED_METADATA = '{"metadata": ' + '{"x": ' * 5000 + "{}" + "}" * 5000 + "}"


async def call(team: Any, method: str, url: str, who: str, body: Any = None, **headers: str) -> HTTPResponse:
    return await http(team.server, method, url, body, token=f"{who}-token", headers=headers)


def file_ids(team: Any) -> int:
    import sqlite3

    databases = list(team.server.data.rglob("file_id_manager.db"))
    with sqlite3.connect(databases[0]) as con:
        return con.execute("SELECT COUNT(*) FROM Files").fetchone()[0]


@pytest.mark.parametrize("alias", ALIASES)
async def test_aliases_never_reach_a_file_on_our_routes(school, alias):
    """C1, M3: every spelling but the canonical one is refused on the REST API and the
    session endpoint, for reads and writes, and no second file id (room) is made."""
    canonical = await call(school, "GET", "/api/collab/v1/notebooks/solutions/answer.ipynb", "alice")
    assert canonical.code == 200
    cell_id = json.loads(canonical.body)["cells"][0]["id"]
    ids_before = file_ids(school)
    probes = [
        ("GET", f"/api/collab/v1/notebooks/{alias}", None),
        ("PATCH", f"/api/collab/v1/notebooks/{alias}/cells/{cell_id}", {"source": "overwritten"}),
        ("POST", f"/api/collab/v1/notebooks/{alias}/cells", {"source": "added"}),
        ("PUT", f"/api/collaboration/session/{alias}", {"format": "json", "type": "notebook"}),
    ]
    # Tornado decodes %2F before any handler sees the path: that spelling *is* the
    # canonical path (same decision, same file id), so only its owner reaches it.
    spellings_of_the_canonical = ("solutions%2Fanswer.ipynb",)
    for who in ("bob", "alice") if alias not in spellings_of_the_canonical else ("bob",):
        for method, url, body in probes:
            response = await call(school, method, url, who, body, **{"If-Match": "*"})
            assert response.code in (400, 404), (who, method, url, response.code)
            assert SECRET not in response.body.decode(errors="replace")
    await asyncio.sleep(0.5)
    assert disk_sources(school.server, "solutions/answer.ipynb") == [SECRET]
    assert file_ids(school) == ids_before


async def test_no_access_answers_like_a_missing_file(school):
    """L1: the same answer for a file you may not see and one that does not exist, and
    nothing indexed for either."""
    ids_before = file_ids(school)
    answers = []
    for path in ("solutions/answer.ipynb", "solutions/missing.ipynb"):
        session = await call(
            school, "PUT", f"/api/collaboration/session/{path}", "bob", {"format": "json", "type": "notebook"}
        )
        rest = await call(school, "GET", f"/api/collab/v1/notebooks/{path}", "bob")
        answers.append(
            [(r.code, json.loads(r.body)["message"].replace(path, "P")) for r in (session, rest)]
        )
    assert answers[0] == answers[1]
    assert answers[0][0][0] == 404
    assert file_ids(school) == ids_before


async def test_thirty_alias_sessions_open_no_room(school):
    """M3: a viewer asking for a session through thirty aliases gets no room for any."""
    for k in range(1, 31):
        response = await call(
            school,
            "PUT",
            "/api/collaboration/session/" + "./" * k + "public/hw.ipynb",
            "carol",
            {"format": "json", "type": "notebook"},
        )
        assert response.code == 400
    rooms = json.loads((await call(school, "GET", "/api/collab/v1/rooms", "alice")).body)["rooms"]
    assert rooms == []


async def test_rest_lock_flags_are_for_owners(team):
    """M2: REST refuses an editor dropping or setting lock flags, and inserting locked cells."""
    path = locked_notebook(team.server.root)
    notebook = json.loads((await call(team, "GET", f"/api/collab/v1/notebooks/{path}", "bob")).body)
    free, frozen, undeletable = (cell["id"] for cell in notebook["cells"])
    url = f"/api/collab/v1/notebooks/{path}/cells"
    probes = [
        ("PATCH", f"{url}/{undeletable}", {"metadata": {}}),
        ("PATCH", f"{url}/{free}", {"metadata": {"editable": False}}),
        ("PATCH", f"{url}/{frozen}", {"source": "no"}),
        ("DELETE", f"{url}/{undeletable}", None),
        ("POST", f"{url}/{frozen}/move", {"index": 0}),
        ("POST", url, {"source": "x", "metadata": {"editable": False, "deletable": False}}),
    ]
    for method, target, body in probes:
        response = await call(team, method, target, "bob", body, **{"If-Match": "*"})
        assert response.code == 403, (method, target, response.body)
    after = json.loads((await call(team, "GET", f"/api/collab/v1/notebooks/{path}", "bob")).body)
    assert [(c["id"], c["source"], c["metadata"]) for c in after["cells"]] == [
        (c["id"], c["source"], c["metadata"]) for c in notebook["cells"]
    ]
    # The owner may do all of it.
    for method, target, body in probes[:2]:
        assert (await call(team, method, target, "alice", body, **{"If-Match": "*"})).code == 200


async def test_rest_trusted_outputs_from_an_editor_are_untrusted(team):
    """C2: an editor's cell claiming trust, with a script output, is kept untrusted."""
    path = write_notebook(team.server.root, sources=["a"])
    alice = await team.join("alice", path)
    html = {"output_type": "display_data", "data": {"text/html": "<script>pwn()</script>"}, "metadata": {}}
    response = await call(
        team,
        "POST",
        f"/api/collab/v1/notebooks/{path}/cells",
        "bob",
        {"id": "T", "metadata": {"trusted": True}, "outputs": [html]},
    )
    assert response.code == 201
    assert json.loads(response.body)["metadata"] == {"trusted": False}
    await eventually(lambda: len(alice.notebook().ycells) == 2)
    assert alice.notebook().ycells[1]["metadata"].to_py() == {"trusted": False}
    # The owner's own trust stays.
    cell_id = alice.notebook().ycells[0].get("id")
    response = await call(
        team,
        "PATCH",
        f"/api/collab/v1/notebooks/{path}/cells/{cell_id}",
        "alice",
        {"metadata": {"trusted": True}},
        **{"If-Match": "*"},
    )
    assert json.loads(response.body)["metadata"] == {"trusted": True}
    await alice.close()


async def test_socket_trust_from_an_editor_is_untrusted_before_anyone_sees_it(team):
    """C2 over the socket: alice never receives a state where bob's cell is trusted."""
    path = write_notebook(team.server.root, sources=["a"])
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    seen: list[Any] = []
    alice.notebook().ycells.observe_deep(
        lambda events: seen.extend(
            c["metadata"].to_py().get("trusted") for c in alice.notebook().ycells if "metadata" in c
        )
    )
    bob.notebook().ycells[0]["metadata"]["trusted"] = True
    await eventually(lambda: alice.notebook().ycells[0]["metadata"].to_py().get("trusted") is False)
    assert True not in seen
    assert bob.connected  # a rewrite, not a refusal: JupyterLab sets trust on every run
    await alice.close()
    await bob.close()


def _rename_and_edit(doc: Doc) -> None:
    nb = notebook_of(doc)
    ycell = nb.ycells[1]
    ycell["id"] = "renamed"
    ycell["source"].insert(0, "PWNED ")
    ycell["metadata"] = Map({})


async def test_socket_rename_with_edit_is_refused(team):
    """H1: changing a locked cell's id in the same update as an edit is refused."""
    path = locked_notebook(team.server.root)
    before = read_notebook(team.server.root, path)["cells"]
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    await bob.send_raw(sync_frame(SyncType.UPDATE, crafted_update(bob, _rename_and_edit)))
    code, reason = await bob.wait_closed()
    assert code == 1003 and "permission_denied" in reason
    await asyncio.sleep(0.5)
    assert sources(alice) == ["free", "frozen", "undeletable"]
    assert read_notebook(team.server.root, path)["cells"] == before
    await alice.close()


async def test_unrelated_history_cannot_rewrite_locked_cells(team):
    """H2: announcing an unknown state vector, then sending a foreign notebook, does not
    bypass the lock rule; a foreign notebook changing only free cells still merges."""
    path = locked_notebook(team.server.root)
    alice = await team.join("alice", path)
    ids = [ycell.get("id") for ycell in alice.notebook().ycells]
    metadata = [ycell["metadata"].to_py() for ycell in alice.notebook().ycells]

    async def adopt(change) -> tuple[int | None, str | None]:
        session = await open_session(team.server.url, path, "bob-token")
        foreign = Doc()  # the same notebook, in a history the server has never seen
        nb = notebook_of(foreign)
        nb.set(alice.notebook().get())
        change(nb)
        bob = RoomClient(room_url(team.server.url, session, "bob-token"), doc=foreign, apply_unrelated=False)
        try:
            await bob.connect()
        except RoomClosed:
            pass
        return await bob.wait_closed()

    def unlock(nb):
        nb.ycells[1]["source"].insert(0, "PWNED ")
        nb.ycells[1]["metadata"] = Map({})

    code, reason = await adopt(unlock)
    assert code == 1003 and "permission_denied" in reason
    await asyncio.sleep(0.5)
    assert sources(alice) == ["free", "frozen", "undeletable"]
    assert [ycell["metadata"].to_py() for ycell in alice.notebook().ycells] == metadata

    code, reason = await adopt(lambda nb: nb.ycells[0]["source"].insert(0, "merged "))
    assert code == 1003 and "unknown_session" in reason
    await eventually(lambda: sources(alice) == ["merged free", "frozen", "undeletable"])
    assert [ycell.get("id") for ycell in alice.notebook().ycells] == ids
    await alice.close()


async def test_pending_update_is_refused(team):
    """M1: an update depending on items the server does not have is refused, not held
    until the owner's typing completes it."""
    path = locked_notebook(team.server.root)
    alice = await team.join("alice", path)
    bob = await team.join("bob", path)
    future = Doc(client_id=alice.doc.client_id)  # the item the owner's next keystroke makes
    future.apply_update(alice.doc.get_update())
    notebook_of(future).ycells[1]["source"].insert(0, "o")
    planted_base = Doc()
    planted_base.apply_update(future.get_update())
    state = planted_base.get_state()
    notebook_of(planted_base).ycells[1]["source"].insert(1, "#PLANTED ")
    planted = planted_base.get_update(state)
    await bob.send_raw(sync_frame(SyncType.UPDATE, planted))
    code, _ = await bob.wait_closed()
    assert code == 1003
    alice.notebook().ycells[1]["source"].insert(0, "o")
    await asyncio.sleep(0.5)
    assert sources(alice)[1] == "ofrozen"
    await eventually(lambda: disk_sources(team.server, path)[1] == "ofrozen")
    await alice.close()


async def test_bad_rest_input_is_a_clear_400(team):
    """L5: deep JSON and ids outside nbformat's pattern are refused with 400, never 500."""
    path = write_notebook(team.server.root, sources=["a"])
    url = f"/api/collab/v1/notebooks/{path}/cells"
    for raw in ("[" * 100_000 + "]" * 100_000, NESTED_METADATA):
        response = await call(team, "POST", url, "bob", raw)
        assert response.code == 400 and "nested" in json.loads(response.body)["message"]
    response = await call(team, "POST", url, "bob", {"id": "../\u202e\u0000x"})
    assert response.code == 400 and "'id'" in json.loads(response.body)["message"]
    with pytest.raises(HTTPClientError):
        await AsyncHTTPClient().fetch(f"{team.server.url}{url}")  # no token
