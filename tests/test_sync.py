"""Clients editing the same notebook converge, and the file on disk follows."""

from __future__ import annotations

import asyncio
import json

import pytest
from pycrdt import Text

from jupyter_collab.client import open_session

from .helpers import disk_sources, eventually, join, sources, write_notebook
from .server import TOKEN


async def test_session_put_status_codes(server):
    path = write_notebook(server.root)
    first = await open_session(server.url, path, TOKEN)
    second = await open_session(server.url, path, TOKEN)
    assert first["fileId"] == second["fileId"]
    assert set(first) == {"format", "type", "fileId", "sessionId"}


async def test_two_clients_converge_and_file_follows(server):
    path = write_notebook(server.root, sources=["a = 1"])
    alice = await join(server, path)
    bob = await join(server, path)
    assert sources(alice) == sources(bob) == ["a = 1"]
    text_a: Text = alice.notebook().ycells[0]["source"]
    text_b: Text = bob.notebook().ycells[0]["source"]
    text_a.insert(len(str(text_a).encode()), "\nb = 2")
    text_b.insert(0, "# top\n")
    await eventually(
        lambda: sources(alice) == sources(bob) and "b = 2" in sources(bob)[0] and "# top" in sources(alice)[0]
    )
    expected = sources(alice)
    await eventually(lambda: disk_sources(server, path) == expected)
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("count", [10])
async def test_ten_clients_converge(server, count):
    path = write_notebook(server.root, sources=["x"])
    clients = await asyncio.gather(*(join(server, path) for _ in range(count)))
    for index, client in enumerate(clients):
        ytext: Text = client.notebook().ycells[0]["source"]
        ytext.insert(0, f"[{index}]")
        client.notebook().append_cell({"cell_type": "markdown", "source": f"cell {index}", "metadata": {}})
    await eventually(
        lambda: len({json.dumps(sources(c)) for c in clients}) == 1 and len(sources(clients[0])) == count + 1
    )
    final = sources(clients[0])
    for index in range(count):
        assert f"[{index}]" in final[0]
        assert f"cell {index}" in final
    await eventually(lambda: disk_sources(server, path) == final)
    for client in clients:
        await client.close()


async def test_concurrent_moves_of_one_cell_leave_one_copy(server):
    """Two people move the same cell at once (JupyterLab: delete + re-insert): one copy stays."""
    path = write_notebook(server.root, sources=["a", "b", "c"])
    alice = await join(server, path)
    bob = await join(server, path)
    await alice.disconnect()
    await bob.disconnect()
    for client, target in ((alice, 2), (bob, 1)):
        nb = client.notebook()
        cell = nb.get_cell(0)
        cell["id"] = nb.ycells[0].get("id")
        with client.doc.transaction():
            del nb.ycells[0]
            nb.ycells.insert(target, nb.create_ycell(cell))
    await alice.connect()
    await bob.connect()
    await alice.save()  # round trips: the server has both clients' offline moves now
    await bob.save()
    await asyncio.sleep(0.3)
    await eventually(lambda: sources(alice) == sources(bob) and len(sources(alice)) == 3)
    assert sorted(sources(alice)) == ["a", "b", "c"]
    await eventually(lambda: sorted(disk_sources(server, path)) == ["a", "b", "c"])
    await alice.close()
    await bob.close()
