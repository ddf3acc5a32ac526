"""Property-based scale-out: random edits on clients spread over two server processes that
share rooms through Redis, with clients hopping between processes and processes killed
(SIGKILL) or stopped (SIGTERM) mid-session, always converge: every client and the file on
disk end equal, with no cell duplicated, lost or made up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import write_notebook
from .redis_cluster import REDIS_SERVER, ClusterServer, RedisServer, join_at, make_cluster, move_to
from .sessions import Session, snapshot, texts

pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="needs redis-server")

CLIENTS = 3
client, position, process = st.integers(0, CLIENTS - 1), st.integers(0, 50), st.integers(0, 1)
step = st.one_of(
    st.tuples(st.just("edit"), client, position, position, texts),
    st.tuples(st.just("insert"), client, position, texts),
    st.tuples(st.just("delete"), client, position),
    st.tuples(st.just("move"), client, position, position),
    st.tuples(st.just("hop"), client),  # reconnect to the other process
    st.tuples(st.just("kill"), process),
    st.tuples(st.just("terminate"), process),
    st.tuples(st.just("pause")),
)


class ClusterSession(Session):
    """The single-process session's edits and convergence checks (every client always
    online; the file is read from the shared root), with clients spread over two processes."""

    def __init__(self, servers: list[ClusterServer], path: str) -> None:
        super().__init__(servers[0], path)
        self.servers = servers
        self.at: list[int] = []  # which process each client is connected to
        self.restarted = False

    async def start(self) -> None:
        for index in range(CLIENTS):
            self.clients.append(await join_at(self.servers[index % 2], self.path))
            self.at.append(index % 2)
            self.online.append(True)
        self.created |= {cell_id for cell_id, _ in snapshot(self.clients[0])}

    async def hop(self, index: int, target: int) -> None:
        await move_to(self.clients[index], self.servers[target])
        self.at[index] = target

    async def lose_process(self, which: int, kill: bool) -> None:
        """The process goes away; its clients move to the other one; it comes back."""
        server = self.servers[which]
        if kill:
            server.kill()
        else:
            server.terminate()
        for index, at in enumerate(self.at):
            if at == which:
                await self.clients[index].wait_closed()
                await self.hop(index, 1 - which)
        server.start()
        self.restarted = True

    async def run(self, steps: list[tuple]) -> None:
        for item in steps:
            kind = item[0]
            if kind == "hop":
                await self.hop(item[1], 1 - self.at[item[1]])
            elif kind in ("kill", "terminate"):
                if not self.restarted:  # one restart per example: each costs seconds
                    await self.lose_process(item[1], kill=kind == "kill")
            else:
                await super().run([item])


async def play(servers: list[ClusterServer], steps: list[tuple]) -> None:
    session = ClusterSession(servers, write_notebook(servers[0].root, sources=["first", "second", "third"]))
    try:
        await session.start()
        await session.run(steps)
        await session.converge()
    finally:
        await session.close()


def test_random_sessions_across_processes_converge(tmp_path_factory):
    base = tmp_path_factory.mktemp("scaleout-property")
    redis = RedisServer(base / "redis").start()
    servers = make_cluster(base, redis, 2, document_save_delay=0.1, max_save_delay=0.3)
    for server in servers:
        server.start()

    # Each example costs seconds (a process restart, a lease takeover): a few, not many.
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steps=st.lists(step, min_size=5, max_size=20))
    def run_example(steps):
        asyncio.run(play(servers, steps))

    try:
        run_example()
    finally:
        for server in servers:
            server.stop()
        redis.kill()
