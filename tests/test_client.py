"""The Python client for programs (`NotebookClient`, `SyncNotebookClient`) against real servers,
next to human-like collaborators (`RoomClient`s editing by index, as a browser tab does)."""

from __future__ import annotations

import asyncio
import itertools
import textwrap
import threading
from typing import Any

import pytest

from jupyter_collab.client import (
    AccessDenied,
    CellConflict,
    CellLocked,
    CellNotFound,
    Change,
    ChangeRefused,
    NotebookClient,
    ReadOnlyError,
    RoomClient,
    SyncNotebookClient,
)
from jupyter_collab.documents.cells import read_cells

from .helpers import (
    append_text,
    cell_ids,
    disk_sources,
    eventually,
    join,
    recheck_permissions,
    sources,
    write_notebook,
)
from .server import TOKEN, ServerProcess
from .team import ROLES, Team, locked_notebook, team_server

FAST = {"min_backoff": 0.05, "max_backoff": 0.3, "timeout": 15.0}


def program(server: ServerProcess, path: str, *, token: str = TOKEN, name: str = "bot") -> NotebookClient:
    return NotebookClient(server.url, path, token=token, name=name, **FAST)


def add_cell(client: RoomClient, source: str, index: int | None = None, cell_type: str = "code") -> None:
    """What a person does in JupyterLab: insert a cell at a position."""
    nb = client.notebook()
    cell: dict[str, Any] = {"cell_type": cell_type, "source": source, "metadata": {}}
    if cell_type == "code":
        cell["outputs"] = []
    at = len(nb.ycells) if index is None else index
    nb.ycells.insert(at, nb.create_ycell(cell))


async def cell_sources(nb: NotebookClient) -> list[str]:
    return [cell["source"] for cell in await nb.cells()]


def program_sources(nb: NotebookClient) -> list[str]:
    return [cell["source"] for cell in read_cells(nb.notebook())]


def program_states(client: RoomClient) -> list[dict[str, Any]]:
    return [s["user"] for s in client.awareness.values() if s.get("user", {}).get("program")]


@pytest.fixture
def team(tmp_path):
    team = team_server(tmp_path)
    yield team
    team.server.stop()


# -- joining, reading, presence -----------------------------------------------------------------


async def test_program_joins_reads_cells_and_shows_in_presence(server):
    path = write_notebook(server.root, sources=["first", "second"])
    human = await join(server, path)
    async with program(server, path, name="report-bot") as nb:
        cells = await nb.cells()
        assert [c["source"] for c in cells] == ["first", "second"]
        assert [c["id"] for c in cells] == cell_ids(human)
        assert all(len(c["hash"]) == 20 for c in cells)
        assert (await nb.cell(cells[1]["id"]))["source"] == "second"
        with pytest.raises(CellNotFound):
            await nb.cell("no-such-cell")
        assert nb.role == "owner"  # the single user of this server
        states = await eventually(lambda: program_states(human))
        assert states[0]["program_name"] == "report-bot"
        assert states[0]["agent"].startswith("jupyter-collab-client")
        assert states[0]["username"]  # stamped by the server: who runs the program
        human.set_awareness({"cursor": 1})
        people = await eventually(lambda: nb.collaborators())
        assert "program" not in people[0] and people[0]["role"] == "owner"
    await eventually(lambda: not program_states(human))  # gone from presence on exit
    await human.close()


# -- editing next to people ------------------------------------------------------------------------


async def test_program_and_human_editing_at_once_converge_without_duplicates(server):
    path = write_notebook(server.root, sources=["shared"])
    human = await join(server, path)
    async with program(server, path) as nb:
        shared = (await nb.cells())[0]["id"]
        for round_ in range(10):
            # Both at once, neither waiting for the other.
            add_cell(human, f"human {round_}", index=0)
            append_text(human, cell_ids(human).index(shared), f" h{round_}")
            await nb.insert(f"program {round_}", after=shared)
            cell = await nb.cell(shared)
            await nb.replace_source(shared, cell["source"] + f" p{round_}")
            await asyncio.sleep(0.01)
        await nb.flush()
        await eventually(lambda: sources(human) == program_sources(nb))
        final = sources(human)
        assert len(final) == 21
        assert len(set(cell_ids(human))) == 21  # no duplicated cell
        assert sorted(s for s in final if s.startswith("human")) == sorted(f"human {i}" for i in range(10))
        assert sorted(s for s in final if s.startswith("program")) == sorted(
            f"program {i}" for i in range(10)
        )
        # Every keystroke of both is in the shared cell (minimal text edits, not overwrites).
        merged = next(s for s in final if s.startswith("shared"))
        assert all(f" h{i}" in merged and f" p{i}" in merged for i in range(10))
        assert final.index(merged) < final.index("program 0")  # inserted after the shared cell
    await eventually(lambda: disk_sources(server, path) == final)
    await human.close()


async def test_expect_refuses_an_edit_when_the_cell_changed(server):
    path = write_notebook(server.root, sources=["x = 1", "y = 2"])
    human = await join(server, path)
    async with program(server, path) as nb:
        first, second = await nb.cells()
        append_text(human, 0, "  # changed by a person")
        await eventually(lambda: nb.notebook().ycells[0]["source"].to_py().endswith("person"))
        for attempt in (
            nb.replace_source(first["id"], "x = 100", expect=first["hash"]),
            nb.set_metadata(first["id"], {"tags": ["t"]}, expect=first["hash"]),
            nb.delete(first["id"], expect=first["hash"]),
            nb.move(first["id"], after=second["id"], expect=first["hash"]),
        ):
            with pytest.raises(CellConflict) as conflict:
                await attempt
            assert conflict.value.current["source"] == "x = 1  # changed by a person"
        # Nothing of the refused edits was applied, here or anywhere.
        await nb.flush()
        assert sources(human) == ["x = 1  # changed by a person", "y = 2"]
        assert (await nb.cells())[0]["metadata"] == first["metadata"]
        # With the current hash, the edit goes through.
        current = await nb.cell(first["id"])
        updated = await nb.replace_source(first["id"], "x = 100", expect=current["hash"])
        assert updated["hash"] != current["hash"]
        # The second cell did not change: its hash still holds.
        await nb.set_outputs(
            second["id"],
            [{"output_type": "stream", "name": "stdout", "text": "2\n"}],
            execution_count=1,
            expect=second["hash"],
        )
    await eventually(lambda: sources(human) == ["x = 100", "y = 2"])
    outputs = human.notebook().get()["cells"][1]["outputs"]
    assert outputs[0]["text"] == "2\n"
    await human.close()


async def test_insert_and_move_by_id_while_a_human_inserts_above(server):
    path = write_notebook(server.root, sources=["a", "b", "c"])
    human = await join(server, path)
    async with program(server, path) as nb:
        a, b, c = (cell["id"] for cell in await nb.cells())
        # The person inserts cells above while the program's edits are in flight.
        for index in range(3):
            add_cell(human, f"above {index}", index=0)
        await nb.insert("before b", before=b)
        await nb.insert("after b", after=b)
        await nb.move(a, after=c)
        await nb.flush()
        expected = ["above 2", "above 1", "above 0", "before b", "b", "after b", "c", "a"]
        await eventually(lambda: sources(human) == expected)
        assert await cell_sources(nb) == expected
        # Now that the program sees the inserted cells, positions still come from ids.
        markdown = await nb.insert("## notes", cell_type="markdown", before=c, metadata={"tags": ["x"]})
        assert markdown["cell_type"] == "markdown" and markdown["metadata"] == {"tags": ["x"]}
        await nb.insert("first", index=0)
        await nb.flush()
    await eventually(lambda: sources(human) == ["first", *expected[:6], "## notes", "c", "a"])
    assert len(set(cell_ids(human))) == 10
    await human.close()


# -- watching ------------------------------------------------------------------------------------------


async def test_watching_changes_by_cell_id(server):
    path = write_notebook(server.root, sources=["one", "two"])
    human = await join(server, path)
    async with program(server, path) as nb:
        one, two = (cell["id"] for cell in await nb.cells())
        seen: list[Change] = []
        unsubscribe = nb.on_change(seen.append, local=True)
        async with nb.changes() as changes:
            append_text(human, 0, "!")
            change = await changes.next(timeout=5)
            assert change.changed == (one,) and not change.inserted and not change.local
            add_cell(human, "three")
            change = await changes.next(timeout=5)
            assert len(change.inserted) == 1 and change.cell_ids == set(change.inserted)
            three = change.inserted[0]
            # The program's own edits are not in this stream (local=False) ...
            await nb.replace_source(two, "two, by the program")
            # ... but a person's move (JupyterLab: delete and re-insert) and delete are.
            ynb = human.notebook()
            moved = ynb.get_cell(0)
            moved["id"] = one
            with human.doc.transaction():
                del ynb.ycells[0]
                ynb.ycells.insert(2, ynb.create_ycell(moved))
            change = await changes.next(timeout=5)
            assert change.moved == (one,) and not change.inserted and not change.deleted
            with human.doc.transaction():
                del ynb.ycells[1]
            change = await changes.next(timeout=5)
            assert change.deleted == (three,) and change.cell_ids == {three}
        unsubscribe()
        local = [c for c in seen if c.local]
        assert [c.changed for c in local] == [(two,)]
        assert {cid for c in seen if not c.local for cid in c.cell_ids} == {one, three}
    await human.close()


async def test_changes_stream_ends_when_the_client_closes(server):
    path = write_notebook(server.root, sources=["x"])
    nb = await program(server, path).open()
    received = []

    async def watch() -> None:
        async for change in nb.changes():
            received.append(change)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.1)
    await nb.close()
    await asyncio.wait_for(watcher, 5)
    assert received == []


# -- restarts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["restart", "sigterm", "sigkill"])
async def test_program_survives_a_server_restart_and_keeps_offline_edits(make_server, stop):
    server = make_server({"document_save_delay": 0.1, "max_save_delay": 0.2})
    path = write_notebook(server.root, sources=["kept"])
    human = await join(server, path)
    async with program(server, path) as nb:
        kept = (await nb.cells())[0]["id"]
        await nb.insert("before the restart", after=kept)
        await nb.flush()
        await eventually(lambda: "before the restart" in disk_sources(server, path))
        if stop == "restart":
            server.restart()  # SIGTERM and start again (the client's loop is blocked meanwhile)
        else:
            if stop == "sigkill":
                await asyncio.sleep(0.5)  # the history store has written the edits (every 0.1 s)
            server.terminate() if stop == "sigterm" else server.kill()
            await eventually(lambda: not nb.connected)
            # Edits while the server is down stay in the program's document.
            await nb.insert("while the server was down", after=kept)
            await nb.replace_source(kept, "kept, edited offline")
            server.start()
        await nb.insert("after the restart")
        await nb.flush()
        assert nb.reconnects == 1 and nb.reloads == 0  # a plain resync: same history
        expected = (
            ["kept", "before the restart", "after the restart"]
            if stop == "restart"
            else [
                "kept, edited offline",
                "while the server was down",
                "before the restart",
                "after the restart",
            ]
        )
        assert await cell_sources(nb) == expected
    fresh = await join(server, path)
    assert sources(fresh) == expected and len(set(cell_ids(fresh))) == len(expected)
    await eventually(lambda: disk_sources(server, path) == expected)
    # The person's tab from before the restart reconnects too, and agrees.
    await human.connect()
    await eventually(lambda: sources(human) == expected)
    await human.close()
    await fresh.close()


async def test_restart_without_history_merges_and_the_program_starts_afresh(make_server):
    server = make_server({"history_enabled": False})
    path = write_notebook(server.root, sources=["alpha", "beta"])
    async with program(server, path) as nb:
        alpha, beta = (cell["id"] for cell in await nb.cells())
        counts: list[int] = []  # how many cells the program's document held, at every change
        nb.on_change(lambda change: counts.append(len(nb.notebook().ycells)), local=True)
        server.terminate()
        await eventually(lambda: not nb.connected)
        await nb.replace_source(beta, "beta, edited offline")
        await nb.insert("added offline", after=beta)
        server.start()  # a new process: the history the program shares is gone
        await nb.flush()  # merged by cell id; the server asks for a reload
        await eventually(lambda: nb.reloads == 1 and nb.connected)
        expected = ["alpha", "beta, edited offline", "added offline"]
        assert await cell_sources(nb) == expected
        assert (await nb.cells())[0]["id"] == alpha
        assert max(counts) == 3  # never the two unrelated histories side by side
        # The new document works like the old one.
        await nb.insert("after the reload")
    fresh = await join(server, path)
    assert sources(fresh) == [*expected, "after the reload"]
    assert len(set(cell_ids(fresh))) == 4
    await eventually(lambda: disk_sources(server, path) == sources(fresh))
    await fresh.close()


# -- permissions ------------------------------------------------------------------------------------------


async def test_viewer_program_gets_a_clear_error_and_changes_nothing(team: Team):
    path = write_notebook(team.server.root, sources=["read me"])
    alice = await team.join("alice", path)
    async with program(team.server, path, token="carol-token", name="carol-bot") as nb:
        assert nb.role == "viewer"
        cell = (await nb.cells())[0]
        attempts = [
            nb.insert("nope"),
            nb.replace_source(cell["id"], "nope"),
            nb.patch(cell["id"], metadata={"x": 1}),
            nb.set_outputs(cell["id"], []),
            nb.delete(cell["id"]),
            nb.move(cell["id"], index=0),
        ]
        for attempt in attempts:
            with pytest.raises(ReadOnlyError, match="viewer"):
                await attempt
        # It still watches: a person's edit reaches it.
        append_text(alice, 0, "!")
        await eventually(lambda: nb.notebook().ycells[0]["source"].to_py() == "read me!")
        states = await eventually(lambda: program_states(alice))
        assert states[0]["username"] == "carol" and states[0]["role"] == "viewer"
        await nb.flush()  # nothing to flush
        assert nb.connected
    await asyncio.sleep(0.3)
    assert sources(alice) == ["read me!"]
    assert not any(e["action"] == "denied" for e in team.events())  # nothing was even sent
    await eventually(lambda: disk_sources(team.server, path) == ["read me!"])  # alice's edit only
    await alice.close()


async def test_editor_program_and_locked_cells(team: Team):
    path = locked_notebook(team.server.root)  # free, frozen (not editable), undeletable
    alice = await team.join("alice", path)
    async with program(team.server, path, token="bob-token") as nb:
        assert nb.role == "editor"
        free, frozen, undeletable = (cell["id"] for cell in await nb.cells())
        with pytest.raises(CellLocked):
            await nb.replace_source(frozen, "no")
        with pytest.raises(CellLocked):
            await nb.delete(undeletable)
        with pytest.raises(CellLocked):
            await nb.move(undeletable, index=0)
        with pytest.raises(CellLocked):
            await nb.set_metadata(free, {"editable": False})  # only owners lock
        with pytest.raises(CellLocked):
            await nb.insert("locked", metadata={"deletable": False})
        await nb.replace_source(undeletable, "editable, not deletable")
        await nb.flush()
        assert nb.connected and nb.reloads == 0
        # A cell the policy locks for bob (the client cannot know): the server refuses the
        # change, the program is told at flush, and continues from the true state.
        team.set_roles({**ROLES, "locked": {"bob": [free]}})
        await recheck_permissions(team.server, "alice-token")
        await nb.replace_source(free, "refused")
        with pytest.raises(ChangeRefused, match="locked"):
            await nb.flush()
        await eventually(lambda: nb.reloads == 1 and nb.connected)
        assert await cell_sources(nb) == ["free", "frozen", "editable, not deletable"]
        await nb.flush()  # told once
    assert sources(alice) == ["free", "frozen", "editable, not deletable"]
    await alice.close()


async def test_no_access_and_revoked_access_give_clear_errors(team: Team):
    path = write_notebook(team.server.root, sources=["x"])
    # No access reads as no file: the server does not say which files exist.
    with pytest.raises(FileNotFoundError, match="or no access"):
        await program(team.server, path, token="dave-token").open()
    with pytest.raises(FileNotFoundError, match="or no access"):
        await program(team.server, "no-such.ipynb", token="bob-token").open()
    nb = await program(team.server, path, token="bob-token").open()
    team.set_roles({**ROLES, "bob": "none"})
    await recheck_permissions(team.server, "alice-token")
    await eventually(lambda: nb.failure is not None)
    assert isinstance(nb.failure, AccessDenied)
    with pytest.raises(AccessDenied):
        await nb.insert("late")
    await nb.close()


# -- the synchronous wrapper ---------------------------------------------------------------------------

# The README's script: appends a cell to a notebook someone has open.
SCRIPT = """
from jupyter_collab.client import SyncNotebookClient

URL = "http://localhost:8888"  # the Jupyter server
TOKEN = "my-token"  # its token (see `jupyter server list`)
PATH = "analysis.ipynb"  # the notebook, relative to the server's root

with SyncNotebookClient(URL, PATH, token=TOKEN, name="report-bot") as nb:
    cell = nb.insert("# Added by report-bot\\nprint('hello from a script')")
    print(f"appended cell {cell['id']}; the notebook has {len(nb.cells())} cells")
"""


async def test_sync_script_appends_a_cell_to_an_open_notebook(server, capsys):
    path = write_notebook(server.root, sources=["import pandas as pd", "df = pd.DataFrame()"])
    human = await join(server, path)
    script = (
        SCRIPT.replace("http://localhost:8888", server.url)
        .replace("my-token", TOKEN)
        .replace("analysis.ipynb", path)
    )
    assert len(textwrap.dedent(SCRIPT).strip().splitlines()) <= 10
    await asyncio.to_thread(exec, script, {})
    expected = [
        "import pandas as pd",
        "df = pd.DataFrame()",
        "# Added by report-bot\nprint('hello from a script')",
    ]
    await eventually(lambda: sources(human) == expected)
    assert "the notebook has 3 cells" in capsys.readouterr().out
    await eventually(lambda: disk_sources(server, path) == expected)
    await human.close()


async def test_sync_client_operations_and_changes(server):
    path = write_notebook(server.root, sources=["one"])
    human = await join(server, path)
    watching = threading.Event()

    def script() -> list[Change]:
        with SyncNotebookClient(server.url, path, token=TOKEN, name="sync-bot") as nb:
            (one,) = nb.cells()
            added = nb.insert("two", after=one["id"])
            nb.patch(added["id"], source="two!", metadata={"tags": ["bot"]}, expect=added["hash"])
            with pytest.raises(CellConflict):
                nb.delete(one["id"], expect="stale")
            nb.move(added["id"], before=one["id"])
            nb.flush()
            assert nb.role == "owner" and nb.connected
            with nb.changes(timeout=5) as changes:
                watching.set()
                return list(itertools.islice(changes, 1))  # the person's edit below

    done = asyncio.create_task(asyncio.to_thread(script))
    assert await asyncio.to_thread(watching.wait, 10)
    await eventually(lambda: sources(human) == ["two!", "one"])
    append_text(human, 1, " (person)")
    seen = await asyncio.wait_for(done, 10)
    assert [change.changed for change in seen] == [(cell_ids(human)[1],)]
    assert human.notebook().get()["cells"][0]["metadata"] == {"tags": ["bot"]}
    await human.close()


async def test_a_script_editing_in_a_tight_loop_stays_under_the_rate_limit(make_server):
    server = make_server({"max_document_messages_per_second": 30.0, "message_burst": 40.0})
    path = write_notebook(server.root, sources=["start"])
    human = await join(server, path)

    def script() -> tuple[int, int]:
        with SyncNotebookClient(server.url, path, token=TOKEN, name="loop-bot") as nb:
            for index in range(300):  # one call at a time, each in its own event-loop turn
                nb.insert(f"cell {index}")
            return nb.client.reconnects, nb.client.reloads

    assert await asyncio.to_thread(script) == (0, 0)  # coalesced: never closed with 1008
    await eventually(lambda: len(sources(human)) == 301)
    assert sources(human)[1:] == [f"cell {index}" for index in range(300)]
    assert "too many document messages" not in server.log()
    await human.close()
