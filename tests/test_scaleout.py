"""Scale-out: three real server processes on one root, sharing live rooms through a real
Redis. Clients on different processes converge, the file is written by one process at a
time, and nothing is lost when a process is killed or Redis restarts empty.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import redis
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_collab.client import RoomClient, open_session

from .harness import free_port
from .helpers import append_text, disk_sources, eventually, log_lines, sources, write_notebook
from .redis_cluster import (
    REDIS_SERVER,
    ROLES,
    ClusterServer,
    RedisServer,
    join_at,
    make_cluster,
    move_to,
    room_of,
    set_roles,
)
from .server import TOKEN, ServerProcess

pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="needs redis-server")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[RedisServer, list[ClusterServer]]]:
    base = tmp_path_factory.mktemp("scaleout")
    redis = RedisServer(base / "redis").start()
    servers = make_cluster(base, redis, 3)
    for server in servers:
        server.start()
    yield redis, servers
    for server in servers:
        server.stop()
    redis.kill()


@pytest.fixture
def nodes(cluster) -> list[ClusterServer]:
    """The cluster's servers, all running (a previous test may have killed one)."""
    redis, servers = cluster
    if redis.proc is None or redis.proc.poll() is not None:
        redis.start()
    set_roles(servers[0].root, ROLES)
    for server in servers:
        if server.proc is None or server.proc.poll() is not None:
            server.start()
    return servers


def converged(clients: list[RoomClient], server: ClusterServer, path: str) -> bool:
    views = {json.dumps(sources(client)) for client in clients}
    return len(views) == 1 and json.loads(views.pop()) == disk_sources(server, path)


async def two_clients(a: ClusterServer, b: ClusterServer, *cells: str) -> tuple[str, RoomClient, RoomClient]:
    """A new notebook, opened first on `a` (so that `a` holds its save lease), then on `b`."""
    path = write_notebook(a.root, sources=list(cells))
    return path, await join_at(a, path), await join_at(b, path)


async def close_all(clients: list[RoomClient]) -> None:
    for client in clients:
        await client.close()


async def test_edits_on_three_processes_converge_and_one_process_saves(nodes):
    a, b, c = nodes
    path = write_notebook(a.root, sources=["one", "two", "three"])
    clients = [await join_at(a, path), await join_at(b, path), await join_at(c, path)]
    for round_ in range(5):  # concurrent typing on every process, and structure changes
        for index, client in enumerate(clients):
            append_text(client, index, f"[{round_}{index}]")
        await asyncio.sleep(0.01)
    nb = clients[1].notebook()
    nb.ycells.append(nb.create_ycell({"cell_type": "markdown", "source": "from b", "metadata": {}}))
    del clients[2].notebook().ycells[2]
    clients[0].set_awareness({"cursor": "a's"})
    expected = ["one" + "".join(f"[{r}0]" for r in range(5)), "two" + "".join(f"[{r}1]" for r in range(5))]
    await eventually(lambda: converged(clients, a, path) and sources(clients[0]) == [*expected, "from b"])
    ids = [ycell.get("id") for ycell in clients[2].notebook().ycells]
    assert len(ids) == len(set(ids)) == 3
    # Presence crosses processes, with the identity stamped where the client is connected.
    await eventually(lambda: clients[2].awareness.get(clients[0].doc.client_id, {}).get("cursor") == "a's")
    assert clients[2].awareness[clients[0].doc.client_id]["user"]["username"] == "alice"
    # One process (the first to open the room: it holds the save lease) wrote every save.
    assert a.saves(path) and set(a.saves(path)) == {a.proc.pid}
    await close_all(clients)


async def test_killed_process_clients_move_and_the_lease_moves(nodes):
    a, b, _ = nodes
    path, on_a, on_b = await two_clients(a, b, "x", "y")  # a saves
    append_text(on_a, 0, "-before")
    await eventually(lambda: sources(on_b)[0] == "x-before" and disk_sources(a, path)[0] == "x-before")
    a.kill()
    await on_a.wait_closed()
    append_text(on_a, 1, "-offline")  # made while its process is gone
    await move_to(on_a, b)  # the load balancer sends it to a surviving process
    append_text(on_b, 0, "-after")
    await eventually(lambda: sources(on_a) == sources(on_b) == ["x-before-after", "y-offline"])
    # b takes the lease over once a's lease runs out, and writes the later edits.
    await eventually(lambda: disk_sources(b, path) == ["x-before-after", "y-offline"], timeout=20)
    assert b.saves(path)[-1] == b.proc.pid
    await close_all([on_a, on_b])


async def test_a_change_on_disk_is_merged_once(nodes):
    a, b, c = nodes
    path, on_a, on_b = await two_clients(a, b, "keep", "edit me")
    on_c = await join_at(c, path)
    append_text(on_b, 0, "+typed")
    await eventually(lambda: disk_sources(a, path) == ["keep+typed", "edit me"])
    notebook = nbformat.read(a.root / path, as_version=4)
    notebook.cells[1].source += " from an editor"
    nbformat.write(notebook, a.root / path)  # every process sees the file change; one merges
    clients = [on_a, on_b, on_c]
    await eventually(lambda: sources(on_c) == ["keep+typed", "edit me from an editor"])
    await asyncio.sleep(1.0)  # a second merge, if any process made one, would show by now
    assert converged(clients, a, path) and sources(on_b) == ["keep+typed", "edit me from an editor"]
    assert [len(log_lines(server, "merged out-of-band changes of", path)) for server in nodes] == [1, 0, 0]
    await close_all(clients)


async def test_redis_restart_loses_nothing(cluster, nodes):
    redis, _ = cluster
    a, b, _ = nodes
    path, on_a, on_b = await two_clients(a, b, "p", "q")
    append_text(on_a, 0, "-1")
    await eventually(lambda: sources(on_b)[0] == "p-1")
    redis.kill()  # no persistence: every key, stream and lease is gone
    append_text(on_a, 0, "-down-a")
    append_text(on_b, 1, "-down-b")
    # Each process keeps serving its own clients while Redis is away.
    second = await join_at(b, path)
    await eventually(lambda: sources(second) == ["p-1", "q-down-b"])
    await eventually(lambda: log_lines(a, "lost the redis backplane") and log_lines(b, "lost the redis"))
    redis.start()  # same port, empty
    clients = [on_a, on_b, second]
    await eventually(lambda: converged(clients, a, path) and sources(on_a) == ["p-1-down-a", "q-down-b"], 20)
    assert log_lines(a, "redis backplane is back") and log_lines(b, "redis backplane is back")
    append_text(second, 1, "-later")
    await eventually(lambda: converged(clients, a, path) and sources(on_a)[1] == "q-down-b-later")
    await close_all(clients)


async def test_a_process_opening_the_room_as_redis_returns_joins_the_live_state(cluster, nodes):
    redis, _ = cluster
    a, b, c = nodes
    path, on_a, on_b = await two_clients(a, b, "u", "v")
    redis.kill()
    append_text(on_a, 0, "-a")
    append_text(on_b, 1, "-b")
    redis.start()  # empty; c opens the room before a and b may have republished it
    on_c = await join_at(c, path)
    clients = [on_a, on_b, on_c]
    await eventually(lambda: converged(clients, a, path) and sources(on_c) == ["u-a", "v-b"], 20)
    assert len({ycell.get("id") for ycell in on_c.notebook().ycells}) == 2
    await close_all(clients)


async def test_a_room_whose_snapshot_is_gone_opens_from_its_file(cluster, nodes):
    server, _ = cluster
    a, b, _ = nodes
    path = write_notebook(a.root, sources=["w"])
    on_a = await join_at(a, path)
    append_text(on_a, 0, "-saved")
    await eventually(lambda: disk_sources(a, path) == ["w-saved"])
    room = room_of(on_a)
    await on_a.close()
    with redis.Redis(port=server.port) as r:  # the room closes on a; then its snapshot expires
        await eventually(lambda: not r.exists(f"collab:{{{room}}}:lease"), timeout=20)
        r.delete(f"collab:{{{room}}}:snapshot")
        assert r.xlen(f"collab:{{{room}}}:updates") > 0  # a's updates stay, without their base
    on_b = await join_at(b, path)
    assert sources(on_b) == ["w-saved"]
    await on_b.close()


async def test_revocation_on_one_process_reaches_the_others(nodes):
    a, b, c = nodes
    path = write_notebook(a.root, sources=["s"])
    bob_on_b = await join_at(b, path, token="bob-token")
    bob_on_c = await join_at(c, path, token="bob-token")
    set_roles(a.root, {**ROLES, "bob": "none"})
    await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{a.url}/api/collaboration/permissions/recheck",
            method="POST",
            body="{}",
            headers={"Authorization": "token alice-token"},
        )
    )
    assert (await bob_on_b.wait_closed())[0] == 4403
    assert (await bob_on_c.wait_closed())[0] == 4403
    await close_all([bob_on_b, bob_on_c])


async def test_process_behind_the_trim_point_repairs_itself(cluster, nodes):
    server, _ = cluster
    a, b, _ = nodes
    _, on_a, on_b = await two_clients(a, b, "m", "n")
    assert b.proc is not None
    b.proc.send_signal(signal.SIGSTOP)  # b stops reading (a long pause)
    try:
        for i in range(5):
            append_text(on_a, 0, f"-{i}")
            await asyncio.sleep(0.02)
        room = room_of(on_a)
        await eventually(lambda: sources(on_a)[0] == "m-0-1-2-3-4")
        with redis.Redis(port=server.port) as r:  # everything b has not read is trimmed away
            stream = f"collab:{{{room}}}:updates"
            await eventually(lambda: r.xlen(stream) > 0)
            r.xtrim(stream, maxlen=0)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    await eventually(lambda: sources(on_b) == ["m-0-1-2-3-4", "n"])
    assert log_lines(b, "repairing by state exchange")
    await close_all([on_a, on_b])


async def test_no_redis_at_all_answers_503_not_a_server_error(tmp_path):
    """Redis down from the start: opening a notebook says "try again" (503) in words,
    instead of an internal error, and the server keeps running."""
    server = ServerProcess(tmp_path, config={"backplane_url": f"redis://127.0.0.1:{free_port()}"}).start()
    try:
        path = write_notebook(server.root, sources=["x"])
        with pytest.raises(HTTPClientError) as raised:
            await open_session(server.url, path, TOKEN)
        assert raised.value.code == 503
        assert "try again" in raised.value.response.body.decode()
        assert "Traceback" not in server.log()
    finally:
        server.stop()
