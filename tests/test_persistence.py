"""Persistence: saving, shutdown, crashes, restarts, out-of-band changes, reconnection."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time

import nbformat
import pytest

from .helpers import append_text, cell_ids, disk_sources, eventually, join, sources, write_notebook


async def test_sigterm_with_clients_connected_saves_and_exits_fast(make_server):
    server = make_server({"document_save_delay": 30.0, "max_save_delay": 60.0})
    path = write_notebook(server.root, sources=["start"])
    clients = [await join(server, path) for _ in range(3)]
    append_text(clients[0], 0, " + edit")
    await eventually(lambda: all(sources(c) == ["start + edit"] for c in clients))
    assert disk_sources(server, path) == ["start"]  # the save delay has not passed
    # In a thread: the clients of this test's event loop must stay able to answer the
    # server's close frames, as real clients do (a blocked loop made the exit wait on them).
    took = await asyncio.to_thread(server.terminate)
    assert took < 5.0, server.log()
    assert disk_sources(server, path) == ["start + edit"]
    codes = [await c.wait_closed() for c in clients]
    assert all(code == 1012 for code, _ in codes), codes  # "service restart": reconnect later
    for client in clients:
        await client.close()


async def test_continuous_typing_is_saved_within_max_delay(make_server):
    server = make_server({"document_save_delay": 0.5, "max_save_delay": 1.0})
    path = write_notebook(server.root, sources=[""])
    client = await join(server, path)
    started = time.monotonic()
    saved_during_typing = False
    while time.monotonic() - started < 3.0:
        append_text(client, 0, "x")
        await asyncio.sleep(0.05)  # never quiet for save_delay
        if disk_sources(server, path)[0].count("x") > 0:
            saved_during_typing = True
    assert saved_during_typing
    await client.close()


async def test_sigkill_during_saves_keeps_file_readable_and_edits(make_server):
    server = make_server({"document_save_delay": 0.05, "max_save_delay": 0.1})
    # Large enough that each save takes a while, so that kills land mid-write.
    path = write_notebook(server.root, sources=[f"cell {i} " + "x" * 2000 for i in range(200)])
    client = await join(server, path)
    typed = 0
    for _ in range(60):
        append_text(client, 0, "!")
        typed += 1
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.2)  # every edit above is now more than a second old
    append_text(client, 1, "late")  # may or may not survive: less than a second old
    await asyncio.sleep(0.01)
    server.kill()
    await client.wait_closed()
    with open(server.root / path) as handle:
        nbformat.read(handle, as_version=4)  # readable, never truncated
    server.start()
    reader = await join(server, path)
    assert sources(reader)[0].endswith("!" * typed)
    # The tab that was open across the crash reconnects: nothing is duplicated.
    await client.connect()
    await eventually(lambda: sources(reader) == sources(client))
    assert len(cell_ids(reader)) == 200 == len(set(cell_ids(reader)))
    assert sources(reader)[0].count("!") == typed
    await eventually(lambda: disk_sources(server, path) == sources(reader))
    await reader.close()
    await client.close()


async def test_restart_with_history_reconnects_without_duplication(server):
    path = write_notebook(server.root, sources=["one", "two"])
    tab = await join(server, path)
    append_text(tab, 0, " edited")
    await eventually(lambda: disk_sources(server, path)[0] == "one edited")
    server.restart()
    await tab.connect()  # same document, same history: a plain resync
    append_text(tab, 1, " again")
    other = await join(server, path)
    await eventually(lambda: sources(other) == ["one edited", "two again"])
    assert sources(tab) == ["one edited", "two again"]
    await eventually(lambda: disk_sources(server, path) == ["one edited", "two again"])
    await tab.close()
    await other.close()


async def test_offline_edits_merge_after_restart_with_history(server):
    path = write_notebook(server.root, sources=["shared"])
    online = await join(server, path)
    offline = await join(server, path)
    await offline.disconnect()
    # Offline: edit a cell and add one.
    append_text(offline, 0, " (offline)")
    offline.notebook().append_cell(
        {"cell_type": "code", "source": "new offline", "metadata": {}, "outputs": []}
    )
    # Meanwhile online: add a cell.
    online.notebook().append_cell({"cell_type": "markdown", "source": "new online", "metadata": {}})
    await eventually(lambda: "new online" in disk_sources(server, path))
    await online.close()
    server.restart()
    await offline.connect()
    watcher = await join(server, path)
    await eventually(lambda: sources(watcher) == sources(offline) and len(sources(watcher)) == 3)
    final = sources(watcher)
    assert final[0] == "shared (offline)"
    assert sorted(final[1:]) == ["new offline", "new online"]
    assert len(set(cell_ids(watcher))) == 3
    await eventually(lambda: disk_sources(server, path) == final)
    await offline.close()
    await watcher.close()


async def test_restart_without_history_merges_by_cell_id_and_asks_reload(make_server):
    server = make_server({"history_enabled": False})
    path = write_notebook(server.root, sources=["alpha", "beta"])
    tab = await join(server, path)
    await tab.disconnect()
    append_text(tab, 1, " edited offline")
    tab.notebook().append_cell(
        {"cell_type": "code", "source": "added offline", "metadata": {}, "outputs": []}
    )
    server.restart()  # a new process: the history the tab shares is gone
    fresh = await join(server, path)
    await tab.connect()
    code, reason = await tab.wait_closed()
    assert code == 1003
    assert json.loads(reason)["reloadable"] is True
    await eventually(lambda: sources(fresh) == ["alpha", "beta edited offline", "added offline"])
    assert len(set(cell_ids(fresh))) == 3
    # "Reload": a new tab gets the merged document, once.
    reloaded = await join(server, path)
    assert sources(reloaded) == ["alpha", "beta edited offline", "added offline"]
    await eventually(lambda: disk_sources(server, path) == sources(reloaded))
    for client in (tab, fresh, reloaded):
        await client.close()


async def test_out_of_band_change_merges_by_cell_id(server):
    path = write_notebook(server.root, sources=["keep me", "change me", "delete me"])
    client = await join(server, path)
    ids = cell_ids(client)
    untouched_text = client.notebook().ycells[0]["source"]
    # A live edit that is not saved yet when the file changes.
    append_text(client, 0, " (live)")
    nb = nbformat.read(server.root / path, as_version=4)
    nb.cells[1].source = "changed on disk"
    del nb.cells[2]
    nb.cells.append(nbformat.v4.new_markdown_cell("added on disk"))
    time.sleep(0.01)
    nbformat.write(nb, server.root / path)
    await eventually(lambda: sources(client) == ["keep me (live)", "changed on disk", "added on disk"])
    assert cell_ids(client)[:2] == ids[:2]  # same cells, not re-created
    assert client.notebook().ycells[0]["source"] is not None
    assert str(untouched_text) == "keep me (live)"  # the live edit survived
    await eventually(
        lambda: disk_sources(server, path) == ["keep me (live)", "changed on disk", "added on disk"]
    )
    await client.close()


async def test_touched_file_changes_nothing(server):
    path = write_notebook(server.root, sources=["same"])
    client = await join(server, path)
    updates = []
    client.doc.observe(lambda event: updates.append(event.update))
    before = os.stat(server.root / path).st_mtime_ns
    os.utime(server.root / path, ns=(before + 5_000_000_000, before + 5_000_000_000))
    await asyncio.sleep(1.0)
    assert updates == []
    assert sources(client) == ["same"]
    await client.close()


async def test_out_of_band_text_merge_keeps_concurrent_lines(server):
    path = write_notebook(server.root, sources=["line1\nline2\nline3\n"])
    client = await join(server, path)
    ytext = client.notebook().ycells[0]["source"]
    ytext.insert(0, "live0\n")
    nb = nbformat.read(server.root / path, as_version=4)
    nb.cells[0].source = "line1\nline2 changed on disk\nline3\n"
    nbformat.write(nb, server.root / path)
    await eventually(lambda: sources(client) == ["live0\nline1\nline2 changed on disk\nline3\n"])
    await client.close()


async def test_many_clients_opening_a_new_room_at_once(server):
    path = write_notebook(server.root, sources=["burst"])
    clients = await asyncio.wait_for(asyncio.gather(*(join(server, path) for _ in range(20))), 30)
    assert all(sources(c) == ["burst"] for c in clients)
    assert len({tuple(cell_ids(c)) for c in clients}) == 1
    for client in clients:
        await client.close()


async def test_room_closes_after_delay_and_reopens_from_disk(make_server):
    server = make_server({"room_close_delay": 0.5})
    path = write_notebook(server.root, sources=["v1"])
    client = await join(server, path)
    append_text(client, 0, " v2")
    await client.close()
    await eventually(lambda: "closed room" in server.log() and disk_sources(server, path) == ["v1 v2"])
    again = await join(server, path)
    assert sources(again) == ["v1 v2"]
    await again.close()


async def test_history_store_disabled_still_saves(make_server):
    server = make_server({"history_enabled": False})
    path = write_notebook(server.root, sources=["a"])
    client = await join(server, path)
    append_text(client, 0, "b")
    await eventually(lambda: disk_sources(server, path) == ["ab"])
    assert not (server.data / "jupyter_collab").exists()
    await client.close()


@pytest.mark.parametrize("history", [True, False])
async def test_file_is_written_atomically(make_server, history):
    server = make_server({"history_enabled": history})
    path = write_notebook(server.root, sources=["a"])
    inode_before = os.stat(server.root / path).st_ino
    client = await join(server, path)
    append_text(client, 0, "b")
    await eventually(lambda: disk_sources(server, path) == ["ab"])
    # Replaced by rename, not rewritten in place; no temporary files left behind.
    assert os.stat(server.root / path).st_ino != inode_before
    assert [p.name for p in server.root.iterdir() if p.name.startswith(".~")] == []
    nbformat.validate(nbformat.read(server.root / path, as_version=4))
    await client.close()


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_five_thousand_edits_survive_a_prompt_stop_without_duplication(make_server, stop):
    """The reference duplicated the text here (old tab reopened) or lost it all (SIGKILL)."""
    server = make_server({"document_save_delay": 1.0, "max_save_delay": 5.0})
    path = write_notebook(server.root, sources=["seed"])
    tab = await join(server, path)
    for index in range(5000):
        append_text(tab, 0, str(index % 10))
        if index % 100 == 0:
            await asyncio.sleep(0)  # let the client send as it types
    await tab.save()  # a round trip: the server has every edit
    expected = sources(tab)[0]
    await asyncio.sleep(1.2)  # every edit is now more than a second old
    if stop == "sigterm":
        server.terminate()
    else:
        server.kill()
    await tab.wait_closed()
    server.start()
    await tab.connect()  # the old tab comes back
    fresh = await join(server, path)
    await tab.save()
    await asyncio.sleep(0.3)
    assert sources(fresh) == sources(tab) == [expected]
    await eventually(lambda: disk_sources(server, path) == [expected])
    await tab.close()
    await fresh.close()


async def test_slow_client_is_closed_with_1013_others_continue(make_server):
    server = make_server(
        {
            "max_send_buffer_bytes": 1_000_000,
            "history_enabled": False,
            "document_save_delay": 60.0,
            "max_save_delay": 120.0,
        }
    )
    path = write_notebook(server.root, sources=[""])
    writer = await join(server, path)
    reader = await join(server, path)
    slow = await join(server, path)
    slow._reader.cancel()  # stops reading: its socket and buffers fill up
    # More than the kernel's loopback socket buffers can absorb (several MB).
    written = 0
    while "not reading fast enough" not in server.log() and written < 60:
        append_text(writer, 0, "y" * 500_000)
        written += 1
        await asyncio.sleep(0.05)
    assert "not reading fast enough" in server.log()
    # Once it reads again (within tornado's 5 s close handshake), the slow client finds the
    # close code telling it to resync.
    while await asyncio.wait_for(slow.ws.read_message(), 10) is not None:
        pass
    assert slow.ws.close_code == 1013
    await eventually(lambda: sources(reader) == sources(writer))
    assert len(sources(reader)[0]) == written * 500_000
    for client in (writer, reader, slow):
        await client.close()


async def test_unreadable_history_falls_back_to_the_file(server):
    path = write_notebook(server.root, sources=["from file"])
    client = await join(server, path)
    await client.close()
    server.stop()
    db = sqlite3.connect(server.data / "jupyter_collab" / "history.sqlite")
    db.execute("UPDATE updates SET data = X'DEADBEEF'")
    db.commit()
    db.close()
    server.start()
    again = await join(server, path)
    assert sources(again) == ["from file"]
    assert "unusable" in server.log()
    await again.close()
