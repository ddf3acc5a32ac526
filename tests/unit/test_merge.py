"""Three-way merges (documents/merge.py, documents/textmerge.py) in memory: the incoming side
(the file on disk, a returning client) against the common base, into the live document, by
cell id and by line, with the incoming side winning where both changed the same thing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Text

from jupyter_collab.documents.merge import merge_notebook, notebook_snapshot
from jupyter_collab.documents.textmerge import merge3, replace_text
from jupyter_collab.protocol import EMPTY_UPDATE

from ..helpers import code_cell

BASE = "a\nb\nc\nd\n"


@pytest.mark.parametrize(
    ("ours", "theirs", "merged"),
    [
        (BASE, "a\nB\nc\nd\n", "a\nB\nc\nd\n"),  # only theirs changed
        ("a\nB\nc\nd\n", BASE, "a\nB\nc\nd\n"),  # only ours changed
        ("A\nb\nc\nd\n", "a\nb\nc\nD\n", "A\nb\nc\nD\n"),  # different lines: both kept
        ("a\nc\nd\n", "a\nb\nc\nD\n", "a\nc\nD\n"),  # a deletion and an edit elsewhere
        ("a\nb\nc\nd\nours\n", "theirs\na\nb\nc\nd\n", "theirs\na\nb\nc\nd\nours\n"),  # two insertions
        ("a\nX\nc\nd\n", "a\nY\nc\nd\n", "a\nY\nc\nd\n"),  # the same line: theirs wins
        ("a\nb\nours\nc\nd\n", "a\nb\ntheirs\nc\nd\n", "a\nb\ntheirs\nc\nd\n"),  # same insertion point
        ("A\nB\nc\nd\n", "a\nbb\nc\nd\n", "a\nbb\nc\nd\n"),  # overlapping: theirs takes the region
        ("a\nb\nc\nd\n", "", ""),  # theirs deleted everything
        ("é😀\nb\nc\nd\n", "a\nb\nc\n中\n", "é😀\nb\nc\n中\n"),  # any characters
    ],
)
def test_merge3(ours: str, theirs: str, merged: str):
    assert merge3(BASE, ours, theirs) == merged


def test_replace_text_edits_only_the_span_that_differs():
    """A concurrent edit elsewhere in the text (another replica's) stays where it was."""
    server, other = Doc(), Doc()
    server["t"] = text = Text("hello world, é")
    other.apply_update(server.get_update())
    other_text = other.get("t", type=Text)
    other_text.insert(len(b"hello "), "big ")
    assert replace_text(text, "hello world, è!")
    assert not replace_text(text, "hello world, è!")
    server.apply_update(other.get_update())
    assert str(text) == "hello big world, è!"


def notebook(*cells: tuple[str, str], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata or {},
        "cells": [code_cell(cell_id, source, {}) for cell_id, source in cells],
    }


def live_from(base: dict[str, Any]) -> YNotebook:
    ynb = YNotebook(Doc())
    ynb.set(copy.deepcopy(base))
    return ynb


def cells(ynb: YNotebook) -> list[tuple[str, str]]:
    return [(cell["id"], cell["source"]) for cell in notebook_snapshot(ynb)["cells"]]


def edit_live(ynb: YNotebook, cell_id: str, source: str) -> None:
    """A collaborator's edit in the live document."""
    ycell = next(ycell for ycell in ynb.ycells if ycell.get("id") == cell_id)
    replace_text(ycell["source"], source)


def test_changes_from_both_sides_in_different_cells_are_all_kept():
    base = notebook(("a", "1"), ("b", "2"))
    live = live_from(base)
    edit_live(live, "a", "1 live")
    assert merge_notebook(live, base, notebook(("a", "1"), ("b", "2 disk")))
    assert cells(live) == [("a", "1 live"), ("b", "2 disk")]


def test_changes_to_one_cell_merge_by_line():
    base = notebook(("a", "x = 1\ny = 2\nz = 3"))
    live = live_from(base)
    edit_live(live, "a", "x = 10\ny = 2\nz = 3")
    merge_notebook(live, base, notebook(("a", "x = 1\ny = 2\nz = 30")))
    assert cells(live) == [("a", "x = 10\ny = 2\nz = 30")]


def test_a_cell_deleted_on_the_incoming_side_goes_and_one_added_live_stays():
    base = notebook(("a", "1"), ("b", "2"))
    live = live_from(base)
    live.ycells.append(live.create_ycell(code_cell("new-live", "3", {})))
    assert merge_notebook(live, base, notebook(("a", "1")))
    assert cells(live) == [("a", "1"), ("new-live", "3")]


def test_without_deletions_a_cell_the_incoming_side_lacks_stays():
    """A copy whose base is unknown (an unrelated history) may never have seen the cell."""
    base = notebook(("a", "1"), ("b", "2"))
    live = live_from(base)
    assert not merge_notebook(live, base, notebook(("b", "2")), apply_deletions=False)
    assert cells(live) == [("a", "1"), ("b", "2")]


def test_new_incoming_cells_go_after_their_predecessor():
    base = notebook(("a", "1"), ("b", "2"))
    live = live_from(base)
    merge_notebook(live, base, notebook(("new0", "0"), ("a", "1"), ("new1", "1.5"), ("b", "2")))
    assert [cell_id for cell_id, _ in cells(live)] == ["new0", "a", "new1", "b"]


def test_a_reordering_on_the_incoming_side_is_followed_and_contents_kept():
    base = notebook(("a", "1"), ("b", "2"), ("c", "3"))
    live = live_from(base)
    edit_live(live, "a", "1 live")
    assert merge_notebook(live, base, notebook(("c", "3"), ("a", "1"), ("b", "2")))
    assert cells(live) == [("c", "3"), ("a", "1 live"), ("b", "2")]


def test_notebook_metadata_merges_as_a_whole_value():
    base = notebook(("a", "1"), metadata={"kernelspec": {"name": "python3"}})
    live = live_from(base)
    incoming = notebook(("a", "1"), metadata={"kernelspec": {"name": "julia"}})
    assert merge_notebook(live, base, incoming)
    assert notebook_snapshot(live)["metadata"] == {"kernelspec": {"name": "julia"}}


def test_an_unchanged_incoming_side_changes_nothing_and_says_so():
    base = notebook(("a", "1"), ("b", "2"))
    live = live_from(base)
    edit_live(live, "a", "1 live")
    state = live.ydoc.get_state()
    assert not merge_notebook(live, base, copy.deepcopy(base))
    assert cells(live) == [("a", "1 live"), ("b", "2")]
    assert live.ydoc.get_update(state) == EMPTY_UPDATE


def test_cells_without_ids_take_the_base_ids_by_position():
    """An nbformat < 4.5 file on disk: its cells have no ids."""
    base = notebook(("a", "1"), ("b", "2"))
    live = live_from(base)
    incoming = notebook(("a", "1"), ("b", "2 disk"))
    for cell in incoming["cells"]:
        del cell["id"]
    merge_notebook(live, base, incoming)
    assert cells(live) == [("a", "1"), ("b", "2 disk")]
