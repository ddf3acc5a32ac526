"""The history store on a real SQLite file: batching, compaction, size cap, recovery."""

from __future__ import annotations

import asyncio
import sqlite3

from pycrdt import Doc, Text

from jupyter_collab.persistence.store import HistoryStore

COMPACT_BYTES = 20_000


def text_doc(content: str = "") -> tuple[Doc, Text]:
    doc = Doc()
    text = doc.get("source", type=Text)
    if content:
        text += content
    return doc, text


def restore(state: bytes) -> str:
    doc, text = text_doc()
    doc.apply_update(state)
    return str(text)


async def test_fast_typing_is_batched_and_restored(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=0.05)
    doc, text = text_doc()
    store.open("room", doc.get_update)
    doc.observe(lambda event: store.append("room", event.update))
    for index in range(5000):
        text += str(index % 10)
    await asyncio.sleep(0.3)
    rows = sqlite3.connect(tmp_path / "h.sqlite").execute("SELECT COUNT(*) FROM updates").fetchone()[0]
    assert rows < 50  # one row per flush, not one per keystroke
    await store.stop()
    reopened = HistoryStore(tmp_path / "h.sqlite")
    stored = await reopened.load("room")
    assert stored is not None
    assert restore(stored.state) == str(text)
    await reopened.stop()


async def test_compaction_keeps_the_content_and_bounds_the_size(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=0.01, compact_bytes=COMPACT_BYTES)
    doc, text = text_doc("start")
    store.open("room", doc.get_update)
    doc.observe(lambda event: store.append("room", event.update))
    for _ in range(1000):  # much typing and deleting: history grows, content does not
        text += "x" * 100
        await asyncio.sleep(0)
        del text[5:]
        await store.flush()
    await store.flush()
    db = sqlite3.connect(tmp_path / "h.sqlite")
    stored_bytes = db.execute("SELECT SUM(LENGTH(data)) FROM updates").fetchone()[0]
    assert stored_bytes < 40_000
    stored = await store.load("room")
    assert stored is not None and restore(stored.state) == "start"
    await store.stop()


async def test_size_cap_evicts_closed_documents_only(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=0.01, max_bytes=30_000)
    open_doc, open_text = text_doc("open " + "o" * 20_000)
    store.open("open-room", open_doc.get_update)
    store.replace("open-room", open_doc.get_update())
    for index in range(5):
        closed_doc, _ = text_doc(f"closed {index} " + "c" * 10_000)
        store.replace(f"closed-{index}", closed_doc.get_update())
        await store.flush()
    await store.flush()
    kept = await store.load("open-room")
    assert kept is not None and restore(kept.state) == str(open_text)
    db = sqlite3.connect(tmp_path / "h.sqlite")
    assert db.execute("SELECT SUM(LENGTH(data)) FROM updates").fetchone()[0] <= 30_000
    assert await store.load("closed-0") is None  # least recently used went first
    await store.stop()


async def test_store_id_is_stable_across_restarts(tmp_path):
    first = HistoryStore(tmp_path / "h.sqlite")
    store_id = first.store_id
    await first.stop()
    second = HistoryStore(tmp_path / "h.sqlite")
    assert second.store_id == store_id
    await second.stop()


async def test_base_is_remembered(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=0.01)
    doc, _ = text_doc("abc")
    store.replace("room", doc.get_update())
    store.set_base("room", '"abc"', "hash-1")
    await store.stop()
    again = HistoryStore(tmp_path / "h.sqlite")
    stored = await again.load("room")
    assert stored is not None and (stored.base, stored.base_hash) == ('"abc"', "hash-1")
    await again.stop()
