"""The history store: each document's CRDT state in one SQLite file, so that clients that
reconnect after a server restart share the server's history and merge without duplication.

Why our own and not pycrdt-store: its history squashing can empty a document and its
compressed store fails to load. This one keeps, per document, a snapshot (the full
encoded state of the live document) plus the updates since, and:

- batches writes: updates are queued in memory and written by one task, one
  transaction per `flush_interval`, so fast typing costs one commit per interval, and
  a crash loses at most that interval;
- bounds memory: when a document's queue grows past `max_pending_bytes`, the queue is
  replaced by one snapshot of the live document;
- compacts: when a document's stored updates outgrow `compact_bytes`, they are replaced
  by a snapshot (the live document's own encoding, never a squash of old updates, so the
  current content is always what is stored);
- caps its size: past `max_bytes`, histories of documents that are not open are dropped,
  least recently used first (their files on disk still hold their content).

It also remembers, per document, the content last written to (or read from) disk, so that
on restart the server can tell whether the file changed while it was down.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pycrdt import merge_updates

T = TypeVar("T")
MAX_RETRY_SECONDS = 30.0  # between attempts to write after a failed write (a full disk)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    room TEXT PRIMARY KEY,
    base TEXT,             -- JSON of the content last read from or written to disk
    base_hash TEXT,
    used REAL NOT NULL     -- last time the document was open, for eviction
);
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_room ON updates (room, id);
"""


@dataclass
class StoredDocument:
    state: bytes  # one merged Yjs update holding the whole stored history
    base: str | None
    base_hash: str | None


@dataclass
class _Pending:
    snapshot: bytes | None = None  # replaces everything stored before it
    updates: list[bytes] | None = None
    size: int = 0

    def then(self, newer: _Pending | None) -> _Pending:
        """This queue followed by a newer one for the same room (a newer snapshot wins)."""
        if newer is None:
            return self
        if newer.snapshot is not None:
            return newer
        updates = [*(self.updates or []), *(newer.updates or [])]
        return _Pending(self.snapshot, updates, self.size + newer.size)


class HistoryStore:
    """SQLite-backed, batched, bounded store of CRDT histories (one file per server)."""

    def __init__(
        self,
        path: Path,
        *,
        flush_interval: float = 0.1,
        compact_bytes: int = 4_000_000,
        max_pending_bytes: int = 8_000_000,
        max_bytes: int = 500_000_000,
        log: logging.Logger | None = None,
    ) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.compact_bytes = compact_bytes
        self.max_pending_bytes = max_pending_bytes
        self.max_bytes = max_bytes
        self.log = log or logging.getLogger(__name__)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.store_id = self._store_id()
        self._pending: dict[str, _Pending] = {}
        self._snapshotters: dict[str, Callable[[], bytes]] = {}
        self._stored_bytes: dict[str, int] = {}
        self._bases: dict[str, tuple[str, str]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        # One SQLite connection, used from worker threads: one at a time. A flush cancelled
        # at shutdown leaves its thread writing; the final flush must wait for it, not run
        # beside it (two threads in one connection: "no more rows available", and a server
        # that never exits).
        self._db_lock = threading.Lock()

    def _store_id(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key='id'").fetchone()
        if row:
            return row[0]
        store_id = uuid.uuid4().hex
        self._db.execute("INSERT INTO meta (key, value) VALUES ('id', ?)", (store_id,))
        return store_id

    def _wake_up(self) -> None:
        """Make the writer task flush soon (starting it on first use)."""
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        retry = self.flush_interval
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a full disk must not stop the server: try again, slower
                self.log.exception("jupyter_collab: history store write failed; retrying")
                retry = min(retry * 2, MAX_RETRY_SECONDS)
                await asyncio.sleep(retry)
                self._wake.set()  # what failed is queued again: write it even if nothing new comes
            else:
                retry = self.flush_interval

    # -- reading -------------------------------------------------------------------------

    async def _in_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Run database work in a worker thread, one piece at a time."""

        def locked() -> T:
            with self._db_lock:
                return work(*args)

        return await asyncio.to_thread(locked)

    async def load(self, room: str) -> StoredDocument | None:
        """The history of a room (what is written, then what is still queued for it), or
        None when there is none. A failing write (a full disk) does not keep rooms from
        opening: what it holds stays queued, and is part of the answer."""
        try:
            await self.flush()
        except Exception:
            self.log.exception("jupyter_collab: history store write failed; %s loads from memory too", room)
        stored = await self._in_thread(self._load, room)
        return self._with_queued(room, stored)

    def _with_queued(self, room: str, stored: StoredDocument | None) -> StoredDocument | None:
        pending, base = self._pending.get(room), self._bases.get(room)
        if pending is None and base is None:
            return stored
        parts = [] if stored is None else [stored.state]
        if pending is not None:
            parts = [pending.snapshot] if pending.snapshot is not None else parts
            parts += pending.updates or []
        if not parts:
            return None
        state = parts[0] if len(parts) == 1 else merge_updates(*parts)
        if base is None:
            base = (stored.base, stored.base_hash) if stored else (None, None)
        return StoredDocument(state, *base)

    def _load(self, room: str) -> StoredDocument | None:
        row = self._db.execute("SELECT base, base_hash FROM documents WHERE room=?", (room,)).fetchone()
        blobs = [r[0] for r in self._db.execute("SELECT data FROM updates WHERE room=? ORDER BY id", (room,))]
        self._db.execute("UPDATE documents SET used=? WHERE room=?", (time.time(), room))
        if not blobs:
            return None
        self._stored_bytes[room] = sum(len(b) for b in blobs)
        state = blobs[0] if len(blobs) == 1 else merge_updates(*blobs)
        return StoredDocument(state, row[0] if row else None, row[1] if row else None)

    # -- writing -------------------------------------------------------------------------

    def open(self, room: str, snapshot: Callable[[], bytes]) -> None:
        """Register a live document; `snapshot()` returns its full encoded state."""
        self._snapshotters[room] = snapshot

    def close(self, room: str) -> None:
        self._snapshotters.pop(room, None)

    def append(self, room: str, update: bytes) -> None:
        pending = self._pending.setdefault(room, _Pending())
        if pending.updates is None:
            pending.updates = []
        pending.updates.append(update)
        pending.size += len(update)
        if pending.size > self.max_pending_bytes and room in self._snapshotters:
            self.replace(room, self._snapshotters[room]())
        self._wake_up()

    def replace(self, room: str, snapshot: bytes) -> None:
        """Queue a snapshot that supersedes everything stored and queued for `room`."""
        self._pending[room] = _Pending(snapshot=snapshot, updates=[], size=len(snapshot))
        self._wake_up()

    def set_base(self, room: str, base: str, base_hash: str) -> None:
        """Remember the content that is now on disk for `room`."""
        self._bases[room] = (base, base_hash)
        self._wake_up()

    async def flush(self) -> None:
        """Write everything queued, in one transaction. If the write fails (a full disk, an
        I/O error), what it held is queued again, ahead of what came meanwhile: dropping it
        would leave a hole in the stored history, and a history with a hole loads as a
        document that lacks those edits, while clients still have them."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            bases, self._bases = self._bases, {}
            try:
                sizes = await self._in_thread(self._write, pending, bases) if pending or bases else {}
            except BaseException:  # cancelled too: the thread may not finish; updates are idempotent
                for room, item in pending.items():
                    self._pending[room] = item.then(self._pending.get(room))
                self._bases = {**bases, **self._bases}
                raise
            self._stored_bytes.update(sizes)  # only once committed: a retried batch counts once
            if sizes:
                try:
                    await self._in_thread(self._evict)
                except Exception:  # the batch is committed; eviction tries again next time
                    self.log.exception("jupyter_collab: history store eviction failed")
            for room, size in list(self._stored_bytes.items()):
                if size > self.compact_bytes and room in self._snapshotters:
                    self.replace(room, self._snapshotters[room]())
                    self._stored_bytes[room] = 0

    def _write(self, pending: dict[str, _Pending], bases: dict[str, tuple[str, str]]) -> dict[str, int]:
        """Write one batch in one transaction; returns the rooms' stored sizes after it."""
        now = time.time()
        sizes: dict[str, int] = {}
        with self._db:
            self._db.execute("BEGIN")
            for room, item in pending.items():
                self._db.execute(
                    "INSERT INTO documents (room, used) VALUES (?, ?) "
                    "ON CONFLICT(room) DO UPDATE SET used=excluded.used",
                    (room, now),
                )
                size = self._stored_bytes.get(room, 0)
                if item.snapshot is not None:
                    self._db.execute("DELETE FROM updates WHERE room=?", (room,))
                    self._db.execute("INSERT INTO updates (room, data) VALUES (?, ?)", (room, item.snapshot))
                    size = len(item.snapshot)
                updates = item.updates or []
                if updates:
                    blob = updates[0] if len(updates) == 1 else merge_updates(*updates)
                    self._db.execute("INSERT INTO updates (room, data) VALUES (?, ?)", (room, blob))
                    size += len(blob)
                sizes[room] = size
            for room, (base, base_hash) in bases.items():
                self._db.execute(
                    "INSERT INTO documents (room, base, base_hash, used) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(room) DO UPDATE SET base=excluded.base, "
                    "base_hash=excluded.base_hash, used=excluded.used",
                    (room, base, base_hash, now),
                )
        return sizes

    def _evict(self) -> None:
        """Drop histories of closed documents, least recently used first, past max_bytes."""
        total = self._db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM updates").fetchone()[0]
        if total <= self.max_bytes:
            return
        rows = self._db.execute("SELECT room FROM documents ORDER BY used").fetchall()
        for (room,) in rows:
            if total <= self.max_bytes:
                break
            if room in self._snapshotters:
                continue
            size = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM updates WHERE room=?", (room,)
            ).fetchone()[0]
            self._delete(room)
            self._stored_bytes.pop(room, None)
            total -= size
            self.log.info("jupyter_collab: history of %s evicted (store over its size cap)", room)

    async def forget(self, room: str) -> None:
        """Drop a room's history (e.g. it no longer decodes)."""
        async with self._lock:
            self._pending.pop(room, None)
            self._stored_bytes.pop(room, None)
            await self._in_thread(self._delete, room)

    def _delete(self, room: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM updates WHERE room=?", (room,))
            self._db.execute("DELETE FROM documents WHERE room=?", (room,))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()
        await self._in_thread(self._db.close)
