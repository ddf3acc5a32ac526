"""The awareness table's rules, offline: nobody poses as someone else (client ids belong to
the connection that announced them first; `user` is the server's identity), and a frame
over a limit is refused as a whole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jupyter_collab.protocol import (
    SAFE_INTEGER_LIMIT,
    OverLimit,
    ProtocolError,
    TooBig,
    decode_awareness,
)
from jupyter_collab.rooms.awareness import AwarenessLimits, AwarenessTable

from .fakes import payload

ALICE = {"username": "alice", "name": "Alice", "role": "editor"}
BOB = {"username": "bob", "name": "Bob", "role": "viewer"}


def states(table: AwarenessTable) -> dict[int, Any]:
    return {cid: json.loads(entry.state_json) for cid, entry in table.entries.items()}


def test_states_carry_the_servers_identity_and_list_what_the_client_added():
    table = AwarenessTable()
    claimed = {"name": "Mallory", "role": "owner", "agent": "bot-1"}
    assert table.apply("alice-conn", payload((1, 1, {"cursor": 4, "user": claimed})), ALICE)
    assert states(table) == {
        1: {"cursor": 4, "user": {**ALICE, "agent": "bot-1", "self_declared": ["agent"]}}
    }


def test_a_client_cannot_claim_the_self_declared_list_either():
    table = AwarenessTable()
    table.apply("alice-conn", payload((1, 1, {"user": {"self_declared": []}})), ALICE)
    assert states(table)[1]["user"] == ALICE


def test_another_connection_cannot_overwrite_or_remove_a_client_id():
    table = AwarenessTable()
    table.apply("alice-conn", payload((1, 1, {"cursor": 0})), ALICE)
    assert not table.apply("bob-conn", payload((1, 5, {"cursor": 99})), BOB)
    assert not table.apply("bob-conn", payload((1, 6, None)), BOB)
    assert states(table) == {1: {"cursor": 0, "user": ALICE}}
    assert table.take_changes() is not None and table.take_changes() is None  # only alice's change


def test_an_owner_updates_and_removes_its_own_state_and_stale_clocks_are_ignored():
    table = AwarenessTable()
    table.apply("alice-conn", payload((1, 2, {"cursor": 0})), ALICE)
    assert not table.apply("alice-conn", payload((1, 1, {"cursor": 9})), ALICE)  # older than known
    assert table.apply("alice-conn", payload((1, 3, {"cursor": 1})), ALICE)
    assert states(table)[1]["cursor"] == 1
    assert table.apply("alice-conn", payload((1, 4, None)), ALICE)
    assert table.entries == {} and table.owners == {}


def test_a_connection_that_leaves_takes_its_states_with_it_and_everyone_is_told():
    table = AwarenessTable()
    table.apply("alice-conn", payload((1, 3, {"a": 1}), (2, 1, {"a": 2})), ALICE)
    table.apply("bob-conn", payload((3, 1, {"b": 1})), BOB)
    table.take_changes()
    assert table.remove_owner("alice-conn")
    removals = decode_awareness(table.take_changes() or b"")
    assert {(e.client_id, e.state_json) for e in removals} == {(1, "null"), (2, "null")}
    assert next(e.clock for e in removals if e.client_id == 1) == 4  # newer than the last state
    assert set(table.entries) == {3}
    assert not table.remove_owner("alice-conn")
    # The ids are free again: someone else may take them.
    assert table.apply("bob-conn", payload((1, 1, {"b": 2})), BOB)


def test_a_frame_with_more_client_ids_than_allowed_is_refused_whole():
    table = AwarenessTable(AwarenessLimits(max_clients=2))
    table.apply("alice-conn", payload((1, 1, {})), ALICE)
    with pytest.raises(OverLimit):
        table.apply("alice-conn", payload((2, 1, {"x": 1}), (3, 1, {})), ALICE)
    assert set(table.entries) == {1}  # nothing of the refused frame applied
    # Removing one of its own ids in the same frame makes room for a new one.
    assert table.apply("alice-conn", payload((1, 2, None), (2, 1, {}), (3, 1, {})), ALICE)
    assert set(table.entries) == {2, 3}


def test_somebody_elses_ids_do_not_count_against_a_connection():
    table = AwarenessTable(AwarenessLimits(max_clients=1))
    table.apply("alice-conn", payload((1, 1, {})), ALICE)
    table.apply("bob-conn", payload((1, 2, {}), (2, 1, {})), BOB)  # 1 is alice's: only 2 is bob's
    assert table.owners == {1: "alice-conn", 2: "bob-conn"}


def test_a_state_over_the_size_limit_is_refused_whole():
    table = AwarenessTable(AwarenessLimits(max_state_bytes=100))
    big = {"note": "é" * 60}  # 60 characters, over 100 UTF-8 bytes
    with pytest.raises(TooBig):
        table.apply("alice-conn", payload((1, 1, {}), (2, 1, big)), ALICE)
    assert table.entries == {}
    assert table.apply("alice-conn", payload((1, 1, {"note": "é" * 40})), ALICE)


@pytest.mark.parametrize(
    "bad",
    [
        (SAFE_INTEGER_LIMIT, 1, {}),  # an id no browser can tell from its neighbour
        (2, 1, "{not json"),
        (2, 1, "[1, 2]"),  # JSON, but not an object
    ],
)
def test_malformed_frames_are_refused_and_change_nothing(bad: tuple[int, int, Any]):
    table = AwarenessTable()
    with pytest.raises(ProtocolError):
        table.apply("alice-conn", payload((1, 1, {}), bad), ALICE)  # a good entry first
    assert table.entries == {}


def test_restamp_gives_a_connections_states_its_new_identity_with_a_newer_clock():
    table = AwarenessTable()
    table.apply("bob-conn", payload((2, 5, {"cursor": 1})), BOB)
    table.take_changes()
    editor = {**BOB, "role": "editor"}
    assert table.restamp("bob-conn", editor)
    (change,) = decode_awareness(table.take_changes() or b"")
    assert (change.client_id, change.clock) == (2, 6)
    assert json.loads(change.state_json) == {"cursor": 1, "user": editor}
    assert not table.restamp("nobody", editor)


def test_server_states_are_the_servers_own_and_a_client_cannot_take_them_over():
    table = AwarenessTable()
    table.set_server_state(99, {"user": {"name": "Bot", "program": True}})
    assert not table.apply("alice-conn", payload((99, 50, {"user": {"name": "Bot"}})), ALICE)
    assert table.server_states() == [{"user": {"name": "Bot", "program": True}}]
    table.set_server_state(99, None)
    assert table.server_states() == [] and 99 not in table.entries


def test_a_joiner_gets_a_snapshot_of_every_current_state():
    table = AwarenessTable()
    assert table.snapshot() is None
    table.apply("alice-conn", payload((1, 1, {"a": 1})), ALICE)
    table.apply("bob-conn", payload((2, 1, {"b": 1})), BOB)
    assert {e.client_id for e in decode_awareness(table.snapshot() or b"")} == {1, 2}
