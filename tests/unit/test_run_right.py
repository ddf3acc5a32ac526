"""The run right (#14, docs/design-execution.md §5), decided by each policy in memory: who
may run a notebook's code, apart from who may edit it, and the role notice that says so.

Nothing enforces running yet; these pin what the future execute and kernel routes will ask
(`Access.can_run`), including the ways around it an attacker would try: a rule granting
running with no access, a string "false" in the config, a run scope for another server, a
shares file the owner narrowed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_collab.hub import HubPolicy
from jupyter_collab.permissions import Access, AuthorizerPolicy, Role, RulesPolicy
from jupyter_collab.rooms.gate import Gate
from jupyter_collab.rooms.room import Room

from .fakes import LOG, Events, FakeConnection

# -- Access -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "runs"), [(Role.OWNER, True), (Role.EDITOR, True), (Role.VIEWER, False), (Role.NONE, False)]
)
def test_by_default_owners_and_editors_run_viewers_never(role: Role, runs: bool):
    assert Access(role).can_run is runs


def test_a_policy_grants_running_to_a_viewer_or_withholds_it_from_an_editor():
    assert Access(Role.VIEWER, run=True).can_run
    assert not Access(Role.EDITOR, run=False).can_run
    assert not Access(Role.OWNER, run=False).can_run


def test_no_access_never_runs_whatever_run_says():
    """A kernel route will judge every notebook of a kernel by `can_run`: someone without
    access to one of them must not pass because a policy said run=True."""
    assert not Access(Role.NONE, run=True).can_run


def test_access_stays_frozen_and_hashable_and_a_run_change_is_a_change():
    access = Access(Role.EDITOR, frozenset({"c1"}), run=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        access.run = True  # type: ignore[misc]
    assert {access: 1}[Access(Role.EDITOR, frozenset({"c1"}), run=False)] == 1
    assert access != Access(Role.EDITOR, frozenset({"c1"}), run=True)


def test_role_notice_carries_can_run():
    assert Access(Role.VIEWER, frozenset({"b", "a"}), run=True).notice() == {
        "type": "role",
        "role": "viewer",
        "can_edit": False,
        "can_lock": False,
        "can_run": True,
        "locked_cells": ["a", "b"],
    }
    assert Access(Role.EDITOR, run=False).notice()["can_run"] is False


class SwitchPolicy:
    """A policy whose answer the test sets."""

    def __init__(self, access: Access) -> None:
        self.answer = access

    async def access(self, user: Any, path: str, handler: Any) -> Access:
        return self.answer


async def test_a_recheck_that_changes_only_the_run_right_sends_a_new_notice():
    room = Room("awareness:test", broadcast_window=0.0, events=Events(), log=LOG)
    bob = FakeConnection(room, "bob", Role.EDITOR)
    bob.current_user = SimpleNamespace(  # type: ignore[attr-defined]
        username="bob", name="Bob", display_name="Bob", initials="BO", color="#fff", avatar_url=None
    )
    room.join(bob)
    policy = SwitchPolicy(Access(Role.EDITOR, run=False))
    gate = Gate(None, None, policy, None)  # an awareness room: no file to look up
    assert await gate.recheck([room]) == {"checked": 1, "changed": 1, "revoked": 0}
    assert bob.notices[-1]["can_run"] is False and bob.notices[-1]["role"] == "editor"
    assert await gate.recheck([room]) == {"checked": 1, "changed": 0, "revoked": 0}
    policy.answer = Access(Role.EDITOR, run=True)
    assert await gate.recheck([room]) == {"checked": 1, "changed": 1, "revoked": 0}
    assert [notice["can_run"] for notice in bob.notices] == [True, False, True]


# -- RulesPolicy --------------------------------------------------------------------------

RULES = [
    {"paths": ["exam/*"], "users": ["bob"], "role": "editor", "run": False},  # edits, never runs
    {"paths": ["exam/*"], "groups": ["students"], "role": "viewer", "run": True},  # watch and run
    {"paths": ["exam/*"], "role": "viewer"},
    {"role": "editor"},
]


async def rules_access(username: str, path: str, rules: list[dict[str, Any]] = RULES) -> Access:
    policy = RulesPolicy(rules=rules, groups={"students": ["carol", "bob"]})
    return await policy.access(SimpleNamespace(username=username), path, None)


async def test_rules_grant_and_withhold_running_first_match_wins():
    bob = await rules_access("bob", "exam/q.ipynb")
    assert (bob.role, bob.can_run) == (Role.EDITOR, False)  # his own rule before his group's
    carol = await rules_access("carol", "exam/q.ipynb")
    assert (carol.role, carol.can_run) == (Role.VIEWER, True)
    dave = await rules_access("dave", "exam/q.ipynb")
    assert (dave.role, dave.can_run) == (Role.VIEWER, False)
    elsewhere = await rules_access("bob", "notes.ipynb")
    assert (elsewhere.role, elsewhere.can_run, elsewhere.run) == (Role.EDITOR, True, None)


@pytest.mark.parametrize("bad", ["false", "true", 0, 1, [True]])
def test_a_run_that_is_not_a_boolean_is_refused_when_the_config_loads(bad: Any):
    """ "false" would be truthy: refused at startup instead of granting running."""
    config = Config({"RulesPolicy": {"rules": [{"role": "viewer", "run": bad}]}})
    with pytest.raises(TraitError, match='"run" must be true or false'):
        RulesPolicy(config=config)


def test_running_cannot_be_granted_to_no_access():
    with pytest.raises(TraitError, match='role "none" cannot be granted "run"'):
        RulesPolicy(rules=[{"users": ["dave"], "role": "none", "run": True}])
    RulesPolicy(rules=[{"users": ["dave"], "role": "none", "run": False}])  # says nothing new


# -- AuthorizerPolicy ---------------------------------------------------------------------


class Authorizer:
    """The server's Authorizer, allowing the (action, resource) pairs it is given."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return (action, resource) in self.allowed


async def authorizer_access(*allowed: tuple[str, str]) -> Access:
    handler = SimpleNamespace(authorizer=Authorizer(*allowed))
    return await AuthorizerPolicy().access(SimpleNamespace(username="bob"), "x.ipynb", handler)


async def test_authorizer_policy_asks_for_execute_on_kernels():
    writer = [("write", "contents"), ("read", "contents")]
    assert (await authorizer_access(*writer, ("execute", "kernels"))).can_run
    kept_out = await authorizer_access(*writer)
    assert (kept_out.role, kept_out.can_run) == (Role.OWNER, False)
    viewer = await authorizer_access(("read", "contents"), ("execute", "kernels"))
    assert (viewer.role, viewer.can_run) == (Role.VIEWER, False)  # running is for editors


# -- HubPolicy ----------------------------------------------------------------------------

EDIT = "custom:jupyter-collab:edit!server=alice/"
VIEW = "custom:jupyter-collab:view!server=alice/"
RUN = "custom:jupyter-collab:run!server=alice/"


@pytest.fixture
def hub_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alice's server (no Hub: the handler has no HubAuth, so the user's Hub model is used)."""
    pytest.importorskip("jupyterhub")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.delenv("JUPYTERHUB_SERVER_NAME", raising=False)
    return tmp_path


async def hub_access(
    root: Path, name: str, scopes: list[str], path: str = "x.ipynb", **traits: Any
) -> Access:
    handler = SimpleNamespace(identity_provider=SimpleNamespace(), settings={"server_root_dir": str(root)})
    user = SimpleNamespace(hub_user={"kind": "user", "name": name, "scopes": scopes, "groups": []})
    return await HubPolicy(**traits).access(user, path, handler)


async def test_hub_owner_runs(hub_root: Path):
    access = await hub_access(hub_root, "alice", [])
    assert (access.role, access.can_run) == (Role.OWNER, True)


async def test_hub_editors_run_unless_editors_run_is_off(hub_root: Path):
    assert (await hub_access(hub_root, "bob", [EDIT])).can_run
    withheld = await hub_access(hub_root, "bob", [EDIT], editors_run=False)
    assert (withheld.role, withheld.can_run) == (Role.EDITOR, False)
    assert (await hub_access(hub_root, "bob", [EDIT, RUN], editors_run=False)).can_run


async def test_hub_run_scope_lets_a_viewer_run_on_this_server_only(hub_root: Path):
    assert not (await hub_access(hub_root, "carol", [VIEW])).can_run
    watch_and_run = await hub_access(hub_root, "carol", [VIEW, RUN])
    assert (watch_and_run.role, watch_and_run.can_run) == (Role.VIEWER, True)
    elsewhere = await hub_access(hub_root, "carol", [VIEW, "custom:jupyter-collab:run!server=mallory/"])
    assert not elsewhere.can_run
    no_access = await hub_access(hub_root, "dave", [RUN])  # the scope alone admits nobody
    assert (no_access.role, no_access.can_run) == (Role.NONE, False)


async def test_hub_shares_file_narrows_running_as_it_narrows_roles(hub_root: Path):
    grants = {"carol": {"seen.ipynb": "viewer", "run.ipynb": "editor"}, "bob": {"*": "viewer"}}
    (hub_root / ".jupyter-collab-shares.json").write_text(json.dumps(grants))
    seen = await hub_access(hub_root, "carol", [VIEW, RUN], "seen.ipynb")
    assert (seen.role, seen.can_run) == (Role.VIEWER, False)  # the owner shared it to watch
    ran = await hub_access(hub_root, "carol", [VIEW, RUN], "run.ipynb")
    assert (ran.role, ran.can_run) == (Role.VIEWER, True)  # the file cannot give edit, nor more
    unlisted = await hub_access(hub_root, "carol", [VIEW, RUN], "other.ipynb")
    assert (unlisted.role, unlisted.can_run) == (Role.NONE, False)
    narrowed = await hub_access(hub_root, "bob", [EDIT], "x.ipynb")
    assert (narrowed.role, narrowed.can_run) == (Role.VIEWER, False)
