"""The lock rule on crafted Yjs updates, offline (milliseconds): the guard a room runs
before it applies a non-owner's change."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Text

from jupyter_collab.permissions import Access, Role
from jupyter_collab.rooms.guard import UNKNOWN_DEPENDENCY, LockGuard, untrust

from ..helpers import code_cell

EDITOR = Access(Role.EDITOR, frozenset({"P"}))


def notebook() -> YNotebook:
    ynb = YNotebook(Doc())
    ynb.set(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                code_cell("A", "locked source", {"editable": False, "deletable": False}),
                code_cell("B", "free", {}),
                code_cell("P", "policy-locked", {}),
                code_cell("D", "undeletable", {"deletable": False}),
            ],
        }
    )
    return ynb


def replica(live: YNotebook) -> YNotebook:
    doc = Doc()
    doc.apply_update(live.ydoc.get_update())
    return YNotebook(doc)


def edit(live: YNotebook, change) -> bytes:
    """The update an editor's client sends after making `change` on its copy."""
    client = replica(live)
    state = client.ydoc.get_state()
    with client.ydoc.transaction():
        change(client)
    return client.ydoc.get_update(state)


def by_id(ynb: YNotebook, cell_id: str) -> Any:
    return next(ycell for ycell in ynb.ycells if ycell.get("id") == cell_id)


def test_free_cell_edit_is_allowed():
    live = notebook()
    update = edit(live, lambda nb: by_id(nb, "B")["source"].insert(0, "x"))
    assert LockGuard(live).check(update, EDITOR).refusal is None


def test_a_clients_later_edits_are_allowed():
    """Updates after a client's first start at a clock above 0 (and delete what it typed)."""
    live = notebook()
    guard = LockGuard(live)
    client = replica(live)
    for step in range(3):
        state = client.ydoc.get_state()
        ytext = by_id(client, "B")["source"]
        ytext.insert(0, f"{step}abc")
        if step:
            del ytext[0:2]
        update = client.ydoc.get_update(state)
        assert guard.check(update, EDITOR).refusal is None
        live.ydoc.apply_update(update)
    assert str(by_id(live, "B")["source"]) == str(by_id(client, "B")["source"])


@pytest.mark.parametrize("cell_id", ["A", "P"])
def test_locked_cell_edit_is_refused(cell_id):
    live = notebook()
    update = edit(live, lambda nb: by_id(nb, cell_id)["source"].insert(0, "x"))
    assert LockGuard(live).check(update, EDITOR).refusal == f"cell {cell_id} is locked"


@pytest.mark.parametrize("cell_id", ["A", "P", "B"])
def test_renaming_a_cell_with_an_edit_is_refused(cell_id):
    def rename_and_edit(nb):
        ycell = by_id(nb, cell_id)
        ycell["id"] = f"{cell_id}-x"
        ycell["source"].insert(0, "PWNED ")
        ycell["metadata"] = Map({})

    live = notebook()
    verdict = LockGuard(live).check(edit(live, rename_and_edit), EDITOR)
    assert verdict.refusal == f"cell ids cannot change (cell {cell_id})"


def test_moving_a_free_cell_may_not_lock_it():
    def move_and_lock(nb):
        content = nb.get()["cells"][1]
        del nb.ycells[1]
        content["metadata"] = {"editable": False}
        nb.ycells.insert(0, nb.create_ycell(content))

    live = notebook()
    assert LockGuard(live).check(edit(live, move_and_lock), EDITOR).refusal == (
        "only owners may lock or unlock cell B"
    )


def test_a_pending_struct_is_refused():
    """An item whose origin the server does not have would land later, inside the owner's
    typing in a locked cell (review M1)."""
    live = notebook()
    owner = replica(live)
    state = owner.ydoc.get_state()
    by_id(owner, "A")["source"].insert(0, "o")  # the owner's future edit
    owners_update = owner.ydoc.get_update(state)
    attacker = replica(live)
    attacker.ydoc.apply_update(owners_update)
    state = attacker.ydoc.get_state()
    by_id(attacker, "A")["source"].insert(1, "#PLANTED ")
    planted = attacker.ydoc.get_update(state)
    assert LockGuard(live).check(planted, EDITOR).refusal == UNKNOWN_DEPENDENCY


def test_a_pending_deletion_is_refused():
    live = notebook()
    other = replica(live)
    state = other.ydoc.get_state()
    by_id(other, "B")["source"].insert(0, "unknown to the server ")
    unknown = other.ydoc.get_update(state)
    attacker = replica(live)
    attacker.ydoc.apply_update(unknown)
    state = attacker.ydoc.get_state()
    del by_id(attacker, "B")["source"][0:7]
    deletion = attacker.ydoc.get_update(state)
    assert LockGuard(live).check(deletion, EDITOR).refusal == UNKNOWN_DEPENDENCY


def test_trust_set_by_an_editor_is_withdrawn_in_the_same_transaction():
    live = notebook()
    guard = LockGuard(live)
    html = {"output_type": "display_data", "data": {"text/html": "<script>x()</script>"}, "metadata": {}}

    def plant(nb):
        ycell = by_id(nb, "B")
        ycell["metadata"]["trusted"] = True
        nb.ycells.insert(0, nb.create_ycell({**code_cell("T", "", {"trusted": True}), "outputs": [html]}))

    update = edit(live, plant)
    verdict = guard.check(update, EDITOR)
    assert verdict.refusal is None and verdict.untrust == {"B", "T"}
    viewer = replica(live)
    seen = []
    live.ydoc.observe(lambda event: seen.append(event.update))
    with live.ydoc.transaction():
        live.ydoc.apply_update(update)
        untrust(live, verdict.untrust)
    assert len(seen) == 1  # one update leaves the server: trust never shows
    viewer.ydoc.apply_update(seen[0])
    trust = {c["id"]: c["metadata"].get("trusted") for c in viewer.get()["cells"]}
    assert trust == {"T": False, "A": None, "B": False, "P": None, "D": None}


def test_deleting_or_moving_locked_cells_is_refused():
    live = notebook()
    for cell_id in ("A", "P", "D"):

        def delete(nb, cell_id=cell_id):
            del nb.ycells[[c.get("id") for c in nb.ycells].index(cell_id)]

        assert LockGuard(live).check(edit(live, delete), EDITOR).refusal == f"cell {cell_id} is locked"


def test_adding_a_locked_cell_is_refused():
    live = notebook()
    update = edit(live, lambda nb: nb.ycells.append(nb.create_ycell(code_cell("N", "", {"editable": False}))))
    assert LockGuard(live).check(update, EDITOR).refusal == "only owners may add locked cells"


def test_trial_makes_a_change_on_the_shadow_only():
    live = notebook()
    guard = LockGuard(live)

    def write_locked(nb):
        by_id(nb, "A")["source"] = Text("overwritten")

    _, _, verdict = guard.trial(write_locked, EDITOR)
    assert verdict.refusal == "cell A is locked"
    assert str(by_id(live, "A")["source"]) == "locked source"
    _, update, verdict = guard.trial(lambda nb: by_id(nb, "B")["source"].insert(0, "ok "), EDITOR)
    assert verdict.refusal is None
    live.ydoc.apply_update(update)
    assert str(by_id(live, "B")["source"]) == "ok free"
