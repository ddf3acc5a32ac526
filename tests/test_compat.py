"""Compatibility with the clients of jupyter-collaboration: jupyter-nbmodel-client, the save request,
the global awareness room, non-ASCII text, and text-file rooms."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_nbmodel_client import NbModelClient, get_jupyter_notebook_websocket_url
from pycrdt import Text

from jupyter_collab.protocol import (
    SyncMessage,
    SyncType,
    sync_frame,
)

from .helpers import RawPeer, disk_sources, eventually, join, log_lines, sources, write_notebook
from .server import TOKEN


def byte_offset(text: str, index: int) -> int:
    """pycrdt's Text counts UTF-8 bytes: the offset of code point `index` of `text`."""
    return len(text[:index].encode("utf-8"))


# -- (a) jupyter-nbmodel-client ------------------------------------------------------------


async def test_nbmodel_client_edits_reach_room_and_disk(server):
    path = write_notebook(server.root, sources=["a = 1"])
    watcher = await join(server, path)
    url = await asyncio.to_thread(get_jupyter_notebook_websocket_url, server.url, path, TOKEN)
    async with NbModelClient(url) as nb:
        assert nb.synced
        assert len(nb) == 1 and nb.get_cell_source(0) == "a = 1"
        code = nb.add_code_cell("print(1)")
        markdown = nb.add_markdown_cell("# Title")
        nb.set_cell_source(code, "print('héllo 👋')")
        expected = ["a = 1", "print('héllo 👋')", "# Title"]
        await eventually(lambda: sources(watcher) == expected)
        cells = watcher.notebook().get()["cells"]
        assert [c["cell_type"] for c in cells] == ["code", "code", "markdown"]
        assert markdown == 2
        # Its awareness state (what it announces as "user") is relayed to the room.
        await eventually(
            lambda: any(
                str(state.get("user", {}).get("agent", "")).startswith("Datalayer-NbModelClient")
                for state in watcher.awareness.values()
            )
        )
        # And an edit made by our client reaches it.
        first: Text = watcher.notebook().ycells[0]["source"]
        first.insert(len(str(first).encode()), "\nb = 2")
        await eventually(lambda: nb.get_cell_source(0) == "a = 1\nb = 2")
        expected[0] = "a = 1\nb = 2"
        await eventually(lambda: disk_sources(server, path) == expected)
    # The client disconnected cleanly: no error in the server log, the room still works.
    await eventually(lambda: disk_sources(server, path) == sources(watcher) == expected)
    assert not log_lines(server, "jupyter_collab", "error")
    await watcher.close()


# -- (b) the save request ------------------------------------------------------------------


async def test_save_request_success_then_skipped(make_server):
    # Long delays: the automatic save must not race the explicit one.
    server = make_server({"document_save_delay": 30.0, "max_save_delay": 60.0})
    path = write_notebook(server.root, sources=["a = 1"])
    alice = await join(server, path)
    bob = await join(server, path)

    reply = await alice.save()
    assert reply == {"type": "save", "responseTo": alice._next_save, "status": "skipped"}

    source: Text = alice.notebook().ycells[0]["source"]
    source.insert(0, "# saved\n")
    await eventually(lambda: sources(bob) == ["# saved\na = 1"])  # the edit reached the server
    assert disk_sources(server, path) == ["a = 1"]
    reply = await alice.save()
    assert reply == {"type": "save", "responseTo": alice._next_save, "status": "success"}
    assert disk_sources(server, path) == ["# saved\na = 1"]

    reply = await bob.save()
    assert reply == {"type": "save", "responseTo": bob._next_save, "status": "skipped"}
    reply = await alice.save()
    assert reply == {"type": "save", "responseTo": alice._next_save, "status": "skipped"}
    assert alice._next_save == 3  # ids are per client: each reply answers its own request
    await alice.close()
    await bob.close()


async def test_save_request_right_after_edit_includes_the_edit(make_server):
    """A save requested in the same turn as an edit must save that edit (frames keep their order)."""
    server = make_server({"document_save_delay": 30.0, "max_save_delay": 60.0})
    path = write_notebook(server.root, sources=["a = 1"])
    alice = await join(server, path)
    source: Text = alice.notebook().ycells[0]["source"]
    source.insert(0, "# now\n")
    await asyncio.sleep(0)  # let RoomClient queue the update it sends for the edit
    reply = await alice.save()
    assert reply["status"] == "success", reply
    assert disk_sources(server, path) == ["# now\na = 1"]
    await alice.close()


# -- (c) the global awareness room ---------------------------------------------------------


GLOBAL_AWARENESS = "JupyterLab:globalAwareness"


def user(name: str) -> dict[str, Any]:
    return {
        "user": {
            "username": name,
            "name": name.title(),
            "display_name": name.title(),
            "initials": name[0].upper(),
            "color": "var(--jp-collaborator-color1)",
            "avatar_url": None,
        },
        "current": f"notebook:{name}.ipynb",
    }


def same(state: dict[str, Any] | None, announced: dict[str, Any]) -> bool:
    """The state as announced, but with the `user` field the server stamped (the token's
    user, whatever name the client claimed)."""
    if state is None:
        return False
    stamped = state.get("user", {})
    return (
        {k: v for k, v in state.items() if k != "user"} == {k: v for k, v in announced.items() if k != "user"}
        and stamped.get("role") == "owner"
        and stamped.get("username") != announced["user"]["username"]
    )


async def test_global_awareness_room(server):
    alice = await RawPeer.open(server, GLOBAL_AWARENESS, TOKEN)
    bob = await RawPeer.open(server, GLOBAL_AWARENESS, TOKEN)
    await alice.announce((1001, user("alice")))
    await bob.announce((1002, user("bob")))
    await eventually(
        lambda: same(alice.states.get(1002), user("bob")) and same(bob.states.get(1001), user("alice"))
    )

    # A latecomer gets everybody's current state on join.
    carol = await RawPeer.open(server, GLOBAL_AWARENESS, TOKEN)
    await eventually(
        lambda: same(carol.states.get(1001), user("alice")) and same(carol.states.get(1002), user("bob"))
    )

    # JupyterLab runs the sync handshake in this room too: it gets an empty document.
    await carol.announce((1003, user("carol")))
    await eventually(lambda: 1003 in alice.states)
    await carol.ws.write_message(sync_frame(SyncType.STEP1, b"\x00"), binary=True)
    assert carol.sync[0] == SyncMessage(SyncType.STEP1, b"\x00")  # sent on join
    await eventually(lambda: len(carol.sync) == 2)
    assert carol.sync[1] == SyncMessage(SyncType.STEP2, b"\x00\x00")
    # A document update has nowhere to go: nobody receives it, the sender stays connected.
    await carol.ws.write_message(sync_frame(SyncType.UPDATE, b"\x00\x00"), binary=True)
    await asyncio.sleep(0.3)
    assert not carol.closed.is_set()
    assert all(m.kind != SyncType.UPDATE for m in alice.sync + bob.sync)
    carol.close()
    # Its state is removed for the others, who keep working.
    await eventually(lambda: 1003 not in alice.states and 1003 not in bob.states)
    moved = {**user("alice"), "current": "notebook:other.ipynb"}
    await alice.announce((1001, moved))
    await eventually(lambda: same(bob.states.get(1001), moved))
    assert not alice.closed.is_set() and not bob.closed.is_set()
    for peer in (alice, bob, carol):
        peer.close()


# -- (d) non-ASCII text --------------------------------------------------------------------

INITIAL = "naïve café — 日本語 e\u0301 👩\u200d👩\u200d👧 𝔘 end"

# Per client: (code point position in INITIAL, inserted text)
EDITS: list[list[tuple[int, str]]] = [
    [(0, "😀"), (len(INITIAL), " 🇫🇷")],
    [(INITIAL.index("café"), "中文 "), (INITIAL.index("end"), "àéîõü ")],
    [(INITIAL.index("\u0301"), "a\u0308"), (INITIAL.index("👩") + 1, "Ω")],  # inside grapheme clusters
    [(INITIAL.index("𝔘") + 1, "𝔫𝔦"), (INITIAL.index("日"), "한국어")],
]


async def test_non_ascii_concurrent_edits_round_trip(server):
    path = write_notebook(server.root, sources=[INITIAL])
    clients = [await join(server, path) for _ in range(len(EDITS) + 1)]
    assert all(sources(c) == [INITIAL] for c in clients)
    # All edits are made in one turn of the event loop, before any of them is sent: they are concurrent.
    for client, edits in zip(clients, EDITS, strict=False):
        text: Text = client.notebook().ycells[0]["source"]
        with client.doc.transaction():
            for position, value in sorted(edits, reverse=True):  # right to left keeps positions valid
                text.insert(byte_offset(INITIAL, position), value)
    # The last client deletes the CJK word at the same time.
    deleter = clients[-1]
    start = INITIAL.index("日本語")
    deleted: Text = deleter.notebook().ycells[0]["source"]
    del deleted[byte_offset(INITIAL, start) : byte_offset(INITIAL, start + 3)]

    await eventually(lambda: len({sources(c)[0] for c in clients}) == 1 and "한국어" in sources(deleter)[0])
    final = sources(clients[0])[0]
    assert "日本語" not in final and "\ufffd" not in final
    for edits in EDITS:
        for _, value in edits:
            assert value in final
    # Every inserted piece kept its place relative to the untouched text around it.
    assert final.startswith("😀naïve ") and final.endswith("end 🇫🇷")
    assert "— 한국어 e" in final and "e\u0301" not in final and "ea\u0308\u0301" in final
    assert "👩Ω\u200d" in final and "𝔘𝔫𝔦" in final and "中文 café" in final

    # A fresh client and the file on disk hold exactly the same string.
    fresh = await join(server, path)
    assert sources(fresh) == [final]
    await eventually(lambda: disk_sources(server, path) == [final])
    raw = (server.root / path).read_bytes().decode("utf-8")
    assert json.loads(raw)["cells"][0]["source"] in (final, final.splitlines(keepends=True))
    for client in [*clients, fresh]:
        await client.close()


# -- (e) text files ------------------------------------------------------------------------


async def test_text_file_room_syncs_and_saves(server):
    (server.root / "notes.txt").write_text("line one\nligne deux — ünïcödé ✓\n", encoding="utf-8")
    alice = await join(server, "notes.txt", file_format="text", file_type="file")
    bob = await join(server, "notes.txt", file_format="text", file_type="file")
    assert "text:file:" in alice.url
    assert str(alice.text().get()) == "line one\nligne deux — ünïcödé ✓\n"
    source_a: Text = alice.doc.get("source", type=Text)
    source_b: Text = bob.doc.get("source", type=Text)
    source_a.insert(0, "# 标题\n")
    source_b.insert(len(str(source_b).encode()), "line three 🎉\n")
    expected = "# 标题\nline one\nligne deux — ünïcödé ✓\nline three 🎉\n"
    await eventually(lambda: alice.text().get() == bob.text().get() == expected)
    await eventually(lambda: (server.root / "notes.txt").read_text(encoding="utf-8") == expected)
    assert (await alice.save())["status"] == "skipped"
    source_b.insert(0, "!")
    await eventually(lambda: alice.text().get() == "!" + expected)
    reply = await bob.save()
    assert reply["status"] in ("success", "skipped")  # "skipped" if the automatic save came first
    assert (server.root / "notes.txt").read_text(encoding="utf-8") == "!" + expected
    await alice.close()
    await bob.close()


async def test_dirty_flag_is_cleared_after_each_save(server):
    """JupyterLab sets the shared `dirty` flag on every edit and marks the tab unsaved while
    it is set: the server clears it once the change is on disk, as the reference does."""
    path = write_notebook(server.root, sources=["a"])
    client = await join(server, path)
    other = await join(server, path)
    nb = client.notebook()
    with nb.ydoc.transaction():
        nb.ycells[0]["source"].insert(0, "x")
        nb.ystate["dirty"] = True
    await eventually(lambda: disk_sources(server, path) == ["xa"])
    await eventually(lambda: nb.ystate.get("dirty") is False)
    await eventually(lambda: other.notebook().ystate.get("dirty") is False)
    await client.close()
    await other.close()
