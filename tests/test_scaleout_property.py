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

from .conftest import write_notebook
from .redis_cluster import ClusterServer, RedisServer, join_at, make_cluster, move_to
from .test_property import Session, snapshot, texts

pytestmark = pytest.mark.skipif(not Path("/usr/bin/redis-server").exists(), reason="needs redis-server")

CLIENTS = 3
step = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, CLIENTS - 1), st.integers(0, 50), st.integers(0, 50), texts),
    st.tuples(st.just("insert"), st.integers(0, CLIENTS - 1), st.integers(0, 50), texts),
    st.tuples(st.just("delete"), st.integers(0, CLIENTS - 1), st.integers(0, 50)),
    st.tuples(st.just("move"), st.integers(0, CLIENTS - 1), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("hop"), st.integers(0, CLIENTS - 1)),
    st.tuples(st.just("kill"), st.integers(0, 1)),
    st.tuples(st.just("terminate"), st.integers(0, 1)),
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


def test_random_sessions_across_processes_converge(tmp_path_factory):
    base = tmp_path_factory.mktemp("scaleout-property")
    redis = RedisServer(base / "redis").start()
    servers = make_cluster(base, redis, 2, document_save_delay=0.1, max_save_delay=0.3)
    for server in servers:
        server.start()

    @settings(
        max_examples=5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(steps=st.lists(step, min_size=5, max_size=20))
    def run_example(steps):
        async def main():
            path = write_notebook(servers[0].root, sources=["first", "second", "third"])
            session = ClusterSession(servers, path)
            await session.start()
            try:
                await session.run(steps)
                await session.converge()
            finally:
                await session.close()

        asyncio.run(main())

    try:
        run_example()
    finally:
        for server in servers:
            server.stop()
        redis.kill()
