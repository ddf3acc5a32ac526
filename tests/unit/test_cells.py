"""Cell operations by id (documents/cells.py), on a notebook in memory: positions by id,
`expect` hashes that refuse a change to a cell that moved on, and bad input refused before
anything changes."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc

from jupyter_collab.documents.cells import (
    CellConflict,
    CellError,
    CellNotFound,
    delete_cell,
    insert_cell,
    move_cell,
    patch_cell,
    read_cell,
    read_cells,
)

from ..helpers import code_cell


def notebook(*ids: str) -> YNotebook:
    ynb = YNotebook(Doc())
    cells = [code_cell(cell_id, f"source of {cell_id}", {}) for cell_id in ids]
    ynb.set({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})
    return ynb


def ids(ynb: YNotebook) -> list[str]:
    return [cell["id"] for cell in read_cells(ynb)]


def test_a_cells_hash_follows_what_a_program_can_see_of_it():
    ynb = notebook("a", "b")
    before = read_cell(ynb, "a")["hash"]
    assert read_cell(ynb, "a")["hash"] == before != read_cell(ynb, "b")["hash"]
    patch_cell(ynb, "a", {"metadata": {"tags": ["x"]}})
    assert read_cell(ynb, "a")["hash"] != before


@pytest.mark.parametrize(
    ("where", "order"),
    [
        ({}, ["a", "b", "c", "new"]),
        ({"before": "a"}, ["new", "a", "b", "c"]),
        ({"after": "b"}, ["a", "b", "new", "c"]),
        ({"index": 1}, ["a", "new", "b", "c"]),
        ({"index": 3}, ["a", "b", "c", "new"]),
    ],
)
def test_insert_places_the_cell_by_id_or_index(where: dict[str, Any], order: list[str]):
    ynb = notebook("a", "b", "c")
    cell = insert_cell(ynb, {"id": "new", "source": "x = 1"}, **where)
    assert ids(ynb) == order
    assert (cell["source"], cell["cell_type"], cell["outputs"], cell["execution_count"]) == (
        "x = 1",
        "code",
        [],
        None,
    )


def test_insert_makes_an_id_and_gives_a_markdown_cell_no_outputs():
    ynb = notebook("a")
    cell = insert_cell(ynb, {"cell_type": "markdown", "source": "# Title"})
    assert cell["id"] != "a" and ids(ynb) == ["a", cell["id"]]
    assert "outputs" not in cell and "execution_count" not in cell


@pytest.mark.parametrize(
    ("cell", "where"),
    [
        ({"id": "a"}, {}),  # taken
        ({"id": "no spaces"}, {}),
        ({"id": "x" * 65}, {}),
        ({"colour": "red"}, {}),  # not a cell field
        ({"cell_type": "heading"}, {}),
        ({"source": ["a list"]}, {}),
        ({"metadata": []}, {}),
        ({"outputs": [{"text": "no output_type"}]}, {}),
        ({"execution_count": -1}, {}),
        ({"execution_count": True}, {}),
        ({}, {"before": "a", "after": "a"}),  # two positions
        ({}, {"index": 2}),  # past the end
        ({}, {"index": "0"}),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(cell: dict[str, Any], where: dict[str, Any]):
    ynb = notebook("a")
    with pytest.raises(CellError):
        insert_cell(ynb, cell, **where)
    assert ids(ynb) == ["a"]


def test_an_unknown_id_is_not_found():
    ynb = notebook("a")
    with pytest.raises(CellNotFound):
        insert_cell(ynb, {}, after="zz")
    for operation in (
        lambda: patch_cell(ynb, "zz", {"source": ""}),
        lambda: delete_cell(ynb, "zz"),
        lambda: move_cell(ynb, "zz", index=0),
        lambda: move_cell(ynb, "a", before="zz"),
    ):
        with pytest.raises(CellNotFound):
            operation()
    assert ids(ynb) == ["a"]


def test_patch_changes_fields_and_checks_the_expected_hash():
    ynb = notebook("a")
    read = read_cell(ynb, "a")
    patched = patch_cell(
        ynb, "a", {"source": "source of a, changed", "execution_count": 3}, expect=read["hash"]
    )
    assert (patched["source"], patched["execution_count"]) == ("source of a, changed", 3)
    with pytest.raises(CellConflict) as refused:
        patch_cell(ynb, "a", {"source": "lost update"}, expect=read["hash"])  # read before the change
    assert refused.value.current == patched
    assert read_cell(ynb, "a") == patched


def test_patch_refuses_fields_it_does_not_change():
    ynb = notebook("a")
    for changes in ({"id": "b"}, {"attachments": {}}, {"source": 1}):
        with pytest.raises(CellError):
            patch_cell(ynb, "a", changes)
    assert read_cell(ynb, "a")["source"] == "source of a"


def test_delete_checks_the_expected_hash():
    ynb = notebook("a", "b")
    stale = read_cell(ynb, "a")["hash"]
    patch_cell(ynb, "a", {"source": "changed by someone"})
    with pytest.raises(CellConflict):
        delete_cell(ynb, "a", expect=stale)
    delete_cell(ynb, "a", expect=read_cell(ynb, "a")["hash"])
    assert ids(ynb) == ["b"]


@pytest.mark.parametrize(
    ("where", "order"),
    [
        ({"before": "a"}, ["c", "a", "b", "d"]),
        ({"after": "d"}, ["a", "b", "d", "c"]),
        ({"after": "a"}, ["a", "c", "b", "d"]),
        ({"index": 0}, ["c", "a", "b", "d"]),
        ({"index": 3}, ["a", "b", "d", "c"]),  # positions count without the moved cell
    ],
)
def test_move_keeps_the_cell_and_puts_it_where_asked(where: dict[str, Any], order: list[str]):
    ynb = notebook("a", "b", "c", "d")
    before = read_cell(ynb, "c")
    moved = move_cell(ynb, "c", expect=before["hash"], **where)
    assert ids(ynb) == order
    assert moved == before


@pytest.mark.parametrize("where", [{"before": "b"}, {"after": "b"}, {"index": 3}, {"index": -1}])
def test_a_bad_move_is_refused_and_changes_nothing(where: dict[str, Any]):
    ynb = notebook("a", "b", "c")
    with pytest.raises(CellError):
        move_cell(ynb, "b", **where)
    assert ids(ynb) == ["a", "b", "c"]


def test_move_checks_the_expected_hash():
    ynb = notebook("a", "b")
    with pytest.raises(CellConflict):
        move_cell(ynb, "b", index=0, expect="0" * 20)
    assert ids(ynb) == ["a", "b"]
