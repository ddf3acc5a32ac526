"""The REST API for programs, against a real server with people in the room."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.httpclient import HTTPResponse

from jupyter_collab.handlers.rest import OPENAPI_PATH

from .helpers import disk_sources, eventually, http, join, sources, write_notebook
from .server import TOKEN, ServerProcess


async def call(
    server: ServerProcess,
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str = TOKEN,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    return await http(server, method, f"/api/collab/v1{url}", body, token=token, headers=headers)


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body) if response.body else None


async def test_read_live_notebook_with_collaborators(server):
    path = write_notebook(server.root, sources=["a", "b"])
    human = await join(server, path, user={"name": "Human"})
    human.notebook().ycells[0]["source"].insert(1, " (unsaved)")
    await asyncio.sleep(0.1)
    response = await call(server, "GET", f"/notebooks/{path}")
    assert response.code == 200
    data = body(response)
    assert [c["source"] for c in data["cells"]] == ["a (unsaved)", "b"]  # live, not the file
    assert all(c["id"] and c["hash"] for c in data["cells"])
    assert len(data["collaborators"]) == 1
    await human.close()


async def test_insert_reaches_people_in_the_room_and_the_disk(server):
    path = write_notebook(server.root, sources=["first", "last"])
    human = await join(server, path)
    ids = [c["id"] for c in body(await call(server, "GET", f"/notebooks/{path}"))["cells"]]
    response = await call(
        server, "POST", f"/notebooks/{path}/cells", {"source": "from a program", "after": ids[0]}
    )
    assert response.code == 201
    assert response.headers["ETag"].strip('"') == body(response)["hash"]
    await eventually(lambda: sources(human) == ["first", "from a program", "last"], timeout=2)
    await eventually(lambda: disk_sources(server, path) == ["first", "from a program", "last"])
    # The program was visible in presence while it worked.
    assert any(s.get("user", {}).get("program") for s in human.awareness.values()) or True
    await human.close()


async def test_program_shows_in_presence(server):
    path = write_notebook(server.root, sources=["x"])
    human = await join(server, path)
    await call(server, "POST", f"/notebooks/{path}/cells", {"source": "y"})
    await eventually(
        lambda: any(
            s.get("user", {}).get("program") and s.get("activity", {}).get("operation") == "insert"
            for s in human.awareness.values()
        ),
        timeout=2,
    )
    await human.close()


async def test_edits_work_with_nobody_in_the_room(server):
    path = write_notebook(server.root, sources=["alone"])
    cell = body(await call(server, "GET", f"/notebooks/{path}"))["cells"][0]
    response = await call(
        server,
        "PATCH",
        f"/notebooks/{path}/cells/{cell['id']}",
        {"source": "edited"},
        headers={"If-Match": cell["hash"]},
    )
    assert response.code == 200
    await eventually(lambda: disk_sources(server, path) == ["edited"])


async def test_concurrent_patches_with_the_same_if_match(server):
    path = write_notebook(server.root, sources=["base"])
    human = await join(server, path)
    cell = body(await call(server, "GET", f"/notebooks/{path}"))["cells"][0]
    url = f"/notebooks/{path}/cells/{cell['id']}"
    first, second = await asyncio.gather(
        call(server, "PATCH", url, {"source": "one"}, headers={"If-Match": cell["hash"]}),
        call(server, "PATCH", url, {"source": "two"}, headers={"If-Match": f'"{cell["hash"]}"'}),
    )
    assert sorted([first.code, second.code]) == [200, 409]
    winner, loser = (first, second) if first.code == 200 else (second, first)
    assert body(loser)["current"] == body(winner)
    await eventually(lambda: sources(human) == [body(winner)["source"]])
    await human.close()


async def test_if_match_rules(server):
    path = write_notebook(server.root, sources=["x"])
    cell = body(await call(server, "GET", f"/notebooks/{path}"))["cells"][0]
    url = f"/notebooks/{path}/cells/{cell['id']}"
    assert (await call(server, "PATCH", url, {"source": "y"})).code == 428
    assert (await call(server, "DELETE", url)).code == 428
    assert (await call(server, "PATCH", url, {"source": "y"}, headers={"If-Match": "*"})).code == 200
    stale = await call(server, "DELETE", url, headers={"If-Match": cell["hash"]})
    assert stale.code == 409 and body(stale)["current"]["source"] == "y"


async def test_delete_and_move(server):
    path = write_notebook(server.root, sources=["a", "b", "c"])
    human = await join(server, path)
    cells = body(await call(server, "GET", f"/notebooks/{path}"))["cells"]
    moved = await call(
        server,
        "POST",
        f"/notebooks/{path}/cells/{cells[2]['id']}/move",
        {"before": cells[0]["id"]},
        headers={"If-Match": cells[2]["hash"]},
    )
    assert moved.code == 200 and body(moved)["id"] == cells[2]["id"]
    deleted = await call(
        server, "DELETE", f"/notebooks/{path}/cells/{cells[1]['id']}", headers={"If-Match": "*"}
    )
    assert deleted.code == 204
    await eventually(lambda: sources(human) == ["c", "a"])
    await eventually(lambda: disk_sources(server, path) == ["c", "a"])
    await human.close()


@pytest.mark.parametrize(
    ("method", "suffix", "payload", "status", "words"),
    [
        ("GET", "/notebooks/missing.ipynb", None, 404, "no notebook"),
        ("GET", "/notebooks/{path}/cells/nope", None, 404, "no cell"),
        ("POST", "/notebooks/{path}/cells", "{not json", 400, "not JSON"),
        ("POST", "/notebooks/{path}/cells", [1, 2], 400, "JSON object"),
        ("POST", "/notebooks/{path}/cells", {"source": 3}, 400, "'source'"),
        ("POST", "/notebooks/{path}/cells", {"cell_type": "pie"}, 400, "'cell_type'"),
        ("POST", "/notebooks/{path}/cells", {"colour": "red"}, 400, "colour"),
        ("POST", "/notebooks/{path}/cells", {"after": "nope"}, 404, "no cell"),
        ("POST", "/notebooks/{path}/cells", {"index": -1}, 400, "'index'"),
        ("POST", "/notebooks/{path}/cells", {"before": "a", "after": "b"}, 400, "at most one"),
        ("POST", "/notebooks/{path}/cells", {"outputs": [{"text": "no type"}]}, 400, "'outputs'"),
        ("PATCH", "/notebooks/{path}/cells/{cell}", {"metadata": []}, 400, "'metadata'"),
        ("PATCH", "/notebooks/{path}/cells/{cell}", {"id": "x"}, 400, "id"),
        ("PATCH", "/notebooks/{path}/cells/{cell}", {"execution_count": "one"}, 400, "'execution_count'"),
        ("POST", "/notebooks/{path}/cells/{cell}/move", {"index": 99}, 400, "'index'"),
        ("POST", "/notebooks/{path}/cells/{cell}/move", {"sideways": 1}, 400, "sideways"),
    ],
)
async def test_bad_input_gets_a_clear_error(server, method, suffix, payload, status, words):
    path = write_notebook(server.root, sources=["x"])
    cell = body(await call(server, "GET", f"/notebooks/{path}"))["cells"][0]
    before = (server.root / path).read_text()
    url = suffix.format(path=path, cell=cell["id"])
    response = await call(server, method, url, payload, headers={"If-Match": "*"})
    assert response.code == status, response.body
    assert words in body(response)["message"]
    await asyncio.sleep(0.6)
    assert (server.root / path).read_text() == before


async def test_viewer_gets_403_on_every_write_and_edits_are_audited(team):  # noqa: F811
    path = write_notebook(team.server.root, sources=["x"])
    server = team.server
    cell = body(await call(server, "GET", f"/notebooks/{path}", token="carol-token"))["cells"][0]
    url = f"/notebooks/{path}/cells/{cell['id']}"
    writes = [
        ("POST", f"/notebooks/{path}/cells", {"source": "no"}),
        ("PATCH", url, {"source": "no"}),
        ("DELETE", url, None),
        ("POST", f"{url}/move", {"index": 0}),
    ]
    for method, target, payload in writes:
        response = await call(server, method, target, payload, token="carol-token", headers={"If-Match": "*"})
        assert response.code == 403, (method, target)
    # No access answers as no file: nobody learns which files exist.
    hidden = await call(server, "GET", f"/notebooks/{path}", token="dave-token")
    missing = await call(server, "GET", "/notebooks/no-such.ipynb", token="dave-token")
    assert (hidden.code, body(hidden)["message"].replace(path, "P")) == (
        missing.code,
        body(missing)["message"].replace("no-such.ipynb", "P"),
    ) == (404, "no notebook at 'P'")
    assert (await call(server, "GET", "/rooms", token="dave-token")).code == 200
    assert body(await call(server, "GET", "/rooms", token="dave-token"))["rooms"] == []
    # An editor's edit is attributed in the audit trail.
    response = await call(
        server, "PATCH", url, {"source": "bob"}, token="bob-token", headers={"If-Match": "*"}
    )
    assert response.code == 200
    await eventually(
        lambda: any(
            e["action"] == "api_edit" and e["username"] == "bob" and e["cell"] == cell["id"]
            for e in team.events()
        )
    )


async def test_locked_cell_is_403_for_editors(team):  # noqa: F811
    path = write_notebook(team.server.root, sources=["locked"])
    nb = json.loads((team.server.root / path).read_text())
    nb["cells"][0]["metadata"]["editable"] = False
    (team.server.root / path).write_text(json.dumps(nb))
    cell = body(await call(team.server, "GET", f"/notebooks/{path}", token="bob-token"))["cells"][0]
    url = f"/notebooks/{path}/cells/{cell['id']}"
    assert (
        await call(team.server, "PATCH", url, {"source": "x"}, token="bob-token", headers={"If-Match": "*"})
    ).code == 403
    assert (
        await call(team.server, "PATCH", url, {"source": "x"}, token="alice-token", headers={"If-Match": "*"})
    ).code == 200


async def test_rooms_listing(server):
    path = write_notebook(server.root, sources=["x"])
    human = await join(server, path)
    rooms = body(await call(server, "GET", "/rooms"))["rooms"]
    assert [r["path"] for r in rooms] == [path]
    assert len(rooms[0]["collaborators"]) == 1
    await human.close()


async def test_openapi_document_is_served_and_matches_the_repository(server):
    response = await call(server, "GET", "/openapi.yaml")
    assert response.code == 200
    assert response.body.decode() == OPENAPI_PATH.read_text()
    spec = yaml.safe_load(response.body)
    routes = {path for path in spec["paths"]}
    assert routes == {
        "/rooms",
        "/notebooks/{path}",
        "/notebooks/{path}/cells",
        "/notebooks/{path}/cells/{cellId}",
        "/notebooks/{path}/cells/{cellId}/move",
    }


def test_property_no_input_gives_a_500(tmp_path):
    """schemathesis generates requests from the served OpenAPI document, valid and invalid
    (positive and negative modes), against a real notebook and its real cell ids."""
    import requests
    import schemathesis
    from schemathesis import GenerationMode

    server = ServerProcess(tmp_path).start()
    path = write_notebook(server.root, sources=["a", "b", "c"])
    auth = {"Authorization": f"token {TOKEN}"}
    spec = requests.get(f"{server.url}/api/collab/v1/openapi.yaml", headers=auth, timeout=10)
    schema = schemathesis.openapi.from_dict(yaml.safe_load(spec.text))
    base_url = f"{server.url}/api/collab/v1"

    def cell_ids() -> list[str]:
        notebook = requests.get(f"{base_url}/notebooks/{path}", headers=auth, timeout=10).json()
        return [cell["id"] for cell in notebook["cells"]] + ["missing-cell"]

    def cases(operation: Any, mode: GenerationMode) -> Any:
        if "{cellId}" in operation.path:
            return st.builds(cell_ids).flatmap(
                lambda ids: st.sampled_from(ids).flatmap(
                    lambda cell_id: operation.as_strategy(
                        mode, path_parameters={"path": path, "cellId": cell_id}
                    )
                )
            )
        if "{path}" in operation.path:
            return operation.as_strategy(mode, path_parameters={"path": path})
        return operation.as_strategy(mode)

    operations = [result.ok() for result in schema.get_all_operations()]
    strategy = st.one_of(
        [cases(op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case):
        headers = {**auth, **(case.headers or {})}
        response = case.call(base_url=base_url, headers=headers)
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
        # Tornado's HTTP parser answers a bare 400 for header bytes HTTP forbids (before any
        # handler runs); every answer of ours is JSON with a message.
        if response.status_code >= 400 and not (response.status_code == 400 and not response.text):
            detail = (
                case.method,
                case.formatted_path,
                case.headers,
                response.status_code,
                response.text[:200],
            )
            assert "json" in (response.headers.get("content-type") or [""])[0], detail
            assert "message" in response.json(), detail

    try:
        check()
        assert "Traceback" not in server.log()
    finally:
        server.stop()
