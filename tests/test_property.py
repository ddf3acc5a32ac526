"""Property-based: random concurrent sessions always converge, with no cell duplicated or lost.

Each example opens a fresh notebook with several clients and runs random steps: text
edits, cell inserts, deletes and moves (as JupyterLab moves cells: delete and re-insert),
clients going offline and coming back, server restarts, and edits to the file on disk.
Then every client reconnects (a client told to reload is replaced by a fresh one, as a
browser tab would be) and everything must converge: every client's document, and the
file on disk.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import write_notebook
from .server import ServerProcess
from .sessions import Session, step


@pytest.mark.parametrize("history", [True, False], ids=["history", "no-history"])
def test_random_sessions_converge(tmp_path_factory, history):
    server = ServerProcess(
        tmp_path_factory.mktemp("property"),
        config={"history_enabled": history, "document_save_delay": 0.1, "max_save_delay": 0.3},
    ).start()

    @settings(
        max_examples=6,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(steps=st.lists(step, min_size=5, max_size=25))
    def run_example(steps):
        async def main():
            path = write_notebook(server.root, sources=["first", "second", "third"])
            session = Session(server, path)
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
        server.stop()
