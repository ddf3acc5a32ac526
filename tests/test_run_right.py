"""The run right on real sockets (#14, docs/design-execution.md §5): the role notice each
connection receives says whether the policy lets it run the notebook's code, and a re-check
that changes only that right tells the connection again. The policies' decisions themselves
are unit-tested in tests/unit/test_run_right.py."""

from __future__ import annotations

from typing import Any

from jupyter_collab.client import RoomClient

from .helpers import eventually, recheck_permissions, write_notebook
from .team import ROLES


def role_notices(client: RoomClient) -> list[dict[str, Any]]:
    return [notice for notice in client.notices if notice.get("type") == "role"]


async def test_role_notice_carries_the_run_right_and_a_change_of_it_alone_is_told(make_team):
    team = make_team()
    # alice owns (runs by default), bob edits but may not run, carol views and may run.
    team.set_roles({**ROLES, "run": {"bob": False, "carol": True}})
    path = write_notebook(team.server.root, sources=["print(1)"])
    alice, bob, carol = [await team.join(who, path) for who in ("alice", "bob", "carol")]
    await eventually(lambda: all(role_notices(client) for client in (alice, bob, carol)))
    told = [role_notices(client)[-1] for client in (alice, bob, carol)]
    assert [(notice["role"], notice["can_edit"], notice["can_run"]) for notice in told] == [
        ("owner", True, True),
        ("editor", True, False),
        ("viewer", False, True),
    ]

    # The owner lets bob run: his role is unchanged, the change is his run right alone.
    team.set_roles({**ROLES, "run": {"carol": True}})
    assert await recheck_permissions(team.server, "alice-token") == {"checked": 3, "changed": 1, "revoked": 0}
    await eventually(lambda: len(role_notices(bob)) == 2)
    assert role_notices(bob)[-1] == {
        "type": "role",
        "role": "editor",
        "can_edit": True,
        "can_lock": False,
        "can_run": True,
        "locked_cells": [],
    }
    assert len(role_notices(alice)) == len(role_notices(carol)) == 1  # nothing changed for them
    assert bob.connected and carol.connected
    for client in (alice, bob, carol):
        await client.close()
