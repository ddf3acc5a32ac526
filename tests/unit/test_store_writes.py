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


class FailingInsert(SlowDisk):
    """A SQLite connection whose first write of a base fails, inside its transaction, after
    the updates of the batch were inserted (an I/O error on a page write): the whole
    transaction is rolled back."""

    def execute(self, sql: str, *args):
        cursor = self.db.execute(sql, *args)
        if sql.startswith("INSERT INTO documents (room, base") and not self.stalled:
            self.stalled = True
            raise sqlite3.OperationalError("disk I/O error")
        return cursor


async def restored(path) -> str:
    return await restored_room(path, "room")


async def restored_room(path, room: str) -> str:
    store = HistoryStore(path)
    try:
        stored = await store.load(room)
        doc = Doc()
        source = doc.get("source", type=Text)
        if stored is not None:
            doc.apply_update(stored.state)
        return str(source)
    finally:
        await store.stop()


def fail_next_write(store: HistoryStore, monkeypatch) -> list[Exception]:
    """Make the store's next write fail (as a full disk would); returns the pending
    failure, empty once it happened."""
    write = store._write
    failures: list[Exception] = [sqlite3.OperationalError("disk I/O error")]

    def failing_once(*args):
        if failures:
            raise failures.pop()
        return write(*args)

    monkeypatch.setattr(store, "_write", failing_once)
    return failures


async def test_a_failed_write_is_retried_with_everything_it_held(tmp_path, monkeypatch):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=60)
    updates = typed("abcdef")
    fail_next_write(store, monkeypatch)
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


async def test_rooms_open_while_writes_fail_with_what_is_queued(tmp_path, monkeypatch):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=60)
    updates = typed("abcdef")
    for update in updates[:3]:
        store.append("a", update)
    await store.flush()  # "abc" is written
    for update in updates[3:]:
        store.append("a", update)  # "def" is only queued...
    store.set_base("a", '"base"', "hash-2")

    def full_disk(*args):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_write", full_disk)  # ...and cannot be written
    assert await store.load("b") is None  # another room still opens
    loaded = await store.load("a")
    doc = Doc()
    source = doc.get("source", type=Text)
    doc.apply_update(loaded.state)
    assert str(source) == "abcdef" and loaded.base_hash == "hash-2"
    monkeypatch.undo()
    await store.stop()
    assert await restored_room(tmp_path / "h.sqlite", "a") == "abcdef"


async def test_a_failed_write_is_retried_without_new_edits(tmp_path, monkeypatch):
    monkeypatch.setattr("jupyter_collab.persistence.store.MAX_RETRY_SECONDS", 0.05)
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=0.01)
    failures = fail_next_write(store, monkeypatch)
    for update in typed("quiet"):
        store.append("room", update)
    for _ in range(100):  # no edit comes after the failure: the writer tries again itself
        await asyncio.sleep(0.02)
        if not failures and not store._pending:
            break
    assert not failures and not store._pending
    await store.stop()
    assert await restored(tmp_path / "h.sqlite") == "quiet"


async def test_a_retried_batch_is_counted_once(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite", flush_interval=60)
    store._db = FailingInsert(store._db)
    for update in typed("x" * 50):
        store.append("room", update)
    store.set_base("room", '"base"', "hash")
    try:
        await store.flush()  # the insert fails inside the transaction: rolled back, queued again
    except sqlite3.OperationalError:
        pass
    else:
        raise AssertionError("the write was meant to fail")
    await store.flush()
    written = store._db.execute("SELECT SUM(LENGTH(data)) FROM updates WHERE room='room'").fetchone()[0]
    assert store._stored_bytes["room"] == written  # not twice: compaction would come early
    await store.stop()
