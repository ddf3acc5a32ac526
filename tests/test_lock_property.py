"""Property: whatever an editor's client sends, locked cells and lock flags do not change.

Hypothesis draws sequences of changes an editor (bob) makes against a notebook with a
metadata-locked cell (L: editable and deletable false), a policy-locked one (P, locked
for bob by the policy), an undeletable one (U) and free cells (F1, F2). Legal changes go
through his real client; attacks are crafted Yjs updates sent raw on his socket (text
edits, id renames, metadata replaces, moves, deletes, locked inserts, updates with
missing dependencies, an unknown state vector followed by a foreign notebook). After
each sequence: L and P are exactly as they were (live, in a fresh client and on disk),
U keeps its flag, no free cell gained one, and bob's legal edits all went through.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Text

from jupyter_collab.client import RoomClient, RoomClosed, open_session, room_url
from jupyter_collab.protocol import SyncType, sync_frame

from .helpers import code_cell, eventually, read_notebook
from .team import ROLES, notebook_of

FREE = ("F1", "F2")
EDITABLE = ("F1", "F2", "U")
LOCKED = ("L", "P")
ALL = ("L", "P", "U", "F1", "F2")

texts = st.text(alphabet="ab é€😀\n", min_size=1, max_size=6)
where = st.floats(min_value=0, max_value=1)

legal = st.one_of(
    st.tuples(st.just("type"), st.sampled_from(EDITABLE), where, texts),
    st.tuples(st.just("tag"), st.sampled_from(EDITABLE), texts),
    st.tuples(st.just("move"), st.sampled_from(FREE), where),
    st.tuples(st.just("insert"), where, texts),
)
attack = st.one_of(
    st.tuples(st.just("type_locked"), st.sampled_from(LOCKED), texts),
    st.tuples(st.just("rename"), st.sampled_from(ALL), texts),
    st.tuples(st.just("flags"), st.sampled_from(ALL), st.sampled_from(("editable", "deletable"))),
    st.tuples(st.just("replace_metadata"), st.sampled_from(("L", "P", "U"))),
    st.tuples(st.just("outputs"), st.sampled_from(LOCKED)),
    st.tuples(st.just("delete"), st.sampled_from(("L", "P", "U"))),
    st.tuples(st.just("move_locked"), st.sampled_from(("L", "P", "U")), where),
    st.tuples(st.just("insert_locked"), st.sampled_from([(False, True), (True, False), (False, False)])),
    st.tuples(st.just("pending"), st.sampled_from(ALL)),
    st.tuples(st.just("pending_delete"), st.sampled_from(ALL)),
    st.tuples(st.just("mixed"), st.sampled_from(LOCKED), texts),
    st.tuples(st.just("foreign"), st.sampled_from(LOCKED), texts),
)


OUTPUT = {"output_type": "stream", "name": "stdout", "text": "out\n"}


def cell(cell_id: str, source: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return code_cell(cell_id, source, metadata, [OUTPUT])


def write_locked_notebook(root: Any, name: str) -> str:
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            cell("F1", "free one", {}),
            cell("L", "locked", {"editable": False, "deletable": False}),
            cell("P", "policy-locked", {}),
            cell("U", "undeletable", {"deletable": False}),
            cell("F2", "free two", {}),
        ],
    }
    nbformat.write(nbformat.from_dict(notebook), root / name)  # as the server writes it
    return name


def find(nb: YNotebook, cell_id: str) -> int:
    return [ycell.get("id") for ycell in nb.ycells].index(cell_id)


def utf8_offset(text: str, fraction: float) -> int:
    return len(text[: int(len(text) * fraction)].encode("utf-8"))


def move(nb: YNotebook, cell_id: str, fraction: float) -> None:
    """As JupyterLab moves a cell: delete it and insert a copy with the same id."""
    index = find(nb, cell_id)
    content = nb.get_cell(index)
    content["id"] = cell_id
    del nb.ycells[index]
    nb.ycells.insert(int(len(nb.ycells) * fraction), nb.create_ycell(content))


def apply_legal(nb: YNotebook, op: tuple, counter: list[int]) -> None:
    kind = op[0]
    if kind == "type":
        ytext = nb.ycells[find(nb, op[1])]["source"]
        ytext.insert(utf8_offset(str(ytext), op[2]), op[3])
    elif kind == "tag":
        nb.ycells[find(nb, op[1])]["metadata"]["tags"] = [op[2]]
    elif kind == "move":
        move(nb, op[1], op[2])
    else:
        counter[0] += 1
        new = code_cell(f"N{counter[0]}", op[2], {})
        nb.ycells.insert(int(len(nb.ycells) * op[1]), nb.create_ycell(new))


def crafted(base: Doc, change: Callable[[YNotebook], None], client_id: int | None = None) -> bytes:
    copy = Doc(client_id=client_id) if client_id is not None else Doc()
    copy.apply_update(base.get_update())
    state = copy.get_state()
    change(notebook_of(copy))
    return copy.get_update(state)


def attack_update(doc: Doc, op: tuple) -> bytes:
    kind = op[0]

    def change(nb: YNotebook) -> None:
        if kind in ("type_locked", "mixed"):
            nb.ycells[find(nb, op[1])]["source"].insert(0, op[2])
            if kind == "mixed":
                nb.ycells[find(nb, "F1")]["source"].insert(0, "legal part ")
        elif kind == "rename":
            ycell = nb.ycells[find(nb, op[1])]
            ycell["id"] = "renamed"
            ycell["source"] = Text(op[2])
        elif kind == "flags":  # turn the flag around (a flag left as it is is no change)
            metadata = nb.ycells[find(nb, op[1])]["metadata"]
            metadata[op[2]] = metadata.to_py().get(op[2], True) is False
        elif kind == "replace_metadata":
            nb.ycells[find(nb, op[1])]["metadata"] = Map({"tags": ["x"]})
        elif kind == "outputs":
            nb.ycells[find(nb, op[1])]["outputs"].clear()
        elif kind == "delete":
            del nb.ycells[find(nb, op[1])]
        elif kind == "move_locked":
            move(nb, op[1], op[2] if op[2] < 1 else 0)
        elif kind == "insert_locked":
            flags = {"editable": op[1][0], "deletable": op[1][1]}
            nb.ycells.append(nb.create_ycell(cell("X", "new locked", flags)))

    if kind in ("pending", "pending_delete"):
        # Items of a client the server has never heard from (their origin is missing).
        unseen = Doc()
        unseen.apply_update(doc.get_update())
        unseen_update = crafted(unseen, lambda nb: nb.ycells[find(nb, op[1])]["source"].insert(0, "unseen "))
        unseen.apply_update(unseen_update)
        if kind == "pending":
            return crafted(unseen, lambda nb: nb.ycells[find(nb, op[1])]["source"].insert(3, "PLANTED"))
        return crafted(unseen, lambda nb: nb.ycells[find(nb, op[1])]["source"].__delitem__(slice(0, 7)))
    return crafted(doc, change)


class Editor:
    """bob: a real client for legal edits; raw frames on its socket for attacks."""

    def __init__(self, team: Any, path: str) -> None:
        self.team = team
        self.path = path
        self.client: RoomClient | None = None

    async def connect(self) -> RoomClient:
        self.client = await self.team.join("bob", self.path)
        return self.client

    async def attack(self, op: tuple) -> None:
        assert self.client is not None
        if op[0] == "foreign":
            await self._foreign(op)
        else:
            await self.client.send_raw(sync_frame(SyncType.UPDATE, attack_update(self.client.doc, op)))
            try:
                code, reason = await self.client.wait_closed(timeout=5)
            except TimeoutError:
                raise AssertionError(f"not refused: {op}") from None
            assert code == 1003 and "permission_denied" in (reason or ""), (op, code, reason)
        await self.connect()

    async def _foreign(self, op: tuple) -> None:
        """An unknown state vector, then a foreign notebook that edits a locked cell."""
        assert self.client is not None
        foreign = Doc()
        notebook_of(foreign).set(self.client.notebook().get())
        notebook_of(foreign).ycells[find(notebook_of(foreign), op[1])]["source"].insert(0, op[2])
        await self.client.close()
        session = await open_session(self.team.server.url, self.path, "bob-token")
        url = room_url(self.team.server.url, session, "bob-token")
        stranger = RoomClient(url, doc=foreign, apply_unrelated=False)
        try:
            await stranger.connect()
        except RoomClosed:
            pass
        code, reason = await stranger.wait_closed()
        assert code == 1003 and "permission_denied" in (reason or ""), (op, code, reason)


def locked_state(nb: YNotebook) -> dict[str, Any]:
    cells = {c["id"]: c for c in json.loads(str(nb.ycells))}
    return {cell_id: cells.get(cell_id) for cell_id in LOCKED}


def flags(cells: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    return {c["id"]: (c["metadata"].get("editable"), c["metadata"].get("deletable")) for c in cells}


def free_sources(cells: list[dict[str, Any]]) -> dict[str, str]:
    def text(source: Any) -> str:
        return "".join(source) if isinstance(source, list) else source

    return {c["id"]: text(c["source"]) for c in cells if c["id"] not in LOCKED}


LEGAL_KINDS = ("type", "tag", "move", "insert")


def view(nb: YNotebook) -> list[tuple[str, str | None]]:
    """Cell order, and the sources of all but the locked cells (checked separately)."""
    return [(c["id"], None if c["id"] in LOCKED else c["source"]) for c in json.loads(str(nb.ycells))]


async def run_sequence(team: Any, ops: list[tuple]) -> None:
    path = write_locked_notebook(team.server.root, f"locked-{len(list(team.server.root.iterdir()))}.ipynb")
    on_disk = {c["id"]: c for c in read_notebook(team.server.root, path)["cells"]}
    alice = await team.join("alice", path)
    live_before = locked_state(alice.notebook())
    editor = Editor(team, path)
    bob = await editor.connect()
    counter = [0]
    for op in ops:
        if op[0] in LEGAL_KINDS:
            apply_legal(bob.notebook(), op, counter)
            expected = view(bob.notebook())
            await eventually(lambda expected=expected: view(alice.notebook()) == expected)
        else:
            await editor.attack(op)
            bob = editor.client
            assert locked_state(alice.notebook()) == live_before, op
    expected = view(bob.notebook())
    await eventually(lambda: view(alice.notebook()) == expected)
    fresh = await team.join("carol", path)
    assert locked_state(fresh.notebook()) == live_before
    assert view(fresh.notebook()) == expected
    live_cells = json.loads(str(fresh.notebook().ycells))
    assert flags(live_cells) == {
        **{c["id"]: (None, None) for c in live_cells},
        "L": (False, False),
        "U": (None, False),
    }
    sources = free_sources(live_cells)
    await eventually(lambda: free_sources(read_notebook(team.server.root, path)["cells"]) == sources)
    disk = {c["id"]: c for c in read_notebook(team.server.root, path)["cells"]}
    assert {cell_id: disk[cell_id] for cell_id in LOCKED} == {cell_id: on_disk[cell_id] for cell_id in LOCKED}
    for client in (alice, bob, fresh):
        await client.close()


def test_locked_cells_survive_any_editor_sequence(team):
    team.set_roles({**ROLES, "locked": {"bob": ["P"]}})

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=st.lists(st.one_of(legal, attack), min_size=1, max_size=8))
    def run_example(ops):
        asyncio.run(run_sequence(team, ops))

    run_example()
