"""The history store keeps every queued edit through failed writes and an interrupted
shutdown: a stored history with a hole loads as a document that lacks edits clients still
have, and a server restarted on it no longer shares their history."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from pycrdt import Doc, Text

from jupyter_collab.persistence.store import HistoryStore


def typed(text: str) -> list[bytes]:
    """The updates of typing `text` one character at a time."""
    doc = Doc()
    source = doc.get("source", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for char in text:
        source += char
    return updates


class SlowDisk:
    """A SQLite connection whose first transaction stalls after it began, as a write to a
    slow disk does: long enough for a shutdown to arrive in the middle of it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.stalled = False

    def execute(self, sql: str, *args):
        cursor = self.db.execute(sql, *args)
        if sql == "BEGIN" and not self.stalled:
            self.stalled = True
            time.sleep(0.3)
        return cursor

    def __enter__(self):
        return self.db.__enter__()

    def __exit__(self, *exc):
        return self.db.__exit__(*exc)

    def close(self) -> None:
        self.db.close()


async def restored(path) -> str:
    store = HistoryStore(path)
    try:
        stored = await store.load("room")
        doc = Doc()
        source = doc.get("source", type=Text)
        if stored is not None:
            doc.apply_update(stored.state)
        return str(source)
    finally:
        await store.stop()


async def test_a_failed_write_is_retried_with_everything_it_held(tmp_path, monkeypatch):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=60)
    updates = typed("abcdef")
    write = store._write
    failures = [sqlite3.OperationalError("disk I/O error")]

    def failing_once(*args):
        if failures:
            raise failures.pop()
        write(*args)

    monkeypatch.setattr(store, "_write", failing_once)
    for update in updates[:3]:
        store.append("room", update)
    store.set_base("room", '"base"', "hash-1")
    try:
        await store.flush()
    except sqlite3.OperationalError:
        pass
    else:
        raise AssertionError("the write was meant to fail")
    for update in updates[3:]:
        store.append("room", update)
    await store.stop()
    assert await restored(tmp_path / "h.sqlite") == "abcdef"
    again = HistoryStore(tmp_path / "h.sqlite")
    assert (await again.load("room")).base_hash == "hash-1"
    await again.stop()


async def test_stop_during_a_slow_write_waits_for_it_and_keeps_everything(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=0.01)
    store._db = SlowDisk(store._db)
    updates = typed("hello world")
    for update in updates[:5]:
        store.append("room", update)
    await asyncio.sleep(0.05)  # the writer task is now inside the slow write
    for update in updates[5:]:
        store.append("room", update)
    # Stop cancels the writer task, whose thread keeps writing; the final flush must wait
    # for that thread, not write beside it in the same SQLite connection.
    await store.stop()
    assert await restored(tmp_path / "h.sqlite") == "hello world"
