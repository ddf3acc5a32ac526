"""The lock rule (documents/locks.py) as a table: which change a non-owner may make to a cell."""

from __future__ import annotations

from typing import Any

import pytest

from jupyter_collab.documents.locks import ADD_LOCKED, UNLOCKED, cell_refusal, insert_refusal, lock_flags

LOCKED = "cell c is locked"
FLAGS = "only owners may lock or unlock cell c"


@pytest.mark.parametrize(
    ("metadata", "flags"),
    [
        ({}, (True, True)),
        ({"editable": False}, (False, True)),
        ({"deletable": False}, (True, False)),
        ({"editable": False, "deletable": False}, (False, False)),
        ({"editable": 0, "deletable": None}, (True, True)),  # only a real false locks
        ("not a dict", UNLOCKED),
        (None, UNLOCKED),
    ],
)
def test_lock_flags_read_nbformats_own_flags(metadata: Any, flags: tuple[bool, bool]):
    assert lock_flags(metadata) == flags


@pytest.mark.parametrize(
    ("flags", "after", "options", "refusal"),
    [
        ((True, True), (True, True), {}, None),  # a free cell: anything goes
        ((True, True), (True, True), {"removed": True}, None),
        ((False, True), (False, True), {}, LOCKED),  # not editable: no change at all
        ((False, True), (False, True), {"removed": True}, LOCKED),
        ((True, False), (True, False), {}, None),  # not deletable: editable in place ...
        ((True, False), (True, False), {"removed": True}, LOCKED),  # ... but it may not move or go
        ((True, True), (True, True), {"policy_locked": True}, LOCKED),
        ((True, True), (False, True), {}, FLAGS),  # nobody but an owner locks ...
        ((False, False), (True, True), {}, FLAGS),  # ... or unlocks
        ((True, False), (True, True), {"removed": True}, FLAGS),  # flags are checked first
    ],
)
def test_cell_refusal(flags, after, options: dict[str, bool], refusal: str | None):
    assert cell_refusal("c", flags, after, **options) == refusal


def test_only_owners_may_add_a_cell_that_carries_a_lock():
    assert insert_refusal(UNLOCKED) is None
    assert insert_refusal((False, True)) == ADD_LOCKED
    assert insert_refusal((True, False)) == ADD_LOCKED
