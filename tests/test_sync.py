"""Clients editing the same notebook converge, and the file on disk follows."""

from __future__ import annotations

import asyncio
import json

import pytest
from pycrdt import Text

from jupyter_collab.client import open_session

from .conftest import join, write_notebook
from .helpers import disk_sources, eventually, sources
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
