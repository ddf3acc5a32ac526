"""Awareness is every client's own word: a peer announcing malformed states (a raw Python
client here) must not break what the owner's JupyterLab shows of everyone else, and the
global room gets only what the collaborators panel needs."""

from __future__ import annotations

from typing import Any

from jupyter_collab.client import RoomClient

from ..helpers import eventually, join, write_notebook
from .conftest import CELL, open_document

READY = ".jp-NotebookPanel-toolbar .jp-collab-status-connected"
TOOLBAR = ".jp-NotebookPanel-toolbar"
CLIENT_ID = "() => window.jupyterapp.shell.currentWidget.context.model.sharedModel.awareness.clientID"


def malformed(posing_as: int) -> dict[str, Any]:
    """A state of the right outline with wrong contents, field by field."""
    return {
        # Kept by the server beside the identity it stamps: self-declared, never shown.
        "user": {"program": True, "program_name": "Alice", "agent": "x" * 5000},
        "clientID": posing_as,  # another peer's id
        "cursors": [
            {"anchor": {"item": {"client": "x", "clock": 0}}, "head": {"item": {"client": "x"}}},
            {"anchor": {}, "head": {}},
            {"anchor": {"type": None, "tname": "injected", "item": None}, "head": {"tname": "injected"}},
            "junk",
            None,
        ],
        "activeCell": {"not": "an id"},
        "scrollCell": ["x"],
        "scrollOffset": "100px",
        "following": "everyone",
        "followable": "yes",
    }


def global_room_url(lab: Any, token: str) -> str:
    return (
        lab.url.replace("http://", "ws://", 1)
        + f"/api/collaboration/room/JupyterLab:globalAwareness?token={token}"
    )


async def test_malformed_peer_breaks_nobody_elses_presence_or_cursor(make_lab, browser):
    lab = make_lab("ours")
    path = write_notebook(lab.root, "presence.ipynb", sources=["a = 1", "b = 2"])
    alice = await open_document(browser, lab, "alice", path, selector=READY)
    bob = await open_document(browser, lab, "bob", path, selector=READY)
    bob_id = await bob.evaluate(CLIENT_ID)
    # Carol joins the notebook and the global room from Python, with malformed states.
    carol = await join(lab, path, token="carol-token")
    carol.set_awareness(malformed(posing_as=bob_id))
    carol_global = await RoomClient(global_room_url(lab, "carol-token")).connect()
    carol_global.set_awareness({"user": {}, "documents": {"not": "a list"}, "current": ["x"]})
    try:
        # Alice's toolbar shows her, under her own client id (not the one she claims).
        carol_avatar = alice.locator(f'{TOOLBAR} .jp-collab-avatar[data-username="carol"]')
        await carol_avatar.wait_for(timeout=15_000)
        assert await carol_avatar.get_attribute("data-client") == str(carol.doc.client_id)
        assert await alice.locator(f'{TOOLBAR} .jp-collab-avatar[data-client="{bob_id}"]').count() == 1
        # Bob's cursor still draws in Alice's editors, named.
        await bob.locator(CELL).nth(1).click()
        await bob.keyboard.press("End")
        await alice.locator(".jp-collab-caretLabel", has_text="Bob").wait_for(timeout=15_000)
        assert await alice.locator(".jp-collab-caretLabel", has_text="Carol").count() == 0
        # The collaborators panel still lists everyone, with the documents Bob has open.
        await alice.locator('.jp-SideBar [data-id="jp-collab-collaborators"]').click()
        bob_row = alice.locator('.jp-collab-person[data-username="bob"]')
        await bob_row.locator(".jp-collab-personDocs li", has_text=path).wait_for(timeout=15_000)
        carol_row = alice.locator('.jp-collab-person[data-username="carol"]')
        await carol_row.wait_for(timeout=15_000)
        assert await carol_row.locator(".jp-collab-personDocs li").count() == 0

        # What Alice's tab publishes in the global room: her joined document, nothing else.
        def alice_global() -> dict[str, Any] | None:
            states = [
                s for s in carol_global.awareness.values() if s.get("user", {}).get("username") == "alice"
            ]
            return states[0] if states else None

        await eventually(lambda: (alice_global() or {}).get("documents") == [path], timeout=15)
        assert set(alice_global() or {}) == {"user", "documents", "current"}
        assert alice_global()["current"] == path
    finally:
        await carol.close()
        await carol_global.close()
